"""Server-Sent Events read from text lines (the HTML living standard's parsing rules)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServerEvent:
    """One dispatched event: its ``event`` name ("message" by default) and its data."""

    event: str
    data: str

    def json(self) -> dict[str, Any]:
        """The data as a JSON object (empty for data that is not one)."""
        try:
            value = json.loads(self.data) if self.data else {}
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}


@dataclass
class EventParser:
    """Feeds lines one at a time; :meth:`feed` returns an event when a blank line ends one."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> ServerEvent | None:
        line = line.rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None  # id, retry and unknown fields change nothing we use

    def _dispatch(self) -> ServerEvent | None:
        event, data = self._event or "message", self._data
        self._event, self._data = "", []
        if not data:
            return None
        return ServerEvent(event, "\n".join(data))


async def parse_events(lines: AsyncIterable[str]) -> AsyncIterator[ServerEvent]:
    """The events of a stream of lines."""
    parser = EventParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
