"""The supervisor's scrape of its workers (PRSNL_INGEST_WORKERS): values added up, and the live
gauges of a worker that is gone left out, however it went."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prsnl_ingest.serving import workers_registry

# A worker: sets a live gauge and a counter, then stays (until killed) or exits at once
# without any clean-up of its own.
WORKER = """
import sys, time
from prometheus_client import Counter, Gauge
Gauge("t_in_flight", "jobs now", multiprocess_mode="livesum").set(float(sys.argv[1]))
Counter("t_done", "jobs done").inc(float(sys.argv[1]))
print("set", flush=True)
if sys.argv[2] == "stay":
    time.sleep(120)
"""


def _worker(folder: Path, value: int, stay: bool) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(value), "stay" if stay else "go"],
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline() == "set\n"
    return process


def test_live_gauges_of_gone_workers_no_longer_count_but_their_counts_do(tmp_path: Path) -> None:
    staying = _worker(tmp_path, 3, stay=True)
    killed = _worker(tmp_path, 4, stay=True)
    exited = _worker(tmp_path, 5, stay=False)
    try:
        exited.wait(timeout=30)
        registry = workers_registry(str(tmp_path))
        assert registry.get_sample_value("t_in_flight") == 3 + 4
        killed.kill()
        killed.wait(timeout=30)
        assert registry.get_sample_value("t_in_flight") == 3
        assert registry.get_sample_value("t_done_total") == 3 + 4 + 5
    finally:
        for process in (staying, killed, exited):
            process.kill()
            process.wait()
            assert process.stdout is not None
            process.stdout.close()
