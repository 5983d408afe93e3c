"""Downloader settings: defaults, the MAX_VIDEO_SIZE_MB alias and the consumer-timeout bound."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from prsnl_common.settings import BROKER_CONSUMER_TIMEOUT
from prsnl_downloader.settings import DownloaderSettings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "MAX_VIDEO_SIZE_MB",
        "PRSNL_DOWNLOADER_MAX_VIDEO_SIZE_MB",
        "PRSNL_DOWNLOADER_CONCURRENCY",
        "PRSNL_DOWNLOADER_JOB_TIMEOUT_SECONDS",
        "PRSNL_DOWNLOADER_STALL_SECONDS",
        "PRSNL_DOWNLOADER_PROGRESS_INTERVAL_SECONDS",
        "PRSNL_DOWNLOADER_COOKIES_DIR",
    ):
        monkeypatch.delenv(name, raising=False)


def test_defaults() -> None:
    settings = DownloaderSettings()
    assert settings.concurrency == 2
    assert settings.max_video_size_mb == 2048
    assert settings.max_bytes == 2048 * 1024 * 1024
    assert settings.job_timeout_seconds == 1500
    assert settings.stall_seconds == 120
    assert settings.min_free_disk_mb == 1024
    assert settings.min_free_bytes == 1024 * 1024 * 1024
    assert settings.socket_timeout_seconds == 20
    assert settings.cookies_dir is None
    assert settings.progress_interval_seconds == 1.0
    assert settings.default_max_height == 1080
    assert settings.metrics_port == 9102


def test_environment_with_the_service_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRSNL_DOWNLOADER_CONCURRENCY", "4")
    monkeypatch.setenv("PRSNL_DOWNLOADER_COOKIES_DIR", "/etc/prsnl/cookies")
    settings = DownloaderSettings()
    assert settings.concurrency == 4
    assert settings.cookies_dir == Path("/etc/prsnl/cookies")


def test_plain_max_video_size_mb_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_VIDEO_SIZE_MB", "300")
    assert DownloaderSettings().max_video_size_mb == 300


def test_the_prefixed_size_wins_over_the_plain_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_VIDEO_SIZE_MB", "300")
    monkeypatch.setenv("PRSNL_DOWNLOADER_MAX_VIDEO_SIZE_MB", "500")
    assert DownloaderSettings().max_video_size_mb == 500


def test_fields_can_be_given_by_name() -> None:
    assert DownloaderSettings(max_video_size_mb=1).max_bytes == 1024 * 1024


@pytest.mark.parametrize("timeout", [BROKER_CONSUMER_TIMEOUT, 1800.5, 3600])
def test_a_timeout_at_or_past_the_consumer_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(ValidationError) as failure:
        DownloaderSettings(job_timeout_seconds=timeout)
    message = str(failure.value)
    assert "job_timeout_seconds" in message
    assert "1800" in message and "consumer timeout" in message


def test_a_timeout_just_below_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRSNL_DOWNLOADER_JOB_TIMEOUT_SECONDS", "1799")
    assert DownloaderSettings().job_timeout_seconds == 1799


@pytest.mark.parametrize(
    ("timeout", "acquire"), [(1500, 120.0), (1700, 70.0), (1769, 1.0), (1799, 1.0)]
)
def test_waiting_for_a_process_gets_what_the_consumer_timeout_leaves(
    timeout: float, acquire: float
) -> None:
    settings = DownloaderSettings(job_timeout_seconds=timeout)
    assert settings.acquire_timeout_seconds == acquire


def test_the_stall_window_must_exceed_the_progress_interval() -> None:
    with pytest.raises(ValidationError, match="stall_seconds must be longer"):
        DownloaderSettings(stall_seconds=1, progress_interval_seconds=1)


@pytest.mark.parametrize(
    "changes",
    [
        {"concurrency": 0},
        {"max_video_size_mb": 0},
        {"default_max_height": 100},
        {"metrics_port": -1},
    ],
)
def test_out_of_range_values_are_refused(changes: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        DownloaderSettings(**changes)  # type: ignore[arg-type]


def test_settings_are_frozen() -> None:
    settings = DownloaderSettings()
    with pytest.raises(ValidationError):
        settings.concurrency = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    ("timeout", "wait"), [(1500, 150.0), (1600, 50.0), (1700, 1.0), (1000, 650.0)]
)
def test_waiting_for_disk_gets_what_the_limit_and_the_process_wait_leave(
    timeout: float, wait: float
) -> None:
    # 1800 s consumer timeout - 30 s to store and publish - the job - the process wait.
    assert DownloaderSettings(job_timeout_seconds=timeout).disk_wait_limit_seconds == wait
