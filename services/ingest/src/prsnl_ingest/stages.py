"""Stages paused for low disk, as their workers announce them, shown on the items that wait.

A worker that stops taking jobs for lack of disk announces a
:class:`~prsnl_common.events.StageState` (again every ``ANNOUNCE_SECONDS`` while
paused, and once when it resumes). Whichever gateway replica takes it records it
in ``stage_pauses`` and sends it on ``prsnl_stages``; every replica keeps the
paused ones in memory, so an item view costs no query. A pause not announced
again within ``FADE_SECONDS`` (its worker died) no longer counts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from prsnl_common.diskguard import ANNOUNCE_SECONDS, format_size
from prsnl_common.events import StageState

CHANNEL = "prsnl_stages"
FADE_SECONDS = 3 * ANNOUNCE_SECONDS
# The stage an item of this status waits for.
WAITS_FOR = {"pending": "downloader", "downloaded": "transcoder"}
JOBS = {"downloader": "Downloads are", "transcoder": "Processing is"}
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Waiting:
    """Why an item does not move although nothing failed (``low_disk``: its stage is paused)."""

    reason: str
    stage: str
    detail: str


@dataclass
class StagePauses:
    """The paused worker replicas this gateway knows of, with when each was last heard."""

    paused: dict[tuple[str, str], tuple[StageState, float]] = field(default_factory=dict)
    _reloading: asyncio.Task[None] | None = None

    def heard(self, payload: str) -> None:
        """A state sent on ``prsnl_stages`` (the hub's callback)."""
        try:
            state = StageState.model_validate_json(payload)
        except ValueError:
            logger.warning("unreadable stage state on %s: %r", CHANNEL, payload[:200])
            return
        self._apply(state, time.monotonic())

    def reload_soon(self, pool: asyncpg.Pool) -> None:
        """The listener reconnected: a pause or resume may have been missed; read them again."""
        self._reloading = asyncio.get_running_loop().create_task(self._reload(pool))

    async def _reload(self, pool: asyncpg.Pool) -> None:
        try:
            await self.load(pool)
        except (OSError, asyncpg.PostgresError) as exc:  # kept until the next announcement
            logger.warning("could not read the stage pauses again: %s", exc)

    async def load(self, pool: asyncpg.Pool) -> None:
        """The pauses announced recently, at start (or after the listener reconnected)."""
        rows = await pool.fetch(
            "SELECT *, extract(epoch FROM now() - seen_at) AS age FROM stage_pauses "
            "WHERE seen_at > now() - make_interval(secs => $1)",
            FADE_SECONDS,
        )
        self.paused.clear()
        for row in rows:
            state = StageState(
                service=row["service"],
                instance=row["instance"],
                paused=True,
                free_bytes=row["free_bytes"],
                min_free_bytes=row["min_free_bytes"],
            )
            self._apply(state, time.monotonic() - float(row["age"]))

    def _apply(self, state: StageState, seen: float) -> None:
        key = (state.service, state.instance)
        if state.paused:
            self.paused[key] = (state, seen)
        else:
            self.paused.pop(key, None)

    def waiting(self, status: str) -> Waiting | None:
        """Why an item of ``status`` waits, when the stage it needs is paused; else None."""
        service = WAITS_FOR.get(status)
        if service is None:
            return None
        now = time.monotonic()
        fresh = [
            state
            for (name, _), (state, seen) in self.paused.items()
            if name == service and now - seen < FADE_SECONDS
        ]
        if not fresh:
            return None
        state = min(fresh, key=lambda s: s.free_bytes)
        return Waiting(
            reason="low_disk",
            stage=service,
            detail=f"{JOBS[service]} paused: {format_size(state.free_bytes)} free in the "
            f"media store, below {format_size(state.min_free_bytes)}. The item waits and goes "
            "on by itself when space returns.",
        )


async def record(pool: asyncpg.Pool, state: StageState) -> None:
    """Keep ``state`` in the catalog and send it to every replica (on commit)."""
    async with pool.acquire() as connection, connection.transaction():
        if state.paused:
            await connection.execute(
                "INSERT INTO stage_pauses (service, instance, free_bytes, min_free_bytes) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (service, instance) DO UPDATE SET "
                "free_bytes = EXCLUDED.free_bytes, min_free_bytes = EXCLUDED.min_free_bytes, "
                "seen_at = now()",
                state.service,
                state.instance,
                state.free_bytes,
                state.min_free_bytes,
            )
        else:
            await connection.execute(
                "DELETE FROM stage_pauses WHERE service = $1 AND instance = $2",
                state.service,
                state.instance,
            )
        await connection.execute("SELECT pg_notify($1, $2)", CHANNEL, state.model_dump_json())
