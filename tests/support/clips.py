"""Test media generation: synthetic clips, HLS streams and broken files made with ffmpeg."""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# Muxer for each supported container suffix; passed with -f so that temp files (whose names
# we control) never rely on ffmpeg guessing the format.
_MUXERS: dict[str, str] = {
    ".mp4": "mp4",
    ".mov": "mov",
    ".mkv": "matroska",
    ".webm": "webm",
}
# Only these containers can carry a display-matrix rotation (ffmpeg 5.1 writes it from the
# "rotate" stream tag in the mov/mp4 muxer) and honour +faststart.
_ISOBMFF_SUFFIXES = frozenset({".mp4", ".mov"})

_VIDEO_ARGS: dict[str, list[str]] = {
    "h264": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    # realtime/cpu-used 8/row-mt is the fastest libvpx-vp9 configuration; constant quality
    # keeps the output small and the encode quick.
    "vp9": [
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        "-row-mt",
        "1",
        "-b:v",
        "0",
        "-crf",
        "40",
        "-pix_fmt",
        "yuv420p",
    ],
    "hevc": [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-pix_fmt",
        "yuv420p",
        "-x265-params",
        "log-level=error",
    ],
}
_ENCODER_NAMES: dict[str, str] = {"h264": "libx264", "vp9": "libvpx-vp9", "hevc": "libx265"}
_AUDIO_ARGS: dict[str, list[str]] = {
    "aac": ["-c:a", "aac", "-b:a", "128k"],
    "opus": ["-c:a", "libopus", "-b:a", "96k"],
}
_ROTATIONS = frozenset({0, 90, 180, 270})

# make_large_h264: noise at qp 2 is essentially incompressible, so every 1280x720 frame costs
# ~1.78 MB (measured with ffmpeg 5.1 / x264); 1.55 MB is the conservative planning figure.
_LARGE_FPS = 30
_LARGE_BYTES_PER_FRAME = 1_550_000


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command, raising RuntimeError with the tail of its stderr when it fails."""
    result = subprocess.run(args, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-20:])
        raise RuntimeError(f"{args[0]} failed with exit code {result.returncode}:\n{tail}")
    return result


def _ffmpeg(*args: str) -> None:
    """Run ffmpeg quietly (errors only, never reading stdin, overwriting outputs)."""
    _run([FFMPEG, "-nostdin", "-hide_banner", "-v", "error", "-y", *args])


def _cached(path: Path) -> bool:
    """True when ``path`` already holds a non-empty file from an earlier call."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


def _temp_sibling(path: Path) -> Path:
    """A unique hidden name next to ``path`` (same filesystem, so os.replace is atomic)."""
    return path.with_name(f".{path.stem}.{uuid.uuid4().hex}.tmp{path.suffix}")


def _discard(path: Path) -> None:
    """Remove a temp file left behind by a failed step."""
    path.unlink(missing_ok=True)


@functools.cache
def _available_encoders() -> frozenset[str]:
    """Names of the encoders this ffmpeg build offers (queried once per process)."""
    out = _run([FFMPEG, "-hide_banner", "-encoders"]).stdout
    names: set[str] = set()
    for line in out.splitlines():
        parts = line.split()
        # Encoder rows look like " V....D libx264   libx264 H.264 ..."; the flags column is six
        # characters of capability letters or dots.
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "VAS":
            names.add(parts[1])
    return frozenset(names)


def _require_encoder(vcodec: str) -> None:
    encoder = _ENCODER_NAMES[vcodec]
    if encoder not in _available_encoders():
        raise RuntimeError(
            f"ffmpeg at {shutil.which(FFMPEG) or FFMPEG!r} has no {encoder} encoder, "
            f"so {vcodec} clips cannot be generated; install an ffmpeg build with {encoder}"
        )


def _check_rotation(path: Path, rotate: int) -> None:
    """Verify that ffprobe reports the display-matrix rotation we asked for."""
    streams = probe(path).get("streams", [])
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    side_data = video.get("side_data_list", []) if video else []
    for entry in side_data:
        if entry.get("side_data_type") == "Display Matrix":
            # ffprobe reports the counter-clockwise angle, so the sign depends on the
            # convention; either direction of the same quarter turn is accepted.
            reported = int(entry.get("rotation", 0))
            if reported % 360 == rotate or (-reported) % 360 == rotate:
                return
            raise RuntimeError(f"{path} has rotation {reported}, expected {rotate}")
    raise RuntimeError(f"{path} has no Display Matrix side data after remuxing with rotate")


