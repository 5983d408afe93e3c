"""What runs inside a download child process: yt-dlp imported once, then one job after another.

The parent (:mod:`prsnl_downloader.pool`) can kill this process at any moment
— hard time limit, stall, shutdown — which is why yt-dlp runs here and not in
the service's event loop. At start the child arranges to die with its parent,
installs the connect-time SSRF guard, switches yt-dlp's plugins off and warms
the extractors up; then it answers requests over its pipe. yt-dlp is imported
only inside the child, never in the service process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prsnl_common.errors import PermanentError, TransientError
from prsnl_common.events import SourceInfo
from prsnl_common.netguard import AllowRule, install_connect_guard
from prsnl_common.throttle import Throttle
from prsnl_downloader.classify import classify_failure, facts_from_exception, summarize
from prsnl_downloader.protocol import (
    ChildMessage,
    ChildReady,
    DownloadFailure,
    DownloadProgress,
    DownloadRequest,
    DownloadResult,
    Postprocessing,
    final_outputs,
    format_bytes,
    remove_download_files,
)
from prsnl_downloader.ytdlp_guard import (
    EXTERNAL_PROGRAM_REFUSED,
    ExternalProgramRefused,
    install_native_only,
)
from prsnl_downloader.ytdlp_options import build_params

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# An HLS size estimate extrapolates the first fragments; it refuses a job only when it
# overshoots the cap by this factor. Downloaded bytes enforce the cap exactly.
ESTIMATE_TOLERANCE = 1.25
WARM_UP_URL = "https://warm-up.invalid/video.mp4"
LIVE_REFUSAL = "live streams cannot be saved; send the link again once the stream has ended"

Send = Callable[[ChildMessage], None]


class ByteCapExceeded(Exception):
    """Raised by the progress hook when a job's bytes pass the cap; yt-dlp lets it propagate.

    Its name is :data:`~prsnl_downloader.classify.BYTE_CAP_EXCEPTION`, so the
    classification recognises it even if yt-dlp ever wraps it.
    """


class CapturingLogger:
    """yt-dlp's logger: keeps warnings and errors for the report, drops the chatter."""

    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.errors: list[str] = []

    def debug(self, message: str) -> None:
        """yt-dlp sends both its debug and its info lines here; neither is kept."""

    def info(self, message: str) -> None:
        """Unused by yt-dlp (info goes to debug); present for loggers that expect it."""

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def error(self, message: str) -> None:
        self.errors.append(message)


