"""The machine and tool versions a benchmark ran with, printed above the results."""

from __future__ import annotations

import asyncio
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from pathlib import Path


def _output(command: Sequence[str], timeout: float = 30) -> str:
    """stdout + stderr of a command, or "" when it cannot run."""
    try:
        result = subprocess.run(
            list(command), capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout + result.stderr


def first_match(pattern: str, text: str) -> str:
    """Group 1 of the first match of ``pattern`` in ``text``, or "unknown"."""
    match = re.search(pattern, text, re.MULTILINE)
    return match.group(1) if match else "unknown"


def cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown"
    return first_match(r"^model name\s*:\s*(.+)$", text)


async def _postgres_version(dsn: str) -> str:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        return str(await connection.fetchval("SHOW server_version"))
    finally:
        await connection.close()


def postgres_version(dsn: str) -> str:
    try:
        return asyncio.run(_postgres_version(dsn)).split()[0]
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


async def _rabbitmq_version(url: str) -> str:
    import aiormq

    connection = await aiormq.connect(url)
    try:
        version = connection.server_properties.get("version", "unknown")
        return version.decode() if isinstance(version, bytes) else str(version)
    finally:
        await connection.close()


def rabbitmq_version(url: str) -> str:
    """The broker's own version, from the AMQP handshake (not the CLI tools' version)."""
    try:
        return asyncio.run(_rabbitmq_version(url))
    except Exception as exc:
        return f"unknown ({type(exc).__name__})"


def collect(
    *, ytdlp: str, nginx: str | None, wrk: str | None, postgres_dsn: str, rabbitmq_url: str
) -> dict[str, str]:
    """Versions of every tool the benchmark compares or drives, plus CPU and load."""
    load = os.getloadavg()
    info = {
        "CPUs": f"{os.cpu_count()} ({cpu_model()})",
        "load average at start": " ".join(f"{value:.2f}" for value in load),
        "Python": platform.python_version(),
        "ffmpeg": first_match(r"ffmpeg version (\S+)", _output(["ffmpeg", "-version"])),
        "yt-dlp": _output([ytdlp, "--version"]).strip() or "unknown",
        "RabbitMQ": rabbitmq_version(rabbitmq_url),
        "PostgreSQL": postgres_version(f"{postgres_dsn}/postgres"),
    }
    if nginx is not None:
        info["nginx"] = first_match(r"nginx/(\S+)", _output([nginx, "-v"]))
    if wrk is not None:
        info["wrk"] = first_match(r"^wrk (\S+)", _output([wrk, "--version"]))
    return info
