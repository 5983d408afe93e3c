"""The child's rules for yt-dlp: native downloaders only, local-file inputs for its ffmpeg."""

from __future__ import annotations

from typing import Any

import pytest

from prsnl_common.ffmpeg_inputs import input_arguments
from prsnl_downloader.classify import FailureFacts, classify_failure
from prsnl_downloader.ytdlp_guard import (
    EXTERNAL_PROGRAM_REFUSED,
    ExternalProgramRefused,
    _native_only,
    local_inputs_only,
)

LOCAL = input_arguments()


def test_every_ffmpeg_input_gets_the_local_files_only_options() -> None:
    command = ["/usr/bin/ffmpeg", "-y", "-i", "file:a.mp4", "-i", "file:b.m4a", "-c", "copy", "o"]
    assert local_inputs_only(command) == [
        "/usr/bin/ffmpeg", "-y", *LOCAL, "-i", "file:a.mp4", *LOCAL, "-i", "file:b.m4a",
        "-c", "copy", "o",
    ]  # fmt: skip
    assert "-protocol_whitelist" in LOCAL and "file" in LOCAL


def test_ffprobe_gets_the_options_before_its_input() -> None:
    assert local_inputs_only(["ffprobe", "-show_streams", "file:x.ts"]) == [
        "ffprobe", *LOCAL, "-show_streams", "file:x.ts",
    ]  # fmt: skip


def test_other_programs_are_refused() -> None:
    with pytest.raises(ExternalProgramRefused):
        local_inputs_only(["AtomicParsley", "x.mp4"])


class HttpFD:
    """Stands for yt-dlp's native HTTP downloader (only the name is judged)."""


class FFmpegFD:
    """Stands for yt-dlp's ffmpeg downloader."""


def selection_returning(downloader: type | None) -> Any:
    return _native_only(lambda *args, **kwargs: downloader)


def test_a_native_or_no_downloader_is_let_through() -> None:
    assert selection_returning(HttpFD)({}) is HttpFD
    assert selection_returning(None)({}) is None


def test_an_external_downloader_is_refused_at_selection() -> None:
    with pytest.raises(ExternalProgramRefused, match="FFmpegFD"):
        selection_returning(FFmpegFD)({})


def test_the_refusal_is_a_permanent_coded_error_even_when_wrapped() -> None:
    facts = FailureFacts(
        messages=("ERROR: yt-dlp selected FFmpegFD",),
        type_names=("DownloadError", "ExternalProgramRefused"),
    )
    error = classify_failure(facts)
    assert error.code == EXTERNAL_PROGRAM_REFUSED
    assert not error.retryable
