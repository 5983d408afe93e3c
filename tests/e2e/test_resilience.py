"""Nothing is lost when a worker is killed (R1). Runs last: it stops and starts services the
other tests share. Broker restarts are in test_broker_restart.py, on a private node."""

from __future__ import annotations

import signal
import time

import pytest

from tests.e2e.conftest import item_files, scratch_entries
from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack

pytestmark = pytest.mark.e2e


def wait_until_downloading(api: Api, item_id: str) -> None:
    """Until the item's download has moved bytes: the moment to disturb it."""
    api.wait_for(
        item_id,
        ("downloading",),
        timeout=30,
        predicate=lambda i: (i["progress"] or {}).get("downloaded_bytes", 0) > 0,
    )


def test_downloader_killed_mid_download_restarts_and_finishes_once(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    # ~10 MB at 1 MB/s: long enough to kill the downloaders in the middle.
    response = alice.capture(media.url("/slow/h264.mp4?rate=1000000&kill=1"))
    assert response.status_code == 202
    item_id = response.json()["id"]
    wait_until_downloading(alice, item_id)
    stack.kill("downloader", signal.SIGKILL)
    time.sleep(1)
    stack.start("downloader", 2)
    item = alice.wait_for(item_id, timeout=120)
    assert item["status"] == "ready", item
    owned = [
        i for i in alice.get("/api/v1/items?limit=500").json()["items"] if "kill=1" in i["url"]
    ]
    assert len(owned) == 1
    assert item_files(stack, item_id) == sorted(
        ["original.mp4", "video.mp4", "thumb-320.jpg", "thumb-640.jpg", "thumb-1280.jpg"]
    )
    # The killed delivery's scratch (each delivery has its own) goes with the janitor's TTL.
    deadline = time.monotonic() + 120
    while scratch_entries(stack, item_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert scratch_entries(stack, item_id) == []


def test_sigterm_lets_the_downloader_finish_its_job_then_exit(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    response = alice.capture(media.url("/slow/h264.mp4?rate=2500000&sigterm=1"))
    item_id = response.json()["id"]
    wait_until_downloading(alice, item_id)
    processes = stack.processes.pop("downloader")
    for process in processes:
        process.send_signal(signal.SIGTERM)
    # The in-flight download (a few seconds) ends inside the 30 s grace period.
    assert [p.wait(timeout=45) for p in processes] == [0] * len(processes)
    item = alice.wait_for(item_id, timeout=60)
    assert item["status"] == "ready", item
    stack.start("downloader", 2)
