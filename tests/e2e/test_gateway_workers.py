"""The gateway in several processes on one port (PRSNL_INGEST_WORKERS): captures go through
any worker, one scrape adds up every worker's metrics, a dead worker is replaced, and no
worker outlives its supervisor, stopped or killed."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.media_server import MediaServer
from tests.support.stack import Stack, free_port, gateway_workers, running_stack
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
WORKERS = 2


@pytest.fixture(scope="module")
def workers_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("workers"),
        downloaders=1,
        PRSNL_INGEST_WORKERS=str(WORKERS),
        PRSNL_INGEST_METRICS_PORT=str(free_port()),
    ) as stack:
        yield stack


def supervisor(stack: Stack) -> int:
    return stack.processes["ingest"][0].pid


def alive(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat")
    try:
        return state.read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def metrics_folder(worker: int) -> Path:
    """The folder a worker writes its metrics to (its supervisor made it and handed it down)."""
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    found = [e.split(b"=", 1)[1] for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(os.fsdecode(found[0]))


def captures_counted(stack: Stack) -> float:
    """Capture requests in the supervisor's scrape, every worker's added up."""
    port = stack.env["PRSNL_INGEST_METRICS_PORT"]
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "litestar_requests"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("path") == "/api/v1/captures"
    )


def test_captures_through_the_workers_are_ready_and_each_counted_once(
    workers_stack: Stack, media: MediaServer
) -> None:
    stack = workers_stack
    assert len(gateway_workers(supervisor(stack))) == WORKERS
    api = stack.client(stack.create_key("workers"))
    before = captures_counted(stack)
    ids = []
    for index in range(6):
        # A new connection each time: whichever worker accepts it answers.
        answer = api.capture(media.url(f"/files/small.mp4?worker={index}"))
        assert answer.status_code == 202, answer.text
        ids.append(answer.json()["id"])
    for item_id in ids:
        assert api.wait_for(item_id, timeout=120)["status"] == "ready"
    assert captures_counted(stack) == before + 6


def test_a_killed_worker_is_replaced_and_the_port_keeps_answering(workers_stack: Stack) -> None:
    stack = workers_stack
    first, second = gateway_workers(supervisor(stack))
    os.kill(first, signal.SIGKILL)

    def replaced() -> bool:
        now = gateway_workers(supervisor(stack))
        return first not in now and len(now) == WORKERS

    wait_until(
        replaced,
        within=60,
        what="a new worker in place of the killed one",
    )
    assert second in gateway_workers(supervisor(stack))
    stack.wait_ready(timeout=60)


def test_sigterm_stops_every_worker_and_removes_the_metrics_folder(workers_stack: Stack) -> None:
    stack = workers_stack
    pid = supervisor(stack)
    children = gateway_workers(pid)
    folder = metrics_folder(children[0])
    assert folder.is_dir()
    stack.kill("ingest", signal.SIGTERM)
    assert not any(alive(child) for child in children)
    assert not folder.exists()
    stack.start("ingest")
    stack.wait_ready(timeout=60)


def test_no_worker_outlives_a_killed_supervisor(workers_stack: Stack) -> None:
    stack = workers_stack
    children = gateway_workers(supervisor(stack))
    assert len(children) == WORKERS
    stack.kill("ingest", signal.SIGKILL)
    wait_until(
        lambda: not any(alive(child) for child in children),
        within=30,
        what="the workers of a killed supervisor gone",
    )
    # The port is free again: a new gateway takes it.
    stack.start("ingest")
    stack.wait_ready(timeout=60)
    assert len(gateway_workers(supervisor(stack))) == WORKERS
