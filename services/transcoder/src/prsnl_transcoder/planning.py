"""Pure transcode planning: read ffprobe output and decide copy, remux or transcode."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from prsnl_common.errors import PermanentError

MIB = 1024 * 1024

# Every name the mov demuxer reports; one of them in format_name means MP4/MOV family.
MP4_FAMILY = frozenset({"mov", "mp4", "m4a", "3gp", "3g2", "mj2"})
WEB_PIX_FMTS = frozenset({"yuv420p", "yuvj420p"})

Action = Literal["copied", "remuxed", "transcoded"]


def _int(value: Any) -> int | None:
    """Parse an ffprobe integer field ("1920", 1920, "N/A", missing) leniently."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    """Parse an ffprobe float field, refusing NaN, infinities and negatives."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number < 0:
        return None
    return number


def _rate(value: Any) -> float | None:
    """Parse an ffprobe rational frame rate such as "30000/1001"; "0/0" means unknown."""
    if not isinstance(value, str) or not value:
        return None
    num, sep, den = value.partition("/")
    try:
        rate = float(num) / float(den) if sep else float(num)
    except (ValueError, ZeroDivisionError):
        return None
    if not math.isfinite(rate) or rate <= 0:
        return None
    return rate


def _rotation(stream: Mapping[str, Any]) -> int:
    """Clockwise degrees (0/90/180/270) a player turns the coded picture to show it upright.

    ffprobe reports the Display Matrix angle counter-clockwise (a portrait phone clip
    says -90), while the legacy ``rotate`` tag (ffmpeg < 5) is clockwise (90 for the
    same clip); both are normalised to the clockwise convention of the tag. Angles that
    are not a multiple of 90 are rounded to the nearest quarter turn, which is all a
    transpose can apply.
    """
    degrees: float | None = None
    for side in stream.get("side_data_list") or ():
        if isinstance(side, Mapping) and side.get("side_data_type") == "Display Matrix":
            angle = _signed_float(side.get("rotation"))
            if angle is not None:
                degrees = -angle
                break
    if degrees is None:
        tags = stream.get("tags")
        if isinstance(tags, Mapping):
            degrees = _signed_float(tags.get("rotate"))
    if degrees is None:
        return 0
    return (round(degrees / 90) * 90) % 360