class ProgressTracker:
    """yt-dlp's progress hook: adds up bytes across the job's files, enforces the cap, reports.

    The hook sees every block of a plain download, including chunked responses
    without Content-Length, and every fragment of HLS/DASH, so the cap holds
    whatever the server announces. Reports are throttled to one per interval.
    """

    def __init__(
        self,
        max_bytes: int,
        interval: float,
        send: Send,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.send = send
        self.throttle = Throttle(interval, clock)
        self._bytes_by_file: dict[str, int] = {}

    def __call__(self, status: dict[str, Any]) -> None:
        state = status.get("status")
        if state not in ("downloading", "finished"):
            return
        name = str(status.get("filename") or status.get("tmpfilename") or "")
        downloaded = int(status.get("downloaded_bytes") or 0)
        self._bytes_by_file[name] = downloaded
        earlier_files = sum(size for key, size in self._bytes_by_file.items() if key != name)
        so_far = earlier_files + downloaded
        total = _positive_int(status.get("total_bytes"))
        estimate = _positive_int(status.get("total_bytes_estimate"))
        self._enforce_cap(so_far, earlier_files, total, estimate)
        if self.throttle.due(final=state == "finished"):
            expected = total or estimate
            self.send(
                DownloadProgress(
                    downloaded_bytes=so_far,
                    total_bytes=earlier_files + expected if expected else None,
                    speed=_positive_float(status.get("speed")),
                    eta=_positive_float(status.get("eta")),
                )
            )

    def _enforce_cap(
        self, so_far: int, earlier_files: int, total: int | None, estimate: int | None
    ) -> None:
        cap = self.max_bytes
        if so_far > cap:
            raise ByteCapExceeded(
                f"The download passed the size limit of {format_bytes(cap)} "
                f"({format_bytes(so_far)} so far) and was stopped."
            )
        if total is not None and earlier_files + total > cap:
            raise ByteCapExceeded(
                f"The source announces {format_bytes(earlier_files + total)}, over the size "
                f"limit of {format_bytes(cap)}."
            )
        if estimate is not None and earlier_files + estimate > cap * ESTIMATE_TOLERANCE:
            raise ByteCapExceeded(
                f"The stream is estimated at {format_bytes(earlier_files + estimate)}, well over "
                f"the size limit of {format_bytes(cap)}."
            )


class LiveFilter:
    """yt-dlp's ``match_filter``: refuse live and upcoming streams, which have no end."""

    def __init__(self) -> None:
        self.refused = False

    def __call__(self, info: dict[str, Any], *, incomplete: bool = False) -> str | None:
        if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
            self.refused = True
            return LIVE_REFUSAL
        return None


class YtDlpRunner:
    """yt-dlp imported once and kept warm; runs one job at a time."""

    def __init__(self) -> None:
        import yt_dlp
        from yt_dlp import globals as ytdlp_globals

        # The Python API reads no configuration files; plugins, though, are searched on
        # sys.path and in config folders by the first YoutubeDL(). An empty plugin-dir
        # list is what --no-plugin-dirs sets: nothing is searched, nothing is loaded.
        ytdlp_globals.plugin_dirs.value = []
        install_native_only()
        self._yt_dlp = yt_dlp
        self.version: str = yt_dlp.version.__version__

    def warm_up(self) -> None:
        """Pay the one-off costs now: extractor classes and their URL patterns, the generic one."""
        from yt_dlp.extractor import gen_extractor_classes

        with self._yt_dlp.YoutubeDL(
            {"quiet": True, "no_warnings": True, "logger": CapturingLogger(), "cachedir": False}
        ) as ydl:
            for extractor in gen_extractor_classes():
                extractor.suitable(WARM_UP_URL)
            ydl.get_info_extractor("Generic")

    def run(self, request: DownloadRequest, send: Send) -> DownloadResult | DownloadFailure:
        """Download ``request.url`` into ``request.workdir``; never raises for a failed download."""
        log = CapturingLogger()
        progress = ProgressTracker(request.max_bytes, request.progress_interval, send)
        live = LiveFilter()

        def on_postprocessor(status: dict[str, Any]) -> None:
            if status.get("status") == "started":
                send(Postprocessing(str(status.get("postprocessor") or "postprocessor")))

        params = build_params(request) | {
            "logger": log,
            "progress_hooks": [progress],
            "postprocessor_hooks": [on_postprocessor],
            "match_filter": live,
        }
        outcome: DownloadResult | DownloadFailure
        try:
            with self._yt_dlp.YoutubeDL(params) as ydl:
                info = ydl.extract_info(request.url, download=True)
            outcome = _collect(request, info, log, live)
        except ByteCapExceeded as exc:
            outcome = DownloadFailure.of(PermanentError("too_large", str(exc)), _warnings(log))
        except ExternalProgramRefused as exc:
            outcome = DownloadFailure.of(
                PermanentError(EXTERNAL_PROGRAM_REFUSED, str(exc)), _warnings(log)
            )
        except self._yt_dlp.utils.YoutubeDLError as exc:
            # Broadly: a refused file:// raises RequestError, not DownloadError.
            outcome = _failure(exc, log)
        except Exception as exc:
            # Anything else (a disk error while writing, a bug in an extractor) is reported,
            # and this process stays usable for the next job.
            outcome = _failure(exc, log, prefix=f"{type(exc).__name__}: ")
        if isinstance(outcome, DownloadFailure):
            remove_download_files(request.workdir)
        return outcome


def _failure(exc: BaseException, log: CapturingLogger, prefix: str = "") -> DownloadFailure:
    facts = facts_from_exception(exc)
    if prefix:
        facts = replace(facts, messages=(prefix + facts.messages[0], *facts.messages[1:]))
    return DownloadFailure.of(classify_failure(facts), _warnings(log))


def _collect(
    request: DownloadRequest, info: Any, log: CapturingLogger, live: LiveFilter
) -> DownloadResult | DownloadFailure:
    warnings = _warnings(log)
    if live.refused:
        return DownloadFailure.of(PermanentError("unsupported_url", LIVE_REFUSAL), warnings)
    video = _single_entry(info)
    if video is None:
        return DownloadFailure.of(
            PermanentError("unsupported_url", "yt-dlp found no video at this link."), warnings
        )
    path = _output_path(request.workdir, video)
    if path is None:
        said = summarize([*log.warnings, *log.errors], limit=1)
        detail = f" ({said[0]})" if said else ""
        return DownloadFailure.of(
            TransientError("download_failed", f"yt-dlp finished without writing a file{detail}."),
            warnings,
        )
    size = path.stat().st_size
    if size > request.max_bytes:
        return DownloadFailure.of(
            PermanentError(
                "too_large",
                f"The file is {format_bytes(size)}, over the size limit of "
                f"{format_bytes(request.max_bytes)}.",
            ),
            warnings,
        )
    if size == 0:
        return DownloadFailure.of(
            TransientError("download_failed", "yt-dlp wrote an empty file."), warnings
        )
    return DownloadResult(path=path, size=size, info=source_info(video), warnings=warnings)


def _single_entry(info: Any) -> dict[str, Any] | None:
    # With playlist_items=1 a playlist (an Instagram carousel, a tweet with several
    # videos) comes back as a playlist holding the one entry that was downloaded.
    if not isinstance(info, dict):
        return None
    if info.get("_type") in ("playlist", "multi_video"):
        entries = [entry for entry in info.get("entries") or [] if isinstance(entry, dict)]
        return entries[0] if entries else None
    return info


def _output_path(workdir: Path, video: dict[str, Any]) -> Path | None:
    candidates = final_outputs(workdir)
    for download in video.get("requested_downloads") or []:
        reported = Path(str(download.get("filepath") or ""))
        if reported in candidates:
            return reported
    if not candidates:
        return None
    return max(candidates, key=lambda path: path.stat().st_size)


def source_info(info: dict[str, Any]) -> SourceInfo:
    """The parts of yt-dlp's info dict the catalog keeps (SourceInfo cleans and bounds them)."""
    return SourceInfo(
        title=info.get("title"),
        uploader=info.get("uploader") or info.get("channel") or info.get("uploader_id"),
        duration=info.get("duration"),
        webpage_url=info.get("webpage_url"),
        extractor=info.get("extractor_key") or info.get("extractor"),
        upload_date=info.get("upload_date"),
        description=info.get("description"),
        platform_video_id=info.get("id"),
    )


def child_main(
    connection: Connection,
    allowlist: tuple[AllowRule, ...],
    parent_pid: int,
    unavailable_modules: tuple[str, ...] = (),
) -> None:
    """Entry point of a child process: set up, say ready, then serve requests until told to stop.

    ``unavailable_modules`` are made unimportable before yt-dlp is imported, so
    tests can run the child as it runs where an optional dependency (such as
    pycryptodomex, ``Cryptodome``) is missing.
    """
    _die_with_parent(parent_pid)
    for name in unavailable_modules:
        sys.modules[name] = None  # type: ignore[assignment]  # "import name" raises ImportError
    # The service decides when a child ends (it kills it); a terminal's Ctrl-C or a SIGTERM
    # sent to the whole process group must not cut a download short behind its back.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    install_connect_guard(allowlist)
    runner = YtDlpRunner()
    runner.warm_up()
    connection.send(ChildReady(os.getpid(), runner.version))
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return
        if not isinstance(request, DownloadRequest):
            return
        connection.send(runner.run(request, connection.send))


def _die_with_parent(parent_pid: int) -> None:
    # A kill -9 of the service must not leave downloads running on their own.
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(error)}")
    if os.getppid() != parent_pid:
        # The parent died before prctl took effect; nobody is left to serve.
        os._exit(0)


def _warnings(log: CapturingLogger) -> tuple[str, ...]:
    return summarize(log.warnings)


def _positive_int(value: object) -> int | None:
    if isinstance(value, int | float) and value > 0:
        return int(value)
    return None


def _positive_float(value: object) -> float | None:
    if isinstance(value, int | float) and value >= 0:
        return float(value)
    return None
