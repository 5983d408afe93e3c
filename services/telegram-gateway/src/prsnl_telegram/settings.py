"""Settings of the Telegram gateway, from ``PRSNL_TELEGRAM_*`` variables."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MB = 1024 * 1024
CLOUD_API_URL = "https://api.telegram.org"
_USER = re.compile(r"^\s*(\d{1,20})\s*=\s*(\S+)\s*$")


def parse_users(value: str) -> dict[int, str]:
    """``"123=prsnl_key, 456=prsnl_other"`` → {123: "prsnl_key", 456: "prsnl_other"}."""
    users: dict[int, str] = {}
    for number, part in enumerate(p for p in value.split(",") if p.strip()):
        match = _USER.match(part)
        if match is None:
            # Never echo the entry: it holds an API key.
            raise ValueError(f"entry {number + 1} is not <telegram user id>=<API key>")
        users[int(match[1])] = match[2]
    return users


class TelegramSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRSNL_TELEGRAM_", extra="ignore", frozen=True)

    bot_token: SecretStr = Field(description="The bot's token from @BotFather (required)")
    users: SecretStr = Field(
        default=SecretStr(""),
        description="Allowed Telegram user ids, each with the API key of its catalog owner: "
        "'123456=prsnl_..., 789=prsnl_...' (keys from prsnl-ingest create-key --owner NAME)",
    )
    gateway_url: str = Field(
        default="http://127.0.0.1:8000", description="Base URL of the PRSNL HTTP API (ingest)"
    )
    api_url: str = Field(
        default=CLOUD_API_URL,
        description="Bot API server; a local Bot API server (telegram-bot-api --local) lifts "
        "the upload limit to 2000 MB and the download limit altogether",
    )
    local_mode: bool = Field(
        default=False, description="The Bot API server at api_url runs with --local"
    )
    mode: Literal["polling", "webhook"] = Field(default="polling")
    webhook_url: str = Field(default="", description="Public HTTPS URL Telegram posts updates to")
    webhook_secret: SecretStr = Field(
        default=SecretStr(""), description="Secret token Telegram sends with each update"
    )
    webhook_host: str = Field(default="127.0.0.1")
    webhook_port: int = Field(default=8443, ge=0, le=65535)
    poll_timeout: int = Field(default=25, ge=0, le=50, description="getUpdates long poll, s")
    leader_retry_seconds: float = Field(
        default=2.0, gt=0, description="How often a stand-by replica tries to become the poller"
    )
    max_links: int = Field(default=10, ge=1, le=100, description="Links captured per message")
    edit_interval_seconds: float = Field(
        default=3.0, ge=0, description="Least time between progress edits of one message"
    )
    upload_limit_mb: int | None = Field(
        default=None, ge=1, description="Largest video sent back (default 50, 2000 local)"
    )
    download_limit_mb: int | None = Field(
        default=None, ge=1, description="Largest file taken from a user (default 20, none local)"
    )
    metrics_port: int = Field(default=9105, ge=0, le=65535)

    @field_validator("users")
    @classmethod
    def _check_users(cls, value: SecretStr) -> SecretStr:
        parse_users(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> TelegramSettings:
        if self.mode == "webhook" and not self.webhook_secret.get_secret_value():
            raise ValueError("webhook mode needs PRSNL_TELEGRAM_WEBHOOK_SECRET")
        return self

    @cached_property
    def allowed_users(self) -> dict[int, str]:
        return parse_users(self.users.get_secret_value())

    @property
    def upload_limit_bytes(self) -> int:
        return (self.upload_limit_mb or (2000 if self.local_mode else 50)) * MB

    @property
    def download_limit_bytes(self) -> int | None:
        if self.download_limit_mb is not None:
            return self.download_limit_mb * MB
        return None if self.local_mode else 20 * MB

    @property
    def bot_api_base(self) -> str:
        return f"{self.api_url.rstrip('/')}/bot"

    @property
    def bot_file_base(self) -> str:
        return f"{self.api_url.rstrip('/')}/file/bot"
