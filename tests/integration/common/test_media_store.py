"""One contract, two stores: the local directory and a real S3 server (SeaweedFS)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from prsnl_common.s3store import PART_BYTES, parse_store_url
from prsnl_common.store import InvalidKey, LocalMediaStore, MediaStore
from tests.support.seaweed import SeaweedS3


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MediaStore]:
    if request.param == "local":
        yield LocalMediaStore(tmp_path / "media")
        return
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    yield seaweed.store(tmp_path / "scratch")


def _source(store: MediaStore, name: str, data: bytes) -> Path:
    path = store.scratch(f"job-{name}") / name
    path.write_bytes(data)
    return path


def test_put_stat_list_and_delete(store: MediaStore) -> None:
    stored = store.put_file("items/a/original.mp4", _source(store, "a", b"a" * 1000))
    store.put_file("items/a/thumb-320.jpg", _source(store, "b", b"b" * 10))
    store.put_file("items/b/video.mp4", _source(store, "c", b"c" * 5))

    assert (stored.key, stored.size) == ("items/a/original.mp4", 1000)
    assert store.stat("items/a/original.mp4") == stored
    assert store.stat("items/a/missing.mp4") is None
    assert [f.key for f in store.list("items/a")] == [
        "items/a/original.mp4",
        "items/a/thumb-320.jpg",
    ]
    assert [f.key for f in store.list("items") if f.key.startswith("items/b")] == [
        "items/b/video.mp4"
    ]
    assert store.delete("items/b/video.mp4") and not store.delete("items/b/video.mp4")
    assert store.delete_prefix("items/a") == 2
    assert [f.key for f in store.list("items")] == []


def test_put_consumes_the_scratch_file(store: MediaStore) -> None:
    source = _source(store, "x", b"x")
    store.put_file("items/x/video.mp4", source)
    assert not source.exists()


def test_a_large_file_goes_up_in_parts_and_reads_back_by_range(store: MediaStore) -> None:
    data = os.urandom(PART_BYTES * 2 + 12345)  # three parts on the object store
    store.put_file("items/big/original.mp4", _source(store, "big", data))

    async def read(start: int, length: int) -> bytes:
        return b"".join(
            [c async for c in store.read_range("items/big/original.mp4", start, length, 65536)]
        )

    assert asyncio.run(read(0, 10)) == data[:10]
    middle = PART_BYTES - 100
    assert asyncio.run(read(middle, 1000)) == data[middle : middle + 1000]
    assert asyncio.run(read(0, len(data))) == data
    assert asyncio.run(read(5, 0)) == b""


def test_a_local_file_of_a_key(store: MediaStore) -> None:
    store.put_file("items/l/original.webm", _source(store, "l", b"webm bytes"))
    scratch = store.scratch("reader")
    assert store.local_file("items/l/original.webm", scratch).read_bytes() == b"webm bytes"
    with pytest.raises(FileNotFoundError):
        store.local_file("items/l/gone.webm", scratch).read_bytes()


@pytest.mark.parametrize("key", ["/etc/passwd", "../x", "items/../../x", "items//x", ""])
def test_keys_cannot_escape(store: MediaStore, key: str) -> None:
    with pytest.raises(InvalidKey):
        store.stat(key)


def test_a_presigned_link_serves_ranges_and_only_its_own_object(store: MediaStore) -> None:
    store.put_file("items/p/video.mp4", _source(store, "p", bytes(range(256)) * 4))
    url = store.presigned_url("items/p/video.mp4", 60)
    if isinstance(store, LocalMediaStore):
        assert url is None  # nothing serves the directory by itself
        return
    assert url is not None
    ranged = httpx.get(url, headers={"Range": "bytes=10-19"})
    assert ranged.status_code == 206 and ranged.content == bytes(range(10, 20))
    other = url.replace("items/p/video.mp4", "items/p/thumb-320.jpg")
    assert httpx.get(other).status_code == 403
    tampered = url.replace("X-Amz-Expires=60", "X-Amz-Expires=6000")
    assert httpx.get(tampered).status_code == 403


def test_store_urls() -> None:
    assert parse_store_url("s3://media/prsnl/") == ("media", "prsnl")
    assert parse_store_url("s3://media") == ("media", "")
    for bad in ("media/prsnl", "s3:///x", "s3://b/../x", "file:///x"):
        with pytest.raises(ValueError, match=r"s3://|\.\."):
            parse_store_url(bad)
