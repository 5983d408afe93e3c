"""Ranges of the directory store: from the page cache on the event loop, else in a thread."""

from __future__ import annotations

import asyncio
import errno
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from prsnl_common import pagecache
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


@pytest.fixture(params=["mapped", "nowait-read", "thread"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How memory is told from disk: cachestat and mapped views, RWF_NOWAIT reads, neither."""
    if request.param == "mapped" and not pagecache._CACHESTAT:
        pytest.skip("this kernel has no cachestat")
    if request.param != "mapped":
        monkeypatch.setattr(pagecache, "_CACHESTAT", set())
    if request.param == "thread":
        monkeypatch.setattr(pagecache, "_NOWAIT_READS", set())
    return str(request.param)


async def _read(store: LocalMediaStore, start: int, length: int, chunk: int = 65536) -> bytes:
    return b"".join([c async for c in store.read_range(KEY, start, length, chunk)])


def test_random_ranges_read_back_exactly(local: tuple[LocalMediaStore, bytes], way: str) -> None:
    store, data = local
    picks = random.Random(11)
    for _ in range(200):
        start = picks.randrange(len(data))
        length = picks.randrange(len(data) - start + 1)
        chunk = picks.choice((4096, 65536, 100_000, 1 << 20))
        assert asyncio.run(_read(store, start, length, chunk)) == data[start : start + length]


def test_interleaved_reads_keep_their_own_bytes(
    local: tuple[LocalMediaStore, bytes], way: str
) -> None:
    """The scratch buffer is shared by the thread: every chunk handed out is a copy."""
    store, data = local

    async def both() -> tuple[list[bytes | memoryview], list[bytes | memoryview]]:
        first = store.read_range(KEY, 0, len(data), 4096)
        second = store.read_range(KEY, 1000, len(data) - 1000, 4096)
        ones: list[bytes | memoryview] = []
        twos: list[bytes | memoryview] = []
        async for chunk in first:
            ones.append(chunk)
            twos.append(await anext(second))
        twos.extend([c async for c in second])
        return ones, twos

    ones, twos = asyncio.run(both())
    assert b"".join(ones) == data and b"".join(twos) == data[1000:]


def _count_threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    threaded: list[int] = []
    to_thread = asyncio.to_thread

    async def counted(function, *args):  # type: ignore[no-untyped-def]
        threaded.append(args[1])
        return await to_thread(function, *args)

    monkeypatch.setattr(store_module.asyncio, "to_thread", counted)
    return threaded


def test_pages_in_memory_are_views_of_the_mapped_file(
    local: tuple[LocalMediaStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not pagecache._CACHESTAT:
        pytest.skip("this kernel has no cachestat")
    store, data = local
    threaded = _count_threads(monkeypatch)

    async def chunks() -> list[bytes | memoryview]:
        return [c async for c in store.read_range(KEY, 10, 150_000, 65536)]

    got = asyncio.run(chunks())  # the file was just written: in memory
    assert threaded == [] and all(isinstance(c, memoryview) for c in got)
    store.delete(KEY)  # a view outlives the file's name: the mapping holds the file
    assert b"".join(got) == data[10:150_010]
    assert str(store.path(KEY)) in _mapped_paths()
    del got
    assert str(store.path(KEY)) not in _mapped_paths()  # unmapped with its last view


def _mapped_paths() -> str:
    with open("/proc/self/maps") as maps:
        return maps.read()


@pytest.mark.parametrize("way", ["mapped", "nowait-read"], indirect=True)
def test_pages_not_in_memory_are_read_in_a_thread(
    local: tuple[LocalMediaStore, bytes], monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    store, data = local
    threaded = _count_threads(monkeypatch)

    def would_block(*_args: object) -> int:
        raise BlockingIOError(errno.EAGAIN, "would block")

    says = False if way == "mapped" else None  # on disk; or the kernel cannot tell
    monkeypatch.setattr(pagecache, "resident", lambda *_args: says)
    monkeypatch.setattr(os, "preadv", would_block)
    assert asyncio.run(_read(store, 10, 150_000)) == data[10:150_010]
    assert threaded == [65536, 65536, 150_000 - 2 * 65536]


def test_a_kernel_refusing_cachestat_is_asked_once(
    local: tuple[LocalMediaStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, data = local
    calls: list[object] = []

    def refused(*args: object) -> int:
        calls.append(args)
        return -1

    monkeypatch.setattr(pagecache, "_CACHESTAT", {True})
    monkeypatch.setattr(pagecache, "_LIBC", SimpleNamespace(syscall=refused))
    assert asyncio.run(_read(store, 0, len(data))) == data
    assert asyncio.run(_read(store, 5, 5)) == data[5:10]
    assert len(calls) == 1  # then the RWF_NOWAIT reads


def test_a_file_system_without_nowait_reads_always_uses_the_thread(
    local: tuple[LocalMediaStore, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, data = local
    tried: list[int] = []

    def unsupported(*_args: object) -> int:
        tried.append(1)
        raise OSError(errno.EOPNOTSUPP, "not supported")

    monkeypatch.setattr(pagecache, "_CACHESTAT", set())
    monkeypatch.setattr(pagecache, "_NOWAIT_READS", {True})
    monkeypatch.setattr(os, "preadv", unsupported)
    assert asyncio.run(_read(store, 0, len(data))) == data
    assert asyncio.run(_read(store, 5, 5)) == data[5:10]
    assert tried == [1]  # asked once, then never again


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise")
def test_a_file_dropped_from_the_page_cache_still_reads_back(
    local: tuple[LocalMediaStore, bytes], way: str
) -> None:
    store, data = local
    descriptor = os.open(store.path(KEY), os.O_RDONLY)
    try:
        os.fsync(descriptor)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(descriptor)
    assert asyncio.run(_read(store, 100, len(data) - 100)) == data[100:]


def test_an_empty_file_and_a_range_past_its_end_read_nothing(
    local: tuple[LocalMediaStore, bytes], way: str
) -> None:
    store, data = local
    assert asyncio.run(_read(store, len(data), 10)) == b""
    source = store.scratch("empty") / "video.mp4"
    source.touch()
    store.put_file("items/e/video.mp4", source)
    chunks = store.read_range("items/e/video.mp4", 0, 10, 4096)
    assert asyncio.run(_collect(chunks)) == b""


async def _collect(chunks: AsyncIterator[bytes | memoryview]) -> bytes:
    return b"".join([c async for c in chunks])
