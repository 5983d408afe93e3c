"""Warm, killable yt-dlp child processes, supervised from the service's event loop.

Each child runs one job at a time (see :mod:`prsnl_downloader.ytdlp_child`).
The parent enforces what a child cannot enforce on itself: a hard time limit,
a stall watchdog (no new bytes for ``stall_seconds``) and a second, on-disk
guard of the byte cap. Any of those, a crash, or the caller's cancellation
kills the child; a fresh one replaces it in the background while the warm
ones keep serving. Pipes are read with ``loop.add_reader``, so nothing blocks
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from types import TracebackType

from prsnl_common.errors import PermanentError, TransientError
from prsnl_common.netguard import AllowRule
from prsnl_common.watchdog import Verdict, Watchdog
from prsnl_downloader.protocol import (
    ChildMessage,
    ChildReady,
    DownloadFailure,
    DownloadProgress,
    DownloadRequest,
    DownloadResult,
    Postprocessing,
    bytes_on_disk,
    format_bytes,
    remove_download_files,
)
from prsnl_downloader.ytdlp_child import child_main

ProgressCallback = Callable[[DownloadProgress], None]

DISK_CHECK_INTERVAL = 1.0
# While yt-dlp merges or remuxes, the inputs and the output sit side by side on disk.
POSTPROCESSING_DISK_FACTOR = 2
REPLACEMENT_BACKOFF = (1.0, 5.0, 30.0)

logger = logging.getLogger(__name__)


class ChildGone(Exception):
    """The child's end of the pipe closed: it crashed or was killed."""


class _Child:
    """One child process and the parent's end of its pipe."""

    def __init__(self, process: SpawnProcess, connection: Connection) -> None:
        self.process = process
        self.connection = connection
        self.pid = process.pid
        self.connected = True
        self._fd = connection.fileno()
        self._exit_code: int | None = None
        self._reaped = False
        self._exited: asyncio.Future[None] | None = None
        self._inbox: deque[ChildMessage] = deque()
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._fd, self._on_readable)

    def _on_readable(self) -> None:
        try:
            while self.connection.poll():
                self._inbox.append(self.connection.recv())
        except Exception:
            # EOF (the child died) or a message that does not unpickle: either way
            # this child is finished.
            self._disconnect()
        self._arrived.set()

    def _disconnect(self) -> None:
        if self.connected:
            self.connected = False
            self._loop.remove_reader(self._fd)

    @property
    def usable(self) -> bool:
        return self.connected and not self._reaped and self.process.is_alive()

    def send(self, request: DownloadRequest) -> None:
        try:
            self.connection.send(request)
        except OSError as exc:
            raise ChildGone(f"its pipe is closed ({exc})") from exc

    async def receive(self, wait: float) -> ChildMessage | None:
        """The next message, or None after ``wait`` seconds; ChildGone once it died."""
        while not self._inbox:
            if not self.connected:
                raise ChildGone(f"exit code {self.exit_code()}")
            self._arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
            except TimeoutError:
                return None
        return self._inbox.popleft()

    def kill(self) -> None:
        """Send SIGKILL (idempotent); :meth:`reap` waits for the end."""
        self._disconnect()
        if not self._reaped and self.process.exitcode is None:
            self.process.kill()

    async def reap(self) -> None:
        """Kill the process if needed, wait until it is gone, then release its resources."""
        if self._reaped:
            return
        self.kill()
        if self._exited is None:
            # The sentinel becomes readable when the process ends: no polling, no thread.
            # One shared future, so concurrent reapers all wake up.
            self._exited = self._loop.create_future()
            if self.process.exitcode is None:
                self._loop.add_reader(self.process.sentinel, self._on_exit)
            else:
                self._exited.set_result(None)
        await asyncio.shield(self._exited)
        if not self._reaped:
            self._reaped = True
            self.process.join()
            self._exit_code = self.process.exitcode
            self.connection.close()
            self.process.close()

    def _on_exit(self) -> None:
        self._loop.remove_reader(self.process.sentinel)
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)

    def exit_code(self) -> int | None:
        if self._reaped:
            return self._exit_code
        self.process.join(0)
        return self.process.exitcode


