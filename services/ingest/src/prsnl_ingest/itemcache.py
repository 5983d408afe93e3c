"""Item rows this replica read lately, dropped the moment PostgreSQL says they changed.

An item read (``GET /api/v1/items/{id}``, a media request) needs the row; most
reads of an item see the same row again. A trigger on ``items`` announces every
update and delete on ``prsnl_item_changes``, whichever process made it, and the
gateway's listening connection drops the row here when the notice arrives. The
cache is used only while that connection listens: when it is lost the cache is
emptied and bypassed until it listens again, so a missed notice never keeps a
row. A read that raced a change (the notice arrived while it was fetching) is
not stored. Entries also live ``seconds`` at most and the oldest go first beyond
``size``.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

import asyncpg

from prsnl_ingest.catalog import CatalogError, get_item

CHANNEL = "prsnl_item_changes"  # payload: the item id; "" (TRUNCATE): every item
MARKS = 4096  # recent changes remembered one by one; older ones only as a floor


@dataclass
class ItemCache:
    """Rows by item id; ``changed`` takes the notices, ``lost`` the listener's loss."""

    size: int
    seconds: float = 60.0
    listening: bool = False
    _rows: OrderedDict[uuid.UUID, tuple[asyncpg.Record, float]] = field(default_factory=OrderedDict)
    _marks: OrderedDict[uuid.UUID, int] = field(default_factory=OrderedDict)
    _clock: int = 0  # counts changes heard; a read stores its row only if none came since
    _floor: int = 0  # no forgotten mark is later than this

    async def get(
        self, pool: asyncpg.Pool, owner_id: uuid.UUID, item_id: uuid.UUID
    ) -> asyncpg.Record:
        """The owner's item, from here when it is known unchanged; not_found otherwise."""
        cached = self._rows.get(item_id)
        if cached is not None and self.listening and cached[1] > time.monotonic():
            self._rows.move_to_end(item_id)
            if cached[0]["owner_id"] != owner_id:
                raise CatalogError("not_found", "No such item.")
            return cached[0]
        started = self._clock
        row = await get_item(pool, owner_id, item_id)
        self._store(item_id, row, started)
        return row

    def changed(self, payload: str) -> None:
        """A notice: one item changed, or (``""``: a reconnect, a TRUNCATE) any may have."""
        try:
            item_id = uuid.UUID(payload) if payload else None
        except ValueError:
            item_id = None
        if item_id is None:
            self._forget_all()
            self.listening = True
            return
        self._clock += 1
        self._rows.pop(item_id, None)
        self._marks[item_id] = self._clock
        self._marks.move_to_end(item_id)
        if len(self._marks) > MARKS:
            _, mark = self._marks.popitem(last=False)
            self._floor = max(self._floor, mark)

    def lost(self) -> None:
        """The listening connection is gone: notices may be missed until it is back."""
        self.listening = False
        self._forget_all()

    def _forget_all(self) -> None:
        self._clock += 1
        self._floor = self._clock
        self._rows.clear()
        self._marks.clear()

    def _store(self, item_id: uuid.UUID, row: asyncpg.Record, started: int) -> None:
        last_change = max(self._marks.get(item_id, 0), self._floor)
        if not self.listening or self.size <= 0 or last_change > started:
            return
        self._rows[item_id] = (row, time.monotonic() + self.seconds)
        self._rows.move_to_end(item_id)
        if len(self._rows) > self.size:
            self._rows.popitem(last=False)
