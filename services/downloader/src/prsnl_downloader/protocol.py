"""What the service and its yt-dlp child processes share: pipe messages and workdir rules.

One request goes down; any number of :class:`DownloadProgress` and
:class:`Postprocessing` messages come up, then exactly one
:class:`DownloadResult` or :class:`DownloadFailure`. A fresh child says
:class:`ChildReady` once yt-dlp is imported and warm. Everything here is a
small picklable value; exceptions never cross the pipe (a
:class:`~prsnl_common.errors.PipelineError` does not survive pickling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from prsnl_common.errors import PermanentError, PipelineError, TransientError
from prsnl_common.events import SourceInfo

# The server chooses every name yt-dlp writes: <workdir>/original.<ext>, never the title.
OUTPUT_STEM = "original"
# yt-dlp's own working names next to the output: .part, .ytdl, -FragN.part, .fNNN., .temp.
_FINAL_NAME = re.compile(rf"^{OUTPUT_STEM}\.([A-Za-z0-9_]{{1,16}})$")
_WORKING_EXTENSIONS = frozenset({"part", "ytdl", "temp"})


@dataclass(frozen=True)
class DownloadRequest:
    """One download: where from, where to, and within which bounds."""

    url: str
    workdir: Path
    max_bytes: int
    max_height: int = 1080
    audio_only: bool = False
    platform: str = "other"
    cookie_file: Path | None = None
    socket_timeout: float = 20.0
    progress_interval: float = 1.0


@dataclass(frozen=True)
class DownloadProgress:
    """Bytes so far across every file of the job (video and audio of a merge add up)."""

    downloaded_bytes: int
    total_bytes: int | None = None
    speed: float | None = None
    eta: float | None = None


@dataclass(frozen=True)
class Postprocessing:
    """yt-dlp started a post-processing step (merge, HLS fix-up): a sign of life without bytes."""

    step: str


@dataclass(frozen=True)
class DownloadResult:
    """The single output file of a successful job and what yt-dlp learned about the video."""

    path: Path
    size: int
    info: SourceInfo
    warnings: tuple[str, ...] = ()

    @property
    def extension(self) -> str:
        return self.path.suffix.lstrip(".").lower()


@dataclass(frozen=True)
class DownloadFailure:
    """A classified failure; :meth:`error` rebuilds the typed pipeline error."""

    code: str
    message: str
    retryable: bool
    warnings: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, error: PipelineError, warnings: tuple[str, ...] = ()) -> DownloadFailure:
        return cls(error.code, error.message, error.retryable, warnings)

    def error(self) -> PipelineError:
        kind = TransientError if self.retryable else PermanentError
        return kind(self.code, self.message)


@dataclass(frozen=True)
class ChildReady:
    """A child finished its warm-up and waits for requests."""

    pid: int
    ytdlp_version: str


ChildMessage = DownloadProgress | Postprocessing | DownloadResult | DownloadFailure | ChildReady


def format_bytes(count: int) -> str:
    """A byte count for people: ``1.5 MiB``, ``300 KiB``, ``12 bytes``."""
    if count >= 1024 * 1024:
        return f"{count / (1024 * 1024):.1f} MiB"
    if count >= 1024:
        return f"{count / 1024:.0f} KiB"
    return f"{count} bytes"


def output_template(workdir: Path) -> str:
    """yt-dlp's output template: a fixed name in the job's directory, only the extension varies."""
    return str(workdir / f"{OUTPUT_STEM}.%(ext)s")


def final_outputs(workdir: Path) -> list[Path]:
    """Finished output files in ``workdir`` (yt-dlp's partial and intermediate files excluded)."""
    found = []
    for path in sorted(workdir.glob(f"{OUTPUT_STEM}.*")):
        match = _FINAL_NAME.match(path.name)
        if match and match.group(1).lower() not in _WORKING_EXTENSIONS and path.is_file():
            found.append(path)
    return found


def download_files(workdir: Path) -> list[Path]:
    """Every file yt-dlp wrote or is writing for this job, partial ones included."""
    return [path for path in workdir.glob(f"{OUTPUT_STEM}.*") if path.is_file()]


def remove_download_files(workdir: Path) -> None:
    """Remove whatever yt-dlp wrote in ``workdir`` (after a failure: no partial file survives)."""
    for path in download_files(workdir):
        path.unlink(missing_ok=True)


def bytes_on_disk(workdir: Path) -> int:
    """Total size of the job's files in ``workdir``, partial ones included."""
    total = 0
    for path in download_files(workdir):
        try:
            total += path.stat().st_size
        except FileNotFoundError:
            # yt-dlp renames .part files as it goes; a vanished name is counted under its new one.
            continue
    return total
