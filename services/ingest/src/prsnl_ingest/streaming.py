"""HTTP range streaming of stored files: Range, If-Range, ETag, Last-Modified, HEAD, 416.

Litestar's ``File`` response ignores ``Range``, so seeking in a browser needs
this: one byte range per request (what players send; several ranges are
answered with the whole file, which RFC 9110 allows), validators for caches,
and a strong ETag so ``If-Range`` can be honoured.
"""

from __future__ import annotations

import email.utils
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, cast

from litestar.response import Stream
from litestar.response.base import ASGIResponse
from litestar.response.streaming import ASGIStreamingResponse
from litestar.types import HTTPResponseBodyEvent, Send

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


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


# Positions past any file: a number with more digits is read as this, never parsed (Python
# refuses int() of over 4300 digits, and a client may send thousands).
_FAR = 10**18


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return _FAR if len(digits) > 18 else int(digits)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive (start, end) of a single ``bytes=`` range, None for the whole file."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if not match:
        return None  # several ranges or another unit: serve the whole file
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        length = _position(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable(size)
        return max(0, size - length), size - 1
    start = _position(first)
    if start >= size:
        raise RangeNotSatisfiable(size)
    end = min(_position(last), size - 1) if last else size - 1
    if end < start:
        return None  # a syntactically invalid range is ignored, per RFC 9110
    return start, end


def if_range_allows(if_range: str | None, validators: FileValidators) -> bool:
    """True when a Range may be honoured: no If-Range, or it matches the current file."""
    if not if_range:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == validators.etag
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError, IndexError):
        return False  # not a date we can compare: the whole file, as for a changed one
    return int(parsed.timestamp()) == int(validators.mtime)


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
        except (TypeError, ValueError, OverflowError, IndexError):
            return False
        return int(validators.mtime) <= int(parsed.timestamp())
    return False


class FileStream(Stream):
    """Litestar's :class:`Stream` for a file's chunks of any bytes-like type: a view of a
    mapped file goes to the server as it is (Litestar's own ``Stream`` would call
    ``.encode`` on every chunk that is not ``bytes``)."""

    def __init__(self, chunks: AsyncIterator[bytes | memoryview], **options: Any) -> None:
        super().__init__(cast(AsyncIterator[bytes], chunks), **options)

    def to_asgi_response(self, *args: Any, **kwargs: Any) -> ASGIResponse:
        response = super().to_asgi_response(*args, **kwargs)
        response.__class__ = _ViewsStreaming  # the same fields; only _stream differs
        return response


class _ViewsStreaming(ASGIStreamingResponse):
    __slots__ = ()

    async def _stream(self, send: Send) -> None:
        async for chunk in self.iterator:
            body = {"type": "http.response.body", "body": chunk, "more_body": True}
            await send(cast(HTTPResponseBodyEvent, body))
        await send({"type": "http.response.body", "body": b"", "more_body": False})
