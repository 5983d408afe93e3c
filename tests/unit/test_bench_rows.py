"""The throughput, intake and memory rows of the benchmark: their arithmetic and reports."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from bench.intake import IntakeCheck, RawWrites, capture_script, intake_report
from bench.memory import (
    LIMIT_BYTES,
    Resident,
    descendants,
    memory_report,
    resident,
    rss_bytes,
    sample,
)
from bench.throughput import Batch, throughput_report
from bench.wrk import WrkResult
from prsnl_ingest.serving import SUPERVISOR_PID
from tests.support.waiting import wait_until

MIB = 1024 * 1024


def test_capture_script_posts_a_new_link_per_request_and_keeps_the_headers() -> None:
    script = capture_script("http://127.0.0.1:8080/files/intake")
    assert 'local base = "http://127.0.0.1:8080/files/intake"' in script
    # Thread id and a per-thread counter make every link new across both wrk threads.
    assert 'thread:set("id", threads)' in script
    assert "counter = counter + 1" in script
    assert """string.format('{"url":"%s/%d-%d.mp4"}', base, id, counter)""" in script
    # nil headers keep the -H ones (Authorization, Content-Type).
    assert 'return wrk.format("POST", nil, nil, body)' in script


def test_intake_lost_counts_missing_items_and_unpublished_messages() -> None:
    assert IntakeCheck(answered=100, items=103, queued=103, outbox_left=0).lost == 0
    assert IntakeCheck(answered=100, items=98, queued=98, outbox_left=0).lost == 2
    assert IntakeCheck(answered=100, items=100, queued=95, outbox_left=5).lost == 5


def test_intake_report_puts_ours_over_raw() -> None:
    ours = WrkResult(
        requests=10_000,
        elapsed_s=10,
        bytes_read=1e6,
        requests_per_s=1000.0,
        transfer_per_s=1e5,
        percentiles={50.0: 0.02, 99.0: 0.08},
    )
    raw = RawWrites(transactions=40_000, elapsed_s=10, p50_s=0.005, p99_s=0.02)
    text = intake_report(ours, raw, IntakeCheck(10_000, 10_010, 10_010, 0), 10)
    assert "4,000" in text and "1,000" in text
    assert "0.25x" in text  # 1,000 / 4,000 per second
    assert "lost 0" in text


def test_throughput_ratio_is_raw_time_over_pipeline_time() -> None:
    ours = Batch(jobs=40, first_s=5.0, all_s=100.0)
    raw = Batch(jobs=40, first_s=4.0, all_s=90.0)
    assert ours.per_minute == 24.0
    text = throughput_report("clip", ours, raw, downloads=2, processes=1)
    assert "0.90x" in text
    assert "2 downloads and 1 processing" in text


def test_resident_counts_the_process_and_its_children_apart() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        found = resident(os.getpid())
        assert found.own > 10 * MIB
        assert found.child_count >= 1 and found.children > 0
    finally:
        child.kill()
        child.wait()


class _Running:
    def __init__(self, pid: int, alive: bool = True) -> None:
        self.pid = pid
        self.alive = alive

    def poll(self) -> int | None:
        return None if self.alive else 0


def test_sample_names_replicas_and_skips_stopped_processes() -> None:
    me = os.getpid()
    processes: dict[str, list[Any]] = {
        "ingest": [_Running(me)],
        "downloader": [_Running(me), _Running(me)],
        "transcoder": [_Running(me, alive=False)],
    }
    assert sorted(sample(processes)) == ["downloader", "downloader-1", "ingest"]


def test_sample_gives_each_gateway_worker_a_row_and_leaves_it_out_of_the_children() -> None:
    # A worker is spawned by multiprocessing (the tracker, also marked, is not a worker).
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)", "spawn_main"]
    marked = {**os.environ, SUPERVISOR_PID: str(os.getpid())}
    worker = subprocess.Popen(sleeper, env=marked)
    other = subprocess.Popen(sleeper[:-1], env=marked)
    try:
        wait_until(lambda: rss_bytes(worker.pid) > 0 and rss_bytes(other.pid) > 0)
        found = sample({"ingest": [_Running(os.getpid())]})
        assert sorted(found) == ["ingest", "ingest worker 1"]
        assert found["ingest worker 1"].own == pytest.approx(rss_bytes(worker.pid), rel=0.2)
        assert found["ingest"].child_count == len(descendants(os.getpid())) - 1
    finally:
        for child in (worker, other):
            child.kill()
            child.wait()


def test_memory_report_marks_a_service_over_the_budget() -> None:
    moments = {
        "idle": {"ingest": Resident(80 * MIB, 0, 0), "downloader": Resident(70 * MIB, 0, 2)},
        "after": {"ingest": Resident(LIMIT_BYTES + 1, 0, 0)},
    }
    lines = memory_report(moments).splitlines()
    ingest = next(line for line in lines if line.strip().startswith("ingest"))
    downloader = next(line for line in lines if line.strip().startswith("downloader"))
    assert ingest.rstrip().endswith("over 150 MB")
    assert downloader.rstrip().endswith("ok") and " - " in downloader
