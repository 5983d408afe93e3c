"""Integration tests for the ffprobe/ffmpeg adapter against clips generated at test time."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from prsnl_common.errors import PermanentError, TransientError
from prsnl_transcoder import media
from prsnl_transcoder.media import has_faststart, make_thumbnails, probe, produce
from prsnl_transcoder.planning import (
    PROFILES,
    Limits,
    Plan,
    ProbeResult,
    plan_output,
    thumbnail_time,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
        reason="needs ffmpeg and ffprobe",
    ),
]

QUIET = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
PROBE_CMD = ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams"]
ROTATE_TAG = ["-metadata:s:v:0", "rotate=-90"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]


def make_clip(
    path: Path,
    *,
    size: str = "320x240",
    duration: float = 2.0,
    video: Sequence[str] = X264,
    audio: Sequence[str] | None = ("-c:a", "aac"),
    extra: Sequence[str] = (),
) -> Path:
    """Render a test-pattern clip (plus a 440 Hz tone unless audio is None) with ffmpeg."""
    cmd = [*QUIET, "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30"]
    if audio is not None:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]
    cmd += ["-t", str(duration), *video, *(audio or ("-an",)), *extra, str(path)]
    subprocess.run(cmd, check=True, timeout=60)
    return path


def ffprobe_json(path: Path) -> dict[str, Any]:
    """Plain ffprobe (no whitelist), to inspect outputs independently of the code under test."""
    out = subprocess.run(
        [*PROBE_CMD, str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    data: dict[str, Any] = json.loads(out)
    return data


def streams_of(path: Path, kind: str) -> list[dict[str, Any]]:
    return [s for s in ffprobe_json(path)["streams"] if s["codec_type"] == kind]


def packet_md5(path: Path, selector: str = "0:v:0") -> str:
    """MD5 of a stream's packets: equal only when the stream was copied, not re-encoded."""
    out = subprocess.run(
        [*QUIET, "-i", str(path), "-map", selector, "-c", "copy", "-f", "md5", "-"],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return out.decode().strip()


@dataclass(frozen=True)
class Clips:
    h264: Path  # 320x240, 2 s, H.264/AAC, moov after mdat (ffmpeg's default)
    webm: Path  # 320x240, 2 s, VP9/Opus
    rotated: Path  # 640x360 coded, Display Matrix -90 (portrait phone), H.264/AAC
    hd: Path  # 1280x720, 2 s, H.264/AAC
    short: Path  # 320x240, 0.5 s, H.264, no audio
    truncated: Path  # first half of a moov-at-end MP4: no moov at all
    truncated_faststart: Path  # first half of a faststart MP4: moov intact, mdat cut
    random: Path  # random bytes named .mp4
    hls: Path  # an HLS playlist pointing at /etc/passwd, named .mp4
    concat: Path  # an ffconcat list pointing at /etc/passwd, named .mp4


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    root = tmp_path_factory.mktemp("clips")
    h264 = make_clip(root / "h264.mp4")
    webm = make_clip(
        root / "vp9.webm",
        video=["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "300k"],
        audio=["-c:a", "libopus"],
    )
    # ffmpeg 5.1 turns a rotate tag given while stream-copying into a Display Matrix
    # holding that angle counter-clockwise, so -90 yields what phones write.
    rotated_src = make_clip(root / "landscape.mp4", size="640x360")
    rotated = root / "rotated.mp4"
    subprocess.run(
        [*QUIET, "-i", str(rotated_src), "-c", "copy", *ROTATE_TAG, str(rotated)],
        check=True,
        timeout=60,
    )
    hd = make_clip(root / "hd.mp4", size="1280x720")
    short = make_clip(root / "short.mp4", duration=0.5, audio=None)

    data = h264.read_bytes()
    truncated = root / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    faststart = make_clip(root / "faststart.mp4", extra=["-movflags", "+faststart"])
    data = faststart.read_bytes()
    truncated_faststart = root / "truncated_faststart.mp4"
    truncated_faststart.write_bytes(data[: len(data) // 2])

    rnd = root / "random.mp4"
    rnd.write_bytes(random.Random(1234).randbytes(64 * 1024))
    hls = root / "playlist.mp4"
    hls.write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        "#EXTINF:10.0,\nfile:/etc/passwd\n#EXTINF:10.0,\n/etc/passwd\n#EXT-X-ENDLIST\n"
    )
    concat = root / "list.mp4"
    concat.write_text("ffconcat version 1.0\nfile /etc/passwd\nfile 'file:/etc/passwd'\n")
    return Clips(h264, webm, rotated, hd, short, truncated, truncated_faststart, rnd, hls, concat)


@pytest.fixture
def fake_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Swap ffmpeg for a shell script; returns a function taking the script body."""

    def install(body: str) -> Path:
        script = tmp_path / "fake-ffmpeg"
        pid_file = tmp_path / "fake.pid"
        script.write_text(f'#!/bin/sh\necho $$ > "{pid_file}"\n{body}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        monkeypatch.setattr(media, "FFMPEG", str(script))
        return pid_file

    return install


def assert_dead(pid_file: Path) -> None:
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


# --- probe -------------------------------------------------------------------------


async def test_probe_h264_aac_mp4(clips: Clips) -> None:
    result = await probe(clips.h264)
    assert result.is_mp4_family
    assert (result.video_codec, result.audio_codec) == ("h264", "aac")
    assert (result.width, result.height, result.rotation) == (320, 240, 0)
    assert result.fps == pytest.approx(30)
    assert result.duration == pytest.approx(2.0, abs=0.1)
    assert result.pix_fmt == "yuv420p"
    assert result.size == clips.h264.stat().st_size
    assert result.bitrate and result.bitrate > 0


async def test_probe_rotated_clip(clips: Clips) -> None:
    result = await probe(clips.rotated)
    assert result.rotation == 90
    assert (result.width, result.height) == (360, 640)
    assert (result.coded_width, result.coded_height) == (640, 360)


async def test_probe_webm(clips: Clips) -> None:
    result = await probe(clips.webm)
    assert result.container == "matroska,webm"
    assert (result.video_codec, result.audio_codec) == ("vp9", "opus")


@pytest.mark.parametrize("name", ["truncated", "random"])
async def test_probe_rejects_broken_files(clips: Clips, name: str) -> None:
    with pytest.raises(PermanentError) as info:
        await probe(getattr(clips, name))
    assert info.value.code == "invalid_media"
    assert info.value.message


@pytest.mark.parametrize("name", ["hls", "concat"])
async def test_probe_refuses_playlists(clips: Clips, name: str) -> None:
    with pytest.raises(PermanentError) as info:
        await probe(getattr(clips, name))
    assert info.value.code == "invalid_media"
    # Refused by our whitelist, before the demuxer could open anything it names.
    assert "not on whitelist" in info.value.message
    assert "root:" not in info.value.message


async def test_thumbnails_refuse_playlists(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "t.jpg"
    with pytest.raises(PermanentError) as info:
        await make_thumbnails(clips.hls, {320: out}, at=0)
    assert info.value.code == "invalid_media"
    assert not out.exists()


async def test_probe_missing_source(tmp_path: Path) -> None:
    with pytest.raises(PermanentError) as info:
        await probe(tmp_path / "nope.mp4")
    assert info.value.code == "source_missing"


async def test_probe_timeout(clips: Clips) -> None:
    with pytest.raises(TransientError) as info:
        await probe(clips.hd, timeout=0.001)
    assert info.value.code == "processing_timeout"


# --- has_faststart -----------------------------------------------------------------


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def large_box(kind: bytes, payload: bytes = b"") -> bytes:
    return (1).to_bytes(4, "big") + kind + (16 + len(payload)).to_bytes(8, "big") + payload


FTYP = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2avc1mp41")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (FTYP + box(b"moov", b"x" * 20) + box(b"mdat", b"y" * 100), True),
        (FTYP + box(b"free") + box(b"mdat", b"y" * 100) + box(b"moov"), False),
        (FTYP + large_box(b"free", b"z" * 40) + box(b"moov"), True),
        (FTYP + large_box(b"mdat", b"y" * 64) + box(b"moov"), False),
        (FTYP + box(b"moov") + (0).to_bytes(4, "big") + b"mdat" + b"y" * 50, True),
        # size 0: mdat runs to the end, so no moov can follow it.
        (FTYP + (0).to_bytes(4, "big") + b"mdat" + b"y" * 50 + box(b"moov"), False),
        (FTYP + (3).to_bytes(4, "big") + b"junk" + box(b"moov"), False),  # corrupt size
        (FTYP + (1).to_bytes(4, "big") + b"mdat", False),  # truncated largesize
        (FTYP, False),
        (b"", False),
        (b"#EXTM3U\n#EXT-X-ENDLIST\n", False),
    ],
)
async def test_has_faststart_boxes(tmp_path: Path, content: bytes, expected: bool) -> None:
    path = tmp_path / "boxes.mp4"
    path.write_bytes(content)
    assert await has_faststart(path) is expected


async def test_has_faststart_real_files(clips: Clips, tmp_path: Path) -> None:
    assert await has_faststart(clips.h264) is False
    assert await has_faststart(clips.webm) is False


# --- produce -----------------------------------------------------------------------


async def test_remux_copies_streams_and_adds_faststart(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.h264)
    plan = plan_output(source, Limits(), faststart=await has_faststart(clips.h264))
    assert plan.action == "remuxed"
    dst = tmp_path / "out.mp4"
    await produce(clips.h264, dst, plan, source, timeout=60)

    assert await has_faststart(dst)
    assert packet_md5(dst, "0:v:0") == packet_md5(clips.h264, "0:v:0")
    assert packet_md5(dst, "0:a:0") == packet_md5(clips.h264, "0:a:0")
    (video,) = streams_of(dst, "video")
    (original,) = streams_of(clips.h264, "video")
    assert video["codec_name"] == "h264"
    assert int(video["bit_rate"]) == pytest.approx(int(original["bit_rate"]), rel=0.05)
    # Now it qualifies for a plain copy.
    again = await probe(dst)
    assert plan_output(again, Limits(), faststart=True).action == "copied"


async def test_copy_is_byte_identical(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.h264)
    plan = replace(plan_output(source, Limits()), action="copied")
    seen: list[float] = []

    async def on_progress(fraction: float) -> None:
        seen.append(fraction)

    dst = tmp_path / "copy.mp4"
    await produce(clips.h264, dst, plan, source, timeout=60, on_progress=on_progress)
    assert dst.read_bytes() == clips.h264.read_bytes()
    assert seen == [1.0]


async def test_webm_is_transcoded_to_h264_aac(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.webm)
    plan = plan_output(source, Limits())
    assert plan.action == "transcoded"
    dst = tmp_path / "out.mp4"
    await produce(clips.webm, dst, plan, source, timeout=60)

    data = ffprobe_json(dst)
    (video,) = [s for s in data["streams"] if s["codec_type"] == "video"]
    (audio,) = [s for s in data["streams"] if s["codec_type"] == "audio"]
    assert "mp4" in data["format"]["format_name"]
    assert (video["codec_name"], video["pix_fmt"], video["profile"]) == ("h264", "yuv420p", "High")
    assert (video["width"], video["height"]) == (320, 240)
    assert video["level"] == 30
    assert audio["codec_name"] == "aac"
    assert float(data["format"]["duration"]) == pytest.approx(2.0, abs=0.15)
    assert await has_faststart(dst)


async def test_rotated_clip_comes_out_upright(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.rotated)
    plan = plan_output(source, Limits())
    assert "rotation 90 must be applied" in plan.reasons
    assert plan.copy_audio
    dst = tmp_path / "out.mp4"
    await produce(clips.rotated, dst, plan, source, timeout=60)

    (video,) = streams_of(dst, "video")
    assert (video["width"], video["height"]) == (360, 640)
    assert not video.get("side_data_list")
    assert "rotate" not in video.get("tags", {})
    assert (await probe(dst)).rotation == 0
    # The AAC track was copied, not re-encoded.
    assert packet_md5(dst, "0:a:0") == packet_md5(clips.rotated, "0:a:0")


async def test_profile_caps_height(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.hd)
    plan = plan_output(source, Limits(), PROFILES["480p"])
    assert plan.target_height == 480
    dst = tmp_path / "out.mp4"
    await produce(clips.hd, dst, plan, source, timeout=60)

    (video,) = streams_of(dst, "video")
    assert video["height"] == 480
    assert video["width"] % 2 == 0
    assert abs(video["width"] - 853) <= 1


async def test_fps_cap(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.h264)
    plan = plan_output(source, Limits(max_fps=15))
    assert plan.max_fps == 15
    dst = tmp_path / "out.mp4"
    await produce(clips.h264, dst, plan, source, timeout=60)
    (video,) = streams_of(dst, "video")
    assert video["avg_frame_rate"] == "15/1"


async def test_audio_only_profile(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.webm)
    plan = plan_output(source, Limits(), PROFILES["audio"])
    assert plan.audio_only and not plan.copy_audio
    dst = tmp_path / "out.mp4"
    await produce(clips.webm, dst, plan, source, timeout=60)

    data = ffprobe_json(dst)
    assert [s["codec_type"] for s in data["streams"]] == ["audio"]
    assert data["streams"][0]["codec_name"] == "aac"
    assert "mp4" in data["format"]["format_name"]


async def test_audio_only_copies_aac(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.h264)
    plan = plan_output(source, Limits(), PROFILES["audio"])
    assert plan.copy_audio
    dst = tmp_path / "out.mp4"
    await produce(clips.h264, dst, plan, source, timeout=60)
    assert [s["codec_type"] for s in ffprobe_json(dst)["streams"]] == ["audio"]
    assert packet_md5(dst, "0:a:0") == packet_md5(clips.h264, "0:a:0")


async def test_progress_increases_to_one(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.hd)
    # A deliberately slow preset, so ffmpeg reports several times (every 0.5 s).
    plan = Plan("transcoded", 720, 23, False, True, True, ("test",), preset="medium")
    seen: list[float] = []

    async def on_progress(fraction: float) -> None:
        seen.append(fraction)

    await produce(
        clips.hd, tmp_path / "out.mp4", plan, source, timeout=120, on_progress=on_progress
    )
    assert len(seen) >= 2
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert all(0.0 <= f <= 1.0 for f in seen)
    assert seen[-1] == 1.0


async def test_truncated_faststart_file_is_invalid(clips: Clips, tmp_path: Path) -> None:
    # The moov is intact, so probing succeeds; the samples end halfway.
    source = await probe(clips.truncated_faststart)
    plan = plan_output(source, Limits(), PROFILES["480p"])
    dst = tmp_path / "out.mp4"
    with pytest.raises(PermanentError) as info:
        await produce(clips.truncated_faststart, dst, plan, source, timeout=60)
    assert info.value.code == "invalid_media"
    assert not dst.exists()


async def test_broken_input_at_produce_is_invalid(clips: Clips, tmp_path: Path) -> None:
    # A plan made for a good file, run against one whose moov is missing.
    source = await probe(clips.h264)
    plan = plan_output(source, Limits())
    dst = tmp_path / "out.mp4"
    with pytest.raises(PermanentError) as info:
        await produce(clips.truncated, dst, plan, source, timeout=60)
    assert info.value.code == "invalid_media"
    assert "moov atom not found" in info.value.message
    assert not dst.exists()


async def test_timeout_kills_real_ffmpeg(clips: Clips, tmp_path: Path) -> None:
    source = await probe(clips.webm)
    plan = plan_output(source, Limits())
    dst = tmp_path / "out.mp4"
    with pytest.raises(TransientError) as info:
        await produce(clips.webm, dst, plan, source, timeout=0.05)
    assert info.value.code == "processing_timeout"
    assert not dst.exists()


async def test_timeout_kills_process(clips: Clips, tmp_path: Path, fake_ffmpeg: Any) -> None:
    pid_file = fake_ffmpeg("exec sleep 30")
    source = await probe(clips.webm)
    dst = tmp_path / "out.mp4"
    dst.write_bytes(b"partial")
    with pytest.raises(TransientError) as info:
        await produce(clips.webm, dst, plan_output(source, Limits()), source, timeout=0.5)
    assert info.value.code == "processing_timeout"
    assert not dst.exists()
    assert_dead(pid_file)


async def test_stall_watchdog(clips: Clips, tmp_path: Path, fake_ffmpeg: Any) -> None:
    # Some progress, then nothing: the watchdog fires before the hard timeout.
    pid_file = fake_ffmpeg(
        "printf 'frame=1\\nout_time_us=100000\\nprogress=continue\\n'\n"
        "printf 'frame=2\\nout_time_us=200000\\nprogress=continue\\n'\nexec sleep 30"
    )
    source = await probe(clips.webm)
    seen: list[float] = []

    async def on_progress(fraction: float) -> None:
        seen.append(fraction)

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TransientError) as info:
        await produce(
            clips.webm,
            tmp_path / "out.mp4",
            plan_output(source, Limits()),
            source,
            timeout=30,
            stall_seconds=0.5,
            on_progress=on_progress,
        )
    assert info.value.code == "processing_stalled"
    assert loop.time() - started < 5
    assert seen and 0 < seen[0] < 1
    assert_dead(pid_file)


async def test_other_failures_are_transient(clips: Clips, tmp_path: Path, fake_ffmpeg: Any) -> None:
    fake_ffmpeg("echo 'line one' >&2\necho 'Conversion failed: disk on fire' >&2\nexit 1")
    source = await probe(clips.webm)
    dst = tmp_path / "out.mp4"
    with pytest.raises(TransientError) as info:
        await produce(clips.webm, dst, plan_output(source, Limits()), source, timeout=30)
    assert info.value.code == "processing_failed"
    assert "disk on fire" in info.value.message
    assert not dst.exists()


async def test_full_disk_is_transient_even_with_decoder_errors(
    clips: Clips, tmp_path: Path, fake_ffmpeg: Any
) -> None:
    fake_ffmpeg(
        "echo 'Error while decoding stream #0:0: Invalid data found when processing input' >&2\n"
        "echo 'av_interleaved_write_frame(): No space left on device' >&2\nexit 1"
    )
    source = await probe(clips.webm)
    with pytest.raises(TransientError) as info:
        await produce(
            clips.webm, tmp_path / "o.mp4", plan_output(source, Limits()), source, timeout=30
        )
    assert info.value.code == "processing_failed"


async def test_cancellation_kills_process(clips: Clips, tmp_path: Path, fake_ffmpeg: Any) -> None:
    pid_file = fake_ffmpeg("exec sleep 30")
    source = await probe(clips.webm)
    dst = tmp_path / "out.mp4"
    task = asyncio.create_task(
        produce(clips.webm, dst, plan_output(source, Limits()), source, timeout=30)
    )
    for _ in range(100):
        if pid_file.exists() and pid_file.read_text().strip():
            break
        await asyncio.sleep(0.02)
    dst.write_bytes(b"partial")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not dst.exists()
    assert_dead(pid_file)


async def test_progress_callback_error_kills_process(
    clips: Clips, tmp_path: Path, fake_ffmpeg: Any
) -> None:
    pid_file = fake_ffmpeg("printf 'out_time_us=100000\\nprogress=continue\\n'\nexec sleep 30")
    source = await probe(clips.webm)

    async def on_progress(fraction: float) -> None:
        raise RuntimeError("broker gone")

    with pytest.raises(RuntimeError, match="broker gone"):
        await produce(
            clips.webm,
            tmp_path / "out.mp4",
            plan_output(source, Limits()),
            source,
            timeout=30,
            on_progress=on_progress,
        )
    assert_dead(pid_file)


async def test_produce_missing_source(tmp_path: Path) -> None:
    plan = Plan("remuxed", None, 23, False, True, True, ("test",))
    nothing = ProbeResult.from_ffprobe({}, 0)
    with pytest.raises(PermanentError) as info:
        await produce(tmp_path / "gone.mp4", tmp_path / "o.mp4", plan, nothing, timeout=5)
    assert info.value.code == "source_missing"


# --- thumbnails --------------------------------------------------------------------


async def test_thumbnails_at_three_widths(clips: Clips, tmp_path: Path) -> None:
    outputs = {w: tmp_path / f"thumb-{w}.jpg" for w in (320, 640, 1280)}
    await make_thumbnails(clips.h264, outputs, at=thumbnail_time(2.0))
    for width, path in outputs.items():
        (image,) = streams_of(path, "video")
        assert image["codec_name"] == "mjpeg"
        assert image["width"] == width
        assert image["height"] == width * 3 // 4


async def test_thumbnail_of_rotated_clip_is_upright(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "thumb.jpg"
    await make_thumbnails(clips.rotated, {320: out}, at=0.5)
    (image,) = streams_of(out, "video")
    assert (image["width"], image["height"]) == (320, 568)


async def test_thumbnail_of_half_second_clip(clips: Clips, tmp_path: Path) -> None:
    out = tmp_path / "thumb.jpg"
    await make_thumbnails(clips.short, {320: out}, at=thumbnail_time(0.5))
    assert out.stat().st_size > 0


async def test_thumbnail_seek_past_end_retries_at_zero(clips: Clips, tmp_path: Path) -> None:
    outputs = {160: tmp_path / "a.jpg", 320: tmp_path / "b.jpg"}
    await make_thumbnails(clips.short, outputs, at=5.0)
    assert all(p.stat().st_size > 0 for p in outputs.values())


async def test_thumbnail_failure_removes_partials(
    clips: Clips, tmp_path: Path, fake_ffmpeg: Any
) -> None:
    # A run that "succeeds" but writes one of two files (and an empty one) twice.
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    fake_ffmpeg(f'printf x > "{a}"\n: > "{b}"')
    with pytest.raises(TransientError) as info:
        await make_thumbnails(clips.h264, {320: a, 640: b}, at=1.0)
    assert info.value.code == "processing_failed"
    assert not a.exists() and not b.exists()


async def test_thumbnail_timeout(clips: Clips, tmp_path: Path, fake_ffmpeg: Any) -> None:
    pid_file = fake_ffmpeg("exec sleep 30")
    out = tmp_path / "t.jpg"
    with pytest.raises(TransientError) as info:
        await make_thumbnails(clips.h264, {320: out}, at=1.0, timeout=0.3)
    assert info.value.code == "processing_timeout"
    assert not out.exists()
    assert_dead(pid_file)
