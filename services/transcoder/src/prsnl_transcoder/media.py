"""ffprobe/ffmpeg adapter: probe, copy/remux/transcode to MP4 and cut thumbnails, safely."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import struct
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ffmpeg

from prsnl_common.errors import PermanentError, PipelineError, TransientError
from prsnl_common.ffmpeg_inputs import INPUT_OPTIONS, input_arguments
from prsnl_common.watchdog import Watchdog
from prsnl_transcoder.planning import Plan, ProbeResult

FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

# -y is safe: every output path is a temporary one chosen by the caller.
_GLOBAL_ARGS = ("-nostdin", "-hide_banner", "-loglevel", "error", "-y")
# Machine-readable progress on stdout instead of the human status line on stderr.
_PROGRESS_ARGS = ("-progress", "pipe:1", "-nostats")
_STDERR_TAIL_LINES = 40
_MESSAGE_LINES = 6
# Large enough for any ffmpeg log line; the asyncio default (64 KiB) would raise on longer.
_LINE_LIMIT = 1024 * 1024

# stderr fragments meaning the input itself is bad, so retrying cannot help.
_INVALID_INPUT_MARKERS = (
    "invalid data found when processing input",
    "moov atom not found",
    "error while decoding",
    "could not find codec parameters",
    "format not on whitelist",
    "protocol not on whitelist",
    "partial file",
    "ebml header parsing failed",
    "invalid nal unit size",
    "no decoder for",
    "decoder (codec none) not found",
)
# What the mov demuxer logs when a sample lies beyond the end of the file.
_TRUNCATED_MARKER = "partial file"
# Fragments meaning the machine, not the file, failed; they win over the markers above
# because a full disk also makes the decoder and muxer complain.
_RESOURCE_MARKERS = (
    "no space left on device",
    "cannot allocate memory",
    "resource temporarily unavailable",
    "too many open files",
)

ProgressCallback = Callable[[float], Awaitable[None]]


def _url(path: Path) -> str:
    """An explicit ``file:`` URL, so a name containing ':' is never read as a protocol."""
    return "file:" + str(path.absolute())


def _source_size(path: Path) -> int:
    """Size of the source file, or PermanentError("source_missing") if it is not a file."""
    try:
        if path.is_file():
            return path.stat().st_size
    except OSError:
        pass
    raise PermanentError("source_missing", f"{path.name} is not in the media store")


def _tail(lines: Iterable[str], count: int = _MESSAGE_LINES) -> str:
    """The last ``count`` lines of ffmpeg's stderr, joined for an error message."""
    kept = [line for line in lines if line.strip()][-count:]
    text = " | ".join(kept) if kept else "no error output"
    return text[-1000:]


def _exit_error(tool: str, returncode: int, stderr: Sequence[str], name: str) -> PipelineError:
    """Classify a failed ffmpeg/ffprobe run: bad input is permanent, anything else transient."""
    text = "\n".join(stderr).lower()
    detail = _tail(stderr)
    if (
        returncode > 0
        and not any(marker in text for marker in _RESOURCE_MARKERS)
        and any(marker in text for marker in _INVALID_INPUT_MARKERS)
    ):
        return PermanentError("invalid_media", f"{name} is not readable media: {detail}")
    return TransientError("processing_failed", f"{tool} exited with {returncode}: {detail}")


async def _spawn(args: Sequence[str]) -> asyncio.subprocess.Process:
    """Start a tool with stdin closed and stdout/stderr piped."""
    try:
        return await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=_LINE_LIMIT,
        )
    except OSError as exc:
        raise TransientError("processing_failed", f"cannot start {args[0]}: {exc}") from exc


