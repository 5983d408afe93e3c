"""Abandoned multipart uploads on a real S3 server (SeaweedFS): aborted, or kept when unsure."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from prsnl_common.s3store import S3MediaStore
from prsnl_common.store import LocalMediaStore
from prsnl_janitor.uploads import client_for, sweep_uploads, uploads
from tests.support.seaweed import SeaweedS3
from tests.support.waiting import wait_until

PART = b"p" * (5 * 1024 * 1024)  # S3's smallest part


@pytest.fixture
def store(seaweed: SeaweedS3, tmp_path: Path) -> Iterator[S3MediaStore]:
    yield seaweed.store(tmp_path)


def start_upload(store: S3MediaStore, key: str) -> str:
    """A multipart upload with one part sent, never completed: what a cut-off upload leaves."""
    client = client_for(store)
    started = client.create_multipart_upload(Bucket=store.bucket, Key=f"media/{key}")
    client.upload_part(
        Bucket=store.bucket,
        Key=f"media/{key}",
        UploadId=started["UploadId"],
        PartNumber=1,
        Body=PART,
    )
    return str(started["UploadId"])


def listed(store: S3MediaStore) -> dict[str, str]:
    return {u.upload_id: u.key for u in uploads(store, client_for(store))}


def next_second() -> None:
    second = int(time.time())
    wait_until(lambda: int(time.time()) > second, within=3, what="the next second")


def put(store: S3MediaStore, key: str, tmp_path: Path, data: bytes = b"whole") -> None:
    source = tmp_path / "source"
    source.write_bytes(data)
    store.put_file(key, source)


def test_an_abandoned_upload_is_aborted_once_past_the_ttl(store: S3MediaStore) -> None:
    upload = start_upload(store, "items/a/original.mp4")
    assert listed(store) == {upload: "items/a/original.mp4"}

    assert sweep_uploads(store, ttl_seconds=3600) == []  # young: it may still be running
    dry = sweep_uploads(store, ttl_seconds=0, now=time.time() + 5, dry_run=True)
    assert [(f.action, f.key) for f in dry] == [("would-remove", "items/a/original.mp4")]
    assert upload in listed(store)

    done = sweep_uploads(store, ttl_seconds=0, now=time.time() + 5)
    assert [(f.action, f.reason) for f in done] == [("removed", "upload-abandoned")]
    assert listed(store) == {}
    assert list(store.list()) == []  # and it never was an object


def test_only_an_upload_that_may_have_made_its_object_is_kept(
    store: S3MediaStore, tmp_path: Path
) -> None:
    # An object older than the upload: the upload was a new version, cut off. Aborted.
    put(store, "items/b/video.mp4", tmp_path)
    next_second()  # S3 times have one-second resolution; the upload begins later
    older = start_upload(store, "items/b/video.mp4")
    # Written after the upload began with exactly its parts' bytes: perhaps this very
    # upload, finished and still listed. Kept.
    finished = start_upload(store, "items/c/video.mp4")
    # Written after the upload began, but the whole file where the upload has one part:
    # a cut-off upload and its retry. Aborted.
    cut_off = start_upload(store, "items/d/original.mp4")
    next_second()
    put(store, "items/c/video.mp4", tmp_path, PART)
    put(store, "items/d/original.mp4", tmp_path, PART + b"rest of the file")

    findings = {f.key: f for f in sweep_uploads(store, ttl_seconds=0, now=time.time() + 5)}
    assert findings["items/b/video.mp4"].action == "removed"
    assert findings["items/c/video.mp4"].action == "kept"
    assert findings["items/d/original.mp4"].action == "removed"
    assert listed(store) == {finished: "items/c/video.mp4"}
    assert older not in listed(store) and cut_off not in listed(store)
    assert store.stat("items/b/video.mp4") is not None  # the objects themselves stay
    assert store.stat("items/d/original.mp4") is not None


def test_a_directory_store_has_no_uploads(tmp_path: Path) -> None:
    assert sweep_uploads(LocalMediaStore(tmp_path), ttl_seconds=0) == []
