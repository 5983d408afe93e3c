"""Prometheus metrics of the download stage, in the process's default registry."""

from __future__ import annotations

from prometheus_client import Counter

from prsnl_common.metrics import OK, JobMetrics

OUTCOME_OK = OK
DOWNLOADS = JobMetrics("download", "downloads", ["platform"])
DOWNLOADED_BYTES = Counter(
    "prsnl_downloaded_bytes_total",
    "Bytes of originals stored by the downloader, by platform",
    ["platform"],
)


def record_download(platform: str, outcome: str, seconds: float, size: int = 0) -> None:
    """Count one finished download attempt."""
    DOWNLOADS.record(outcome, seconds, platform)
    if size:
        DOWNLOADED_BYTES.labels(platform).inc(size)