class DownloadPool:
    """``size`` warm yt-dlp processes; :meth:`run` hands a job to a free one and supervises it."""

    def __init__(
        self,
        size: int,
        *,
        allowlist: Iterable[AllowRule] = (),
        job_timeout: float = 1500.0,
        stall_seconds: float = 120.0,
        min_rate: float = 0.0,
        start_timeout: float = 60.0,
        acquire_timeout: float = 120.0,
        unavailable_modules: Iterable[str] = (),
    ) -> None:
        if size < 1:
            raise ValueError("a download pool needs at least one process")
        self.size = size
        self.allowlist = tuple(allowlist)
        # Modules the children must not import (tests: a child without pycryptodomex).
        self.unavailable_modules = tuple(unavailable_modules)
        self.job_timeout = job_timeout
        self.stall_seconds = stall_seconds
        self.min_rate = min_rate
        self.start_timeout = start_timeout
        self.acquire_timeout = acquire_timeout
        self._context = multiprocessing.get_context("spawn")
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._started = False
        self._closed = False

    async def __aenter__(self) -> DownloadPool:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Start every child and wait until each has yt-dlp warm."""
        if self._started:
            raise RuntimeError("the download pool is already started")
        self._started = True
        spawned = await asyncio.gather(
            *(self._spawn() for _ in range(self.size)), return_exceptions=True
        )
        failures = [result for result in spawned if isinstance(result, BaseException)]
        if failures:
            await self.close()
            raise RuntimeError(f"download processes failed to start: {failures[0]!r}")
        for child in spawned:
            if isinstance(child, _Child):
                self._idle.put_nowait(child)

    async def run(
        self, request: DownloadRequest, on_progress: ProgressCallback | None = None
    ) -> DownloadResult:
        """Download in a free child; raise the classified PipelineError on failure.

        Waits for a free child first (at most ``acquire_timeout``: with as many
        jobs as children that is only a replacement starting up), then the time
        limit counts. Both bounds together stay below the broker's consumer
        timeout. Cancelling the call kills the child, like every other way a job
        can end before its answer.
        """
        child = await self._acquire()
        try:
            outcome = await self._supervise(child, request, on_progress)
        except BaseException:
            # Timed out, stalled, over the cap on disk, crashed or cancelled: the
            # child may be mid-job, so it goes, and with it every partial file. The
            # caller hears of it only once the process is gone (milliseconds after
            # SIGKILL); a second cancellation cuts the wait, and the replacement
            # task then finishes reaping and cleaning up.
            child.kill()
            try:
                await asyncio.shield(child.reap())
            finally:
                remove_download_files(request.workdir)
                self._replace(child, cleanup=request.workdir)
            raise
        self._idle.put_nowait(child)
        if isinstance(outcome, DownloadFailure):
            for warning in outcome.warnings:
                logger.info("yt-dlp warning: %s", warning)
            raise outcome.error()
        return outcome

    async def close(self) -> None:
        """Stop every child (idle ones hold nothing worth saving) and the replacements under way."""
        self._closed = True
        # Jobs cancelled by the shutdown may still hand over their children meanwhile.
        while self._background:
            background = list(self._background)
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        children = list(self._children)
        self._children.clear()
        for child in children:
            child.kill()
        for child in children:
            await child.reap()
        while not self._idle.empty():
            self._idle.get_nowait()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live children (for logs and tests)."""
        return sorted(
            child.pid for child in self._children if child.connected and child.pid is not None
        )

    async def _acquire(self) -> _Child:
        while True:
            if self._closed or not self._started:
                raise RuntimeError("the download pool is not running")
            try:
                async with asyncio.timeout(self.acquire_timeout):
                    child = await self._idle.get()
            except TimeoutError:
                raise TransientError(
                    "download_failed",
                    f"No download process became free within {self.acquire_timeout:g} s.",
                ) from None
            if child.usable:
                return child
            logger.warning(
                "idle download process %s ended (exit code %s); replacing it",
                child.pid,
                child.exit_code(),
            )
            self._replace(child)

    async def _supervise(
        self, child: _Child, request: DownloadRequest, on_progress: ProgressCallback | None
    ) -> DownloadResult | DownloadFailure:
        loop = asyncio.get_running_loop()
        # Progress is at least one byte, and at least the minimum rate over the stall window.
        watch = Watchdog(
            limit=self.job_timeout,
            stall=self.stall_seconds,
            min_progress=self.min_rate * self.stall_seconds,
            clock=loop.time,
        )
        disk_limit = request.max_bytes
        next_disk_check = watch.started + DISK_CHECK_INTERVAL
        try:
            child.send(request)
            while True:
                verdict = watch.verdict()
                if verdict is not None:
                    await child.reap()
                    raise self._ended(verdict)
                if loop.time() >= next_disk_check:
                    await self._check_disk(child, request, disk_limit)
                    next_disk_check = loop.time() + DISK_CHECK_INTERVAL
                wait = min(watch.next_check(), next_disk_check - loop.time())
                message = await child.receive(max(wait, 0.0))
                if isinstance(message, DownloadResult | DownloadFailure):
                    return message
                if isinstance(message, DownloadProgress):
                    watch.progressed(message.downloaded_bytes)
                    if on_progress is not None:
                        self._report(on_progress, message)
                elif isinstance(message, Postprocessing):
                    # Merging or remuxing moves no bytes over the network but is progress.
                    watch.progressed()
                    disk_limit = request.max_bytes * POSTPROCESSING_DISK_FACTOR
        except ChildGone as exc:
            raise TransientError(
                "download_failed", f"The download process ended unexpectedly ({exc})."
            ) from exc

    @staticmethod
    async def _check_disk(child: _Child, request: DownloadRequest, limit: int) -> None:
        on_disk = bytes_on_disk(request.workdir)
        if on_disk > limit:
            await child.reap()
            raise PermanentError(
                "too_large",
                f"The download holds {format_bytes(on_disk)} on disk, over the size "
                f"limit of {format_bytes(request.max_bytes)}.",
            )

    def _ended(self, verdict: Verdict) -> TransientError | PermanentError:
        """A silent source may come back (retried); one that trickles is not worth retrying."""
        if verdict == "timeout":
            return TransientError(
                "download_timeout",
                f"The download took longer than its {self.job_timeout:g} s limit and was stopped.",
            )
        if verdict == "too_slow":
            return PermanentError(
                "source_too_slow",
                f"The source sent less than {format_bytes(int(self.min_rate))}/s for "
                f"{self.stall_seconds:g} s and the download was stopped.",
            )
        return TransientError(
            "download_stalled",
            f"The download made no progress for {self.stall_seconds:g} s and was stopped.",
        )

    @staticmethod
    def _report(on_progress: ProgressCallback, progress: DownloadProgress) -> None:
        # Progress is a courtesy: a failing callback must not cost the download.
        try:
            on_progress(progress)
        except Exception:
            logger.exception("progress callback failed")

    def _replace(self, child: _Child, cleanup: Path | None = None) -> None:
        """Retire ``child`` now and start a fresh one in the background."""
        # It stays in _children until reaped, so close() reaps it even if it interrupts this.
        child.kill()
        task = asyncio.get_running_loop().create_task(self._respawn(child, cleanup))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _respawn(self, old: _Child, cleanup: Path | None) -> None:
        await old.reap()
        self._children.discard(old)
        if cleanup is not None:
            # Now that the old process is certainly gone, nothing can write after this.
            remove_download_files(cleanup)
        attempt = 0
        while not self._closed:
            try:
                child = await self._spawn()
            except Exception:
                delay = REPLACEMENT_BACKOFF[min(attempt, len(REPLACEMENT_BACKOFF) - 1)]
                logger.exception("a replacement download process failed; retrying in %g s", delay)
                attempt += 1
                await asyncio.sleep(delay)
                continue
            if self._closed:
                await child.reap()
                return
            logger.info("download process %s replaced by %s", old.pid, child.pid)
            self._idle.put_nowait(child)
            return

    async def _spawn(self) -> _Child:
        parent_end, child_end = self._context.Pipe(duplex=True)
        # Started from the event loop's thread on purpose: PR_SET_PDEATHSIG fires when the
        # thread that created the child exits, and this thread lives as long as the service.
        process = self._context.Process(
            target=child_main,
            args=(child_end, self.allowlist, os.getpid(), self.unavailable_modules),
            name="prsnl-ytdlp",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            parent_end.close()
            raise
        finally:
            # The child holds its own copy; dropping ours makes its death visible as EOF.
            child_end.close()
        child = _Child(process, parent_end)
        self._children.add(child)
        try:
            ready = await child.receive(self.start_timeout)
            if not isinstance(ready, ChildReady):
                raise RuntimeError(
                    f"download process {child.pid} sent {ready!r} instead of saying ready"
                )
        except BaseException:
            self._children.discard(child)
            await child.reap()
            raise
        logger.info("download process %s ready with yt-dlp %s", ready.pid, ready.ytdlp_version)
        return child
