"""Settings of the storage janitor, from ``PRSNL_JANITOR_*`` variables."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class JanitorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRSNL_JANITOR_", extra="ignore", frozen=True)

    temp_ttl_seconds: float = Field(
        default=7200,
        gt=0,
        description="Scratch folders older than this are removed (S2); "
        "keep it above the longest job's time limit",
    )
    sweep_interval_seconds: float = Field(default=300, gt=0, description="How often to sweep")
    metrics_port: int = Field(default=9104, ge=0, le=65535)
    orphan_grace_seconds: float = Field(
        default=3600,
        ge=0,
        description="An orphan found by the scan is removed this long after it was announced "
        "as file.orphaned, if it is still unreferenced and unchanged then (S3)",
    )
    orphan_min_age_seconds: float = Field(
        default=600,
        ge=0,
        description="Files changed more recently than this are never taken as orphans: they "
        "may still be being written",
    )
