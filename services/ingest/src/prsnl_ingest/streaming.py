"""HTTP range streaming of stored files: Range, If-Range, ETag, Last-Modified, HEAD, 416.

Litestar's ``File`` response ignores ``Range``, so seeking in a browser needs
this: one byte range per request (what players send; several ranges are
answered with the whole file, which RFC 9110 allows), validators for caches,
and a strong ETag so ``If-Range`` can be honoured.
"""

from __future__ import annotations

import email.utils
import os
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
MAX_DIGITS = 19  # more than any file's size in bytes


class RangeNotSatisfiable(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"range outside 0-{size - 1}")
        self.size = size


@dataclass(frozen=True)
class FileValidators:
    size: int
    mtime: float

    @property
    def etag(self) -> str:
        return f'"{self.size:x}-{int(self.mtime * 1_000_000):x}"'

    @property
    def last_modified(self) -> str:
        return email.utils.formatdate(self.mtime, usegmt=True)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single ``bytes=`` range, None for the whole file."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match:
        return None  # several ranges or another unit: serve the whole file
    first, last = (_bounded(g) for g in match.groups())
    if first is None and last is None:
        return None
    if first is None:
        assert last is not None
        if last == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - last), size - 1
    if first >= size:
        raise RangeNotSatisfiable(size)
    end = min(last, size - 1) if last is not None else size - 1
    start = first
    if end < start:
        return None  # a syntactically invalid range is ignored, per RFC 9110
    return start, end


def _bounded(digits: str) -> int | None:
    """The number, capped past any file size: thousands of digits must not cost (or fail) int()."""
    if not digits:
        return None
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


def if_range_allows(if_range: str | None, validators: FileValidators) -> bool:
    """True when a Range may be honoured: no If-Range, or it matches the current file."""
    if not if_range:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == validators.etag
    try:
        parsed = email.utils.parsedate_to_datetime(value)
        return int(parsed.timestamp()) == int(validators.mtime)
    except (TypeError, ValueError, OverflowError):
        return False  # neither an ETag nor a date: the Range is not honoured, per RFC 9110


def not_modified(headers: Mapping[str, str], validators: FileValidators) -> bool:
    """Conditional GET: If-None-Match wins over If-Modified-Since."""
    if_none_match = headers.get("if-none-match")
    if if_none_match:
        tags = [t.strip() for t in if_none_match.split(",")]
        return "*" in tags or validators.etag in tags or f"W/{validators.etag}" in tags
    since = headers.get("if-modified-since")
    if since:
        try:
            parsed = email.utils.parsedate_to_datetime(since)
            return int(validators.mtime) <= int(parsed.timestamp())
        except (TypeError, ValueError, OverflowError):
            return False
    return False


async def read_file(path: Path, start: int, length: int, chunk_size: int) -> AsyncIterator[bytes]:
    """Yield ``length`` bytes of ``path`` from ``start`` in chunks, off the event loop."""
    async with await anyio.open_file(path, "rb") as handle:
        await handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = await handle.read(min(chunk_size, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk


def stat_file(path: Path) -> FileValidators:
    stat = os.stat(path)
    return FileValidators(stat.st_size, stat.st_mtime)
