"""Capture-to-ready timing through the pipeline, and the same work done by the raw tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ffmpeg
import httpx

from prsnl_common.ffmpeg_inputs import INPUT_OPTIONS
from prsnl_transcoder import media
from prsnl_transcoder.planning import ProbeResult, plan_output, thumbnail_time
from prsnl_transcoder.service import limits_for
from prsnl_transcoder.settings import TranscoderSettings

POLL_SECONDS = 0.05
# The raw steps in the order they run; "2x ffprobe" sums the probes of original and output.
STEP_ORDER = ("yt-dlp", "2x ffprobe", "copy", "ffmpeg remux", "ffmpeg transcode", "thumbnails")
# Statuses that mean the download stage has finished.
_AFTER_DOWNLOAD = frozenset({"downloaded", "processing", "ready"})


class CaptureFailed(RuntimeError):
    """The item ended failed, or not ready in time."""


@dataclass(frozen=True)
class PipelineRun:
    """One capture through the running stack, timed from POST until GET says ready."""

    url: str
    item_id: str
    total_s: float
    # POST until a GET first shows the download finished (downloaded/processing/ready).
    download_s: float
    # From then until a GET shows ready.
    process_s: float
    item: Mapping[str, Any] = field(repr=False)
    # Seconds after the POST at which each status was first seen by a poll.
    seen: Mapping[str, float] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return str(self.item.get("action"))


def capture_ready(
    client: httpx.Client, url: str, *, timeout: float = 600, poll: float = POLL_SECONDS
) -> PipelineRun:
    """POST a capture, poll the item every ``poll`` seconds and time it until ready.

    ``client`` carries the base URL and the Authorization header (one keep-alive
    connection for the polling). Raises CaptureFailed when the item fails or times out.
    """
    started = time.perf_counter()
    response = client.post("/api/v1/captures", json={"url": url})
    if response.status_code != 202:
        raise CaptureFailed(f"capture of {url} answered {response.status_code}: {response.text}")
    item_id = str(response.json()["id"])
    downloaded_at: float | None = None
    seen: dict[str, float] = {}
    deadline = started + timeout
    while True:
        item_response = client.get(f"/api/v1/items/{item_id}")
        now = time.perf_counter()
        item_response.raise_for_status()
        item: dict[str, Any] = item_response.json()
        status = item["status"]
        seen.setdefault(status, now - started)
        if downloaded_at is None and status in _AFTER_DOWNLOAD:
            downloaded_at = now
        if status == "ready":
            assert downloaded_at is not None
            return PipelineRun(
                url=url,
                item_id=item_id,
                total_s=now - started,
                download_s=downloaded_at - started,
                process_s=now - downloaded_at,
                item=item,
                seen=seen,
            )
        if status == "failed":
            raise CaptureFailed(f"{url} failed: {item.get('error')}")
        if now > deadline:
            raise CaptureFailed(f"{url} still {status} after {timeout:g} s")
        time.sleep(poll)


@dataclass
class RawRun:
    """The same work as the pipeline, done by yt-dlp and ffmpeg directly, step by step."""

    url: str
    action: str = ""
    steps: dict[str, float] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    total_s: float = 0.0

    @property
    def ytdlp_s(self) -> float:
        return self.steps.get("yt-dlp", 0.0)

    @property
    def ffmpeg_s(self) -> float:
        """Every ffprobe/ffmpeg step (and the planning in between)."""
        return self.total_s - self.ytdlp_s


def ytdlp_binary() -> str:
    """The yt-dlp of this virtual environment (the one the downloader imports)."""
    candidate = Path(sys.executable).parent / "yt-dlp"
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("yt-dlp")
    if found is None:
        raise RuntimeError("no yt-dlp executable next to the interpreter or on PATH")
    return found


def _run(command: list[str], *, capture: bool = False) -> str:
    """Run a tool, stdout kept only when ``capture``; RuntimeError with stderr on failure."""
    result = subprocess.run(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    if result.returncode != 0:
        tail = result.stderr.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{command[0]} exited with {result.returncode}:\n{tail}")
    return result.stdout.decode(errors="replace") if capture else ""


def probe_command(path: Path) -> list[str]:
    """The ffprobe command line prsnl_transcoder.media.probe runs for ``path``."""
    return media.probe_args(path)


def thumbnail_command(
    src: Path, outputs: Mapping[int, Path], *, at: float, video_index: int | None
) -> list[str]:
    """The one ffmpeg run prsnl_transcoder.media.make_thumbnails uses for every width."""
    widths = sorted(outputs)
    source = ffmpeg.input(media._url(src), ss=f"{at:.3f}", **INPUT_OPTIONS)
    copies = media._stream(source, video_index, "v:0").filter_multi_output("split", len(widths))
    jpegs = [
        copies[i]
        .filter("scale", width, -2)
        .output(media._url(outputs[width]), f="image2", update=1, **{"frames:v": 1, "q:v": 3})
        for i, width in enumerate(widths)
    ]
    return list(ffmpeg.merge_outputs(*jpegs).compile(cmd=[media.FFMPEG, *media._GLOBAL_ARGS]))


def raw_baseline(url: str, workdir: Path, settings: TranscoderSettings | None = None) -> RawRun:
    """Download ``url`` with the yt-dlp CLI, then do the transcoder's ffmpeg work by hand.

    The steps mirror prsnl_transcoder.service.process_video: ffprobe the original, plan,
    copy/remux/transcode with the transcoder's own argument builders, ffprobe the output,
    and one thumbnail run for every configured width. ``workdir`` must be empty or absent.
    """
    started = time.perf_counter()
    run = raw_download(url, workdir)
    raw_process(run, workdir, settings)
    run.total_s = time.perf_counter() - started
    return run


def _step(run: RawRun, name: str, command: list[str], *, capture: bool = False) -> str:
    """Run one tool of ``run``, adding its time to the step ``name``."""
    run.commands.append(command)
    begun = time.perf_counter()
    out = _run(command, capture=capture)
    run.steps[name] = run.steps.get(name, 0.0) + time.perf_counter() - begun
    return out


def raw_download(url: str, workdir: Path) -> RawRun:
    """The download half of :func:`raw_baseline`: yt-dlp CLI into ``workdir/original.*``."""
    workdir.mkdir(parents=True, exist_ok=False)
    run = RawRun(url=url)
    _step(run, "yt-dlp", [ytdlp_binary(), "--no-config", "-o", f"{workdir}/original.%(ext)s", url])
    return run


def raw_process(run: RawRun, workdir: Path, settings: TranscoderSettings | None = None) -> None:
    """The transcoder's half of :func:`raw_baseline` on the original ``raw_download`` left."""
    settings = settings or TranscoderSettings()
    originals = sorted(workdir.glob("original.*"))
    if len(originals) != 1:
        raise RuntimeError(f"yt-dlp left {[p.name for p in originals]} in {workdir}")
    source = originals[0]
    probe = ProbeResult.from_ffprobe(
        json.loads(_step(run, "2x ffprobe", probe_command(source), capture=True)),
        source.stat().st_size,
    )
    faststart = probe.is_mp4_family and media._has_faststart(source)
    plan = replace(
        plan_output(probe, limits_for(settings, None), None, faststart=faststart),
        preset=settings.preset,
    )
    run.action = plan.action
    output = workdir / "video.mp4"
    if plan.action == "copied":
        begun = time.perf_counter()
        shutil.copyfile(source, output)
        run.steps["copy"] = time.perf_counter() - begun
    elif plan.action == "remuxed":
        _step(run, "ffmpeg remux", media._remux_args(source, output, probe))
    else:
        _step(run, "ffmpeg transcode", media._transcode_args(source, output, plan, probe))
    result = ProbeResult.from_ffprobe(
        json.loads(_step(run, "2x ffprobe", probe_command(output), capture=True)),
        output.stat().st_size,
    )
    _raw_thumbnails(run, output, result, workdir, settings)


def _raw_thumbnails(
    run: RawRun, output: Path, result: ProbeResult, workdir: Path, settings: TranscoderSettings
) -> None:
    """One thumbnail run for every width, again from the start if the first frame was empty."""
    thumbs = {width: workdir / f"thumb-{width}.jpg" for width in settings.widths}
    at = thumbnail_time(result.duration)
    for seek in [at, 0.0] if at > 0 else [0.0]:
        _step(
            run,
            "thumbnails",
            thumbnail_command(output, thumbs, at=seek, video_index=result.video_index),
        )
        if all(path.is_file() and path.stat().st_size > 0 for path in thumbs.values()):
            return
    raise RuntimeError(f"no thumbnails for {output}")