def _signed_float(value: Any) -> float | None:
    """Parse a possibly negative finite float."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _is_picture(stream: Mapping[str, Any]) -> bool:
    """Say whether a video-typed stream is cover art or a thumbnail track, not the movie."""
    disposition = stream.get("disposition")
    if not isinstance(disposition, Mapping):
        return False
    return bool(disposition.get("attached_pic")) or bool(disposition.get("timed_thumbnails"))


@dataclass(frozen=True)
class ProbeResult:
    """What the planner needs to know about a media file, parsed from ffprobe JSON."""

    container: str
    video_codec: str | None
    audio_codec: str | None
    width: int | None
    height: int | None
    coded_width: int | None
    coded_height: int | None
    rotation: int
    fps: float | None
    duration: float | None
    bitrate: int | None
    size: int
    pix_fmt: str | None
    # The ftyp major brand ("isom", "mp42", "qt  ") of MP4/MOV files, None elsewhere.
    major_brand: str | None = None
    # Absolute ffprobe stream indices, so ffmpeg maps exactly the streams planned for.
    video_index: int | None = None
    audio_index: int | None = None

    @property
    def has_video(self) -> bool:
        """True when the file has a real video stream (cover art does not count)."""
        return self.video_index is not None

    @property
    def has_audio(self) -> bool:
        """True when the file has an audio stream."""
        return self.audio_index is not None

    @property
    def is_mp4_family(self) -> bool:
        """True when the container is MP4/MOV (any name the mov demuxer reports)."""
        return not MP4_FAMILY.isdisjoint(self.container.split(","))

    @classmethod
    def from_ffprobe(cls, data: Mapping[str, Any], size: int) -> ProbeResult:
        """Parse ``ffprobe -show_format -show_streams -print_format json`` output.

        Missing or malformed fields become None rather than errors; the first video
        stream that is not an attached picture is the video, the first audio stream the
        audio. ``size`` is the file size on disk in bytes.
        """
        fmt = data.get("format")
        fmt = fmt if isinstance(fmt, Mapping) else {}
        streams = [s for s in data.get("streams") or () if isinstance(s, Mapping)]

        video = next(
            (s for s in streams if s.get("codec_type") == "video" and not _is_picture(s)),
            None,
        )
        audio = next((s for s in streams if s.get("codec_type") == "audio"), None)

        width = height = coded_width = coded_height = None
        rotation = 0
        fps = None
        pix_fmt = None
        if video is not None:
            coded_width = _int(video.get("width")) or None
            coded_height = _int(video.get("height")) or None
            rotation = _rotation(video)
            if rotation in (90, 270):
                width, height = coded_height, coded_width
            else:
                width, height = coded_width, coded_height
            fps = _rate(video.get("avg_frame_rate")) or _rate(video.get("r_frame_rate"))
            pix_fmt = video.get("pix_fmt") or None

        duration = _float(fmt.get("duration"))
        if duration is None:
            for stream in (video, audio):
                if stream is not None and duration is None:
                    duration = _float(stream.get("duration"))

        tags = fmt.get("tags")
        brand = tags.get("major_brand") if isinstance(tags, Mapping) else None

        def codec(stream: Mapping[str, Any] | None) -> str | None:
            name = stream.get("codec_name") if stream is not None else None
            return str(name) if name else None

        return cls(
            container=str(fmt.get("format_name") or ""),
            video_codec=codec(video),
            audio_codec=codec(audio),
            width=width,
            height=height,
            coded_width=coded_width,
            coded_height=coded_height,
            rotation=rotation,
            fps=fps,
            duration=duration,
            bitrate=_int(fmt.get("bit_rate")),
            size=size,
            pix_fmt=str(pix_fmt) if pix_fmt else None,
            major_brand=str(brand) if brand else None,
            video_index=_int(video.get("index")) if video is not None else None,
            audio_index=_int(audio.get("index")) if audio is not None else None,
        )


@dataclass(frozen=True)
class Profile:
    """A named output profile: a height cap, or audio only."""

    name: str
    max_height: int | None
    audio_only: bool = False


PROFILES: Mapping[str, Profile] = MappingProxyType(
    {
        "480p": Profile("480p", 480),
        "720p": Profile("720p", 720),
        "1080p": Profile("1080p", 1080),
        "audio": Profile("audio", None, audio_only=True),
    }
)


def parse_profile(name: str) -> Profile:
    """Look up a profile by name (case and surrounding blanks ignored); KeyError if unknown."""
    return PROFILES[name.strip().lower()]


@dataclass(frozen=True)
class Limits:
    """Operator settings that bound the output."""

    max_height: int = 1080
    compress_threshold_bytes: int = 500 * MIB
    crf: int = 23
    compress_crf: int = 28
    preset: str = "veryfast"
    audio_bitrate: str = "128k"
    max_fps: float = 60


@dataclass(frozen=True)
class Plan:
    """What to do with one file, and why."""

    action: Action
    # Output height when transcoding (even, never above the source); None keeps the source.
    target_height: int | None
    crf: int
    audio_only: bool
    copy_audio: bool
    has_audio: bool
    reasons: tuple[str, ...]
    preset: str = "veryfast"
    audio_bitrate: str = "128k"
    # Frame-rate cap to apply when transcoding; None keeps the source rate.
    max_fps: float | None = None
    # H.264 level for the output size and rate; None lets x264 choose.
    h264_level: str | None = None


# H.264 Table A-1: level, max macroblocks per second, max frame size in macroblocks.
_H264_LEVELS: tuple[tuple[str, int, int], ...] = (
    ("3.0", 40_500, 1_620),
    ("3.1", 108_000, 3_600),
    ("3.2", 216_000, 5_120),
    ("4.0", 245_760, 8_192),
    ("4.2", 522_240, 8_704),
    ("5.0", 589_824, 22_080),
    ("5.1", 983_040, 36_864),
    ("5.2", 2_073_600, 36_864),
    ("6.0", 4_177_920, 139_264),
    ("6.1", 8_355_840, 139_264),
    ("6.2", 16_711_680, 139_264),
)


def h264_level(width: int, height: int, fps: float) -> str:
    """The lowest H.264 level (3.0 and up) whose frame size and macroblock rate fit.

    Levels below 3.0 are skipped on purpose: every decoder handles 3.0, and tiny clips
    gain nothing from a lower declaration. 4.1 is skipped as it differs from 4.0 only in
    bitrate, which CRF encoding does not bound.
    """
    mb_w = math.ceil(width / 16)
    mb_h = math.ceil(height / 16)
    frame_mbs = mb_w * mb_h
    mbps = frame_mbs * fps
    for level, max_mbps, max_fs in _H264_LEVELS:
        # A side may not exceed sqrt(8 * MaxFS) macroblocks (Annex A, A.3.1 item h/i).
        side = math.sqrt(8 * max_fs)
        if frame_mbs <= max_fs and mbps <= max_mbps and mb_w <= side and mb_h <= side:
            return level
    return _H264_LEVELS[-1][0]


def _even_down(value: int) -> int:
    """Round down to an even number (x264 with 4:2:0 needs even sides), at least 2."""
    return max(2, value - value % 2)


def plan_output(
    probe: ProbeResult,
    limits: Limits,
    profile: Profile | None = None,
    *,
    faststart: bool = False,
) -> Plan:
    """Decide how to turn ``probe``'s file into a web-playable MP4.

    ``faststart`` tells that the file's ``moov`` box already precedes ``mdat`` (see
    :func:`prsnl_transcoder.media.has_faststart`); a web-playable file that has it is
    copied byte for byte, one without it is remuxed. Anything else is transcoded.
    Raises ``PermanentError("no_video_stream")`` for a file without video unless the
    profile is audio only.
    """
    if profile is not None and profile.audio_only:
        if not probe.has_audio:
            # The vocabulary has no "no_audio_stream"; the file cannot yield what was asked.
            raise PermanentError(
                "invalid_media", "audio-only output was asked but the file has no audio stream"
            )
        copy = probe.audio_codec == "aac"
        audio_reasons = [f"profile {profile.name} asks for audio only"]
        if copy:
            audio_reasons.append("audio is already aac and is copied")
        return Plan(
            action="transcoded",
            target_height=None,
            crf=limits.crf,
            audio_only=True,
            copy_audio=copy,
            has_audio=True,
            reasons=tuple(audio_reasons),
            preset=limits.preset,
            audio_bitrate=limits.audio_bitrate,
        )

    if not probe.has_video:
        raise PermanentError(
            "no_video_stream",
            "the file has no video stream"
            + (f" (only {probe.audio_codec} audio)" if probe.audio_codec else ""),
        )

    cap = profile.max_height if profile is not None and profile.max_height else limits.max_height
    over_threshold = probe.size > limits.compress_threshold_bytes

    # The container alone never forces a re-encode: H.264/AAC in Matroska or
    # MPEG-TS is rewritten into MP4 by a remux at ~300x realtime.
    reasons: list[str] = []
    if probe.video_codec != "h264":
        reasons.append(f"video codec {probe.video_codec or 'unknown'} is not h264")
    elif probe.pix_fmt not in WEB_PIX_FMTS:
        reasons.append(f"pixel format {probe.pix_fmt or 'unknown'} is not yuv420p")
    if probe.has_audio and probe.audio_codec != "aac":
        reasons.append(f"audio codec {probe.audio_codec or 'unknown'} is not aac")
    if probe.height is not None and probe.height > cap:
        reasons.append(f"height {probe.height} over cap {cap}")
    if over_threshold:
        reasons.append(
            f"size {probe.size / MIB:.0f} MiB over compression threshold "
            f"{limits.compress_threshold_bytes / MIB:.0f} MiB"
        )
    if probe.rotation:
        reasons.append(f"rotation {probe.rotation} must be applied")
    fps_capped = probe.fps is not None and probe.fps > limits.max_fps + 0.01
    if fps_capped:
        reasons.append(f"frame rate {probe.fps:.3g} over cap {limits.max_fps:.3g}")

    if not reasons and not probe.is_mp4_family:
        container = probe.container or "another container"
        return _stream_copy(
            "remuxed", f"web-playable streams in {container}, rewritten as MP4", probe, limits
        )
    if not probe.is_mp4_family:
        reasons.insert(0, f"container {probe.container or 'unknown'} is not mp4/mov")
    if not reasons:
        if faststart and probe.major_brand is not None and probe.major_brand.strip() != "qt":
            return _stream_copy(
                "copied", "already web-playable with moov before mdat", probe, limits
            )
        why = (
            "web-playable streams; QuickTime file rewritten as MP4"
            if faststart
            else "web-playable streams; moov moved before mdat"
        )
        return _stream_copy("remuxed", why, probe, limits)

    target_height = _even_down(min(probe.height, cap)) if probe.height is not None else None
    out_fps = limits.max_fps if fps_capped else (probe.fps or limits.max_fps)
    level = None
    if target_height is not None and probe.width is not None and probe.height:
        out_width = _even_down(round(probe.width * target_height / probe.height))
        level = h264_level(out_width, target_height, out_fps)
    return Plan(
        action="transcoded",
        target_height=target_height,
        crf=limits.compress_crf if over_threshold else limits.crf,
        audio_only=False,
        copy_audio=probe.audio_codec == "aac",
        has_audio=probe.has_audio,
        reasons=tuple(reasons),
        max_fps=limits.max_fps if fps_capped else None,
        h264_level=level,
        preset=limits.preset,
        audio_bitrate=limits.audio_bitrate,
    )


def _stream_copy(action: Action, why: str, probe: ProbeResult, limits: Limits) -> Plan:
    """A plan that keeps the streams as they are (copied byte for byte, or remuxed)."""
    return Plan(
        action=action,
        target_height=None,
        crf=limits.crf,
        audio_only=False,
        copy_audio=probe.has_audio,
        has_audio=probe.has_audio,
        reasons=(why,),
        preset=limits.preset,
        audio_bitrate=limits.audio_bitrate,
    )


def thumbnail_time(duration: float | None) -> float:
    """A seek time (seconds) that lands on a frame even in very short clips.

    A quarter into the clip, at most one second in: far enough to skip a black first
    frame, early enough to exist. Unknown or sub-0.2 s durations seek to 0.
    """
    if duration is None or not math.isfinite(duration) or duration < 0.2:
        return 0.0
    return round(min(1.0, duration * 0.25), 3)
