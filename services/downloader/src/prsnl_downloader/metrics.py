"""Prometheus metrics of the download stage, in the process's default registry."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

OUTCOME_OK = "ok"

DOWNLOAD_SECONDS = Histogram(
    "prsnl_download_seconds",
    "Duration of downloads by platform and outcome (ok or the error code)",
    ["platform", "outcome"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800),
)
DOWNLOADED_BYTES = Counter(
    "prsnl_downloaded_bytes_total",
    "Bytes of originals stored by the downloader, by platform",
    ["platform"],
)
DOWNLOAD_OUTCOMES = Counter(
    "prsnl_download_outcomes_total",
    "Download outcomes by platform and outcome (ok or the error code)",
    ["platform", "outcome"],
)


def record_download(platform: str, outcome: str, seconds: float, size: int = 0) -> None:
    """Count one finished download attempt."""
    DOWNLOAD_SECONDS.labels(platform, outcome).observe(seconds)
    DOWNLOAD_OUTCOMES.labels(platform, outcome).inc()
    if size:
        DOWNLOADED_BYTES.labels(platform).inc(size)