async def _reap(proc: asyncio.subprocess.Process, tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Kill the process if it still runs, stop our readers and drain the pipes.

    Draining after the kill lets the pipe transports see EOF and close, so nothing is
    left for the garbage collector to warn about.
    """
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    pending = list(tasks)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    await proc.communicate()


async def _run_ffmpeg(
    args: Sequence[str],
    *,
    timeout: float,  # noqa: ASYNC109 - we kill the process ourselves and say why
    stall_seconds: float | None = None,
    duration: float | None = None,
    on_progress: ProgressCallback | None = None,
) -> tuple[int, list[str]]:
    """Run ffmpeg under a hard timeout and a stall watchdog; return (exit code, stderr lines).

    When ``args`` include ``-progress pipe:1``, stdout carries key=value blocks. Any
    change of frame, out_time or total_size counts as progress; when none comes for
    ``stall_seconds`` the process is killed. The process is killed and reaped on every
    way out (timeout, stall, a raising callback, cancellation).
    """
    loop = asyncio.get_running_loop()
    proc = await _spawn(args)
    assert proc.stdout is not None and proc.stderr is not None
    stdout, stderr = proc.stdout, proc.stderr
    watch = Watchdog(limit=timeout, stall=stall_seconds, clock=loop.time)
    stderr_lines: deque[str] = deque(maxlen=_STDERR_TAIL_LINES)
    seen: dict[str, str] = {}
    state = {"out_seconds": 0.0, "reported": -1.0}

    async def report(end: bool) -> None:
        if on_progress is None:
            return
        if end:
            fraction = 1.0
        elif duration:
            # 1.0 is kept for the end: the faststart rewrite still follows the last frame.
            fraction = min(0.99, max(0.0, state["out_seconds"] / duration))
        else:
            return
        if fraction <= state["reported"]:
            return  # only forward; the caller throttles what it publishes
        state["reported"] = fraction
        await on_progress(fraction)

    async def pump_progress() -> None:
        async for raw in stdout:
            key, sep, value = raw.decode("utf-8", "replace").strip().partition("=")
            if not sep:
                continue
            if key in ("frame", "out_time_us", "out_time_ms", "total_size"):
                if seen.get(key) != value:
                    seen[key] = value
                    watch.progressed()
                # Both keys are microseconds in ffmpeg 5.1 (out_time_ms is misnamed).
                if key in ("out_time_us", "out_time_ms") and value.lstrip("-").isdigit():
                    state["out_seconds"] = int(value) / 1_000_000
            elif key == "progress":
                await report(end=value == "end")

    async def pump_stderr() -> None:
        async for raw in stderr:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                stderr_lines.append(line)

    readers = [asyncio.create_task(pump_progress()), asyncio.create_task(pump_stderr())]

    async def finish() -> int:
        await asyncio.gather(*readers)
        return await proc.wait()

    waiter = asyncio.create_task(finish())
    try:
        while not waiter.done():
            verdict = watch.verdict()
            if verdict == "timeout":
                raise TransientError(
                    "processing_timeout", f"ffmpeg exceeded its {timeout:g} s time limit"
                )
            if verdict is not None:
                raise TransientError(
                    "processing_stalled", f"ffmpeg made no progress for {stall_seconds:g} s"
                )
            await asyncio.wait({waiter}, timeout=max(0.01, watch.next_check()))
        return waiter.result(), list(stderr_lines)
    finally:
        await _reap(proc, [waiter, *readers])


# The timeout parameters (ASYNC109) are deliberate: on expiry the process must be
# killed and the failure reported as processing_timeout, which an outer
# asyncio.timeout could only do as a bare cancellation.
def probe_args(path: Path) -> list[str]:
    """The ffprobe command line for ``path``: JSON out, local files and known demuxers only."""
    return [
        FFPROBE,
        "-hide_banner",
        "-v",
        "error",
        "-print_format",
        "json",
        "-show_format",
        "-show_streams",
        *input_arguments(),
        _url(path),
    ]


async def probe(path: Path, *, timeout: float = 30) -> ProbeResult:  # noqa: ASYNC109
    """Read a file's container and streams with ffprobe.

    Raises PermanentError("invalid_media") when ffprobe cannot read the file, finds no
    audio or video stream, or the video stream has no usable codec or size;
    TransientError("processing_timeout") when ffprobe overruns ``timeout``.
    """
    size = _source_size(path)
    proc = await _spawn(probe_args(path))
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        raise TransientError(
            "processing_timeout", f"ffprobe exceeded its {timeout:g} s time limit"
        ) from None
    finally:
        await _reap(proc, ())

    stderr = err.decode("utf-8", "replace").splitlines()
    if proc.returncode != 0:
        if proc.returncode is not None and proc.returncode < 0:
            raise TransientError(
                "processing_failed", f"ffprobe was killed by signal {-proc.returncode}"
            )
        if any(marker in err.decode("utf-8", "replace").lower() for marker in _RESOURCE_MARKERS):
            raise TransientError("processing_failed", f"ffprobe failed: {_tail(stderr)}")
        raise PermanentError("invalid_media", f"{path.name} is not readable media: {_tail(stderr)}")
    try:
        data = json.loads(out)
    except ValueError:
        raise PermanentError(
            "invalid_media", f"ffprobe output for {path.name} is not JSON"
        ) from None
    if not isinstance(data, dict) or not data.get("streams"):
        raise PermanentError("invalid_media", f"{path.name} contains no streams")

    result = ProbeResult.from_ffprobe(data, size)
    if not result.has_video and not result.has_audio:
        raise PermanentError("invalid_media", f"{path.name} has no audio or video stream")
    if result.has_video and (result.video_codec is None or not result.width or not result.height):
        raise PermanentError(
            "invalid_media", f"{path.name} has a video stream without a known codec or size"
        )
    return result


def _has_faststart(path: Path) -> bool:
    """Walk the top-level MP4 boxes; True when ``moov`` comes before ``mdat``."""
    with path.open("rb") as fh:
        end = fh.seek(0, 2)
        pos = 0
        while pos + 8 <= end:
            fh.seek(pos)
            size, kind = struct.unpack(">I4s", fh.read(8))
            header = 8
            if size == 1:
                # 64-bit "largesize" follows the type.
                extended = fh.read(8)
                if len(extended) < 8:
                    return False
                (size,) = struct.unpack(">Q", extended)
                header = 16
            elif size == 0:
                # The box runs to the end of the file.
                size = end - pos
            if kind == b"moov":
                return True
            if kind == b"mdat":
                return False
            if size < header:
                # Corrupt box header: we cannot walk further, so do not claim faststart.
                return False
            pos += size
    return False


async def has_faststart(path: Path) -> bool:
    """Say whether an MP4/MOV file's ``moov`` box precedes its ``mdat`` (progressive play).

    Only box headers are read, in a worker thread. Files that are not MP4 or have no
    ``moov`` at top level answer False.
    """
    return await asyncio.to_thread(_has_faststart, path)


def _stream(node: Any, index: int | None, fallback: str) -> Any:
    """Select an input stream by absolute ffprobe index, or by specifier when unknown."""
    return node[str(index) if index is not None else fallback]


def _remux_args(src: Path, dst: Path, probe: ProbeResult) -> list[str]:
    """ffmpeg arguments that copy the video and first audio stream into a faststart MP4."""
    source = ffmpeg.input(_url(src), **INPUT_OPTIONS)
    streams = [_stream(source, probe.video_index, "v:0")]
    if probe.has_audio:
        streams.append(_stream(source, probe.audio_index, "a:0?"))
    output = ffmpeg.output(
        *streams, _url(dst), f="mp4", c="copy", movflags="+faststart", max_muxing_queue_size=1024
    )
    return list(output.compile(cmd=[FFMPEG, *_GLOBAL_ARGS, *_PROGRESS_ARGS]))


def _transcode_args(src: Path, dst: Path, plan: Plan, probe: ProbeResult) -> list[str]:
    """ffmpeg arguments for the libx264/AAC (or audio-only AAC) MP4 a plan asks for."""
    source = ffmpeg.input(_url(src), **INPUT_OPTIONS)
    streams: list[Any] = []
    options: dict[str, Any] = {"f": "mp4", "movflags": "+faststart", "max_muxing_queue_size": 1024}

    if plan.audio_only:
        options["vn"] = None
    else:
        # ffmpeg autorotates decoded frames (the default), so filters see the upright
        # picture: scaling by height therefore caps the displayed height.
        video = _stream(source, probe.video_index, "v:0")
        if plan.target_height is not None:
            video = video.filter("scale", -2, plan.target_height)
        else:
            # Unknown size: still make both sides even, which 4:2:0 x264 requires.
            video = video.filter("scale", "trunc(iw/2)*2", "trunc(ih/2)*2")
        if plan.max_fps is not None:
            video = video.filter("fps", fps=f"{plan.max_fps:g}")
        streams.append(video)
        options.update(
            {
                "c:v": "libx264",
                "preset": plan.preset,
                "crf": plan.crf,
                "pix_fmt": "yuv420p",
                "profile:v": "high",
                # The autorotated picture is upright; no player may turn it again.
                "metadata:s:v:0": "rotate=0",
            }
        )
        if plan.h264_level is not None:
            options["level:v"] = plan.h264_level

    if plan.has_audio and probe.has_audio:
        streams.append(_stream(source, probe.audio_index, "a:0?"))
        if plan.copy_audio:
            options["c:a"] = "copy"
        else:
            options.update({"c:a": "aac", "b:a": plan.audio_bitrate})

    output = ffmpeg.output(*streams, _url(dst), **options)
    return list(output.compile(cmd=[FFMPEG, *_GLOBAL_ARGS, *_PROGRESS_ARGS]))


def _discard(paths: Iterable[Path]) -> None:
    """Remove partial outputs, ignoring ones that do not exist."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)


def _non_empty(path: Path) -> bool:
    """True when ``path`` is a file with at least one byte."""
    try:
        return path.is_file() and path.stat().st_size > 0
    except OSError:
        return False


async def produce(
    src: Path,
    dst: Path,
    plan: Plan,
    probe: ProbeResult,
    *,
    timeout: float,  # noqa: ASYNC109
    stall_seconds: float = 60,
    on_progress: ProgressCallback | None = None,
) -> None:
    """Write the web-playable MP4 for ``src`` to ``dst`` as ``plan`` says.

    ``dst`` is a temporary path the caller renames afterwards; it is overwritten, and
    removed on any failure or cancellation. ``on_progress`` receives fractions in 0..1
    (at most about twice a second, 1.0 last). Raises TransientError with
    ``processing_timeout``, ``processing_stalled`` or ``processing_failed``, or
    PermanentError("invalid_media") when ffmpeg reports unreadable input.
    """
    _source_size(src)
    reported = [-1.0]

    async def track(fraction: float) -> None:
        reported[0] = fraction
        if on_progress is not None:
            await on_progress(fraction)

    try:
        if plan.action == "copied":
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.to_thread(shutil.copyfile, src, dst)
            except TimeoutError:
                raise TransientError(
                    "processing_timeout", f"copying exceeded its {timeout:g} s time limit"
                ) from None
            except OSError as exc:
                raise TransientError("processing_failed", f"copy failed: {exc}") from exc
        else:
            if plan.action == "remuxed":
                args = _remux_args(src, dst, probe)
            else:
                args = _transcode_args(src, dst, plan, probe)
            returncode, stderr = await _run_ffmpeg(
                args,
                timeout=timeout,
                stall_seconds=stall_seconds,
                duration=probe.duration,
                on_progress=track if on_progress is not None else None,
            )
            if returncode != 0:
                raise _exit_error("ffmpeg", returncode, stderr, src.name)
            # A file whose moov precedes a cut-off mdat probes fine and ffmpeg exits 0,
            # but the demuxer says "partial file": the output would silently be short.
            if any(_TRUNCATED_MARKER in line.lower() for line in stderr):
                raise PermanentError("invalid_media", f"{src.name} is truncated: {_tail(stderr)}")
        if not _non_empty(dst):
            raise TransientError("processing_failed", f"ffmpeg wrote no output for {src.name}")
    except BaseException:
        _discard([dst])
        raise
    if on_progress is not None and reported[0] < 1.0:
        # The copy path reports nothing else, and ffmpeg may end without "progress=end".
        await on_progress(1.0)


async def make_thumbnails(
    src: Path,
    outputs: Mapping[int, Path],
    *,
    at: float,
    timeout: float = 60,  # noqa: ASYNC109
    video_index: int | None = None,
) -> None:
    """Write one upright JPEG per width (``{320: path, ...}``) from one ffmpeg run.

    Seeks to ``at`` seconds on the input, splits the frame and scales each copy to the
    exact width (height even, aspect kept; narrow sources are upscaled so the width is
    exact). If the seek lands past the last frame, it retries once at 0 within the same
    ``timeout``. ``video_index`` picks the stream when the file also carries cover
    art; the first video stream is used otherwise. Raises TransientError
    ("processing_failed") when a thumbnail is missing or empty afterwards,
    ("processing_timeout") past ``timeout``, PermanentError("invalid_media") for
    unreadable input; partial outputs are removed on every failure.
    """
    _source_size(src)
    if not outputs:
        return
    widths = sorted(outputs)
    attempts = [at, 0.0] if at > 0 else [0.0]
    # One budget for both attempts, so the caller's timeout holds.
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        for seek in attempts:
            _discard(outputs.values())
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TransientError(
                    "processing_timeout", f"thumbnails exceeded their {timeout:g} s time limit"
                )
            source = ffmpeg.input(_url(src), ss=f"{seek:.3f}", **INPUT_OPTIONS)
            copies = _stream(source, video_index, "v:0").filter_multi_output("split", len(widths))
            jpegs = [
                copies[i]
                .filter("scale", width, -2)
                # image2 with update=1 writes exactly the named file, never a %d pattern.
                .output(_url(outputs[width]), f="image2", update=1, **{"frames:v": 1, "q:v": 3})
                for i, width in enumerate(widths)
            ]
            args = ffmpeg.merge_outputs(*jpegs).compile(cmd=[FFMPEG, *_GLOBAL_ARGS])
            returncode, stderr = await _run_ffmpeg(list(args), timeout=remaining)
            if returncode != 0:
                raise _exit_error("ffmpeg", returncode, stderr, src.name)
            if all(_non_empty(path) for path in outputs.values()):
                return
        raise TransientError(
            "processing_failed", f"ffmpeg produced no thumbnail frame for {src.name}"
        )
    except BaseException:
        _discard(outputs.values())
        raise
