"""Settings of the downloader, from ``PRSNL_DOWNLOADER_*`` variables (and ``MAX_VIDEO_SIZE_MB``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prsnl_common.settings import below_consumer_timeout, waiting_budget

# Storing the file and publishing its event also happen before the ack.
MAX_ACQUIRE_SECONDS = 120.0
MIB = 1024 * 1024


class DownloaderSettings(BaseSettings):
    """How many downloads run at once and what bounds each of them."""

    model_config = SettingsConfigDict(
        env_prefix="PRSNL_DOWNLOADER_", extra="ignore", frozen=True, validate_by_name=True
    )

    concurrency: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Jobs at once per replica, and the number of warm yt-dlp child processes",
    )
    max_video_size_mb: int = Field(
        default=2048,
        ge=1,
        # The feature list names the plain MAX_VIDEO_SIZE_MB; the prefixed name wins if both exist.
        validation_alias=AliasChoices("PRSNL_DOWNLOADER_MAX_VIDEO_SIZE_MB", "MAX_VIDEO_SIZE_MB"),
        description="Largest download in MiB, enforced while downloading",
    )
    job_timeout_seconds: float = Field(
        default=1500, gt=0, description="Hard time limit of one download, below 1800"
    )
    stall_seconds: float = Field(
        default=120, gt=0, description="A download whose byte count stops moving this long ends"
    )
    min_speed_bytes: int = Field(
        default=1024,
        ge=0,
        description="Bytes/s a source must average over the stall window; a slower "
        "(trickling) source fails as source_too_slow. 0 turns the check off",
    )
    min_free_disk_mb: int = Field(
        default=1024,
        ge=0,
        description="Free disk (MiB) the media store needs: below it the downloader takes no "
        "new jobs (they wait in their queue) and a job about to start waits as well",
    )
    disk_wait_seconds: float = Field(
        default=1200,
        ge=0,
        description="A job that finds too little free disk waits up to this long for space "
        "before it fails as insufficient_disk (and is retried); cut to what the broker's "
        "consumer timeout leaves after the job's own limit",
    )
    socket_timeout_seconds: float = Field(
        default=20, gt=0, description="yt-dlp's socket timeout for unresponsive hosts"
    )
    cookies_dir: Path | None = Field(
        default=None,
        description="Operator cookie files <platform>.txt (Netscape format) for youtube, "
        "instagram, twitter and tiktok; each is used only for its own platform's hosts",
    )
    progress_interval_seconds: float = Field(
        default=1.0, gt=0, description="At most one progress event per job per interval"
    )
    default_max_height: int = Field(
        default=1080, ge=144, le=4320, description="Height to download when a capture asks none"
    )
    metrics_port: int = Field(
        default=9102, ge=0, le=65535, description="Port of /metrics (0 disables)"
    )

    @field_validator("job_timeout_seconds", "disk_wait_seconds")
    @classmethod
    def _below_consumer_timeout(cls, value: float) -> float:
        return below_consumer_timeout(value)

    @model_validator(mode="after")
    def _stall_window_longer_than_progress(self) -> DownloaderSettings:
        if self.stall_seconds <= self.progress_interval_seconds:
            raise ValueError(
                "stall_seconds must be longer than progress_interval_seconds, or every download "
                "looks stalled between two progress reports"
            )
        return self

    @property
    def max_bytes(self) -> int:
        """The byte cap of one download."""
        return self.max_video_size_mb * MIB

    @property
    def min_free_bytes(self) -> int:
        return self.min_free_disk_mb * MIB

    @property
    def acquire_timeout_seconds(self) -> float:
        """How long a job may wait for a free process: what the consumer timeout leaves.

        Waiting, downloading, storing and publishing all happen before the
        message is acknowledged, so together they must end within the broker's
        consumer timeout. With as many jobs as processes a job only waits for a
        replacement that is starting up, which takes seconds.
        """
        return waiting_budget(MAX_ACQUIRE_SECONDS, self.job_timeout_seconds)

    @property
    def disk_wait_limit_seconds(self) -> float:
        """How long a job waits for disk: what the limit, the process wait and the timeout leave."""
        return waiting_budget(
            self.disk_wait_seconds, self.job_timeout_seconds, self.acquire_timeout_seconds
        )
