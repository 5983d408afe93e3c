"""Fixtures of the hostile-input suite: a gateway in-process whose allow-list opens one
port of 127.0.0.1 only, a ready item made of a real clip, and the one check every case
ends with: nothing was left behind.

"Nothing left behind" means, against the state before the case: no new item row (unless
the case expects one), no outbox row at all, no message in any queue of the deployment's
namespace, and no new file anywhere under the media root. The check uses the ``canary``
fixture too, so nothing reached 127.0.0.2 either.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.db import create_pool
from prsnl_common.events import (
    ItemFailed,
    MediaMetadata,
    SourceInfo,
    VideoDownloaded,
    VideoTranscoded,
)
from prsnl_common.settings import CommonSettings
from prsnl_common.store import original_key, video_key
from prsnl_ingest import catalog
from prsnl_ingest.app import create_app
from prsnl_ingest.settings import IngestSettings
from tests.support.catalog import new_item
from tests.support.clips import make_clip
from tests.support.media_server import MediaServer
from tests.support.stack import POSTGRES_URL, RABBITMQ_URL, drop_database, remove_namespace
from tests.support.waiting import eventually

AnyClient = AsyncTestClient  # type: ignore[type-arg]
FILES_SETTLE_S = 30.0
DRAIN_S = 15.0


@dataclass(frozen=True)
class Deployment:
    """Where a deployment keeps its state: database, namespace and media root."""

    database_url: str
    namespace: str
    media_root: Path


def _namespace_queues(namespace: str) -> list[str]:
    """The namespace's shared queues; a process's own exclusive ones (its deletion notices)
    cannot be declared from another connection and hold nothing a capture leaves."""
    result = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "exclusive"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [line.rsplit("\t", 1) for line in result.stdout.splitlines() if "\t" in line]
    return sorted(
        name for name, exclusive in rows if name.startswith(f"{namespace}.") and exclusive != "true"
    )


@dataclass
class Snapshot:
    items: int
    files: frozenset[str]


@dataclass
class LeftBehind:
    """Checks a deployment against a snapshot taken before the case."""

    deployment: Deployment
    pool: asyncpg.Pool
    queues: list[str]
    before: Snapshot = field(init=False)

    async def snapshot(self) -> Snapshot:
        items = await self.pool.fetchval("SELECT count(*) FROM items")
        return Snapshot(int(items), self.files())

    def files(self) -> frozenset[str]:
        root = self.deployment.media_root
        if not root.exists():
            return frozenset()
        return frozenset(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    async def queued(self) -> dict[str, int]:
        """Messages waiting in each queue of the namespace (passive declare)."""
        counts: dict[str, int] = {}
        connection = await aio_pika.connect(RABBITMQ_URL)
        async with connection:
            channel = await connection.channel()
            for name in self.queues:
                queue = await channel.declare_queue(name, passive=True)
                count = queue.declaration_result.message_count or 0
                if count:
                    counts[name] = count
        return counts

    async def assert_nothing_left(
        self, new_items: int = 0, settle: float = 0.3, dead_letters: dict[str, int] | None = None
    ) -> None:
        """No new item row beyond ``new_items``, no outbox row, no queued message, no new file.

        The outbox and queues get ``DRAIN_S`` to empty (a failure's own ``file.orphaned`` is
        published and consumed just after it), then are checked once more after ``settle``
        seconds, so a message the relay was about to publish is caught too. ``dead_letters``
        names the messages a case must leave for an operator (stage -> count in
        ``<ns>.<stage>.dlq``): exactly those are expected, then taken away so the next case
        starts empty.
        """
        expected = {
            f"{self.deployment.namespace}.{stage}.dlq": count
            for stage, count in (dead_letters or {}).items()
        }

        async def files_as_before() -> bool:
            return (await self.snapshot()).files == self.before.files

        # A failed item's original goes through the janitor (file.orphaned): soon, not at once.
        with contextlib.suppress(AssertionError):
            await eventually(files_as_before, within=FILES_SETTLE_S, what="files as before")
        after = await self.snapshot()
        assert after.items - self.before.items == new_items, (
            f"{after.items - self.before.items} new item row(s), expected {new_items}"
        )
        assert after.files == self.before.files, (
            f"new files in the media root: {sorted(after.files - self.before.files)}"
        )

        async def drained() -> bool:
            outbox = await self.pool.fetchval("SELECT count(*) FROM outbox")
            return outbox == 0 and await self.queued() == expected

        # The failure's own events (file.orphaned) are published and consumed just after it.
        with contextlib.suppress(AssertionError):
            await eventually(drained, within=DRAIN_S, what="outbox and queues drained")
        for attempt in range(2):
            outbox = await self.pool.fetchval("SELECT count(*) FROM outbox")
            assert outbox == 0, f"{outbox} outbox row(s) left behind"
            queued = await self.queued()
            assert queued == expected, f"messages left in queues: {queued}, expected {expected}"
            if attempt == 0:
                await asyncio.sleep(settle)
        if expected:
            connection = await aio_pika.connect(RABBITMQ_URL)
            async with connection:
                channel = await connection.channel()
                for name in expected:
                    await (await channel.declare_queue(name, passive=True)).purge()


@pytest.fixture
async def nothing_left_behind(
    deployment: Deployment, deployment_pool: asyncpg.Pool, canary: MediaServer
) -> AsyncIterator[LeftBehind]:
    """The one "nothing left behind" check of the suite, snapshotted before the case.

    Depends on ``canary``, so every case that uses it also fails if 127.0.0.2 was reached.
    """
    checker = LeftBehind(deployment, deployment_pool, _queues_of(deployment.namespace))
    checker.before = await checker.snapshot()
    yield checker


_QUEUES: dict[str, list[str]] = {}


def _queues_of(namespace: str) -> list[str]:
    # Every service declares all its queues at start-up, so one listing per namespace holds.
    if namespace not in _QUEUES:
        _QUEUES[namespace] = _namespace_queues(namespace)
        assert _QUEUES[namespace], f"no queues declared in namespace {namespace}"
    return _QUEUES[namespace]


# --- the gateway in-process ---------------------------------------------------------------


@pytest.fixture(scope="session")
def allowed_media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """A media server on 127.0.0.1 whose port is the only one the gateway's allow-list opens."""
    root = tmp_path_factory.mktemp("allowed-media")
    make_clip(root / "clip.mp4", duration=1, width=160, height=120, fps=10)
    with MediaServer(root) as server:
        yield server


