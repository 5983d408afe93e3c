"""wrk load runs: command lines, random Range-request Lua scripts and parsing of wrk's report."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024

# wrk prints times with format_time_us / format_time_s: "812.00us", "1.23ms", "2.00s", "1.00m".
TIME_UNITS: Mapping[str, float] = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
# ... and byte counts with format_binary plus a "B": "512.00B", "3.00KB", "1.50MB", "1.02GB".
BINARY_UNITS: Mapping[str, int] = {
    "": 1,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
    "P": 1024**5,
}

_TIME = r"[\d.]+(?:us|ms|s|m|h)"
_SIZE = r"[\d.]+[KMGTP]?B"
_TIME_RE = re.compile(r"^([\d.]+)(us|ms|s|m|h)$")
_SIZE_RE = re.compile(r"^([\d.]+)([KMGTP]?)B$")
_LATENCY_RE = re.compile(rf"^\s*Latency\s+({_TIME})\s+({_TIME})\s+({_TIME})\s")
_PERCENTILE_RE = re.compile(rf"^\s*(\d+(?:\.\d+)?)%\s+({_TIME})\s*$")
_TOTAL_RE = re.compile(rf"^\s*(\d+) requests in ({_TIME}), ({_SIZE}) read")
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)\s*$")
_TRANSFER_RE = re.compile(rf"^Transfer/sec:\s+({_SIZE})\s*$")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_NON_2XX_RE = re.compile(r"Non-2xx or 3xx responses: (\d+)")


class WrkParseError(ValueError):
    """wrk's output lacks a line the benchmark needs."""


def parse_time(text: str) -> float:
    """Seconds from a wrk time such as ``"812.00us"``, ``"1.23ms"`` or ``"2.00s"``."""
    match = _TIME_RE.match(text.strip())
    if match is None:
        raise WrkParseError(f"not a wrk time: {text!r}")
    return float(match.group(1)) * TIME_UNITS[match.group(2)]


def parse_size(text: str) -> float:
    """Bytes from a wrk size such as ``"512.00B"``, ``"3.00KB"`` or ``"1.02GB"`` (base 1024)."""
    match = _SIZE_RE.match(text.strip())
    if match is None:
        raise WrkParseError(f"not a wrk size: {text!r}")
    return float(match.group(1)) * BINARY_UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkResult:
    """The numbers of one wrk report (times in seconds, sizes in bytes)."""

    requests: int
    elapsed_s: float
    bytes_read: float
    requests_per_s: float
    transfer_per_s: float
    latency_avg_s: float | None = None
    latency_max_s: float | None = None
    percentiles: Mapping[float, float] = field(default_factory=dict)
    socket_errors: Mapping[str, int] = field(default_factory=dict)
    non_2xx_3xx: int = 0

    @property
    def p50_s(self) -> float | None:
        return self.percentiles.get(50.0)

    @property
    def p99_s(self) -> float | None:
        return self.percentiles.get(99.0)

    @property
    def mib_per_s(self) -> float:
        return self.transfer_per_s / MIB

    @property
    def errors(self) -> int:
        """Responses outside 2xx/3xx plus socket errors of every kind."""
        return self.non_2xx_3xx + sum(self.socket_errors.values())

    @property
    def bytes_per_request(self) -> float:
        """Average bytes read per response (headers included); 0 when nothing completed."""
        return self.bytes_read / self.requests if self.requests else 0.0

    def to_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "elapsed_s": self.elapsed_s,
            "bytes_read": self.bytes_read,
            "requests_per_s": self.requests_per_s,
            "transfer_per_s": self.transfer_per_s,
            "mib_per_s": self.mib_per_s,
            "latency_avg_s": self.latency_avg_s,
            "latency_max_s": self.latency_max_s,
            "percentiles_s": {f"p{p:g}": v for p, v in self.percentiles.items()},
            "socket_errors": dict(self.socket_errors),
            "non_2xx_3xx": self.non_2xx_3xx,
        }


