"""Settings of the transcoder, from ``PRSNL_TRANSCODER_*`` variables."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prsnl_common.settings import below_consumer_timeout, waiting_budget


class TranscoderSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRSNL_TRANSCODER_", extra="ignore", frozen=True)

    concurrency: int = Field(default=1, ge=1, le=16, description="Jobs at once per replica")
    max_height: int = Field(default=1080, ge=144, le=4320, description="Height cap of outputs")
    compress_threshold_mb: int = Field(
        default=500, ge=1, description="Files larger than this are re-encoded smaller"
    )
    crf: int = Field(default=23, ge=0, le=51)
    compress_crf: int = Field(default=28, ge=0, le=51)
    preset: str = Field(default="veryfast", description="libx264 preset")
    audio_bitrate: str = Field(default="128k")
    job_timeout_seconds: float = Field(default=1500, gt=0)
    stall_seconds: float = Field(default=120, gt=0)
    probe_timeout_seconds: float = Field(default=60, gt=0)
    thumbnail_widths: str = Field(default="320,640,1280")
    progress_interval_seconds: float = Field(default=1.0, ge=0)
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="Below this much free disk (MiB) in the media store the transcoder takes "
        "no new jobs; they wait in their queues until space returns",
    )
    disk_wait_seconds: float = Field(
        default=1200,
        ge=0,
        description="A delivered job that finds too little free disk waits up to this long for "
        "space before it fails as insufficient_disk (and is retried); cut to what the broker's "
        "consumer timeout leaves after the job's own limit",
    )

    @field_validator("job_timeout_seconds")
    @classmethod
    def _below_consumer_timeout(cls, value: float) -> float:
        return below_consumer_timeout(value)

    @property
    def min_free_bytes(self) -> int:
        return self.min_free_disk_mb * 1024 * 1024

    @property
    def disk_wait_limit_seconds(self) -> float:
        """How long a job waits for disk: what its limit leaves of the consumer timeout."""
        return waiting_budget(self.disk_wait_seconds, self.job_timeout_seconds)

    @field_validator("thumbnail_widths")
    @classmethod
    def _check_widths(cls, value: str) -> str:
        widths = [int(w) for w in value.split(",") if w.strip()]
        if not widths or any(w < 16 or w > 3840 for w in widths):
            raise ValueError("thumbnail widths must be between 16 and 3840 pixels")
        return value

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(sorted({int(w) for w in self.thumbnail_widths.split(",") if w.strip()}))
