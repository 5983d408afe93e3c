"""Unit tests for the transcoder's pure planning: ffprobe parsing, plans, thumbnail time."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from prsnl_common.errors import PermanentError
from prsnl_transcoder.planning import (
    MIB,
    PROFILES,
    Limits,
    ProbeResult,
    h264_level,
    parse_profile,
    plan_output,
    thumbnail_time,
)

# Trimmed but genuine `ffprobe -show_format -show_streams -print_format json` output
# (ffprobe 5.1); fields the planner ignores are left out except a few for realism.

DISPOSITION = {"default": 1, "attached_pic": 0, "timed_thumbnails": 0}

H264_AAC_MP4: dict[str, Any] = {
    "streams": [
        {
            "index": 0,
            "codec_name": "h264",
            "profile": "High",
            "codec_type": "video",
            "codec_tag_string": "avc1",
            "width": 1280,
            "height": 720,
            "coded_width": 1280,
            "coded_height": 720,
            "sample_aspect_ratio": "1:1",
            "pix_fmt": "yuv420p",
            "level": 31,
            "r_frame_rate": "30000/1001",
            "avg_frame_rate": "30000/1001",
            "time_base": "1/30000",
            "duration": "12.012000",
            "bit_rate": "2400000",
            "nb_frames": "360",
            "disposition": DISPOSITION,
            "tags": {"language": "und", "handler_name": "VideoHandler"},
        },
        {
            "index": 1,
            "codec_name": "aac",
            "profile": "LC",
            "codec_type": "audio",
            "sample_rate": "44100",
            "channels": 2,
            "channel_layout": "stereo",
            "r_frame_rate": "0/0",
            "avg_frame_rate": "0/0",
            "duration": "12.028000",
            "bit_rate": "128000",
            "disposition": DISPOSITION,
            "tags": {"language": "und", "handler_name": "SoundHandler"},
        },
    ],
    "format": {
        "filename": "file:/store/originals/abc/original.mp4",
        "nb_streams": 2,
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "format_long_name": "QuickTime / MOV",
        "start_time": "0.000000",
        "duration": "12.028000",
        "size": "3801234",
        "bit_rate": "2528262",
        "probe_score": 100,
        "tags": {
            "major_brand": "isom",
            "minor_version": "512",
            "compatible_brands": "isomiso2avc1mp41",
            "encoder": "Lavf59.27.100",
        },
    },
}

VP9_OPUS_WEBM: dict[str, Any] = {
    "streams": [
        {
            "index": 0,
            "codec_name": "vp9",
            "profile": "Profile 0",
            "codec_type": "video",
            "width": 640,
            "height": 360,
            "coded_width": 640,
            "coded_height": 360,
            "pix_fmt": "yuv420p",
            "level": -99,
            "r_frame_rate": "30/1",
            "avg_frame_rate": "30/1",
            "time_base": "1/1000",
            "start_time": "0.007000",
            "disposition": {**DISPOSITION, "default": 0},
            "tags": {"ENCODER": "Lavc59.37.100 libvpx-vp9", "DURATION": "00:00:03.007000000"},
        },
        {
            "index": 1,
            "codec_name": "opus",
            "codec_type": "audio",
            "sample_fmt": "fltp",
            "sample_rate": "48000",
            "channels": 2,
            "r_frame_rate": "0/0",
            "avg_frame_rate": "0/0",
            "time_base": "1/1000",
            "start_time": "-0.007000",
            "disposition": {**DISPOSITION, "default": 0},
            "tags": {"ENCODER": "Lavc59.37.100 libopus", "DURATION": "00:00:03.008000000"},
        },
    ],
    "format": {
        "filename": "file:/store/originals/def/original.webm",
        "nb_streams": 2,
        "format_name": "matroska,webm",
        "format_long_name": "Matroska / WebM",
        "start_time": "-0.007000",
        "duration": "3.008000",
        "size": "214884",
        "bit_rate": "571500",
        "probe_score": 100,
        "tags": {"ENCODER": "Lavf59.27.100"},
    },
}

# 4K HDR-ish HEVC in Matroska: 10-bit, avg_frame_rate unknown, no format duration.
HEVC_MKV: dict[str, Any] = {
    "streams": [
        {
            "index": 0,
            "codec_name": "hevc",
            "profile": "Main 10",
            "codec_type": "video",
            "width": 3840,
            "height": 2160,
            "coded_width": 3840,
            "coded_height": 2160,
            "pix_fmt": "yuv420p10le",
            "color_transfer": "smpte2084",
            "r_frame_rate": "24000/1001",
            "avg_frame_rate": "0/0",
            "disposition": DISPOSITION,
            "tags": {"DURATION": "00:01:00.060000000"},
        },
        {
            "index": 1,
            "codec_name": "eac3",
            "codec_type": "audio",
            "sample_rate": "48000",
            "channels": 6,
            "disposition": DISPOSITION,
        },
        {
            "index": 2,
            "codec_name": "subrip",
            "codec_type": "subtitle",
            "disposition": {**DISPOSITION, "default": 0},
        },
    ],
    "format": {
        "filename": "file:/store/originals/ghi/original.mkv",
        "nb_streams": 3,
        "format_name": "matroska,webm",
        "start_time": "0.000000",
        "bit_rate": "N/A",
        "probe_score": 100,
    },
}

# Portrait phone clip: 1920x1080 coded, Display Matrix says turn by -90 (counter-clockwise).
ROTATED_PHONE_MOV: dict[str, Any] = {
    "streams": [
        {
            "index": 0,
            "codec_name": "h264",
            "profile": "High",
            "codec_type": "video",
            "width": 1920,
            "height": 1080,
            "coded_width": 1920,
            "coded_height": 1080,
            "pix_fmt": "yuv420p",
            "r_frame_rate": "30/1",
            "avg_frame_rate": "5997/200",
            "duration": "8.341667",
            "bit_rate": "15763218",
            "disposition": DISPOSITION,
            "tags": {"creation_time": "2024-05-01T10:00:00.000000Z", "language": "und"},
            "side_data_list": [
                {
                    "side_data_type": "Display Matrix",
                    "displaymatrix": (
                        "\n00000000:            0       65536           0\n00000001:      -65536"
                        "           0           0\n00000002:            0           0"
                        "  1073741824\n"
                    ),
                    "rotation": -90,
                }
            ],
        },
        {
            "index": 1,
            "codec_name": "aac",
            "codec_type": "audio",
            "sample_rate": "44100",
            "channels": 1,
            "disposition": DISPOSITION,
        },
    ],
    "format": {
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "duration": "8.341667",
        "bit_rate": "15870000",
        "tags": {"major_brand": "qt  ", "minor_version": "0", "compatible_brands": "qt  "},
    },
}

# Podcast-style M4A: AAC plus cover art, which ffprobe lists as an mjpeg "video" stream.
M4A_WITH_COVER: dict[str, Any] = {
    "streams": [
        {
            "index": 0,
            "codec_name": "aac",
            "codec_type": "audio",
            "sample_rate": "44100",
            "channels": 2,
            "duration": "1800.5",
            "disposition": DISPOSITION,
        },
        {
            "index": 1,
            "codec_name": "mjpeg",
            "codec_type": "video",
            "width": 600,
            "height": 600,
            "pix_fmt": "yuvj444p",
            "r_frame_rate": "90000/1",
            "avg_frame_rate": "0/0",
            "disposition": {**DISPOSITION, "default": 0, "attached_pic": 1},
            "tags": {"comment": "Cover (front)"},
        },
    ],
    "format": {
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "duration": "1800.500000",
        "bit_rate": "130000",
        "tags": {"major_brand": "M4A "},
    },
}

NO_STREAMS: dict[str, Any] = {
    "format": {"filename": "file:/store/x.bin", "nb_streams": 0, "format_name": "mp3"}
}


def parse(data: dict[str, Any], size: int = 1_000_000) -> ProbeResult:
    return ProbeResult.from_ffprobe(data, size)


def web_mp4(**changes: Any) -> ProbeResult:
    """A web-playable 720p H.264/AAC MP4, with fields overridden."""
    return replace(parse(H264_AAC_MP4, size=3_801_234), **changes)


# --- ProbeResult.from_ffprobe ------------------------------------------------------


def test_parses_h264_aac_mp4() -> None:
    probe = parse(H264_AAC_MP4, size=3_801_234)
    assert probe.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert probe.is_mp4_family
    assert probe.major_brand == "isom"
    assert (probe.video_codec, probe.audio_codec) == ("h264", "aac")
    assert (probe.width, probe.height) == (1280, 720)
    assert (probe.coded_width, probe.coded_height) == (1280, 720)
    assert probe.rotation == 0
    assert probe.fps == pytest.approx(29.97, abs=0.01)
    assert probe.duration == pytest.approx(12.028)
    assert probe.bitrate == 2_528_262
    assert probe.size == 3_801_234
    assert probe.pix_fmt == "yuv420p"
    assert (probe.video_index, probe.audio_index) == (0, 1)
    assert probe.has_video and probe.has_audio


def test_parses_vp9_opus_webm() -> None:
    probe = parse(VP9_OPUS_WEBM)
    assert probe.container == "matroska,webm"
    assert not probe.is_mp4_family
    assert probe.major_brand is None
    assert (probe.video_codec, probe.audio_codec) == ("vp9", "opus")
    assert (probe.width, probe.height) == (640, 360)
    assert probe.fps == 30.0
    assert probe.duration == pytest.approx(3.008)
    assert probe.bitrate == 571_500


def test_parses_hevc_mkv_with_missing_fields() -> None:
    probe = parse(HEVC_MKV)
    assert (probe.video_codec, probe.audio_codec) == ("hevc", "eac3")
    assert probe.pix_fmt == "yuv420p10le"
    assert (probe.width, probe.height) == (3840, 2160)
    # avg_frame_rate "0/0" falls back to r_frame_rate.
    assert probe.fps == pytest.approx(23.976, abs=0.001)
    # Matroska keeps stream durations in tags only; the format has none here.
    assert probe.duration is None
    assert probe.bitrate is None  # "N/A"
    assert probe.audio_index == 1


def test_parses_rotated_phone_clip_as_displayed() -> None:
    probe = parse(ROTATED_PHONE_MOV)
    # ffprobe's -90 (counter-clockwise) is the legacy rotate=90 (clockwise).
    assert probe.rotation == 90
    assert (probe.width, probe.height) == (1080, 1920)
    assert (probe.coded_width, probe.coded_height) == (1920, 1080)
    assert probe.fps == pytest.approx(29.985)
    assert probe.major_brand == "qt  "
    # No audio duration needed: the format duration wins.
    assert probe.duration == pytest.approx(8.341667)


@pytest.mark.parametrize(
    ("side_rotation", "tag", "expected", "swapped"),
    [
        (90, None, 270, True),
        (180, None, 180, False),
        (-180, None, 180, False),
        (-270, None, 270, True),
        (None, "90", 90, True),  # ffprobe < 5 reported only the tag
        (None, "270", 270, True),
        (None, "-90", 270, True),
        (None, "garbage", 0, False),
        (-90, "180", 90, True),  # the display matrix wins over a stale tag
        (-88.5, None, 90, True),  # rounded to a quarter turn
    ],
)
def test_rotation_normalised(
    side_rotation: float | None, tag: str | None, expected: int, swapped: bool
) -> None:
    stream: dict[str, Any] = {
        "index": 0,
        "codec_type": "video",
        "codec_name": "h264",
        "width": 640,
        "height": 360,
    }
    if side_rotation is not None:
        stream["side_data_list"] = [
            {"side_data_type": "CPB properties"},
            {"side_data_type": "Display Matrix", "rotation": side_rotation},
        ]
    if tag is not None:
        stream["tags"] = {"rotate": tag}
    probe = parse({"streams": [stream], "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}})
    assert probe.rotation == expected
    assert (probe.width, probe.height) == ((360, 640) if swapped else (640, 360))


def test_cover_art_is_not_the_video_stream() -> None:
    probe = parse(M4A_WITH_COVER)
    assert not probe.has_video
    assert probe.video_codec is None
    assert probe.width is None and probe.fps is None
    assert probe.has_audio and probe.audio_codec == "aac"
    assert probe.duration == pytest.approx(1800.5)


def test_cover_art_before_the_real_video_is_skipped() -> None:
    cover = {**M4A_WITH_COVER["streams"][1], "index": 0, "codec_name": "png"}
    video = {**H264_AAC_MP4["streams"][0], "index": 1}
    audio = {**H264_AAC_MP4["streams"][1], "index": 2}
    probe = parse({"streams": [cover, video, audio], "format": H264_AAC_MP4["format"]})
    assert (probe.video_codec, probe.video_index, probe.audio_index) == ("h264", 1, 2)
    assert (probe.width, probe.height) == (1280, 720)


def test_no_streams() -> None:
    probe = parse(NO_STREAMS, size=42)
    assert not probe.has_video and not probe.has_audio
    assert probe.container == "mp3"
    assert probe.size == 42


def test_empty_document_does_not_raise() -> None:
    probe = parse({})
    assert probe.container == ""
    assert probe.duration is None and probe.bitrate is None
    assert not probe.has_video and not probe.has_audio


def test_malformed_values_become_none() -> None:
    stream = {
        "index": 0,
        "codec_type": "video",
        "codec_name": "h264",
        "width": "N/A",
        "height": 0,
        "avg_frame_rate": "0/0",
        "r_frame_rate": "abc",
        "duration": "nan",
    }
    probe = parse({"streams": [stream], "format": {"duration": "N/A", "bit_rate": "x"}})
    assert probe.width is None and probe.height is None
    assert probe.fps is None and probe.duration is None and probe.bitrate is None


def test_stream_duration_used_when_format_has_none() -> None:
    data = {
        "streams": [H264_AAC_MP4["streams"][0]],
        "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"},
    }
    assert parse(data).duration == pytest.approx(12.012)


# --- profiles and limits -------------------------------------------------------------


def test_profiles() -> None:
    assert set(PROFILES) == {"480p", "720p", "1080p", "audio"}
    assert [PROFILES[n].max_height for n in ("480p", "720p", "1080p")] == [480, 720, 1080]
    assert PROFILES["audio"].audio_only and PROFILES["audio"].max_height is None
    assert parse_profile("720p") is PROFILES["720p"]
    assert parse_profile(" Audio ") is PROFILES["audio"]
    with pytest.raises(KeyError):
        parse_profile("4k")


def test_limits_defaults() -> None:
    limits = Limits()
    assert limits.max_height == 1080
    assert limits.compress_threshold_bytes == 500 * MIB
    assert (limits.crf, limits.compress_crf) == (23, 28)
    assert (limits.preset, limits.audio_bitrate, limits.max_fps) == ("veryfast", "128k", 60)


# --- plan_output -------------------------------------------------------------------


def test_web_playable_without_faststart_is_remuxed() -> None:
    plan = plan_output(web_mp4(), Limits())
    assert plan.action == "remuxed"
    assert plan.target_height is None
    assert not plan.audio_only
    assert plan.copy_audio and plan.has_audio
    assert plan.crf == 23
    assert plan.reasons == ("web-playable streams; moov moved before mdat",)


def test_web_playable_with_faststart_is_copied() -> None:
    plan = plan_output(web_mp4(), Limits(), faststart=True)
    assert plan.action == "copied"
    assert plan.reasons == ("already web-playable with moov before mdat",)


def test_quicktime_brand_is_remuxed_even_with_faststart() -> None:
    plan = plan_output(web_mp4(major_brand="qt  "), Limits(), faststart=True)
    assert plan.action == "remuxed"
    assert "QuickTime" in plan.reasons[0]


def test_missing_brand_is_remuxed() -> None:
    assert plan_output(web_mp4(major_brand=None), Limits(), faststart=True).action == "remuxed"


def test_video_without_audio_is_remuxed() -> None:
    plan = plan_output(web_mp4(audio_codec=None, audio_index=None), Limits())
    assert plan.action == "remuxed"
    assert not plan.has_audio and not plan.copy_audio


def test_yuvj420p_is_web_playable() -> None:
    assert plan_output(web_mp4(pix_fmt="yuvj420p"), Limits()).action == "remuxed"


def test_vp9_opus_webm_is_transcoded() -> None:
    plan = plan_output(parse(VP9_OPUS_WEBM), Limits())
    assert plan.action == "transcoded"
    assert plan.reasons == (
        "container matroska,webm is not mp4/mov",
        "video codec vp9 is not h264",
        "audio codec opus is not aac",
    )
    assert plan.target_height == 360  # never upscaled to the cap
    assert plan.crf == 23
    assert not plan.copy_audio and plan.has_audio
    assert plan.max_fps is None
    assert plan.h264_level == "3.0"
    assert (plan.preset, plan.audio_bitrate) == ("veryfast", "128k")


def test_h264_aac_in_matroska_is_remuxed_not_reencoded() -> None:
    plan = plan_output(web_mp4(container="matroska,webm", major_brand=None), Limits())
    assert plan.action == "remuxed"
    assert plan.reasons == ("web-playable streams in matroska,webm, rewritten as MP4",)
    assert plan.copy_audio


def test_matroska_with_another_reason_is_transcoded_and_names_the_container() -> None:
    plan = plan_output(
        web_mp4(container="matroska,webm", major_brand=None, height=1440, width=2560), Limits()
    )
    assert plan.action == "transcoded"
    assert plan.reasons[0] == "container matroska,webm is not mp4/mov"
    assert "height 1440 over cap 1080" in plan.reasons


def test_hevc_4k_is_transcoded_and_capped() -> None:
    plan = plan_output(parse(HEVC_MKV), Limits())
    assert plan.action == "transcoded"
    assert "video codec hevc is not h264" in plan.reasons
    assert "audio codec eac3 is not aac" in plan.reasons
    assert "height 2160 over cap 1080" in plan.reasons
    assert plan.target_height == 1080
    assert plan.h264_level == "4.0"  # 1920x1080 at 23.976
    assert not plan.copy_audio


def test_ten_bit_h264_is_transcoded() -> None:
    plan = plan_output(web_mp4(pix_fmt="yuv420p10le"), Limits())
    assert plan.action == "transcoded"
    assert plan.reasons == ("pixel format yuv420p10le is not yuv420p",)
    assert plan.copy_audio


def test_unknown_codecs_are_named() -> None:
    plan = plan_output(web_mp4(video_codec=None, audio_codec=None), Limits())
    assert "video codec unknown is not h264" in plan.reasons
    assert "audio codec unknown is not aac" in plan.reasons


def test_height_over_cap() -> None:
    plan = plan_output(web_mp4(width=2560, height=1440), Limits())
    assert plan.action == "transcoded"
    assert plan.reasons == ("height 1440 over cap 1080",)
    assert plan.target_height == 1080
    assert plan.copy_audio
    assert plan.h264_level == "4.0"


def test_operator_height_cap() -> None:
    plan = plan_output(web_mp4(), Limits(max_height=480))
    assert plan.reasons == ("height 720 over cap 480",)
    assert plan.target_height == 480


def test_odd_height_is_made_even() -> None:
    plan = plan_output(web_mp4(width=720, height=1351, rotation=0), Limits(max_height=2000))
    # Web-playable as is (an odd height decodes fine), so nothing to fix...
    assert plan.action == "remuxed"
    # ...but when it is transcoded the target is even.
    plan = plan_output(web_mp4(width=720, height=1351, video_codec="vp9"), Limits(max_height=2000))
    assert plan.target_height == 1350


def test_over_compression_threshold_uses_compress_crf() -> None:
    plan = plan_output(web_mp4(size=620 * MIB), Limits())
    assert plan.action == "transcoded"
    assert plan.reasons == ("size 620 MiB over compression threshold 500 MiB",)
    assert plan.crf == 28
    assert plan.target_height == 720
    assert plan.copy_audio


def test_exactly_at_threshold_is_not_compressed() -> None:
    assert plan_output(web_mp4(size=500 * MIB), Limits()).action == "remuxed"


def test_rotation_must_be_applied() -> None:
    plan = plan_output(parse(ROTATED_PHONE_MOV), Limits())
    assert plan.action == "transcoded"
    assert plan.reasons == ("height 1920 over cap 1080", "rotation 90 must be applied")
    # The cap applies to the displayed (portrait) height: 608x1080 out.
    assert plan.target_height == 1080
    assert plan.copy_audio
    assert plan.h264_level == "3.1"  # 608x1080 at 30


def test_rotation_alone() -> None:
    plan = plan_output(web_mp4(rotation=180), Limits())
    assert plan.reasons == ("rotation 180 must be applied",)
    assert plan.target_height == 720


def test_frame_rate_over_cap() -> None:
    plan = plan_output(web_mp4(fps=119.88), Limits())
    assert plan.action == "transcoded"
    assert plan.reasons == ("frame rate 120 over cap 60",)
    assert plan.max_fps == 60
    assert plan.h264_level == "3.2"  # 1280x720 at the capped 60


@pytest.mark.parametrize("fps", [60.0, 59.94, 25.0, None])
def test_frame_rate_within_cap(fps: float | None) -> None:
    assert plan_output(web_mp4(fps=fps), Limits()).action == "remuxed"


def test_profile_lowers_the_cap() -> None:
    plan = plan_output(web_mp4(), Limits(), PROFILES["480p"], faststart=True)
    assert plan.action == "transcoded"
    assert plan.reasons == ("height 720 over cap 480",)
    assert plan.target_height == 480
    assert plan.copy_audio


def test_profile_never_upscales() -> None:
    plan = plan_output(web_mp4(), Limits(), PROFILES["1080p"], faststart=True)
    assert plan.action == "copied"
    plan = plan_output(parse(VP9_OPUS_WEBM), Limits(), PROFILES["1080p"])
    assert plan.target_height == 360


def test_profile_height_replaces_operator_cap() -> None:
    # As specified: a profile's height is the cap when given, not min(profile, limit).
    plan = plan_output(web_mp4(width=1920, height=1080), Limits(max_height=720), PROFILES["1080p"])
    assert plan.action == "remuxed"


def test_everything_wrong_at_once() -> None:
    probe = replace(parse(HEVC_MKV), rotation=90, fps=120.0, size=900 * MIB)
    plan = plan_output(probe, Limits(), PROFILES["720p"])
    assert plan.reasons == (
        "container matroska,webm is not mp4/mov",
        "video codec hevc is not h264",
        "audio codec eac3 is not aac",
        "height 2160 over cap 720",
        "size 900 MiB over compression threshold 500 MiB",
        "rotation 90 must be applied",
        "frame rate 120 over cap 60",
    )
    assert (plan.target_height, plan.crf, plan.max_fps) == (720, 28, 60)


def test_unknown_height_keeps_size() -> None:
    plan = plan_output(web_mp4(width=None, height=None, video_codec="vp9"), Limits())
    assert plan.action == "transcoded"
    assert plan.target_height is None
    assert plan.h264_level is None


def test_no_video_stream_is_permanent() -> None:
    with pytest.raises(PermanentError) as info:
        plan_output(parse(M4A_WITH_COVER), Limits())
    assert info.value.code == "no_video_stream"
    assert "aac" in info.value.message
    with pytest.raises(PermanentError) as info:
        plan_output(parse(M4A_WITH_COVER), Limits(), PROFILES["720p"])
    assert info.value.code == "no_video_stream"


def test_audio_profile_on_audio_file_copies_aac() -> None:
    plan = plan_output(parse(M4A_WITH_COVER), Limits(), PROFILES["audio"], faststart=True)
    assert plan.action == "transcoded"
    assert plan.audio_only and plan.has_audio and plan.copy_audio
    assert plan.target_height is None
    assert plan.reasons == (
        "profile audio asks for audio only",
        "audio is already aac and is copied",
    )


def test_audio_profile_on_video_reencodes_opus() -> None:
    plan = plan_output(parse(VP9_OPUS_WEBM), Limits(audio_bitrate="96k"), PROFILES["audio"])
    assert plan.action == "transcoded"
    assert plan.audio_only and not plan.copy_audio
    assert plan.audio_bitrate == "96k"
    assert plan.reasons == ("profile audio asks for audio only",)


def test_audio_profile_without_audio_is_invalid() -> None:
    with pytest.raises(PermanentError) as info:
        plan_output(web_mp4(audio_codec=None, audio_index=None), Limits(), PROFILES["audio"])
    assert info.value.code == "invalid_media"


def test_plan_carries_limits() -> None:
    limits = Limits(crf=20, compress_crf=30, preset="medium", audio_bitrate="160k")
    plan = plan_output(parse(VP9_OPUS_WEBM), limits)
    assert (plan.crf, plan.preset, plan.audio_bitrate) == (20, "medium", "160k")
    plan = plan_output(parse(VP9_OPUS_WEBM, size=501 * MIB), limits)
    assert plan.crf == 30


# --- H.264 level ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "fps", "level"),
    [
        (320, 240, 30, "3.0"),
        (640, 360, 30, "3.0"),
        (854, 480, 30, "3.1"),
        (1280, 720, 30, "3.1"),
        (1280, 720, 60, "3.2"),
        (1920, 1080, 30, "4.0"),
        (1920, 1080, 60, "4.2"),
        (2560, 1440, 30, "5.0"),
        (3840, 2160, 30, "5.1"),
        (3840, 2160, 60, "5.2"),
        (8192, 4320, 30, "6.0"),
        (16384, 16384, 120, "6.2"),  # beyond every level: the highest
    ],
)
def test_h264_level(width: int, height: int, fps: float, level: str) -> None:
    assert h264_level(width, height, fps) == level


def test_h264_level_rejects_extreme_aspect() -> None:
    # 8192 wide is 512 macroblocks: over sqrt(8 * 8192) = 256 for level 4.x.
    assert h264_level(8192, 32, 30) == "5.1"


# --- thumbnail_time ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (None, 0.0),
        (0.0, 0.0),
        (0.1, 0.0),
        (math.nan, 0.0),
        (math.inf, 0.0),
        (-3.0, 0.0),
        (0.5, 0.125),
        (2.0, 0.5),
        (4.0, 1.0),
        (3600.0, 1.0),
    ],
)
def test_thumbnail_time(duration: float | None, expected: float) -> None:
    assert thumbnail_time(duration) == pytest.approx(expected)
    if duration is not None and math.isfinite(duration) and duration > 0:
        assert thumbnail_time(duration) < duration
