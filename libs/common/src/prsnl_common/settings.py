"""Settings shared by every service, read once from ``PRSNL_*`` environment variables.

Each service adds its own settings class with its own prefix
(``PRSNL_INGEST_``, ``PRSNL_DOWNLOADER_``, ...); nothing else reads
``os.environ``. Invalid values fail at start-up with pydantic's message naming
the variable.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from prsnl_common.netguard import AllowRule, parse_allow_rules

BROKER_CONSUMER_TIMEOUT = 1800  # RabbitMQ 3.10's broker-wide consumer timeout, seconds


def below_consumer_timeout(seconds: float) -> float:
    """Validate a job's hard time limit: it must end before RabbitMQ gives up on the consumer."""
    if seconds >= BROKER_CONSUMER_TIMEOUT:
        raise ValueError(
            f"must be below {BROKER_CONSUMER_TIMEOUT} s, RabbitMQ 3.10's broker-wide consumer "
            "timeout: a longer job has its channel closed and is delivered again while it "
            "still runs"
        )
    return seconds


PUBLISH_MARGIN = 30  # seconds kept for storing and publishing after a job's work


def waiting_budget(wanted: float, job_seconds: float, *other_waits: float) -> float:
    """How long a job may wait before its work: ``wanted``, cut to what the timeout leaves.

    Waiting, the work (at most ``job_seconds``), storing and publishing all happen
    before the message is acknowledged, so together they must end within RabbitMQ's
    consumer timeout; ``other_waits`` are the job's other waits. At least one second.
    """
    left = BROKER_CONSUMER_TIMEOUT - PUBLISH_MARGIN - job_seconds - sum(other_waits)
    return max(1.0, min(wanted, left))


class CommonSettings(BaseSettings):
    """Connections, names and policies every service must agree on."""

    model_config = SettingsConfigDict(env_prefix="PRSNL_", extra="ignore", frozen=True)

    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/prsnl",
        description="PostgreSQL DSN of the catalog",
    )
    rabbitmq_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/", description="AMQP URL of RabbitMQ"
    )
    namespace: str = Field(
        default="prsnl",
        pattern=r"^[a-z][a-z0-9_-]{0,30}$",
        description="Prefix of every exchange and queue; one deployment per namespace",
    )
    media_root: Path = Field(
        default=Path("var/media"),
        description="Root of the media store; with an object store, where scratch space lives",
    )
    media_store: str = Field(
        default="",
        description="s3://bucket/prefix keeps media in an S3-compatible object store; empty "
        "keeps it in the media root",
    )
    s3_endpoint: str = Field(
        default="", description="URL of the S3 API (http://127.0.0.1:8333); empty: AWS"
    )
    s3_region: str = Field(default="us-east-1", description="Region the requests are signed for")
    s3_access_key_id: str = Field(default="", description="Access key of the object store")
    s3_secret_access_key: SecretStr = Field(
        default=SecretStr(""), description="Secret key of the object store"
    )
    ssrf_allowlist: str = Field(
        default="",
        description="Comma-separated addresses or CIDRs, each optionally with a port "
        "(127.0.0.1:8080, 10.0.0.0/8:443, [::1]:8080), that links may reach although they are "
        "private, loopback or link-local; without a port every port is open. Metadata "
        "endpoints stay refused whatever this says",
    )
    retry_delays: str = Field(
        default="2,10,60,300",
        description="Back-off delays in seconds for transient failures, attempt by attempt",
    )
    max_attempts: int = Field(default=5, ge=1, le=50, description="Attempts per job before failing")
    delivery_limit: int = Field(
        default=5, ge=1, description="Redeliveries (crashes) before a message is dead-lettered"
    )
    log_level: str = Field(default="INFO")
    log_format: Literal["json", "text"] = Field(default="json")

    @field_validator("ssrf_allowlist")
    @classmethod
    def _check_allowlist(cls, value: str) -> str:
        parse_allow_rules(value)
        return value

    @field_validator("media_store")
    @classmethod
    def _check_store(cls, value: str) -> str:
        if value:
            from prsnl_common.s3store import parse_store_url

            parse_store_url(value)
        return value

    @field_validator("retry_delays")
    @classmethod
    def _check_delays(cls, value: str) -> str:
        delays = [float(part) for part in _split(value)]
        if not delays or any(d <= 0 for d in delays):
            raise ValueError("retry_delays needs one or more positive numbers of seconds")
        return value

    @cached_property
    def allow_rules(self) -> tuple[AllowRule, ...]:
        """The parsed allow-list, for :func:`prsnl_common.netguard.check_url` and the child."""
        return parse_allow_rules(self.ssrf_allowlist)

    @cached_property
    def retry_delay_list(self) -> tuple[float, ...]:
        return tuple(float(p) for p in _split(self.retry_delays))


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]