def make_clip(
    path: Path,
    *,
    duration: float = 10.0,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    vcodec: str = "h264",
    acodec: str | None = "aac",
    rotate: int = 0,
    faststart: bool = True,
) -> Path:
    """Generate a synthetic test clip (testsrc2 video, 440 Hz sine audio) at ``path``.

    The container follows the suffix (.mp4, .mov, .mkv, .webm). ``vcodec`` is "h264",
    "vp9" or "hevc"; ``acodec`` is "aac", "opus" or None for a silent clip. ``rotate``
    (0/90/180/270, mp4/mov only) stores a display-matrix rotation, so a 1280x720 encode with
    rotate=90 plays as 720x1280 like a phone recording. ``faststart`` moves the moov atom to
    the front (mp4/mov only; ignored for other containers). An existing non-empty file at
    ``path`` is returned as-is.
    """
    path = Path(path)
    if _cached(path):
        return path
    suffix = path.suffix.lower()
    if suffix not in _MUXERS:
        raise ValueError(f"unsupported container {suffix!r}; use one of {sorted(_MUXERS)}")
    if vcodec not in _VIDEO_ARGS:
        raise ValueError(f"unsupported vcodec {vcodec!r}; use one of {sorted(_VIDEO_ARGS)}")
    if acodec is not None and acodec not in _AUDIO_ARGS:
        raise ValueError(f"unsupported acodec {acodec!r}; use one of {sorted(_AUDIO_ARGS)}")
    if suffix == ".webm" and (vcodec != "vp9" or acodec not in (None, "opus")):
        raise ValueError("webm holds only vp9 video with opus audio (or no audio)")
    if rotate not in _ROTATIONS:
        raise ValueError(f"rotate must be one of {sorted(_ROTATIONS)}, not {rotate}")
    if rotate and suffix not in _ISOBMFF_SUFFIXES:
        raise ValueError("rotate needs an .mp4 or .mov path (display matrix)")
    if duration <= 0 or fps <= 0:
        raise ValueError("duration and fps must be positive")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        # yuv420p subsamples chroma by two in both directions, so odd sizes cannot be encoded.
        raise ValueError(f"width and height must be positive even numbers, got {width}x{height}")
    if vcodec == "hevc":
        _require_encoder(vcodec)

    path.parent.mkdir(parents=True, exist_ok=True)
    muxer = _MUXERS[suffix]
    args = [
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size={width}x{height}:rate={fps}:duration={duration}",
    ]
    if acodec is not None:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={duration}"]
    args += ["-t", str(duration), *_VIDEO_ARGS[vcodec]]
    if vcodec == "hevc" and suffix in _ISOBMFF_SUFFIXES:
        # hvc1 is the sample entry Apple players require for HEVC in MP4/MOV.
        args += ["-tag:v", "hvc1"]
    args += _AUDIO_ARGS[acodec] if acodec is not None else ["-an"]
    movflags = ["-movflags", "+faststart"] if faststart and suffix in _ISOBMFF_SUFFIXES else []

    tmp = _temp_sibling(path)
    try:
        if rotate:
            # ffmpeg 5.1 drops the rotate tag when it encodes, but the mov muxer turns it into a
            # display matrix on a stream copy; so encode first, then remux with the tag.
            encoded = _temp_sibling(path)
            try:
                _ffmpeg(*args, "-f", muxer, str(encoded))
                _ffmpeg(
                    "-i",
                    str(encoded),
                    "-map",
                    "0",
                    "-c",
                    "copy",
                    "-metadata:s:v:0",
                    f"rotate={rotate}",
                    *movflags,
                    "-f",
                    muxer,
                    str(tmp),
                )
            finally:
                _discard(encoded)
            _check_rotation(tmp, rotate)
        else:
            _ffmpeg(*args, *movflags, "-f", muxer, str(tmp))
        os.replace(tmp, path)
    finally:
        _discard(tmp)
    return path


def make_large_h264(path: Path, *, min_bytes: int = 105 * 1024 * 1024) -> Path:
    """Generate an H.264/AAC faststart MP4 of at least ``min_bytes`` bytes, quickly.

    Temporal+uniform noise over testsrc2 defeats compression, so x264 ultrafast at qp 2
    produces ~1.8 MB per 720p frame and the default (~128 MB, 2.4 s) takes about a second or
    two. The duration is derived from ``min_bytes``; the size is checked after writing and
    RuntimeError is raised if it falls short. An existing non-empty file at ``path`` is
    returned as-is.
    """
    path = Path(path)
    if _cached(path):
        return path
    if min_bytes <= 0:
        raise ValueError("min_bytes must be positive")
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = max(_LARGE_FPS, math.ceil(min_bytes / _LARGE_BYTES_PER_FRAME))
    duration = frames / _LARGE_FPS
    tmp = _temp_sibling(path)
    try:
        _ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1280x720:rate={_LARGE_FPS},format=yuv420p,noise=alls=100:allf=t+u",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-frames:v",
            str(frames),
            "-t",
            f"{duration:.3f}",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            # qp 0 would switch x264 to lossless High 4:4:4, which browsers cannot play; qp 2
            # stays in a web-playable profile and is still nearly as large.
            "-qp",
            "2",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-movflags",
            "+faststart",
            "-f",
            "mp4",
            str(tmp),
        )
        size = tmp.stat().st_size
        if size < min_bytes:
            raise RuntimeError(
                f"generated large clip is {size} bytes, below the requested {min_bytes}"
            )
        os.replace(tmp, path)
    finally:
        _discard(tmp)
    return path