@pytest.fixture(scope="session")
async def hostile_env(
    tmp_path_factory: pytest.TempPathFactory, allowed_media: MediaServer
) -> AsyncIterator[CommonSettings]:
    tag = uuid.uuid4().hex[:10]
    common = CommonSettings(
        database_url=f"{POSTGRES_URL}/prsnl_h{tag}",
        rabbitmq_url=RABBITMQ_URL,
        namespace=f"h{tag}",
        media_root=Path(tmp_path_factory.mktemp("hostile-media")),
        ssrf_allowlist=f"127.0.0.1:{allowed_media.port}",
        log_format="text",
    )
    yield common
    await remove_namespace(common.namespace)
    await drop_database(common.database_url)


@pytest.fixture(scope="session")
async def client(hostile_env: CommonSettings) -> AsyncIterator[AnyClient]:
    app = create_app(
        IngestSettings(
            progress_interval_seconds=0, metrics_port=0, capture_rate_limit="100000/minute"
        ),
        hostile_env,
    )
    async with AsyncTestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
async def pool(client: AnyClient, hostile_env: CommonSettings) -> AsyncIterator[asyncpg.Pool]:
    created = await create_pool(hostile_env.database_url, max_size=4)
    yield created
    await created.close()


@pytest.fixture
def deployment(hostile_env: CommonSettings) -> Deployment:
    """The deployment a case is checked against; the download cases override it."""
    return Deployment(hostile_env.database_url, hostile_env.namespace, hostile_env.media_root)


