"""The README documents every error code and every setting the services read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from prsnl_common.errors import ERROR_CODES
from prsnl_common.settings import CommonSettings
from prsnl_downloader.settings import DownloaderSettings
from prsnl_ingest.settings import IngestSettings
from prsnl_janitor.settings import JanitorSettings
from prsnl_telegram.settings import TelegramSettings
from prsnl_transcoder.settings import TranscoderSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_opens_with_the_two_commands() -> None:
    lines = [line.strip() for line in README.splitlines() if line.strip()]
    assert lines[1].startswith("make run")
    assert lines[2].startswith("make test")


@pytest.mark.parametrize("code", sorted(ERROR_CODES))
def test_every_error_code_is_documented(code: str) -> None:
    assert f"| `{code}` |" in README


@pytest.mark.parametrize(
    "settings",
    [
        CommonSettings,
        IngestSettings,
        DownloaderSettings,
        TranscoderSettings,
        JanitorSettings,
        TelegramSettings,
    ],
)
def test_every_setting_is_documented(settings: type[BaseSettings]) -> None:
    prefix = settings.model_config.get("env_prefix", "")
    missing = [
        f"{prefix}{name}".upper()
        for name in settings.model_fields
        if f"`{prefix}{name}".upper() not in README.upper()
    ]
    assert missing == []
