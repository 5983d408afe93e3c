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
