"""A job's hard time limit and stall window, written once for every stage.

The downloader's pool and the transcoder's ffmpeg runner both supervise a child
process: it must end before its limit, and it must keep moving. "Moving" is at
least ``min_progress`` units (bytes, say) within every ``stall`` seconds, so a
source that trickles a byte a second is told apart from one that went silent.
The watchdog only judges; the caller kills its process and names the error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

Verdict = Literal["timeout", "stalled", "too_slow"]


class Watchdog:
    def __init__(
        self,
        *,
        limit: float,
        stall: float | None = None,
        min_progress: float = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.stall = stall
        self.min_progress = max(min_progress, 1)
        self.clock = clock
        self.started = clock()
        self._moved_at = self.started
        self._mark: float | None = None
        self._latest: float | None = None

    def progressed(self, amount: float | None = None) -> None:
        """Something moved; ``amount`` is a running total (None: progress without a count).

        A total below the mark is the job's next file (video, then audio) and counts.
        """
        now = self.clock()
        if amount is None:
            self._moved_at = now
            return
        self._latest = amount
        if self._mark is None or amount < self._mark or amount - self._mark >= self.min_progress:
            self._mark, self._moved_at = amount, now

    def verdict(self) -> Verdict | None:
        """None while the job may go on; otherwise why it must end."""
        now = self.clock()
        if now - self.started >= self.limit:
            return "timeout"
        if self.stall is not None and now - self._moved_at >= self.stall:
            trickled = self._latest is not None and self._latest > (self._mark or 0)
            return "too_slow" if trickled else "stalled"
        return None

    def remaining(self, cap: float | None = None) -> float:
        """Seconds left of the limit (at most ``cap``); what a step of the job may take."""
        left = max(0.0, self.limit - (self.clock() - self.started))
        return left if cap is None else min(cap, left)

    def next_check(self) -> float:
        """Seconds until a verdict could change, for the caller's wait."""
        now = self.clock()
        due = self.started + self.limit
        if self.stall is not None:
            due = min(due, self._moved_at + self.stall)
        return max(0.0, due - now)
