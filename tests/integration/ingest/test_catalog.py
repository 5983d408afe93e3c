"""The catalog moves items only forward, ignores stale runs and duplicates, and pages by key."""

from __future__ import annotations

import asyncio
import json
import uuid

import aio_pika
import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.errors import PermanentError
from prsnl_common.events import (
    ItemFailed,
    MediaMetadata,
    RetryScheduled,
    SourceInfo,
    VideoDownloaded,
    VideoDownloadProgress,
    VideoTranscoded,
    utcnow,
)
from prsnl_common.settings import CommonSettings
from prsnl_ingest import catalog
from prsnl_ingest.lifecycle import DEAD_LETTERED
from tests.support.catalog import fail_item, new_capture, new_item
from tests.support.waiting import eventually as wait_until

pytestmark = pytest.mark.integration


def downloaded(item_id: uuid.UUID, run: int = 1) -> VideoDownloaded:
    return VideoDownloaded(
        item_id=item_id,
        run=run,
        original_key=f"items/{item_id}/original.mp4",
        size=10,
        info=SourceInfo(title="Cats at play", uploader="someone", duration=3.0),
    )


def transcoded(item_id: uuid.UUID, run: int = 1) -> VideoTranscoded:
    return VideoTranscoded(
        item_id=item_id,
        run=run,
        video_key=f"items/{item_id}/video.mp4",
        original_key=f"items/{item_id}/original.mp4",  # as the transcoder always sends it
        thumbnail_keys={320: f"items/{item_id}/thumb-320.jpg"},
        metadata=MediaMetadata(video_codec="h264", width=640, height=360, duration=3.0),
        action="remuxed",
    )


async def status(pool: asyncpg.Pool, item_id: uuid.UUID) -> str:
    return str(await pool.fetchval("SELECT status FROM items WHERE id = $1", item_id))


