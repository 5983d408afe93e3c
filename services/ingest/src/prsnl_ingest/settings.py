"""Settings of the gateway, from ``PRSNL_INGEST_*`` variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRSNL_INGEST_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", description="Address the HTTP API listens on")
    port: int = Field(default=8000, ge=0, le=65535, description="Port of the HTTP API")
    public_url: str = Field(default="", description="Base URL for links in answers (optional)")
    default_max_height: int = Field(default=1080, ge=144, le=4320)
    pool_size: int = Field(default=10, ge=1, le=100, description="PostgreSQL connections")
    progress_interval_seconds: float = Field(
        default=0.5, ge=0, description="Least time between stored progress updates of an item"
    )
    sse_keepalive_seconds: float = Field(default=15.0, gt=0)
    outbox_poll_seconds: float = Field(default=1.0, gt=0)
    stream_chunk_bytes: int = Field(default=1024 * 1024, ge=4096)
    accel_redirect_prefix: str = Field(
        default="",
        pattern=r"^(/[A-Za-z0-9_./-]*/)?$",
        description="When set (e.g. /_media/), files are answered with X-Accel-Redirect to "
        "this internal nginx location instead of being streamed by the gateway",
    )
    page_size: int = Field(default=50, ge=1, le=500)
