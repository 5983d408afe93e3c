"""Orphans: announced once, removed only after the grace, never while referenced or in flight."""

from __future__ import annotations

import os
import time
import uuid

import asyncpg
import pytest

from prsnl_common.events import FileOrphaned
from prsnl_common.store import LocalMediaStore, original_key, thumbnail_key, video_key
from prsnl_janitor import sweep
from prsnl_janitor.settings import JanitorSettings
from tests.integration.janitor.conftest import Published, item_in, put
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
GRACE = 3.0


def settings(grace: float = GRACE, min_age: float = 60) -> JanitorSettings:
    return JanitorSettings(orphan_grace_seconds=grace, orphan_min_age_seconds=min_age)


def actions(findings: list[sweep.Finding]) -> dict[str, str]:
    return {f.key: f.action for f in findings}


async def test_an_orphan_is_announced_and_removed_only_after_the_grace(
    pool: asyncpg.Pool, store: LocalMediaStore, owner_id: uuid.UUID
) -> None:
    ready = await item_in(pool, owner_id, "ready", video_key=video_key(uuid.uuid4()))
    served = video_key(ready)
    await pool.execute("UPDATE items SET video_key = $2 WHERE id = $1", ready, served)
    put(store, served)
    stale = put(store, thumbnail_key(ready, 320), size=321)
    no_row = f"items/{uuid.uuid4()}/original.mp4"
    put(store, no_row, size=4321)
    published = Published()

    first = await sweep.sweep_once(pool, store, published, settings())
    assert actions(first) == {thumbnail_key(ready, 320): "announced", no_row: "announced"}
    announced = {e.storage_key: e for e in published.events if isinstance(e, FileOrphaned)}
    assert set(announced) == {thumbnail_key(ready, 320), no_row}
    assert announced[no_row].size == 4321 and announced[no_row].reason == "unreferenced"
    assert announced[no_row].delete_after is not None
    # Still in its grace: a second sweep announces nothing again and removes nothing.
    assert actions(await sweep.sweep_once(pool, store, published, settings())) == {}
    assert len(published.events) == 2
    assert stale.exists() and store.exists(no_row)

    async def removed() -> bool:
        findings = await sweep.sweep_once(pool, store, published, settings())
        return not stale.exists() and not store.exists(no_row) and bool(findings)

    await eventually(removed, within=GRACE + 10, what="orphans removed after the grace")
    assert store.exists(served)
    assert not store.path(no_row).parent.exists()  # the empty folder goes with its last file
    assert await pool.fetchval("SELECT count(*) FROM janitor_orphans") == 0


async def test_a_file_referenced_or_rewritten_during_the_grace_is_kept(
    pool: asyncpg.Pool, store: LocalMediaStore, owner_id: uuid.UUID
) -> None:
    item = await item_in(pool, owner_id, "ready")
    taken_back = video_key(item, "480p")
    rewritten = thumbnail_key(item, 640)
    put(store, taken_back)
    put(store, rewritten)
    published = Published()
    first = await sweep.sweep_once(pool, store, published, settings())
    assert actions(first) == {taken_back: "announced", rewritten: "announced"}
    # The catalog takes one key back (a re-transcode to that profile); the other is written again.
    await pool.execute("UPDATE items SET video_key = $2 WHERE id = $1", item, taken_back)
    put(store, rewritten, size=2000)

    settled: dict[str, str] = {}

    async def settled_all() -> bool:
        for finding in await sweep.sweep_once(pool, store, published, settings()):
            settled.setdefault(finding.key, finding.action)
        return {taken_back, rewritten} <= set(settled)

    await eventually(settled_all, within=GRACE + 10, what="both orphans settled")
    assert settled == {taken_back: "kept", rewritten: "kept"}
    assert store.exists(taken_back) and store.exists(rewritten)


async def test_files_of_jobs_in_flight_are_never_taken(
    pool: asyncpg.Pool, store: LocalMediaStore, owner_id: uuid.UUID
) -> None:
    """In flight: the item's status is one a stage works on, a re-transcode is pending, or the
    file itself is still changing (younger than the minimum age)."""
    keys = []
    for status in ("pending", "downloading", "downloaded", "processing"):
        item = await item_in(pool, owner_id, status)
        keys.append(put(store, original_key(item, "mp4")))
    retranscoding = await item_in(pool, owner_id, "ready", requested_profile="480p")
    keys.append(put(store, video_key(retranscoding, "480p")))
    young = put(store, f"items/{uuid.uuid4()}/original.webm", age=0)
    published = Published()
    growing_since = time.monotonic()

    async def grows_while_sweeping() -> bool:
        with young.open("ab") as handle:  # a download writing into its file
            handle.write(os.urandom(100))
        await sweep.sweep_once(pool, store, published, settings(grace=0, min_age=2))
        return time.monotonic() - growing_since > 4

    await eventually(grows_while_sweeping, within=30, what="sweeps while a file grows")
    assert published.events == []
    assert all(path.exists() for path in [*keys, young])


async def test_expired_scratch_is_listed_by_a_dry_run_then_removed(
    pool: asyncpg.Pool, store: LocalMediaStore, owner_id: uuid.UUID
) -> None:
    put(store, "tmp/dead-job/part-1", size=700)
    put(store, "tmp/dead-job/part-2", size=300)
    old = time.time() - 3600
    os.utime(store.path("tmp/dead-job"), (old, old))
    put(store, "tmp/live-job/part-1", age=0)
    orphan = put(store, f"items/{uuid.uuid4()}/thumb-320.jpg", size=55)
    config = JanitorSettings(
        temp_ttl_seconds=600, orphan_grace_seconds=0, orphan_min_age_seconds=60
    )

    planned = await sweep.dry_run(pool, store, config)
    assert {(f.action, f.key, f.size, f.reason) for f in planned} == {
        ("would-remove", "tmp/dead-job", 1000, "temp-expired"),
        ("would-announce", orphan.relative_to(store.root).as_posix(), 55, "unreferenced"),
    }
    assert store.path("tmp/dead-job").exists() and orphan.exists()

    done = await sweep.sweep_once(pool, store, Published(), config)
    assert {(f.action, f.key) for f in done} == {
        ("removed", "tmp/dead-job"),
        ("announced", orphan.relative_to(store.root).as_posix()),
        ("removed", orphan.relative_to(store.root).as_posix()),
    }
    assert not store.path("tmp/dead-job").exists() and not orphan.exists()
    assert store.path("tmp/live-job/part-1").exists()
