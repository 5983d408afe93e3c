"""Storage that manages itself, with every service as its own process: orphans, quotas.

Each test runs on the media directory and on a bucket of a real S3 server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import item_files, scratch_entries
from tests.support.clips import make_clip
from tests.support.media_server import MediaServer
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Api, Stack, running_stack

pytestmark = pytest.mark.e2e
GRACE = 3


@pytest.fixture(scope="module")
def storage_media(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    root = tmp_path_factory.mktemp("storage-clips")
    make_clip(root / "clip.mp4", duration=4, width=640, height=360)
    with MediaServer(root) as server:
        yield server


@pytest.fixture(scope="module", params=["local", "s3"])
def storage_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    store: dict[str, str] = {}
    if request.param == "s3":
        seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
        store = seaweed.env(seaweed.bucket())
    with running_stack(
        tmp_path_factory.mktemp("storage-stack"),
        downloaders=1,
        **store,
        PRSNL_DOWNLOADER_PROGRESS_INTERVAL_SECONDS="0.2",
        PRSNL_INGEST_PROGRESS_INTERVAL_SECONDS="0.1",
        PRSNL_JANITOR_SWEEP_INTERVAL_SECONDS="1",
        PRSNL_JANITOR_ORPHAN_GRACE_SECONDS=str(GRACE),
        PRSNL_JANITOR_ORPHAN_MIN_AGE_SECONDS="2",
    ) as running:
        yield running


def wait(condition: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {within} s")
        time.sleep(0.2)


def owner_api(stack: Stack) -> tuple[str, Api]:
    name = f"o{uuid.uuid4().hex[:8]}"
    return name, stack.client(stack.create_key(name))


def test_delete_during_a_download_leaves_nothing_after_the_grace(
    storage_stack: Stack, storage_media: MediaServer
) -> None:
    _, api = owner_api(storage_stack)
    created = api.capture(storage_media.url("/slow/clip.mp4?rate=40000"))
    assert created.status_code == 202, created.text
    item_id = created.json()["id"]
    api.wait_for(item_id, ("downloading",), predicate=lambda i: bool(i.get("progress")))
    assert api.delete(f"/api/v1/items/{item_id}").status_code == 204
    started = time.monotonic()
    wait(
        lambda: (
            not item_files(storage_stack, item_id)
            and not scratch_entries(storage_stack, item_id)
            and time.monotonic() - started > GRACE + 2
        ),
        within=GRACE + 60,
        what="no file of the deleted item after the grace",
    )
    assert not list(storage_stack.store.list(f"items/{item_id}"))


def test_an_orphan_is_removed_by_the_running_janitor_after_the_grace(
    storage_stack: Stack, tmp_path: Path
) -> None:
    store = storage_stack.store
    stray = f"items/{uuid.uuid4()}/original.mp4"
    (tmp_path / "stray").write_bytes(os.urandom(1000))
    store.put_file(stray, tmp_path / "stray")
    written = time.monotonic()
    wait(lambda: not store.exists(stray), within=60, what="the orphan removed")
    # Not before the minimum age and the grace after its announcement.
    assert time.monotonic() - written >= GRACE
    assert "announced" in storage_stack.logs("storage-janitor")


def test_a_download_that_would_pass_the_bytes_quota_fails_and_leaves_nothing(
    storage_stack: Stack, storage_media: MediaServer
) -> None:
    name, api = owner_api(storage_stack)
    clip = Path(storage_media.root) / "clip.mp4"
    quota = clip.stat().st_size // 3
    subprocess.run(
        [sys.executable, "-m", "prsnl_ingest", "set-quota", "--owner", name, "--bytes", str(quota)],
        env=storage_stack.env,
        check=True,
        capture_output=True,
    )
    created = api.capture(storage_media.url("/slow/clip.mp4?rate=200000"))
    assert created.status_code == 202, created.text
    item = api.wait_for(created.json()["id"], timeout=60)
    assert item["status"] == "failed", item
    assert item["error"]["code"] == "quota_exceeded", item["error"]
    assert f"0 of {quota} bytes" in item["error"]["message"]
    assert item_files(storage_stack, item["id"]) == []
    assert scratch_entries(storage_stack, item["id"]) == []
    storage = api.get("/api/v1/storage").json()
    assert storage["you"]["usage"]["total"] == {"bytes": 0, "files": 0}
    assert storage["you"]["quota"]["max_bytes"] == quota
