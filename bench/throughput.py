"""Pipeline throughput: a batch of captures at once until every one is ready, and the raw tools.

The raw side runs the same jobs with the pipeline's parallelism: ``downloads`` yt-dlp
CLI runs at a time (the downloader's concurrency) feeding ``processes`` runs of the
transcoder's ffprobe/ffmpeg commands at a time (the transcoder's), so both sides
overlap downloading and processing the same way on the same cores.
"""

from __future__ import annotations

import concurrent.futures
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.capture import CaptureFailed, raw_download, raw_process
from bench.report import fmt_ratio, fmt_seconds, format_table, ratio

POLL_SECONDS = 0.25
CAPTURES = "/api/v1/captures"


@dataclass(frozen=True)
class Batch:
    """A batch of jobs: when the first and the last one ended, from the start of the batch."""

    jobs: int
    first_s: float
    all_s: float

    @property
    def per_minute(self) -> float:
        return self.jobs * 60 / self.all_s


def pipeline_batch(client: httpx.Client, urls: Sequence[str], timeout: float = 900) -> Batch:
    """POST every link at once (8 at a time), then follow the owner's counts until all are ready.

    ``client`` must carry a key whose owner has no other items: GET /api/v1/storage
    counts the caller's items by status, one request per poll for the whole batch.
    """
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda url: client.post(CAPTURES, json={"url": url}), urls))
    refused = [a for a in answers if a.status_code != 202]
    if refused:
        raise CaptureFailed(f"{len(refused)} captures refused, e.g. {refused[0].text}")
    first: float | None = None
    while True:
        counts: dict[str, int] = client.get("/api/v1/storage").json()["you"]["items"]
        now = time.perf_counter() - started
        if counts.get("failed"):
            raise CaptureFailed(f"{counts['failed']} of the batch failed: {counts}")
        if first is None and counts.get("ready"):
            first = now
        if counts.get("ready", 0) >= len(urls):
            return Batch(len(urls), first or now, now)
        if now > timeout:
            raise CaptureFailed(f"batch not ready after {timeout:g} s: {counts}")
        time.sleep(POLL_SECONDS)


def raw_batch(urls: Sequence[str], scratch: Path, *, downloads: int, processes: int) -> Batch:
    """The same jobs by the raw tools: ``downloads`` yt-dlp at a time, ``processes`` ffmpeg."""
    started = time.perf_counter()
    ended: list[float] = []
    with (
        concurrent.futures.ThreadPoolExecutor(max_workers=downloads) as downloading,
        concurrent.futures.ThreadPoolExecutor(max_workers=processes) as processing,
    ):

        def process(run: Any, workdir: Path) -> None:
            raw_process(run, workdir)
            ended.append(time.perf_counter() - started)
            shutil.rmtree(workdir, ignore_errors=True)

        def download(index: int, url: str) -> concurrent.futures.Future[None]:
            workdir = scratch / f"batch-{index}"
            return processing.submit(process, raw_download(url, workdir), workdir)

        handed = [downloading.submit(download, i, url) for i, url in enumerate(urls)]
        for future in handed:
            future.result().result()
    return Batch(len(urls), min(ended), max(ended))


def throughput_report(
    clip_label: str, ours: Batch, raw: Batch, *, downloads: int, processes: int
) -> str:
    rows = [
        ["pipeline", fmt_seconds(ours.first_s), fmt_seconds(ours.all_s), f"{ours.per_minute:.1f}"],
        ["raw tools", fmt_seconds(raw.first_s), fmt_seconds(raw.all_s), f"{raw.per_minute:.1f}"],
        ["raw / pipeline (throughput ratio)", "", fmt_ratio(ratio(raw.all_s, ours.all_s)), ""],
    ]
    return "\n".join(
        [
            f"4. Pipeline throughput: {ours.jobs} captures of the {clip_label} clip at once, "
            "until all are ready",
            f"   parallelism on both sides: {downloads} downloads and {processes} processing "
            "job(s) at a time (1 downloader, 1 transcoder)",
            "   raw tools = yt-dlp CLI feeding the transcoder's ffprobe/ffmpeg commands",
            "",
            format_table(["who", "first ready", "all ready", "jobs/min"], rows),
        ]
    )


def throughput_json(ours: Batch, raw: Batch, *, downloads: int, processes: int) -> dict[str, Any]:
    def side(batch: Batch) -> dict[str, Any]:
        return {"first_s": batch.first_s, "all_s": batch.all_s, "per_minute": batch.per_minute}

    return {
        "jobs": ours.jobs,
        "downloads_at_once": downloads,
        "processes_at_once": processes,
        "pipeline": side(ours),
        "raw": side(raw),
        "ratio": ratio(raw.all_s, ours.all_s),
    }
