"""Resident memory of every service of the benchmark stack, read from /proc at chosen moments.

Each service process is counted on its own; its child processes (the downloader's
warm yt-dlp workers, a running ffmpeg) are summed apart, so a leak in a service
shows in its own column.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.report import MIB, format_table

LIMIT_BYTES = 150 * 1000 * 1000  # the budget per service: 150 MB


@dataclass(frozen=True)
class Resident:
    """RSS of one service process and the sum of its descendants' RSS, in bytes."""

    own: int
    children: int
    child_count: int


def rss_bytes(pid: int) -> int:
    """VmRSS of ``pid`` in bytes; 0 when the process is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0  # a zombie has no VmRSS line


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...)."""
    found: list[int] = []
    pending = [pid]
    while pending:
        parent = pending.pop()
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                kids = [int(value) for value in task.read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
            found += kids
            pending += kids
    return found


def resident(pid: int, apart: Sequence[int] = ()) -> Resident:
    """``pid``'s memory, its descendants' summed apart, leaving out the subtrees of ``apart``."""
    left_out = {kid for worker in apart for kid in [worker, *descendants(worker)]}
    kids = [kid for kid in descendants(pid) if kid not in left_out]
    return Resident(rss_bytes(pid), sum(rss_bytes(kid) for kid in kids), len(kids))


def sample(processes: Mapping[str, Sequence[Any]]) -> dict[str, Resident]:
    """The memory of every running process of a stack (``Stack.processes``), by service name;
    a gateway's workers get a row each, beside their supervisor's."""
    from tests.support.stack import gateway_workers

    found: dict[str, Resident] = {}
    for service, started in processes.items():
        for index, process in enumerate(started):
            if process.poll() is None:
                name = f"{service}-{index}" if index else service  # replicas started later
                workers = gateway_workers(process.pid)
                found[name] = resident(process.pid, apart=workers)
                for number, worker in enumerate(workers, 1):
                    found[f"{name} worker {number}"] = resident(worker)
    return found


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / MIB:.0f}"


def memory_report(moments: Mapping[str, Mapping[str, Resident]]) -> str:
    """One row per service, a column of its own RSS per moment, then its children at the last."""
    names = list(dict.fromkeys(name for found in moments.values() for name in found))
    labels = list(moments)
    rows = []
    for name in names:
        seen = [moments[label].get(name) for label in labels]
        own = [r.own if r else None for r in seen]
        last = next((r for r in reversed(seen) if r), None)
        over = any(value is not None and value > LIMIT_BYTES for value in own)
        rows.append(
            [
                name,
                *(_mib(value) for value in own),
                f"{_mib(last.children if last else None)} ({last.child_count if last else 0})",
                "over 150 MB" if over else "ok",
            ]
        )
    return "\n".join(
        [
            "6. Memory: resident set of every service process, MiB (own process; children apart)",
            "",
            format_table(["service", *labels, "children (count)", "budget"], rows),
            "   (- : not running at that moment; the downloaders are stopped for the intake row)",
        ]
    )


def memory_json(moments: Mapping[str, Mapping[str, Resident]]) -> dict[str, Any]:
    return {
        label: {
            name: {"rss_bytes": r.own, "children_rss_bytes": r.children, "children": r.child_count}
            for name, r in found.items()
        }
        for label, found in moments.items()
    }
