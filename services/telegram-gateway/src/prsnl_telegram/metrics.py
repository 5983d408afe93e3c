"""The Telegram gateway's own metrics (served on PRSNL_TELEGRAM_METRICS_PORT)."""

from prometheus_client import Counter

UPDATES = Counter(
    "prsnl_telegram_updates_total", "Telegram updates by type and outcome", ["type", "outcome"]
)
REPLIES = Counter("prsnl_telegram_replies_total", "Messages the bot sent, by kind", ["kind"])
EDITS_THROTTLED = Counter(
    "prsnl_telegram_edits_throttled_total", "Progress edits skipped to respect flood limits"
)
EDITS_FAILED = Counter(
    "prsnl_telegram_edits_failed_total", "Progress edits Telegram refused (never retried)"
)
BYTES_UPLOADED = Counter("prsnl_telegram_bytes_uploaded_total", "Video bytes sent to Telegram")
