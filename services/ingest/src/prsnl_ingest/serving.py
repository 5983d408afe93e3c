"""How the gateway serves HTTP: one process, or several on one port (``PRSNL_INGEST_WORKERS``).

One Python process serves at most one core. With workers, uvicorn's supervisor
binds the port, starts that many processes sharing it (and starts a new one for
any that dies); each worker is a whole gateway replica (own pool, consumers,
outbox relay, caches and LISTEN connection), as several replicas already are.
Metrics: the workers write their values to files in a folder of the supervisor's
(prometheus_client's multiprocess mode) and the supervisor alone serves the
metrics port, adding them up, so one scrape sees the whole gateway.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Metric, multiprocess
from prometheus_client.registry import Collector

from prsnl_common.observability import serve_metrics, setup_logging
from prsnl_common.settings import CommonSettings
from prsnl_ingest.settings import IngestSettings

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own variable
SUPERVISOR_PID = "PRSNL_INGEST_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1  # prctl(2)
# prometheus_client's file of one process's live gauges (modes livesum, livemax, ...).
LIVE_GAUGE = re.compile(r"gauge_live[a-z]+_([0-9]+)\.db")


def serve(settings: IngestSettings, common: CommonSettings, host: str, port: int) -> None:
    """Serve the API on ``host:port`` until stopped, in ``settings.workers`` processes."""
    if settings.workers > 1:
        _serve_workers(settings, host, port)
        return
    from prsnl_ingest.app import create_app

    _uvicorn(create_app(settings, common), host, port)


def _serve_workers(settings: IngestSettings, host: str, port: int) -> None:
    """uvicorn's supervisor with the workers, and the metrics port adding up their values."""
    folder = tempfile.mkdtemp(prefix="prsnl-ingest-metrics-")
    os.environ[MULTIPROC_DIR] = folder
    os.environ[SUPERVISOR_PID] = str(os.getpid())
    serve_metrics(settings.metrics_port, workers_registry(folder))
    os.environ["PRSNL_INGEST_METRICS_PORT"] = "0"  # the workers leave the port to us
    try:
        _uvicorn("prsnl_ingest.serving:worker_app", host, port, settings.workers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _uvicorn(app: Any, host: str, port: int, workers: int | None = None) -> None:
    """uvicorn without access lines (they would cost more than the requests)."""
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        factory=isinstance(app, str),
        workers=workers,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


def worker_app() -> Any:
    """The app of one worker process; it stops when its supervisor is gone, even killed."""
    _stop_with_supervisor()
    from prsnl_ingest.app import create_app

    common = CommonSettings()
    setup_logging("ingest", level=common.log_level, fmt=common.log_format)
    return create_app(IngestSettings(), common)


def _stop_with_supervisor() -> None:
    """Ask the kernel for SIGTERM when the supervisor dies (a kill -9 runs no clean-up of its
    own): a worker left behind would keep serving the port beside the next supervisor."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if str(os.getppid()) != os.environ.get(SUPERVISOR_PID):
        sys.exit("the gateway's supervisor stopped before this worker started")


class _WorkersCollector(Collector):
    """Every worker's values added up, from the files they write; the live gauges of a
    worker that is gone (stopped, or killed with no chance to say so) no longer count.
    Its counters and histograms do: what it counted happened."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.files = multiprocess.MultiProcessCollector(None, folder)  # type: ignore[no-untyped-call]

    def collect(self) -> Iterable[Metric]:
        live = (LIVE_GAUGE.fullmatch(name) for name in os.listdir(self.folder))
        for pid in {int(match[1]) for match in live if match}:
            if not _running(pid):
                # Two scrapes at once may both remove the same files.
                with contextlib.suppress(FileNotFoundError):
                    multiprocess.mark_process_dead(pid, self.folder)  # type: ignore[no-untyped-call]
        metrics: Iterable[Metric] = self.files.collect()  # type: ignore[no-untyped-call]
        return metrics


def workers_registry(folder: str) -> CollectorRegistry:
    """The registry the supervisor serves: the workers' metrics in ``folder``."""
    registry = CollectorRegistry()
    registry.register(_WorkersCollector(folder))
    return registry


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True
