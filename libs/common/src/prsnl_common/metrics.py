"""A stage's job metrics, written once: how long each job took and how it ended.

Every stage that runs jobs (download, process) records ``prsnl_<stage>_seconds``
(a histogram) and ``prsnl_<stage>_outcomes_total`` (a counter), both labelled
with the stage's own labels plus ``outcome``: ``ok`` or the stable error code.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import Counter, Gauge, Histogram

OK = "ok"

# Written by the failure policy of every stage subscriber (prsnl_common.consumer).
JOBS_IN_FLIGHT = Gauge(
    "prsnl_jobs_in_flight",
    "Deliveries this process is working on now, by stage",
    ["stage"],
    multiprocess_mode="livesum",  # the gateway's workers add up (prsnl_ingest.serving)
)
RETRIES_SCHEDULED = Counter(
    "prsnl_retries_scheduled_total",
    "Jobs put back for another attempt after a transient failure, by stage and error code",
    ["stage", "code"],
)
DEAD_LETTERS = Counter(
    "prsnl_dead_letters_total",
    "Messages given up on after every attempt and dead-lettered to the stage's DLQ",
    ["stage", "code"],
)
JOB_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1200, 1800)


class JobMetrics:
    def __init__(self, stage: str, what: str, labels: Sequence[str]) -> None:
        names = [*labels, "outcome"]
        self.seconds = Histogram(
            f"prsnl_{stage}_seconds",
            f"Duration of {what} by {', '.join(labels)} and outcome (ok or the error code)",
            names,
            buckets=JOB_BUCKETS,
        )
        self.outcomes = Counter(
            f"prsnl_{stage}_outcomes_total",
            f"Outcomes of {what} by {', '.join(labels)} and outcome (ok or the error code)",
            names,
        )

    def record(self, outcome: str, seconds: float, *labels: str) -> None:
        """Count one finished job: ``outcome`` is ``ok`` or its error code."""
        self.seconds.labels(*labels, outcome).observe(seconds)
        self.outcomes.labels(*labels, outcome).inc()
