"""The capture writer: captures that come together are written by one statement (group
commit), each with its own outcome, its own outbox message and its own trace."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from prsnl_common.events import UrlCaptured
from prsnl_common.settings import CommonSettings
from prsnl_ingest import catalog, metrics, quotas
from prsnl_ingest.catalog import create_owner_key
from tests.integration.ingest.conftest import published
from tests.support.catalog import new_capture

pytestmark = pytest.mark.integration


def statements() -> float:
    """Statements the capture writers of this process have written (the histogram's count)."""
    for metric in metrics.CAPTURE_BATCH_ROWS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return sample.value
    raise AssertionError("the batch histogram has no count")


async def stored(pool: asyncpg.Pool, owner_id: uuid.UUID) -> set[str]:
    rows = await pool.fetch("SELECT normalized_url FROM items WHERE owner_id = $1", owner_id)
    return {row["normalized_url"] for row in rows}


async def test_captures_that_come_together_share_a_statement_and_keep_their_outcomes(
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
) -> None:
    owner_id, _ = owner
    limited = await create_limited_owner(pool)
    urls = [f"http://93.184.215.14/batch/{n}.mp4" for n in range(10)]
    # Twins in the same statement: the same link twice and one video in two spellings.
    twins = [urls[3], "https://youtu.be/b1b1b1b1b1b", "https://www.youtube.com/watch?v=b1b1b1b1b1b"]
    news = [new_capture(owner_id, url) for url in [*urls, *twins]]
    news.append(new_capture(limited, "http://93.184.215.14/batch/limited.mp4"))
    writer = catalog.CaptureWriter(pool)
    before = statements()

    outcomes = await asyncio.gather(*(writer.capture(new) for new in news))

    assert 1 <= statements() - before < len(news)
    created = [o.item for o in outcomes if o is not None]
    assert all(o is None or o.created for o in outcomes)
    # Every link and one of the two spellings; not the second link 3, not the limited owner.
    assert len(created) == len(urls) + 1
    assert [o is None for o in outcomes[len(urls) :]] == [True, False, True, True]
    for new, outcome in zip(news, outcomes, strict=True):
        if outcome is not None:
            assert outcome.item["owner_id"] == new.owner_id
            assert outcome.item["normalized_url"] == new.normalized_url
    assert await stored(pool, owner_id) == {item["normalized_url"] for item in created}
    assert await stored(pool, limited) == set()
    for item in created:  # each its own url.captured, about its own row
        message = await published(gateway_env, "downloader", "url.captured", str(item["id"]))
        event = UrlCaptured.model_validate_json(message.body)
        assert (event.item_id, event.normalized_url) == (item["id"], item["normalized_url"])


async def test_a_capture_that_fails_fails_alone(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, _ = owner
    gone = uuid.uuid4()  # no such owner: its row breaks the statement it is in
    news = [new_capture(owner_id, f"http://93.184.215.14/alone/{n}.mp4") for n in range(4)]
    news.insert(2, new_capture(gone, "http://93.184.215.14/alone/gone.mp4"))
    writer = catalog.CaptureWriter(pool)

    outcomes = await asyncio.gather(*(writer.capture(new) for new in news), return_exceptions=True)

    assert isinstance(outcomes[2], asyncpg.ForeignKeyViolationError)
    kept = [o for n, o in enumerate(outcomes) if n != 2]
    assert all(isinstance(o, catalog.CaptureOutcome) and o.created for o in kept)
    assert len(await stored(pool, owner_id)) == 4


async def test_a_caller_that_goes_away_holds_up_no_one(
    pool: asyncpg.Pool, owner: tuple[uuid.UUID, dict[str, str]]
) -> None:
    owner_id, _ = owner
    writer = catalog.CaptureWriter(pool)
    tasks = [
        asyncio.create_task(writer.capture(new_capture(owner_id, f"http://93.184.215.14/c/{n}")))
        for n in range(6)
    ]
    await asyncio.sleep(0)  # all handed over, the statement not yet answered
    tasks[1].cancel()
    done = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    assert isinstance(done[1], asyncio.CancelledError)
    assert all(isinstance(o, catalog.CaptureOutcome) for n, o in enumerate(done) if n != 1)
    await asyncio.wait_for(writer.close(), 30)
    # Gone before its statement went out, the sixth capture was not written.
    assert len(await stored(pool, owner_id)) == 5


async def test_each_capture_carries_its_own_trace_to_the_downloader(
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
) -> None:
    owner_id, _ = owner
    writer = catalog.CaptureWriter(pool)

    async def traced(trace_id: int, url: str) -> catalog.CaptureOutcome | None:
        context = SpanContext(trace_id, 0x00F067AA0BA902B7, True, TraceFlags(TraceFlags.SAMPLED))
        with trace.use_span(NonRecordingSpan(context)):
            return await writer.capture(new_capture(owner_id, url))

    traces = [0x4BF92F3577B34DA6A3CE929D0E0E4736 + n for n in range(3)]
    outcomes = await asyncio.gather(
        *(traced(t, f"http://93.184.215.14/traced/{t}.mp4") for t in traces)
    )
    for trace_id, outcome in zip(traces, outcomes, strict=True):
        assert outcome is not None
        message = await published(
            gateway_env, "downloader", "url.captured", str(outcome.item["id"])
        )
        assert str(message.headers["traceparent"]).split("-")[1] == f"{trace_id:032x}"


async def create_limited_owner(pool: asyncpg.Pool) -> uuid.UUID:
    """An owner with a daily capture limit of its own (the writer leaves it to the quota path)."""
    name = f"limited-{uuid.uuid4().hex[:8]}"
    owner_id, _ = await create_owner_key(pool, name)
    assert await quotas.set_limits(pool, name, None, 5)
    return owner_id