def parse_wrk(output: str) -> WrkResult:
    """Parse wrk's stdout (with or without ``--latency``) into a WrkResult."""
    requests: int | None = None
    elapsed = bytes_read = rps = transfer = None
    latency_avg = latency_max = None
    percentiles: dict[float, float] = {}
    socket_errors: dict[str, int] = {}
    non_2xx = 0
    for line in output.splitlines():
        if match := _LATENCY_RE.match(line):
            latency_avg = parse_time(match.group(1))
            latency_max = parse_time(match.group(3))
        elif match := _PERCENTILE_RE.match(line):
            percentiles[float(match.group(1))] = parse_time(match.group(2))
        elif match := _TOTAL_RE.match(line):
            requests = int(match.group(1))
            elapsed = parse_time(match.group(2))
            bytes_read = parse_size(match.group(3))
        elif match := _RPS_RE.match(line):
            rps = float(match.group(1))
        elif match := _TRANSFER_RE.match(line):
            transfer = parse_size(match.group(1))
        elif match := _SOCKET_RE.search(line):
            socket_errors = dict(
                zip(("connect", "read", "write", "timeout"), map(int, match.groups()), strict=True)
            )
        elif match := _NON_2XX_RE.search(line):
            non_2xx = int(match.group(1))
    if requests is None or elapsed is None or bytes_read is None:
        raise WrkParseError(f"no 'N requests in T, S read' line in wrk output:\n{output}")
    if rps is None or transfer is None:
        raise WrkParseError(f"no Requests/sec or Transfer/sec line in wrk output:\n{output}")
    return WrkResult(
        requests=requests,
        elapsed_s=elapsed,
        bytes_read=bytes_read,
        requests_per_s=rps,
        transfer_per_s=transfer,
        latency_avg_s=latency_avg,
        latency_max_s=latency_max,
        percentiles=percentiles,
        socket_errors=socket_errors,
        non_2xx_3xx=non_2xx,
    )


def range_script(*, size: int, chunk: int = MIB, seed: int = 1) -> str:
    """A wrk Lua script asking for random ``chunk``-byte ranges of a ``size``-byte file.

    Each request sets ``Range: bytes=a-b`` with ``b - a + 1 == chunk`` and the range
    wholly inside the file. Headers given with ``-H`` (Authorization) are kept because
    the script edits ``wrk.headers`` instead of passing its own table to ``wrk.format``.
    Every wrk thread gets its own deterministic seed.
    """
    if chunk <= 0:
        raise ValueError("chunk must be positive")
    if size < chunk:
        raise ValueError(f"the file ({size} bytes) is smaller than one range ({chunk} bytes)")
    return f"""-- Generated by bench: random {chunk}-byte ranges of a {size}-byte file.
local size = {size}
local chunk = {chunk}
local seed = {seed}
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function init(args)
  math.randomseed(seed + (id or 0))
end

function request()
  local first = math.random(0, size - chunk)
  wrk.headers["Range"] = string.format("bytes=%d-%d", first, first + chunk - 1)
  return wrk.format()
end
"""


def wrk_command(
    url: str,
    *,
    threads: int,
    connections: int,
    duration_s: int,
    headers: Mapping[str, str] | None = None,
    script: Path | None = None,
    latency: bool = True,
    binary: str = "wrk",
) -> list[str]:
    """The wrk command line, e.g. ``wrk -t2 -c32 -d10s --latency -H "A: b" URL``."""
    if duration_s < 1:
        raise ValueError("wrk durations are whole seconds, at least 1")
    command = [binary, f"-t{threads}", f"-c{connections}", f"-d{duration_s}s"]
    if latency:
        command.append("--latency")
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    command.append(url)
    return command


def wrk_binary() -> str:
    """The wrk executable (PATH, then /usr/bin/wrk); RuntimeError if it is missing."""
    found = shutil.which("wrk") or ("/usr/bin/wrk" if Path("/usr/bin/wrk").is_file() else None)
    if found is None:
        raise RuntimeError("wrk is not installed; run WITH_BENCH_TOOLS=1 scripts/bootstrap.sh")
    return found


def run_wrk(command: list[str], *, duration_s: int) -> WrkResult:
    """Run wrk and parse its report; RuntimeError when it fails."""
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=duration_s + 60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} exited with {result.returncode}:\n{result.stderr[-2000:]}"
        )
    return parse_wrk(result.stdout)
