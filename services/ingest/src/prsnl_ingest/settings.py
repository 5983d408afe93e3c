"""Settings of the gateway, from ``PRSNL_INGEST_*`` variables."""

from __future__ import annotations

import limits
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRSNL_INGEST_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP API")
    public_url: str = Field(default="", description="Base URL for links in answers (optional)")
    default_max_height: int = Field(default=1080, ge=144, le=4320)
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Gateway processes sharing the port (one Python process uses one core)",
    )
    pool_size: int = Field(
        default=10, ge=1, le=100, description="PostgreSQL connections (of each worker)"
    )
    progress_interval_seconds: float = Field(
        default=0.5, ge=0, description="Least time between stored progress updates of an item"
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    outbox_linger_seconds: float = Field(default=0.01, ge=0, le=1)
    stream_chunk_bytes: int = Field(default=1024 * 1024, ge=4096)
    accel_redirect_prefix: str = Field(
        default="",
        pattern=r"^(/[A-Za-z0-9_./-]*/)?$",
        description="When set (e.g. /_media/), files are answered with X-Accel-Redirect to "
        "this internal nginx location instead of being streamed by the gateway",
    )
    store_redirects: bool = Field(
        default=True,
        description="With an object store, answer a video or thumbnail request with a redirect "
        "to a presigned link (the store or a CDN in front of it serves the ranges); off: the "
        "gateway streams the ranges from the store itself",
    )
    store_link_seconds: int = Field(
        default=3600,
        ge=60,
        le=7 * 86400,
        description="How long a presigned link of a redirect stays valid (S3 allows 7 days)",
    )
    page_size: int = Field(default=50, ge=1, le=500)
    max_body_bytes: int = Field(
        default=64 * 1024, ge=1024, description="Largest request body; larger ones get 413"
    )
    max_upload_mb: int = Field(
        default=2048, ge=1, description="Largest video file POST /api/v1/uploads takes"
    )
    capture_rate_limit: str = Field(
        default="60/minute",
        description="Captures allowed per API key and replica, e.g. 60/minute or 10/second",
    )
    max_streams_per_owner: int = Field(
        default=20, ge=1, description="Live event streams one owner may hold open per replica"
    )
    key_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description="How long a replica trusts a looked-up API key; revocations also arrive "
        "at once through NOTIFY, this bounds a missed notification",
    )
    item_cache_size: int = Field(
        default=4096,
        ge=0,
        description="Item rows a replica keeps for reads (0: none); a change reaches every "
        "replica through NOTIFY and drops the row at once",
    )
    signed_link_seconds: int = Field(
        default=86400,
        ge=60,
        le=30 * 86400,
        description="How long the signed video and thumbnail links in API answers stay valid",
    )
    link_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Secret that signs media links (at least 32 characters); by default one is "
        "made on first start and kept in the catalog, shared by every replica",
    )
    metrics_port: int = Field(
        default=9101, ge=0, le=65535, description="Port of the Prometheus /metrics (0 disables)"
    )
    metrics_on_api_port: bool = Field(
        default=False, description="Also serve /metrics on the public API port (opt-in)"
    )
    quota_bytes: int = Field(
        default=0, ge=0, description="Default bytes an owner may store (0: unlimited)"
    )
    quota_captures_per_day: int = Field(
        default=0, ge=0, description="Default captures an owner may make in 24 hours (0: unlimited)"
    )

    @field_validator("link_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("a link secret needs at least 32 characters")
        return value

    @field_validator("capture_rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        """Fail at start-up, naming the variable, rather than on the first capture."""
        try:
            limits.parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit like 60/minute: {exc}") from exc
        return value
