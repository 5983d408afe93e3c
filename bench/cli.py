"""Command line of the benchmarks: run every section against one stack and print the report."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench import environment, intake, memory, throughput
from bench.capture import POLL_SECONDS, STEP_ORDER, PipelineRun, RawRun, capture_ready, raw_baseline
from bench.nginx import nginx_binary, running_nginx
from bench.report import (
    MIB,
    fmt_count,
    fmt_mib,
    fmt_ratio,
    fmt_seconds,
    format_table,
    median,
    ratio,
)
from bench.wrk import WrkResult, range_script, run_wrk, wrk_binary, wrk_command

SECTIONS = ("capture", "api", "stream", "throughput", "intake")
# The parallelism of the benchmark stack, which the raw side of the throughput row copies.
DOWNLOADS_AT_ONCE = 2
PROCESSES_AT_ONCE = 1
REPO = Path(__file__).resolve().parent.parent
# The gateway's processes (PRSNL_INGEST_WORKERS), one per core; nginx gets as many.
GATEWAY_WORKERS = 2
WARMUP_SECONDS = 2  # of intake, before the measured run
# Captures are not rate limited here (the bench measures them); the parallelism is explicit.
STACK_SETTINGS = {
    "PRSNL_INGEST_WORKERS": str(GATEWAY_WORKERS),
    "PRSNL_INGEST_CAPTURE_RATE_LIMIT": "1000000/minute",
    "PRSNL_DOWNLOADER_CONCURRENCY": str(DOWNLOADS_AT_ONCE),
    "PRSNL_TRANSCODER_CONCURRENCY": str(PROCESSES_AT_ONCE),
}
CACHE_DIR = REPO / "var" / "bench-cache"


@dataclass(frozen=True)
class Clip:
    """A generated source clip and how to make it with tests.support.clips.make_clip."""

    name: str
    label: str
    duration: float
    width: int
    height: int
    fps: int
    vcodec: str
    acodec: str
    # False for the MP4: without faststart the transcoder remuxes (moov before mdat).
    faststart: bool = True

    def make(self, directory: Path) -> Path:
        from tests.support.clips import make_clip

        return make_clip(
            directory / self.name,
            duration=self.duration,
            width=self.width,
            height=self.height,
            fps=self.fps,
            vcodec=self.vcodec,
            acodec=self.acodec,
            faststart=self.faststart,
        )

    def run_link(self, directory: Path, tag: str) -> str:
        """``runs/<stem>-<tag><suffix>``: a per-run name (symlink) for the clip in ``directory``.

        ``?run=N`` alone is not enough: yt-dlp's generic extractor takes the video id from
        the file name and the catalog keeps one item per owner and video id, so a second
        capture of the same name is folded into the first after its download.
        """
        name = Path(self.name)
        link = directory / "runs" / f"{name.stem}-{tag}{name.suffix}"
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(Path("..") / self.name)
        return f"runs/{link.name}"


H264 = Clip(
    "h264-720p30-10s.mp4",
    "MP4 H.264/AAC 720p30 10 s",
    duration=10,
    width=1280,
    height=720,
    fps=30,
    vcodec="h264",
    acodec="aac",
    faststart=False,
)
VP9 = Clip(
    "vp9-1080p30-60s.webm",
    "WebM VP9/Opus 1080p30 60 s",
    duration=60,
    width=1920,
    height=1080,
    fps=30,
    vcodec="vp9",
    acodec="opus",
)
CLIPS = (H264, VP9)


@dataclass(frozen=True)
class Options:
    runs: int
    quick: bool
    sections: tuple[str, ...]
    api_seconds: int
    stream_seconds: int
    full_seconds: int
    batch_jobs: int
    intake_seconds: int
    json_path: Path | None
    cache_dir: Path


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "PRSNL Media benchmarks, each next to the raw tool doing the same work in the same "
            "run: capture->ready vs the yt-dlp CLI plus the transcoder's ffmpeg commands, GET "
            "/api/v1/items/{id} under 32 connections (vs /healthz), 1 MiB Range streaming "
            "vs nginx serving the same file, a batch of captures at once vs the raw tools with "
            "the same parallelism, capture intake vs raw asyncpg writes of the same rows, and "
            "the memory of every service. Needs PostgreSQL, RabbitMQ, ffmpeg, wrk and nginx "
            "(make bench installs what is missing)."
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 capture per clip, a batch of 8 and 3 s wrk runs instead of 3 "
        "captures, a batch of 40 and 10 s",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only these sections (repeat or comma-separate): {', '.join(SECTIONS)}",
    )
    parser.add_argument("--runs", type=int, help="captures per clip (default 3, 1 with --quick)")
    parser.add_argument(
        "--batch",
        type=int,
        help="captures at once in the throughput row (default 40, 8 with --quick)",
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=CACHE_DIR,
        help=f"where generated clips are kept between runs (default {CACHE_DIR})",
    )
    args = parser.parse_args(argv)
    sections: list[str] = []
    for value in args.only or []:
        for raw_name in value.split(","):
            name = raw_name.strip()
            if name not in SECTIONS:
                parser.error(f"unknown section {name!r}; choose from {', '.join(SECTIONS)}")
            if name not in sections:
                sections.append(name)
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    batch = args.batch if args.batch is not None else (8 if args.quick else 40)
    if batch < 1:
        parser.error("--batch must be at least 1")
    return Options(
        runs=runs,
        quick=args.quick,
        sections=tuple(s for s in SECTIONS if s in sections) if sections else SECTIONS,
        api_seconds=3 if args.quick else 10,
        stream_seconds=3 if args.quick else 10,
        full_seconds=2 if args.quick else 3,
        batch_jobs=batch,
        intake_seconds=3 if args.quick else 10,
        json_path=args.json.resolve() if args.json else None,
        cache_dir=args.cache_dir.resolve(),
    )


_STARTED = time.monotonic()


def note(message: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"[{time.monotonic() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def emit(text: str = "") -> None:
    print(text, flush=True)


# -- section 1: capture -> ready ------------------------------------------------------------


@dataclass
class ClipResult:
    clip: Clip
    pipeline: list[PipelineRun]
    raw: list[RawRun]

    @property
    def actions(self) -> str:
        found = sorted({run.action for run in self.pipeline} | {run.action for run in self.raw})
        return "/".join(found)


def measure_capture(
    client: httpx.Client,
    clip: Clip,
    url: Callable[[str], str],
    cache_dir: Path,
    scratch: Path,
    runs: int,
) -> ClipResult:
    """``runs`` pipeline captures and ``runs`` raw baselines, interleaved, alternating order."""
    result = ClipResult(clip, [], [])
    for index in range(1, runs + 1):
        link = url(f"/files/{clip.run_link(cache_dir, f'run{index}')}?run={index}")

        def pipeline(link: str = link, index: int = index) -> None:
            run = capture_ready(client, link)
            result.pipeline.append(run)
            note(f"{clip.name} run {index}/{runs}: pipeline {run.total_s:.2f} s ({run.action})")

        def raw(link: str = link, index: int = index) -> None:
            workdir = scratch / f"raw-{clip.name}-{index}"
            try:
                run = raw_baseline(link, workdir)
            finally:
                _remove_tree(workdir)
            result.raw.append(run)
            note(f"{clip.name} run {index}/{runs}: raw tools {run.total_s:.2f} s ({run.action})")

        for step in (raw, pipeline) if index % 2 else (pipeline, raw):
            step()
    return result


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _runs(values: Sequence[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values)


def capture_report(results: Sequence[ClipResult], runs: int) -> str:
    lines = [
        f"1. Capture -> ready, median of {runs} run{'s' if runs > 1 else ''} per clip "
        "(1 downloader, 1 transcoder)",
        "   each run has its own URL: a per-run file name (symlink to the clip) plus ?run=N",
        f"   pipeline = POST /api/v1/captures until GET /api/v1/items/{{id}} says ready "
        f"(polled every {POLL_SECONDS * 1000:.0f} ms)",
        "   raw tools = yt-dlp CLI (new process) + the transcoder's own ffprobe/ffmpeg commands",
        "   ratio = pipeline / raw tools (the pipeline's overhead; 1.00x = none)",
        "",
    ]
    rows = []
    for result in results:
        pipe = median([r.total_s for r in result.pipeline])
        raw = median([r.total_s for r in result.raw])
        rows.append(
            [
                result.clip.label,
                result.actions,
                fmt_seconds(pipe),
                fmt_seconds(raw),
                fmt_ratio(ratio(pipe, raw)),
                _runs([r.total_s for r in result.pipeline]),
                _runs([r.total_s for r in result.raw]),
            ]
        )
    lines.append(
        format_table(
            ["clip", "action", "pipeline", "raw tools", "ratio", "pipeline runs s", "raw runs s"],
            rows,
        )
    )
    lines += ["", "   By stage (medians): download = POST until GET first shows it downloaded;"]
    lines += ["   processing = from then until ready."]
    stage_rows = []
    for result in results:
        short = result.clip.vcodec.upper().replace("H264", "H.264")
        down = median([r.download_s for r in result.pipeline])
        ytdlp = median([r.ytdlp_s for r in result.raw])
        proc = median([r.process_s for r in result.pipeline])
        tools = median([r.ffmpeg_s for r in result.raw])
        stage_rows += [
            [
                f"{short} download",
                "yt-dlp CLI",
                fmt_seconds(down),
                fmt_seconds(ytdlp),
                fmt_ratio(ratio(down, ytdlp)),
            ],
            [
                f"{short} processing",
                "ffprobe/ffmpeg",
                fmt_seconds(proc),
                fmt_seconds(tools),
                fmt_ratio(ratio(proc, tools)),
            ],
        ]
    lines.append(format_table(["stage", "raw equivalent", "pipeline", "raw", "ratio"], stage_rows))
    lines += ["", "   Raw tool steps (medians):"]
    used = {name for result in results for run in result.raw for name in run.steps}
    step_names = [name for name in STEP_ORDER if name in used]
    step_rows = []
    for result in results:
        cells = [result.clip.label]
        for name in step_names:
            values = [run.steps[name] for run in result.raw if name in run.steps]
            cells.append(fmt_seconds(median(values)) if values else "-")
        step_rows.append(cells)
    lines.append(format_table(["clip", *step_names], step_rows))
    lines.append(
        "   (2x ffprobe: the original and the output, as the transcoder does; thumbnails: one "
        "ffmpeg run for 3 widths)"
    )
    return "\n".join(lines)


# -- section 2: GET /api/v1/items/{id} ------------------------------------------------------


def api_report(healthz: WrkResult, items: WrkResult, seconds: int) -> str:
    rows = [
        _latency_row("/healthz (no database)", healthz),
        _latency_row("/api/v1/items/{id}", items),
        [
            "items / healthz",
            fmt_ratio(ratio(items.requests_per_s, healthz.requests_per_s)),
            "",
            fmt_ratio(ratio(items.p99_s, healthz.p99_s)),
            "",
        ],
    ]
    return "\n".join(
        [
            f"2. GET under 32 concurrent connections (wrk -t2 -c32 -d{seconds}s --latency, "
            "with the API key)",
            "",
            format_table(["endpoint", "req/s", "p50", "p99", "errors"], rows),
        ]
    )


def _latency_row(label: str, result: WrkResult) -> list[str]:
    return [
        label,
        fmt_count(result.requests_per_s),
        fmt_seconds(result.p50_s),
        fmt_seconds(result.p99_s),
        fmt_count(result.errors),
    ]


# -- section 3: streaming -------------------------------------------------------------------


def payload_rate(result: WrkResult, body_bytes: int) -> float:
    """Body bytes per second of the completed responses.

    wrk's Transfer/sec also counts headers and the partial bodies still in flight when
    the run stops (32 connections x up to 1 MiB), so it overstates slow servers a little.
    """
    return result.requests_per_s * body_bytes


def stream_report(
    size: int,
    ours: WrkResult,
    theirs: WrkResult,
    ours_full: WrkResult,
    theirs_full: WrkResult,
    nginx_version: str,
    seconds: int,
    full_seconds: int,
    offload: WrkResult | None = None,
    offload_full: WrkResult | None = None,
    signed: WrkResult | None = None,
    signed_full: WrkResult | None = None,
) -> str:
    """Section 3: random 1 MiB ranges and full-file GETs, ours next to nginx.

    With ``offload``, also ours behind nginx with X-Accel-Redirect (a Bearer key: the
    gateway authorises each request, nginx sends the bytes); with ``signed``, a signed
    link through the same nginx (one cached authorisation per link, every range by nginx).
    """
    processes = "1 process" if GATEWAY_WORKERS == 1 else f"{GATEWAY_WORKERS} workers"
    nginx_label = f"nginx {nginx_version} (sendfile, {processes})"
    fronted = [
        (label, short, ranges, full)
        for label, short, ranges, full in (
            ("ours via nginx X-Accel-Redirect (Bearer)", "offloaded", offload, offload_full),
            ("ours via nginx, signed link", "signed link", signed, signed_full),
        )
        if ranges is not None and full is not None
    ]
    rows = [_range_row("ours /api/v1/items/{id}/video", ours)]
    rows += [_range_row(label, ranges) for label, _, ranges, _ in fronted]
    rows.append(_range_row(nginx_label, theirs))
    rows.append(_ratio_row("ours / nginx", ours, theirs, MIB))
    rows += [_ratio_row(f"{short} / nginx", ranges, theirs, MIB) for _, short, ranges, _ in fronted]
    full_rows = [_full_row("ours", ours_full, size)]
    full_rows += [_full_row(label, full, size) for label, _, _, full in fronted]
    full_rows.append(_full_row(nginx_label, theirs_full, size))
    full_rows.append(_full_ratio_row("ours / nginx", ours_full, theirs_full, size))
    full_rows += [
        _full_ratio_row(f"{short} / nginx", full, theirs_full, size)
        for _, short, _, full in fronted
    ]
    return "\n".join(
        [
            f"3. Streaming the ready 720p video ({size / MIB:.1f} MiB, the same file for both)",
            f"   random 1 MiB Range requests (wrk -t2 -c32 -d{seconds}s, Lua script); "
            "ratio = ours / nginx",
            "   MiB/s = completed responses x body size / time",
            "",
            format_table(["server", "req/s", "MiB/s", "p50", "p99", "errors"], rows),
            "",
            f"   Full-file GET, one connection, back to back (wrk -t1 -c1 -d{full_seconds}s)",
            "",
            format_table(["server", "GETs/s", "MiB/s", "per GET", "errors"], full_rows),
        ]
    )


def _range_row(label: str, result: WrkResult) -> list[str]:
    return [
        label,
        fmt_count(result.requests_per_s),
        fmt_mib(payload_rate(result, MIB)),
        fmt_seconds(result.p50_s),
        fmt_seconds(result.p99_s),
        fmt_count(result.errors),
    ]


def _full_row(label: str, result: WrkResult, size: int) -> list[str]:
    return [
        label,
        fmt_count(result.requests_per_s, 1),
        fmt_mib(payload_rate(result, size)),
        fmt_seconds(result.latency_avg_s),
        fmt_count(result.errors),
    ]


def _ratio_row(label: str, ours: WrkResult, theirs: WrkResult, body: int) -> list[str]:
    return [
        label,
        fmt_ratio(ratio(ours.requests_per_s, theirs.requests_per_s)),
        fmt_ratio(ratio(payload_rate(ours, body), payload_rate(theirs, body))),
        fmt_ratio(ratio(ours.p50_s, theirs.p50_s)),
        fmt_ratio(ratio(ours.p99_s, theirs.p99_s)),
        "",
    ]


def _full_ratio_row(label: str, ours: WrkResult, theirs: WrkResult, size: int) -> list[str]:
    return [
        label,
        fmt_ratio(ratio(ours.requests_per_s, theirs.requests_per_s)),
        fmt_ratio(ratio(payload_rate(ours, size), payload_rate(theirs, size))),
        fmt_ratio(ratio(ours.latency_avg_s, theirs.latency_avg_s)),
        "",
    ]


def check_same_range(ours: httpx.Response, theirs: httpx.Response, size: int) -> None:
    """Both servers must answer a 1 MiB range with 206 and the same bytes."""
    for name, response in (("ours", ours), ("nginx", theirs)):
        if response.status_code != 206 or len(response.content) != min(MIB, size):
            raise RuntimeError(
                f"{name} answered a 1 MiB Range with {response.status_code} and "
                f"{len(response.content)} bytes"
            )
    if ours.content != theirs.content:
        raise RuntimeError("ours and nginx returned different bytes for the same range")


def check_bodies(label: str, result: WrkResult, body_bytes: int, connections: int) -> None:
    """A wrk run must have no errors and read about ``body_bytes`` per response.

    The bytes wrk read lie between the completed bodies (minus the rounding of its
    two-decimal print-out) and those plus one body per connection still in flight, plus
    headers; a server answering 200 with the whole file to a Range request falls outside.
    """
    if not result.requests:
        raise RuntimeError(f"{label}: no request completed")
    low = result.requests * body_bytes * 0.99
    high = (result.requests + connections) * (body_bytes + 1024) * 1.01
    if result.errors or not low <= result.bytes_read <= high:
        raise RuntimeError(
            f"{label}: {result.errors} errors, {result.bytes_read:.0f} bytes read for "
            f"{result.requests} responses of {body_bytes} bytes"
        )


# -- the run --------------------------------------------------------------------------------


def print_environment(info: dict[str, str], options: Options) -> None:
    emit(f"PRSNL Media benchmarks  {dt.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    mode = "quick" if options.quick else "full"
    emit(
        f"mode: {mode}, sections: {', '.join(options.sections)}, captures per clip: {options.runs}"
    )
    emit(f"gateway: {GATEWAY_WORKERS} worker processes (PRSNL_INGEST_WORKERS); nginx as many")
    emit("")
    width = max(len(key) for key in info)
    for key, value in info.items():
        emit(f"  {key.ljust(width)}  {value}")
    if os.getloadavg()[0] >= 1.0:
        emit("  (the 1-minute load is at least 1: other work shares these 2 cores, expect noise)")
    emit("")


@contextlib.contextmanager
def _started_media_server(root: Path) -> Iterator[Any]:
    from tests.support.media_server import MediaServer

    with MediaServer(root) as server:
        yield server


def run(options: Options) -> dict[str, Any]:
    from tests.support.stack import POSTGRES_URL, RABBITMQ_URL, running_stack

    wants = set(options.sections)
    needs_wrk = bool(wants & {"api", "stream", "intake"})
    wrk = wrk_binary() if needs_wrk else None
    nginx = nginx_binary() if "stream" in wants else None
    from bench.capture import ytdlp_binary

    info = environment.collect(
        ytdlp=ytdlp_binary(),
        nginx=nginx,
        wrk=wrk,
        postgres_dsn=POSTGRES_URL,
        rabbitmq_url=RABBITMQ_URL,
    )
    print_environment(info, options)
    results: dict[str, Any] = {
        "started_at": dt.datetime.now().astimezone().isoformat(),
        "options": {
            "quick": options.quick,
            "runs": options.runs,
            "sections": list(options.sections),
        },
        "environment": info,
    }

    options.cache_dir.mkdir(parents=True, exist_ok=True)
    clips = CLIPS if "capture" in wants else (H264,)
    with contextlib.ExitStack() as stack_exit:
        pool = stack_exit.enter_context(concurrent.futures.ThreadPoolExecutor(max_workers=2))
        # Generation (slow for VP9 the first time, cached after) overlaps the stack start-up.
        made = {clip.name: pool.submit(clip.make, options.cache_dir) for clip in clips}
        note(f"generating clips (cached in {options.cache_dir}) and starting the stack")
        root = Path(stack_exit.enter_context(tempfile.TemporaryDirectory(prefix="prsnl-bench-")))
        stack = stack_exit.enter_context(
            running_stack(root, downloaders=1, transcoders=1, **STACK_SETTINGS)
        )
        key = stack.create_key("bench")
        headers = {"Authorization": f"Bearer {key}"}
        client = stack_exit.enter_context(
            httpx.Client(base_url=stack.base_url, headers=headers, timeout=60)
        )
        server = stack_exit.enter_context(_started_media_server(options.cache_dir))
        for clip in clips:
            made[clip.name].result()
        note("clips ready")
        scratch = root / "raw"
        scratch.mkdir()

        # Warm-up (not counted): starts the downloader's child, fills caches, and gives the
        # ready 720p item that sections 2 and 3 read.
        warm_url = server.url(f"/files/{H264.run_link(options.cache_dir, 'warmup')}?run=warmup")
        warm = capture_ready(client, warm_url)
        note(f"warm-up capture {warm.total_s:.2f} s -> item {warm.item_id}")
        results["warmup_pipeline_s"] = warm.total_s
        moments = {"idle": memory.sample(stack.processes)}
        if "capture" in wants:
            warm_raw = raw_baseline(warm_url, scratch / "w")
            _remove_tree(scratch / "w")
            results["warmup_raw_s"] = warm_raw.total_s
            note(f"warm-up raw tools {warm_raw.total_s:.2f} s")
            clip_results = [
                measure_capture(client, clip, server.url, options.cache_dir, scratch, options.runs)
                for clip in clips
            ]
            emit(capture_report(clip_results, options.runs))
            emit(
                f"   (warm-up, not counted: pipeline {warm.total_s:.2f} s, "
                f"raw tools {warm_raw.total_s:.2f} s)"
            )
            emit("")
            results["capture"] = [_clip_json(result, key) for result in clip_results]

        if "api" in wants:
            assert wrk is not None
            results["api"] = {}
            found: dict[str, WrkResult] = {}
            for name, path in (("healthz", "/healthz"), ("items", f"/api/v1/items/{warm.item_id}")):
                command = wrk_command(
                    f"{stack.base_url}{path}",
                    threads=2,
                    connections=32,
                    duration_s=options.api_seconds,
                    headers=headers,
                    binary=wrk,
                )
                note(f"wrk {path}")
                found[name] = run_wrk(command, duration_s=options.api_seconds)
                results["api"][name] = {
                    "command": _redact(command, key),
                    **found[name].to_json(),
                }
            emit(api_report(found["healthz"], found["items"], options.api_seconds))
            emit("")

        if "stream" in wants:
            assert wrk is not None
            results["stream"] = _measure_stream(stack, warm, key, headers, wrk, options)
        if "throughput" in wants:
            results["throughput"] = _measure_throughput(stack, server, scratch, options)
            moments[f"after {options.batch_jobs} captures"] = memory.sample(stack.processes)
        if "intake" in wants:
            assert wrk is not None
            results["intake"] = _measure_intake(stack, server, wrk, options)
            moments["after intake"] = memory.sample(stack.processes)
        emit(memory.memory_report(moments))
        emit("")
        results["memory"] = memory.memory_json(moments)
        note("stopping the stack")
    # After the stack, nginx and the temporary folders are gone: the whole run's cost.
    results["elapsed_s"] = time.monotonic() - _STARTED
    results["load_average_at_end"] = " ".join(f"{value:.2f}" for value in os.getloadavg())
    return results


def _measure_stream(
    stack: Any,
    warm: PipelineRun,
    key: str,
    headers: dict[str, str],
    wrk: str,
    options: Options,
) -> dict[str, Any]:
    from prsnl_common.store import video_key

    relative = video_key(warm.item_id)
    path = Path(stack.media_root) / relative
    size = path.stat().st_size
    if size != warm.item.get("size"):
        raise RuntimeError(f"{path} has {size} bytes but the item says {warm.item.get('size')}")
    ours_url = f"{stack.base_url}/api/v1/items/{warm.item_id}/video"
    out: dict[str, Any] = {"file_bytes": size}
    # A second gateway replica that offloads files to an nginx in front of it.
    from tests.support.stack import free_port

    replica_port = free_port()
    stack.start(
        "ingest",
        extra_env={
            "PRSNL_INGEST_PORT": str(replica_port),
            "PRSNL_INGEST_ACCEL_REDIRECT_PREFIX": "/_media/",
        },
    )
    replica = stack.processes["ingest"][-1]
    replica_url = f"http://127.0.0.1:{replica_port}"
    stack.wait_ready(base_url=replica_url)
    with (
        running_nginx(Path(stack.media_root), workers=GATEWAY_WORKERS) as nginx,
        running_nginx(
            Path(stack.media_root), upstream=replica_url, workers=GATEWAY_WORKERS
        ) as front,
        tempfile.TemporaryDirectory(prefix="prsnl-bench-wrk-") as tmp,
    ):
        nginx_url = f"{nginx.base_url}/{relative}"
        offload_url = f"{front.base_url}/api/v1/items/{warm.item_id}/video"
        item_there = httpx.get(f"{front.base_url}/api/v1/items/{warm.item_id}", headers=headers)
        signed_url = item_there.json()["links"]["video"]
        check_same_range(
            httpx.get(offload_url, headers={**headers, "Range": f"bytes=0-{MIB - 1}"}),
            httpx.get(nginx_url, headers={"Range": f"bytes=0-{MIB - 1}"}),
            size,
        )
        probe = {"Range": f"bytes=0-{MIB - 1}"}
        check_same_range(
            httpx.get(ours_url, headers={**headers, **probe}),
            httpx.get(nginx_url, headers=probe),
            size,
        )
        script = Path(tmp) / "ranges.lua"
        script.write_text(range_script(size=size, chunk=MIB, seed=20240601))
        found: dict[str, WrkResult] = {}
        check_same_range(
            httpx.get(signed_url, headers=probe), httpx.get(nginx_url, headers=probe), size
        )
        plans: list[tuple[str, str, Path | None, int, int, int]] = [
            ("ours_ranges", ours_url, script, 2, 32, options.stream_seconds),
            ("offload_ranges", offload_url, script, 2, 32, options.stream_seconds),
            ("signed_ranges", signed_url, script, 2, 32, options.stream_seconds),
            ("nginx_ranges", nginx_url, script, 2, 32, options.stream_seconds),
            ("ours_full", ours_url, None, 1, 1, options.full_seconds),
            ("offload_full", offload_url, None, 1, 1, options.full_seconds),
            ("signed_full", signed_url, None, 1, 1, options.full_seconds),
            ("nginx_full", nginx_url, None, 1, 1, options.full_seconds),
        ]
        for name, url, lua, threads, connections, seconds in plans:
            command = wrk_command(
                url,
                threads=threads,
                connections=connections,
                duration_s=seconds,
                # A signed link is opened without a header, as a player opens it.
                headers={} if name.startswith("signed") else headers,
                script=lua,
                binary=wrk,
            )
            note(f"wrk {name}")
            found[name] = run_wrk(command, duration_s=seconds)
            out[name] = {"command": _redact(command, key), **found[name].to_json()}
        for name, _, lua, _, connections, _ in plans:
            check_bodies(name, found[name], MIB if lua else size, connections)
        emit(
            stream_report(
                size,
                found["ours_ranges"],
                found["nginx_ranges"],
                found["ours_full"],
                found["nginx_full"],
                nginx.version,
                options.stream_seconds,
                options.full_seconds,
                offload=found["offload_ranges"],
                offload_full=found["offload_full"],
                signed=found["signed_ranges"],
                signed_full=found["signed_full"],
            )
        )
        emit("")
    # Gone before the next rows: its relay and consumers would compete with the gateway's.
    replica.terminate()
    replica.wait(timeout=60)
    return out


def _measure_throughput(stack: Any, server: Any, scratch: Path, options: Options) -> dict[str, Any]:
    """Section 4: a batch of H.264 captures at once, then the raw tools on the same links."""
    client = httpx.Client(
        base_url=stack.base_url,
        headers={"Authorization": f"Bearer {stack.create_key('bench-throughput')}"},
        timeout=60,
    )
    links = [
        server.url(f"/files/{H264.run_link(options.cache_dir, f'batch{index}')}")
        for index in range(options.batch_jobs)
    ]
    with client:
        note(f"throughput: {len(links)} captures at once")
        ours = throughput.pipeline_batch(client, links)
    note(f"throughput: pipeline {ours.all_s:.1f} s; now the raw tools")
    raw = throughput.raw_batch(
        links, scratch, downloads=DOWNLOADS_AT_ONCE, processes=PROCESSES_AT_ONCE
    )
    parallelism = {"downloads": DOWNLOADS_AT_ONCE, "processes": PROCESSES_AT_ONCE}
    emit(throughput.throughput_report(H264.label, ours, raw, **parallelism))
    emit("")
    return throughput.throughput_json(ours, raw, **parallelism)


def _measure_intake(stack: Any, server: Any, wrk: str, options: Options) -> dict[str, Any]:
    """Section 5: wrk POSTing new links with the downloaders stopped, then raw asyncpg writes."""
    import asyncio
    import signal

    from tests.support.stack import POSTGRES_URL

    owner = "bench-intake"
    key = stack.create_key(owner)
    stack.kill("downloader", signal.SIGTERM)  # the queue then holds what the relay published
    queue = f"{stack.namespace}.downloader.url-captured"
    seconds = options.intake_seconds
    with tempfile.TemporaryDirectory(prefix="prsnl-bench-intake-") as tmp:

        def captures(api_key: str, links: str, duration: int) -> list[str]:
            folder = Path(tmp) / links
            folder.mkdir()
            return wrk_command(
                f"{stack.base_url}/api/v1/captures",
                threads=2,
                connections=32,
                duration_s=duration,
                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"},
                script=intake.write_script(folder, server.url(f"/files/{links}")),
                binary=wrk,
            )

        # The gateway's pools fill and its code warms up, as the raw side's pool is opened
        # full before it starts: captures of another owner, their messages cleared after.
        note(f"warm-up: wrk POST /api/v1/captures for {WARMUP_SECONDS} s (not counted)")
        run_wrk(
            captures(stack.create_key(f"{owner}-warmup"), "warmup", WARMUP_SECONDS),
            duration_s=WARMUP_SECONDS,
        )
        asyncio.run(intake.clear_warmup(stack.database_url, queue))
        command = captures(key, "intake", seconds)
        note("wrk POST /api/v1/captures")
        ours = run_wrk(command, duration_s=seconds)
    check = asyncio.run(intake.check_intake(stack.database_url, owner, ours.requests, queue))
    note("raw asyncpg item + outbox transactions")
    raw = asyncio.run(intake.raw_writes(POSTGRES_URL, seconds, 32))
    emit(intake.intake_report(ours, raw, check, seconds))
    emit("")
    return {"command": _redact(command, key), **intake.intake_json(ours, raw, check)}


def _redact(command: Sequence[str], key: str) -> list[str]:
    return [part.replace(key, "<key>") for part in command]


def _clip_json(result: ClipResult, key: str) -> dict[str, Any]:
    return {
        "clip": result.clip.name,
        "label": result.clip.label,
        "pipeline": [
            {
                "url": run.url,
                "item_id": run.item_id,
                "total_s": run.total_s,
                "download_s": run.download_s,
                "process_s": run.process_s,
                "statuses_first_seen_s": dict(run.seen),
                "action": run.action,
                "width": run.item.get("width"),
                "height": run.item.get("height"),
                "size": run.item.get("size"),
            }
            for run in result.pipeline
        ],
        "raw": [
            {
                "url": run.url,
                "total_s": run.total_s,
                "action": run.action,
                "steps_s": run.steps,
                "commands": [_redact(command, key) for command in run.commands],
            }
            for run in result.raw
        ],
        "pipeline_median_s": median([r.total_s for r in result.pipeline]),
        "raw_median_s": median([r.total_s for r in result.raw]),
    }


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))  # tests.support lives at the repository root
    results = run(options)
    emit(
        f"Total time {results['elapsed_s']:.0f} s; "
        f"load average at end {results['load_average_at_end']}."
    )
    if options.json_path is not None:
        options.json_path.parent.mkdir(parents=True, exist_ok=True)
        options.json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
        emit(f"Results written to {options.json_path}")
    return 0