@pytest.fixture
def deployment_pool(pool: asyncpg.Pool) -> asyncpg.Pool:
    return pool


@pytest.fixture
async def owner(pool: asyncpg.Pool) -> tuple[uuid.UUID, dict[str, str]]:
    owner_id, key = await catalog.create_owner_key(pool, f"owner-{uuid.uuid4().hex[:8]}")
    return owner_id, {"Authorization": f"Bearer {key}"}


@dataclass(frozen=True)
class ReadyItem:
    id: uuid.UUID
    owner_id: uuid.UUID
    headers: dict[str, str]
    video: Path
    failed_id: uuid.UUID


async def drain_namespace(pool: asyncpg.Pool, namespace: str) -> None:
    """Wait for the relay to publish the outbox, then empty the namespace's queues.

    Setting up an item through the catalog queues its ``url.captured`` for a downloader
    that does not run here; the cases must start from empty queues.
    """

    async def outbox_empty() -> bool:
        return await pool.fetchval("SELECT count(*) FROM outbox") == 0

    await eventually(outbox_empty, what="outbox published")
    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for name in _queues_of(namespace):
            queue = await channel.declare_queue(name, passive=True)
            await queue.purge()


def _make_video_and_thumbnail(video: Path) -> None:
    video.parent.mkdir(parents=True, exist_ok=True)
    make_clip(video, duration=2, width=320, height=240, fps=10)
    thumb = video.parent / "thumb-320.jpg"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-frames:v", "1", str(thumb)],
        check=True,
    )


async def make_ready_item(
    pool: asyncpg.Pool, root: Path, owner_id: uuid.UUID, name: str
) -> tuple[uuid.UUID, Path]:
    """A ready item of ``owner_id`` with a real mp4 and a 320px thumbnail under ``root``,
    made by applying the pipeline's own events to the catalog."""
    item_id = await new_item(pool, owner_id, f"http://93.184.215.14/hostile/{name}.mp4")
    video = root / video_key(item_id, None)
    await asyncio.to_thread(_make_video_and_thumbnail, video)
    original = original_key(item_id, "mp4")
    await catalog.apply_event(
        pool,
        VideoDownloaded(
            item_id=item_id,
            run=1,
            original_key=original,
            size=video.stat().st_size,
            info=SourceInfo(title="Ready clip", duration=2.0),
        ),
    )
    moved = await catalog.apply_event(
        pool,
        VideoTranscoded(
            item_id=item_id,
            run=1,
            video_key=video_key(item_id, None),
            original_key=original,
            thumbnail_keys={320: f"items/{item_id}/thumb-320.jpg"},
            metadata=MediaMetadata(video_codec="h264", width=320, height=240, duration=2.0),
            action="remuxed",
        ),
    )
    assert moved
    return item_id, video


@pytest.fixture(scope="session")
async def ready_item(pool: asyncpg.Pool, hostile_env: CommonSettings) -> ReadyItem:
    """A ready item with a real mp4 and a 320px thumbnail in the media root, and a failed
    item of the same owner; made by applying the pipeline's own events to the catalog."""

    owner_id, key = await catalog.create_owner_key(pool, f"ready-{uuid.uuid4().hex[:8]}")
    item_id, video = await make_ready_item(pool, hostile_env.media_root, owner_id, "ready")
    failed_id = await new_item(pool, owner_id, "http://93.184.215.14/hostile/failed.mp4")
    await catalog.apply_event(
        pool,
        ItemFailed(
            item_id=failed_id, stage="download", error_code="source_not_found", message="gone"
        ),
    )
    await drain_namespace(pool, hostile_env.namespace)
    row = await pool.fetchrow("SELECT status FROM items WHERE id = $1", item_id)
    assert row is not None and row["status"] == "ready"
    return ReadyItem(item_id, owner_id, {"Authorization": f"Bearer {key}"}, video, failed_id)
