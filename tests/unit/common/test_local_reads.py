"""Ranges of the directory store: from the page cache on the event loop, else in a thread."""

from __future__ import annotations

import asyncio
import errno
import os
import random
from pathlib import Path

import pytest

from prsnl_common import store as store_module
from prsnl_common.store import LocalMediaStore

KEY = "items/r/video.mp4"


@pytest.fixture
def local(tmp_path: Path) -> tuple[LocalMediaStore, bytes]:
    store = LocalMediaStore(tmp_path / "media")
    data = random.Random(7).randbytes(3 * 65536 + 1234)
    source = store.scratch("job") / "video.mp4"
    source.write_bytes(data)
    store.put_file(KEY, source)
    return store, data


async def _read(store: LocalMediaStore, start: int, length: int, chunk: int = 65536) -> bytes:
    return b"".join([c async for c in store.read_range(KEY, start, length, chunk)])


def test_random_ranges_read_back_exactly(local: tuple[LocalMediaStore, bytes]) -> None:
    store, data = local
    picks = random.Random(11)
    for _ in range(200):
        start = picks.randrange(len(data))
        length = picks.randrange(len(data) - start + 1)
        chunk = picks.choice((4096, 65536, 100_000, 1 << 20))
        assert asyncio.run(_read(store, start, length, chunk)) == data[start : start + length]


def test_interleaved_reads_keep_their_own_bytes(local: tuple[LocalMediaStore, bytes]) -> None:
    """The scratch buffer is shared by the thread: every chunk handed out is a copy."""
    store, data = local

    async def both() -> tuple[list[bytes], list[bytes]]:
        first = store.read_range(KEY, 0, len(data), 4096)
        second = store.read_range(KEY, 1000, len(data) - 1000, 4096)
        ones: list[bytes] = []
        twos: list[bytes] = []
        async for chunk in first:
            ones.append(chunk)
            twos.append(await anext(second))
        twos.extend([c async for c in second])
        return ones, twos

    ones, twos = asyncio.run(both())
    assert b"".join(ones) == data and b"".join(twos) == data[1000:]


def test_pages_not_in_memory_are_read_in_a_thread(
    local: tuple[LocalMediaStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, data = local
    threaded: list[int] = []
    to_thread = asyncio.to_thread

    async def counted(function, *args):  # type: ignore[no-untyped-def]
        threaded.append(args[1])
        return await to_thread(function, *args)

    def would_block(*_args: object) -> int:
        raise BlockingIOError(errno.EAGAIN, "would block")

    monkeypatch.setattr(store_module.asyncio, "to_thread", counted)
    if store_module._NOWAIT_READS:  # the file was just written: in memory, no thread
        assert asyncio.run(_read(store, 10, 150_000)) == data[10:150_010]
        assert threaded == []
    monkeypatch.setattr(store_module.os, "preadv", would_block)
    assert asyncio.run(_read(store, 10, 150_000)) == data[10:150_010]
    assert threaded == [65536, 65536, 150_000 - 2 * 65536]


def test_a_file_system_without_nowait_reads_always_uses_the_thread(
    local: tuple[LocalMediaStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, data = local
    tried: list[int] = []

    def unsupported(*_args: object) -> int:
        tried.append(1)
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(store_module, "_NOWAIT_READS", {True})
    monkeypatch.setattr(store_module.os, "preadv", unsupported)
    assert asyncio.run(_read(store, 0, len(data))) == data
    assert asyncio.run(_read(store, 5, 5)) == data[5:10]
    assert tried == [1]  # asked once, then never again


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise")
def test_a_file_dropped_from_the_page_cache_still_reads_back(
    local: tuple[LocalMediaStore, bytes],
) -> None:
    store, data = local
    descriptor = os.open(store.path(KEY), os.O_RDONLY)
    try:
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)
    assert asyncio.run(_read(store, 100, len(data) - 100)) == data[100:]
