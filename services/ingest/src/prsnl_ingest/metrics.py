"""The gateway's own Prometheus metrics (HTTP metrics come from Litestar's middleware)."""

from prometheus_client import Counter, Histogram

CAPTURES = Counter(
    "prsnl_captures_total",
    "Captures by platform, source (api, telegram) and outcome (created, duplicate or the "
    "refusal's code)",
    ["platform", "source", "outcome"],
)
OUTCOMES = Counter(
    "prsnl_item_outcomes_total", "Items finished, by status and error code", ["status", "code"]
)
MEDIA_AUTHORIZATIONS = Counter(
    "prsnl_media_authorizations_total",
    "Signed media links nginx asked the gateway about (auth_request), by outcome",
    ["outcome"],
)
CAPTURE_BATCH_ROWS = Histogram(
    "prsnl_capture_batch_rows",
    "Captures written together by one statement of the capture writer (group commit)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 100),
)
