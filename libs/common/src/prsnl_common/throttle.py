"""One report per interval (per key): how every stage keeps progress cheap, written once."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

FORGET_AFTER = 60.0  # seconds; keys idle this long are dropped so the table stays small
MAX_KEYS = 10_000


class Throttle:
    """``due(key)`` is True at most once per ``interval`` seconds for each key.

    ``final=True`` always passes (the last report of a job must never be dropped).
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[Hashable, float] = {}

    def due(self, key: Hashable = None, *, final: bool = False) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if not final and last is not None and now - last < self.interval:
            return False
        self._last[key] = now
        if len(self._last) > MAX_KEYS:
            self._last = {k: t for k, t in self._last.items() if now - t < FORGET_AFTER}
        return True
