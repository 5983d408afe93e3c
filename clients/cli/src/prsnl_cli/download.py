"""Download an item's video to a file, resuming a partial one with Range and If-Range.

The bytes go to ``FILE.part``; the ETag of the answer that started it is kept
beside it in ``FILE.part.etag``. A later run asks only for the missing bytes,
with ``If-Range: <that ETag>``: the gateway answers 206 with the rest when the
file is still the same, or 200 with the whole new file when it changed (a
re-transcode), and the part is then started again. Only a part whose length
matches the file's is renamed to ``FILE``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from prsnl_cli.api import Api, Item
from prsnl_cli.errors import ApiProblem, CliError, ExitCode, ItemFailed, NetworkError

CHUNK = 256 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Downloaded:
    path: Path
    size: int
    resumed_from: int  # bytes that were already in the part file and not fetched again
    etag: str | None


@dataclass(frozen=True)
class PartFile:
    """The partial download of ``target`` and the ETag it belongs to."""

    target: Path

    @property
    def path(self) -> Path:
        return self.target.with_name(self.target.name + ".part")

    @property
    def etag_path(self) -> Path:
        return self.target.with_name(self.target.name + ".part.etag")

    def resumable(self) -> tuple[int, str | None]:
        """(bytes already there, their ETag); (0, None) when there is nothing to resume."""
        try:
            etag = self.etag_path.read_text(encoding="utf-8").strip()
            size = self.path.stat().st_size
        except FileNotFoundError:
            return 0, None
        return (size, etag) if etag and size else (0, None)

    def restart(self, etag: str | None) -> None:
        self.path.write_bytes(b"")
        if etag:
            self.etag_path.write_text(etag + "\n", encoding="utf-8")
        else:
            self.etag_path.unlink(missing_ok=True)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
        self.etag_path.unlink(missing_ok=True)

    def finish(self) -> None:
        self.path.replace(self.target)
        self.etag_path.unlink(missing_ok=True)


def content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, whole size) of a ``Content-Range`` header; None where it says nothing."""
    match = _CONTENT_RANGE.match((header or "").strip())
    if not match:
        return None, None
    first, _last, size = match.groups()
    return (int(first) if first is not None else None), int(size)


def video_link(item: Item, base_url: str) -> tuple[str, bool]:
    """The item's video URL and whether it is signed (opens without the key)."""
    link = (item.get("links") or {}).get("video")
    if not link:
        raise ItemFailed(
            f"Item {item.get('id')} has no video yet (it is {item.get('status')}).",
            ExitCode.CONFLICT if item.get("status") != "failed" else ExitCode.FAILED,
        )
    signed = "sig=" in httpx.URL(link).query.decode()
    return (link if link.startswith(("http://", "https://")) else base_url + link), signed


class Throttle:
    """Keeps the average rate at or under ``rate`` bytes per second (None: no limit)."""

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self.started = time.monotonic()
        self.sent = 0

    async def passed(self, count: int) -> None:
        self.sent += count
        if self.rate:
            ahead = self.sent / self.rate - (time.monotonic() - self.started)
            if ahead > 0:
                await asyncio.sleep(ahead)


async def download(
    api: Api,
    item_id: str,
    target: Path,
    on_progress: Progress,
    limit_rate: int | None = None,
) -> Downloaded:
    """Fetch the video of ``item_id`` into ``target``, resuming ``target.part`` if there is one.

    A signed link that expired meanwhile is fetched afresh once; a part as long
    as the file (a run cut just before the rename) is checked with HEAD and kept.
    """
    part = PartFile(target)
    for attempt in range(3):
        item = await api.item(item_id)
        url, signed = video_link(item, api.base_url)
        try:
            return await _fetch(api, url, signed, part, on_progress, limit_rate)
        except ApiProblem as problem:
            if problem.status == 416:
                whole = await _whole_already(api, url, signed, part)
                if whole is not None:
                    return whole
                part.discard()
            elif problem.code not in ("link_expired", "link_invalid") or attempt:
                raise
    raise CliError(f"Could not download item {item_id}; run again.", ExitCode.SERVER)


async def _fetch(
    api: Api,
    url: str,
    signed: bool,
    part: PartFile,
    on_progress: Progress,
    limit_rate: int | None,
) -> Downloaded:
    offset, etag = part.resumable()
    headers = {} if signed else dict(api.auth)  # a signed link needs (and gets) no key
    if offset and etag:
        headers.update({"Range": f"bytes={offset}-", "If-Range": etag})
    timeout = httpx.Timeout(30.0, read=120.0)
    async with api.stream("GET", url, headers, timeout) as answer:
        if answer.status_code == 206:
            first, size = content_range(answer.headers.get("content-range"))
            if first != offset:
                raise CliError(f"The API resumed at byte {first}, not {offset}.", ExitCode.SERVER)
        else:  # 200: the whole file, new or changed since the part began
            offset, etag = 0, answer.headers.get("etag")
            size = _int(answer.headers.get("content-length"))
            part.restart(etag)
        with part.path.open("ab") as handle:
            await _copy(answer, handle, offset, size, on_progress, Throttle(limit_rate))
    written = part.path.stat().st_size
    if size is not None and written != size:
        raise NetworkError(
            f"The download stopped at {written} of {size} bytes; run the same command to resume."
        )
    part.finish()
    return Downloaded(part.target, written, offset, etag)


async def _copy(
    answer: httpx.Response,
    handle: IO[bytes],
    done: int,
    size: int | None,
    on_progress: Progress,
    throttle: Throttle,
) -> None:
    on_progress(done, size)
    try:
        async for chunk in answer.aiter_bytes(CHUNK):
            handle.write(chunk)
            done += len(chunk)
            on_progress(done, size)
            await throttle.passed(len(chunk))
    except httpx.TransportError as exc:
        handle.flush()
        raise NetworkError(
            f"The download broke off at {done} bytes ({exc}); run again to resume."
        ) from exc


async def _whole_already(api: Api, url: str, signed: bool, part: PartFile) -> Downloaded | None:
    """The finished download when the part has the file's ETag and length (checked with HEAD)."""
    offset, etag = part.resumable()
    headers = {} if signed else dict(api.auth)
    async with api.stream("HEAD", url, headers, httpx.Timeout(30.0)) as answer:
        same = answer.headers.get("etag") == etag
        if not (same and _int(answer.headers.get("content-length")) == offset):
            return None
    part.finish()
    return Downloaded(part.target, offset, offset, etag)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
