"""yt-dlp options of a job: format choice per height and audio-only, safety switches, platforms."""

from __future__ import annotations

from pathlib import Path

import pytest

from prsnl_downloader.protocol import DownloadRequest
from prsnl_downloader.ytdlp_options import (
    PLATFORM_OPTIONS,
    YTDLP_RETRIES,
    audio_format,
    build_params,
    format_sort,
    video_format,
)

WORKDIR = Path("/srv/media/tmp/download-1")


def request(**changes: object) -> DownloadRequest:
    fields: dict[str, object] = {
        "url": "https://example.com/v.mp4",
        "workdir": WORKDIR,
        "max_bytes": 2048 * 1024 * 1024,
    }
    fields.update(changes)
    return DownloadRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize("height", [144, 360, 720, 1080, 2160])
def test_video_format_prefers_h264_and_aac_at_the_requested_height(height: int) -> None:
    params = build_params(request(max_height=height))
    alternatives = params["format"].split("/")
    assert alternatives[0] == f"bv*[height<={height}][vcodec^=avc1]+ba[acodec^=mp4a]"
    assert alternatives[1] == f"b[height<={height}][vcodec^=avc1]"
    # Without codec or height information (a direct link) the last choices still download.
    assert alternatives[-2:] == ["bv*+ba", "b"]
    assert all(f"height<={height}]" in a for a in alternatives[:4])
    assert params["format_sort"] == [f"res:{height}", "vcodec:h264", "acodec:aac", "ext:mp4:m4a"]
    assert params["merge_output_format"] == "mp4"


def test_audio_only_selects_audio_and_never_video() -> None:
    params = build_params(request(audio_only=True, max_height=720))
    assert params["format"] == audio_format() == "ba[acodec^=mp4a]/ba/b"
    assert "bv" not in params["format"] and "height" not in params["format"]
    assert "merge_output_format" not in params
    assert params["format_sort"] == format_sort(720, audio_only=True) == ["acodec:aac", "ext:m4a"]


def test_the_format_helpers_agree_with_the_params() -> None:
    assert build_params(request(max_height=480))["format"] == video_format(480)


def test_safety_switches() -> None:
    params = build_params(request())
    assert params["enable_file_urls"] is False
    assert params["noplaylist"] is True
    assert params["playlist_items"] == "1"
    assert params["outtmpl"] == {"default": f"{WORKDIR}/original.%(ext)s"}
    assert "paths" not in params  # the absolute template alone decides (yt-dlp warns otherwise)
    assert params["restrictfilenames"] is True
    assert params["overwrites"] is True
    assert params["continuedl"] is False
    assert params["cachedir"] is False
    assert params["skip_unavailable_fragments"] is False
    assert params["proxy"] == ""  # no proxy from the environment around the address guard
    assert params["external_downloader"] == {"default": "native"}
    # The Python API reads no config files; nothing here may ask it to.
    for key in ("config_locations", "ignoreconfig", "plugin_dirs", "load_info_filename"):
        assert key not in params
    # The byte cap is the child's progress hook, not yt-dlp's per-response max_filesize.
    assert "max_filesize" not in params


def test_quiet_and_small_retries() -> None:
    params = build_params(request(socket_timeout=7.5))
    assert params["quiet"] is True and params["no_warnings"] is True
    assert params["noprogress"] is True
    assert params["socket_timeout"] == 7.5
    assert params["retries"] == params["fragment_retries"] == YTDLP_RETRIES == 2


def test_every_named_platform_has_an_entry() -> None:
    assert set(PLATFORM_OPTIONS) == {"youtube", "instagram", "twitter", "tiktok"}


@pytest.mark.parametrize(
    ("platform", "key", "expected"),
    [
        ("youtube", "extractor_args", {"youtube": {"skip": ["translated_subs"]}}),
        ("instagram", "http_headers", {"Referer": "https://www.instagram.com/"}),
        ("twitter", "http_headers", {"Referer": "https://x.com/"}),
        ("tiktok", "http_headers", {"Referer": "https://www.tiktok.com/"}),
    ],
)
def test_platform_options_reach_the_params(platform: str, key: str, expected: object) -> None:
    assert build_params(request(platform=platform))[key] == expected


@pytest.mark.parametrize("platform", ["direct", "hls", "other"])
def test_other_platforms_get_no_platform_options(platform: str) -> None:
    params = build_params(request(platform=platform))
    assert "extractor_args" not in params
    assert "http_headers" not in params


def test_params_are_copies_the_table_survives_changes() -> None:
    params = build_params(request(platform="youtube"))
    params["extractor_args"]["youtube"]["skip"].append("dash")
    tiktok = build_params(request(platform="tiktok"))
    tiktok["http_headers"]["Referer"] = "https://elsewhere.example/"
    assert PLATFORM_OPTIONS["youtube"].extractor_args == {"youtube": {"skip": ["translated_subs"]}}
    assert PLATFORM_OPTIONS["tiktok"].http_headers == {"Referer": "https://www.tiktok.com/"}


def test_cookie_file_only_when_the_request_has_one() -> None:
    assert "cookiefile" not in build_params(request(platform="youtube"))
    jar = WORKDIR / "cookies.txt"
    assert build_params(request(platform="youtube", cookie_file=jar))["cookiefile"] == str(jar)