def make_hls(
    directory: Path,
    *,
    duration: float = 6.0,
    segment_seconds: float = 2.0,
    width: int = 640,
    height: int = 360,
    aes_key: bytes | None = None,
) -> Path:
    """Write a VOD HLS stream (``index.m3u8`` + H.264/AAC MPEG-TS segments) into ``directory``.

    Keyframes are forced at every segment boundary so segments come out at
    ``segment_seconds``. With ``aes_key`` (16 bytes) ffmpeg encrypts every segment with
    AES-128 (``-hls_key_info_file``): the key is written to ``key.bin`` next to the
    playlist, which names it with ``#EXT-X-KEY:METHOD=AES-128,URI="key.bin"``. Returns
    the playlist path; an existing non-empty playlist is returned as-is.
    """
    directory = Path(directory)
    playlist = directory / "index.m3u8"
    if _cached(playlist):
        return playlist
    if duration <= 0 or segment_seconds <= 0:
        raise ValueError("duration and segment_seconds must be positive")
    if width <= 0 or height <= 0 or width % 2 or height % 2:
        raise ValueError(f"width and height must be positive even numbers, got {width}x{height}")
    if aes_key is not None and len(aes_key) != 16:
        raise ValueError(f"an AES-128 key has 16 bytes, not {len(aes_key)}")
    directory.mkdir(parents=True, exist_ok=True)
    # Build in a private directory, move the segments in, and publish the playlist last with
    # os.replace: a reader that sees index.m3u8 always finds every segment it lists.
    with tempfile.TemporaryDirectory(dir=directory, prefix=".hls-") as work:
        work_dir = Path(work)
        encryption: list[str] = []
        if aes_key is not None:
            (work_dir / "key.bin").write_bytes(aes_key)
            # Key info file: the URI written into the playlist, then the key file to read.
            (work_dir / "key.info").write_text(f"key.bin\n{work_dir / 'key.bin'}\n")
            encryption = ["-hls_key_info_file", str(work_dir / "key.info")]
        _ffmpeg(
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size={width}x{height}:rate=30:duration={duration}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=48000:duration={duration}",
            "-t",
            str(duration),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
            "-force_key_frames",
            f"expr:gte(t,n_forced*{segment_seconds})",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-f",
            "hls",
            "-hls_time",
            str(segment_seconds),
            "-hls_playlist_type",
            "vod",
            "-hls_segment_type",
            "mpegts",
            *encryption,
            "-hls_segment_filename",
            str(work_dir / "segment_%03d.ts"),
            str(work_dir / "index.m3u8"),
        )
        for segment in sorted(work_dir.glob("segment_*.ts")):
            os.replace(segment, directory / segment.name)
        if aes_key is not None:
            os.replace(work_dir / "key.bin", directory / "key.bin")
        os.replace(work_dir / "index.m3u8", playlist)
    return playlist


def make_truncated(source: Path, path: Path, *, keep_fraction: float = 0.3) -> Path:
    """Write the first ``keep_fraction`` of ``source``'s bytes to ``path`` (a broken file).

    An existing non-empty file at ``path`` is returned as-is.
    """
    source, path = Path(source), Path(path)
    if _cached(path):
        return path
    if not 0 < keep_fraction < 1:
        raise ValueError(f"keep_fraction must be between 0 and 1 (exclusive), not {keep_fraction}")
    # At least one byte, so the result is never mistaken for "not generated yet".
    remaining = max(1, int(source.stat().st_size * keep_fraction))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        with source.open("rb") as src, tmp.open("wb") as dst:
            while remaining > 0:
                block = src.read(min(remaining, 1024 * 1024))
                if not block:
                    break
                dst.write(block)
                remaining -= len(block)
        os.replace(tmp, path)
    finally:
        _discard(tmp)
    return path


def make_garbage(path: Path, *, size: int = 200_000) -> Path:
    """Write ``size`` random bytes to ``path`` (corrupt media behind a media-looking name).

    An existing non-empty file at ``path`` is returned as-is.
    """
    path = Path(path)
    if _cached(path):
        return path
    if size <= 0:
        raise ValueError("size must be positive")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_sibling(path)
    try:
        tmp.write_bytes(os.urandom(size))
        os.replace(tmp, path)
    finally:
        _discard(tmp)
    return path


def probe(path: Path) -> dict[str, Any]:
    """Return ffprobe's JSON description (``format`` and ``streams``) of a media file."""
    out = _run(
        [
            FFPROBE,
            "-v",
            "error",
            "-print_format",
            "json",
            "-show_format",
            "-show_streams",
            str(path),
        ]
    ).stdout
    data = json.loads(out)
    if not isinstance(data, dict):
        raise RuntimeError(f"unexpected ffprobe output for {path}: {out[:200]!r}")
    return data
