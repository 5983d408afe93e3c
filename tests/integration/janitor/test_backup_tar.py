"""Backups into one tar file: appended to, only new files copied, verified, restored, repaired.

Real PostgreSQL (pg_dump / pg_restore) and real files; the directory form is
covered end to end with the whole stack in tests/e2e/test_backup.py.
"""

from __future__ import annotations

import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from prsnl_common.db import ensure_database
from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from prsnl_janitor import backup
from prsnl_janitor.archive import complete_end
from tests.integration.janitor.conftest import item_in, put
from tests.support.seaweed import SeaweedS3
from tests.support.stack import POSTGRES_URL, drop_database

pytestmark = pytest.mark.integration


async def ready_item(pool: asyncpg.Pool, owner_id: uuid.UUID, store: LocalMediaStore) -> str:
    item_id = await item_in(pool, owner_id, "pending")
    video, thumb = f"items/{item_id}/video.mp4", f"items/{item_id}/thumb-320.jpg"
    put(store, video, 300_000)
    put(store, thumb, 2_000)
    await pool.execute(
        "UPDATE items SET status = 'ready', video_key = $2, thumbnail_keys = $3 WHERE id = $1",
        item_id,
        video,
        {"320": thumb},
    )
    return str(item_id)


def blob_members(tar_path: Path) -> list[str]:
    with tarfile.open(tar_path) as tar:
        return [m.name for m in tar if m.name.startswith("files/")]


@pytest.fixture
async def empty_install(tmp_path: Path) -> AsyncIterator[tuple[str, LocalMediaStore]]:
    url = f"{POSTGRES_URL}/prsnl_r{uuid.uuid4().hex[:10]}"
    await ensure_database(url)
    yield url, LocalMediaStore(tmp_path / "restored-media")
    await drop_database(url)


async def test_a_tar_backup_appends_only_new_files_and_restores_byte_identical(
    common: CommonSettings,
    pool: asyncpg.Pool,
    store: LocalMediaStore,
    owner_id: uuid.UUID,
    tmp_path: Path,
    empty_install: tuple[str, LocalMediaStore],
) -> None:
    target = tmp_path / "backups.tar"
    first_item = await ready_item(pool, owner_id, store)
    first = await backup.backup(common.database_url, store, target)
    assert (first.files, first.copied) == (2, 2)
    again = await backup.backup(common.database_url, store, target)
    assert (again.files, again.copied) == (2, 0)
    second_item = await ready_item(pool, owner_id, store)
    third = await backup.backup(common.database_url, store, target)
    assert (third.files, third.copied) == (4, 2)
    assert len(blob_members(target)) == 4  # each file once, however many backups hold it

    chosen = backup.resolve(target)
    try:
        assert backup.verify(chosen) == []
        url, restored_store = empty_install
        assert await backup.restore(chosen, url, restored_store) == 4
    finally:
        chosen.archive.close()
    for item_id in (first_item, second_item):
        for name in ("video.mp4", "thumb-320.jpg"):
            key = f"items/{item_id}/{name}"
            assert restored_store.path(key).read_bytes() == store.path(key).read_bytes()
    connection = await asyncpg.connect(url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM items WHERE status = 'ready'") == 2
    finally:
        await connection.close()


async def test_a_corrupted_file_inside_the_tar_fails_verify(
    common: CommonSettings,
    pool: asyncpg.Pool,
    store: LocalMediaStore,
    owner_id: uuid.UUID,
    tmp_path: Path,
) -> None:
    target = tmp_path / "backups.tar"
    await ready_item(pool, owner_id, store)
    await backup.backup(common.database_url, store, target)
    with tarfile.open(target) as tar:
        video_blob = max((m for m in tar if m.name.startswith("files/")), key=lambda m: m.size)
    with target.open("r+b") as handle:
        handle.seek(video_blob.offset_data + video_blob.size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    chosen = backup.resolve(target)
    try:
        problems = backup.verify(chosen)
    finally:
        chosen.archive.close()
    assert len(problems) == 1 and "checksum mismatch" in problems[0]


async def test_a_backup_cut_off_mid_append_is_dropped_and_the_next_one_is_whole(
    common: CommonSettings,
    pool: asyncpg.Pool,
    store: LocalMediaStore,
    owner_id: uuid.UUID,
    tmp_path: Path,
) -> None:
    target = tmp_path / "backups.tar"
    await ready_item(pool, owner_id, store)
    await backup.backup(common.database_url, store, target)
    sound = complete_end(target)
    await ready_item(pool, owner_id, store)
    await backup.backup(common.database_url, store, target)
    # As if the machine died while the second backup's video was being written.
    with target.open("r+b") as handle:
        handle.truncate(sound + 150_000)
    cut = backup.resolve(target)
    try:
        assert len(cut.manifest["files"]) == 2  # the cut backup has no manifest: not counted
        assert backup.verify(cut) == []
    finally:
        cut.archive.close()

    made = await backup.backup(common.database_url, store, target)
    # The thumbnail written whole before the cut is kept and reused; the video is copied.
    assert (made.files, made.copied) == (4, 1)
    chosen = backup.resolve(target)
    try:
        assert len(chosen.manifest["files"]) == 4 and backup.verify(chosen) == []
    finally:
        chosen.archive.close()


async def test_a_bucket_is_backed_up_and_restored_into_another_bucket(
    common: CommonSettings,
    pool: asyncpg.Pool,
    owner_id: uuid.UUID,
    tmp_path: Path,
    seaweed: SeaweedS3,
    empty_install: tuple[str, LocalMediaStore],
) -> None:
    """The same backup from an object store: files read from the bucket, put back into one."""

    source = seaweed.store(tmp_path / "scratch")
    item_id = await item_in(pool, owner_id, "pending")
    written = {}
    for name, size in (("video.mp4", 300_000), ("thumb-320.jpg", 2_000)):
        local = tmp_path / name
        local.write_bytes(uuid.uuid4().bytes * (size // 16))
        written[f"items/{item_id}/{name}"] = local.read_bytes()
        source.put_file(f"items/{item_id}/{name}", local)
    await pool.execute(
        "UPDATE items SET status = 'ready', video_key = $2, thumbnail_keys = $3 WHERE id = $1",
        item_id,
        f"items/{item_id}/video.mp4",
        {"320": f"items/{item_id}/thumb-320.jpg"},
    )
    target = tmp_path / "backups.tar"
    made = await backup.backup(common.database_url, source, target)
    assert (made.files, made.copied, made.missing) == (2, 2, [])
    assert (await backup.backup(common.database_url, source, target)).copied == 0
    assert not list((tmp_path / "scratch" / "tmp").iterdir())  # the copies went again

    restored = seaweed.store(tmp_path / "scratch")
    chosen = backup.resolve(target)
    try:
        assert await backup.restore(chosen, empty_install[0], restored) == 2
    finally:
        chosen.archive.close()
    for key, data in written.items():
        assert restored.local_file(key, tmp_path).read_bytes() == data