async def test_platform_spellings_are_one_item_per_owner(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, _ = owner
    first = await new_item(pool, owner_id, "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
    for twin in (
        "https://youtu.be/dQw4w9WgXcQ?si=share",
        "https://m.youtube.com/shorts/dQw4w9WgXcQ",
        "https://www.youtube.com/watch?feature=x&v=dQw4w9WgXcQ",
    ):
        assert await new_item(pool, owner_id, twin) == first
    x = await new_item(pool, owner_id, "https://twitter.com/someone/status/1234567890")
    assert await new_item(pool, owner_id, "https://x.com/other/status/1234567890?s=20") == x


async def test_racing_twin_captures_make_one_item(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, _ = owner
    spellings = ["https://youtu.be/aaaaaaaaaaa", "https://www.youtube.com/watch?v=aaaaaaaaaaa"]
    outcomes = await asyncio.gather(
        *(catalog.capture(pool, new_capture(owner_id, spellings[i % 2])) for i in range(12))
    )
    assert len({o.item["id"] for o in outcomes}) == 1
    assert sum(o.created for o in outcomes) == 1


async def test_a_twin_is_returned_when_the_capture_is_refused(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, _ = owner
    first = await new_item(pool, owner_id, "https://youtu.be/bbbbbbbbbbb")

    async def refuse(_connection: object) -> None:
        raise PermanentError("quota_exceeded", "over")

    again = await catalog.capture(
        pool, new_capture(owner_id, "https://youtu.be/bbbbbbbbbbb"), refuse
    )
    assert (again.item["id"], again.created) == (first, False)
    with pytest.raises(PermanentError):
        await catalog.capture(pool, new_capture(owner_id, "https://youtu.be/ccccccccccc"), refuse)
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id) == 1


async def test_the_capture_writer_returns_twins_and_leaves_owners_with_limits_to_the_quota(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, _ = owner
    writer = catalog.CaptureWriter(pool)

    async def stored() -> int:
        return int(await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id))

    first = await writer.capture(new_capture(owner_id, "https://youtu.be/q1q1q1q1q1q"))
    assert first is not None and first.created and await stored() == 1
    # A twin (here another spelling) inserts nothing; the same statement returns it.
    spelling = "https://www.youtube.com/watch?v=q1q1q1q1q1q"
    twin = await writer.capture(new_capture(owner_id, spelling))
    assert twin is not None and (twin.item["id"], twin.created) == (first.item["id"], False)
    for max_bytes, max_captures in ((None, 5), (1000, None), (1000, 0)):
        await pool.execute(
            "INSERT INTO owner_quotas (owner_id, max_bytes, max_captures_per_day) "
            "VALUES ($1, $2, $3) ON CONFLICT (owner_id) DO UPDATE SET max_bytes = $2, "
            "max_captures_per_day = $3",
            owner_id,
            max_bytes,
            max_captures,
        )
        refused = new_capture(owner_id, "https://youtu.be/q2q2q2q2q2q")
        assert await writer.capture(refused) is None
        # A twin is returned over quota too: it stores nothing new.
        again = await writer.capture(new_capture(owner_id, spelling))
        assert again is not None and (again.item["id"], again.created) == (first.item["id"], False)
        assert await stored() == 1
    # Limits of 0 and NULL (the defaults, none here) are no quota of its own.
    await pool.execute(
        "UPDATE owner_quotas SET max_bytes = 0, max_captures_per_day = NULL WHERE owner_id = $1",
        owner_id,
    )
    second = await writer.capture(new_capture(owner_id, "https://youtu.be/q2q2q2q2q2q"))
    assert second is not None and await stored() == 2


async def test_a_new_item_is_announced_on_commit(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]], gateway_env: CommonSettings
) -> None:
    owner_id, _ = owner
    heard: list[dict[str, object]] = []
    listener = await asyncpg.connect(gateway_env.database_url)
    try:
        await listener.add_listener(
            catalog.ITEMS_CHANNEL, lambda *args: heard.append(json.loads(args[3]))
        )
        item_id = await new_item(pool, owner_id, "https://youtu.be/ddddddddddd")
        await wait_until(lambda: bool(heard), what="the created notification")
    finally:
        await listener.close()
    assert heard == [
        {
            "item_id": str(item_id),
            "owner_id": str(owner_id),
            "kind": "created",
            "status": "pending",
            "run": 1,
        }
    ]


async def test_events_move_an_item_forward_only(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    item_id = await new_item(pool, owner[0], "https://example.org/forward.mp4")
    progress = VideoDownloadProgress(item_id=item_id, downloaded_bytes=5, total_bytes=10)
    assert await catalog.apply_event(pool, progress)
    assert await status(pool, item_id) == "downloading"
    assert await catalog.apply_event(pool, downloaded(item_id))
    assert await status(pool, item_id) == "downloaded"
    # Late progress and a redelivered download change nothing.
    assert not await catalog.apply_event(pool, progress)
    assert not await catalog.apply_event(pool, downloaded(item_id))
    assert await catalog.apply_event(pool, transcoded(item_id))
    assert await status(pool, item_id) == "ready"
    assert not await catalog.apply_event(pool, transcoded(item_id))
    early = await new_item(pool, owner[0], "https://example.org/out-of-order.mp4")
    # The catalog's queues race: the transcoder's result may be applied first.
    assert await catalog.apply_event(pool, transcoded(early))
    assert await catalog.apply_event(pool, downloaded(early))
    row = await pool.fetchrow("SELECT * FROM items WHERE id = $1", early)
    assert (row["status"], row["title"]) == ("ready", "Cats at play")
    assert (row["uploader"], row["original_size"]) == ("someone", 10)
    assert row["original_key"] == f"items/{early}/original.mp4"
    assert not await catalog.apply_event(pool, downloaded(early)), "a duplicate is a no-op"
    late_failure = ItemFailed(
        item_id=item_id, stage="download", error_code="network_error", message="late"
    )
    assert not await catalog.apply_event(pool, late_failure)
    row = await pool.fetchrow("SELECT * FROM items WHERE id = $1", item_id)
    assert row["status"] == "ready" and row["title"] == "Cats at play"
    assert row["error_code"] is None and row["metadata"]["width"] == 640


async def test_a_retry_starts_a_new_run_and_ignores_the_old_one(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id = owner[0]
    item_id = await new_item(pool, owner_id, "https://example.org/retry.mp4")
    await fail_item(pool, item_id)
    retried = await catalog.retry_item(pool, owner_id, item_id)
    assert (retried["status"], retried["run"]) == ("pending", 2)
    # Events of run 1 arriving now are ignored; run 2 proceeds.
    assert not await catalog.apply_event(pool, downloaded(item_id, run=1))
    assert await catalog.apply_event(pool, downloaded(item_id, run=2))
    assert await catalog.apply_event(pool, transcoded(item_id, run=2))
    assert await status(pool, item_id) == "ready"
    with pytest.raises(catalog.CatalogError) as refused:
        await catalog.retry_item(pool, owner_id, item_id)
    assert refused.value.code == "not_retryable"


async def test_listing_filters_searches_and_pages_by_key(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
) -> None:
    owner_id, headers = owner
    ids = [await new_item(pool, owner_id, f"https://example.org/page-{n}.mp4") for n in range(7)]
    await catalog.apply_event(pool, downloaded(ids[3]))
    await catalog.apply_event(pool, transcoded(ids[3]))

    seen: list[str] = []
    cursor = None
    while True:
        query = "/api/v1/items?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = (await client.get(query, headers=headers)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [str(i) for i in reversed(ids)]

    ready = (await client.get("/api/v1/items?status=ready", headers=headers)).json()["items"]
    assert [i["id"] for i in ready] == [str(ids[3])]
    found = (await client.get("/api/v1/items?q=cats", headers=headers)).json()["items"]
    assert [i["id"] for i in found] == [str(ids[3])]
    direct = (await client.get("/api/v1/items?platform=direct", headers=headers)).json()
    assert len(direct["items"]) == 7
    bad = await client.get("/api/v1/items?status=nope", headers=headers)
    assert bad.status_code == 422 and bad.json()["code"] == "invalid_request"
    bad_cursor = await client.get("/api/v1/items?cursor=garbage", headers=headers)
    assert bad_cursor.status_code == 422
    missing = await client.get(f"/api/v1/items/{uuid.uuid4()}", headers=headers)
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


async def test_direct_links_with_the_same_file_name_stay_two_items(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id = owner[0]
    first = await new_item(pool, owner_id, "https://one.example/clip.mp4")
    second = await new_item(pool, owner_id, "https://two.example/clip.mp4")
    for item_id in (first, second):
        event = downloaded(item_id)
        event = event.model_copy(
            update={"info": event.info.model_copy(update={"platform_video_id": "clip"})}
        )
        assert await catalog.apply_event(pool, event)
    rows = await pool.fetch(
        "SELECT status, platform_video_id FROM items WHERE id = ANY($1)", [first, second]
    )
    assert [(r["status"], r["platform_video_id"]) for r in rows] == [("downloaded", None)] * 2


async def test_a_dead_letter_marks_its_item_failed(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
) -> None:
    item_id = await new_item(pool, owner[0], "https://example.org/poison.mp4")
    connection = await aio_pika.connect(gateway_env.rabbitmq_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.get_exchange(f"{gateway_env.namespace}.dead-letter")
        body = json.dumps({"item_id": str(item_id), "run": 1, "url": "x"}).encode()
        await exchange.publish(aio_pika.Message(body), routing_key="downloader")

    async def failed() -> bool:
        return await status(pool, item_id) == "failed"

    await wait_until(failed)
    row = await pool.fetchrow("SELECT error_code, error_stage FROM items WHERE id = $1", item_id)
    assert (row["error_code"], row["error_stage"]) == ("dead_lettered", "catalog")


def failed(item_id: uuid.UUID, code: str) -> ItemFailed:
    return ItemFailed(item_id=item_id, stage="download", error_code=code, message=code)


@pytest.mark.parametrize("real_first", [True, False])
async def test_the_real_failure_reason_wins_over_the_dead_letter_notice(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]], real_first: bool
) -> None:
    item_id = await new_item(pool, owner[0], f"https://example.org/dead-{real_first}.mp4")
    notices = [failed(item_id, "source_forbidden"), failed(item_id, DEAD_LETTERED)]
    for notice in notices if real_first else reversed(notices):
        await catalog.apply_event(pool, notice)
    row = await pool.fetchrow("SELECT * FROM items WHERE id = $1", item_id)
    assert (row["status"], row["error_code"]) == ("failed", "source_forbidden")


async def test_an_item_waiting_for_a_retry_says_so_until_it_moves_on(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    item_id = await new_item(pool, owner[0], "https://example.org/retry-wait.mp4")
    notice = RetryScheduled(
        item_id=item_id,
        stage="download",
        error_code="network_error",
        message="Connection reset",
        attempt=2,
        max_attempts=5,
        next_attempt_at=utcnow(),
    )
    assert await catalog.apply_event(pool, notice)
    retry = await pool.fetchval("SELECT retry FROM items WHERE id = $1", item_id)
    assert (retry["attempt"], retry["max_attempts"], retry["error_code"]) == (2, 5, "network_error")
    assert retry["next_attempt_at"] == notice.next_attempt_at.isoformat()
    # An older notice arriving late does not go back.
    assert not await catalog.apply_event(pool, notice.model_copy(update={"attempt": 1}))
    assert await catalog.apply_event(pool, downloaded(item_id))
    assert await pool.fetchval("SELECT retry FROM items WHERE id = $1", item_id) is None


async def test_a_hostile_title_is_stored_cleaned_on_the_first_delivery(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    item_id = await new_item(pool, owner[0], "https://example.org/hostile-title.mp4")
    body = json.loads(downloaded(item_id).model_dump_json())
    body["info"]["title"] = "Cats\x00 \u202eat play\x07"
    # As the broker delivers it: JSON (with \u0000 escapes) validated into the event.
    event = VideoDownloaded.model_validate_json(json.dumps(body))
    assert await catalog.apply_event(pool, event)
    assert await pool.fetchval("SELECT title FROM items WHERE id = $1", item_id) == "Cats at play"
