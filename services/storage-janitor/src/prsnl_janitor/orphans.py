"""Orphans: files under ``items/`` that no item references, found by a scan of the store.

A file is an orphan when no catalog row references its key and its item is
not in flight. "In flight" is decided by the catalog and by the file itself:

* the item's row exists and its status is one a job still works on
  (pending, downloading, downloaded, processing) or a re-transcode is
  requested — a stage stores its output before the catalog hears of it;
* the file changed within ``min_age`` seconds — it may be being written, or a
  job of an item deleted a moment ago may still be storing it.

A found orphan is recorded in ``janitor_orphans`` and announced as
``file.orphaned`` with ``delete_after`` = now + grace. When that moment has
passed it is removed only if it is still unreferenced, its item still not in
flight and the file unchanged (same size and mtime); the check and the removal
happen while the item's row is locked ``FOR SHARE``, so the catalog cannot
take the key back in between. Several janitor replicas share the work through
``FOR UPDATE SKIP LOCKED``: each recorded orphan is handled by exactly one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from prsnl_common.errors import TransientError
from prsnl_common.events import Event, FileOrphaned, OrphanReason, utcnow
from prsnl_common.store import MediaStore, StoredFile

ACTIVE_STATUSES = ("pending", "downloading", "downloaded", "processing")
NO_ITEM = uuid.UUID(int=0)  # the item id of a file outside any item folder
logger = logging.getLogger(__name__)
Publish = Callable[[Event], Awaitable[None]]
Connection = asyncpg.Connection | PoolConnectionProxy
Row = asyncpg.Record | Mapping[str, Any]  # a catalog row, or a plain mapping in unit tests


@dataclass(frozen=True)
class Finding:
    """One line of a sweep's report: what was (or would be) done to which file, and why."""

    action: str  # removed, would-remove, announced, would-announce, waiting, kept
    key: str
    size: int
    reason: str
    detail: str = ""

    def line(self) -> str:
        return f"{self.action}\t{self.size}\t{self.reason}\t{self.key}\t{self.detail}".rstrip()


def item_of(key: str) -> uuid.UUID:
    """The item a key belongs to (``items/<id>/...``); NO_ITEM when the folder is no item id."""
    parts = key.split("/")
    if len(parts) >= 3 and parts[0] == "items":
        try:
            return uuid.UUID(parts[1])
        except ValueError:
            return NO_ITEM
    return NO_ITEM


def referenced_keys(row: Row) -> set[str]:
    keys = {row["original_key"], row["video_key"], *(row["thumbnail_keys"] or {}).values()}
    return {key for key in keys if key}


def in_flight(row: Row | None) -> bool:
    return row is not None and (
        row["status"] in ACTIVE_STATUSES or row["requested_profile"] is not None
    )


def why_kept(row: Row | None, key: str) -> str | None:
    """Why ``key`` is no orphan given its item's row; None when it is one."""
    if row is not None and key in referenced_keys(row):
        return "referenced"
    if in_flight(row):
        return "item in flight"
    return None


def orphans_among(
    files: Iterable[StoredFile],
    rows: Mapping[uuid.UUID, Row],
    *,
    now: float,
    min_age: float,
) -> list[tuple[StoredFile, OrphanReason]]:
    """The files that are orphans, with their reason (``partial`` for a left-over temp name)."""
    found: list[tuple[StoredFile, OrphanReason]] = []
    for stored in files:
        if now - stored.mtime < min_age:
            continue
        if why_kept(rows.get(item_of(stored.key)), stored.key) is None:
            reason: OrphanReason = "partial" if stored.key.endswith(".part") else "unreferenced"
            found.append((stored, reason))
    return found


_ROW_COLUMNS = "id, status, requested_profile, original_key, video_key, thumbnail_keys"


async def item_rows(
    connection: Connection, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, asyncpg.Record]:
    rows = await connection.fetch(
        f"SELECT {_ROW_COLUMNS} FROM items WHERE id = ANY($1::uuid[])",  # noqa: S608
        list(set(ids)),
    )
    return {row["id"]: row for row in rows}


async def find_new(
    pool: asyncpg.Pool, store: MediaStore, *, min_age: float
) -> list[tuple[StoredFile, OrphanReason]]:
    """Orphans in the store that are not recorded yet."""
    files = await asyncio.to_thread(lambda: list(store.list("items")))
    async with pool.acquire() as connection:
        rows = await item_rows(connection, (item_of(f.key) for f in files))
        known = {
            r["storage_key"]
            for r in await connection.fetch(
                "SELECT storage_key FROM janitor_orphans WHERE storage_key = ANY($1::text[])",
                [f.key for f in files],
            )
        }
    found = orphans_among(files, rows, now=time.time(), min_age=min_age)
    return [(stored, reason) for stored, reason in found if stored.key not in known]


ANNOUNCE_BATCH = 200


async def announce(
    pool: asyncpg.Pool,
    found: list[tuple[StoredFile, OrphanReason]],
    publish: Publish,
    *,
    grace: float,
) -> list[Finding]:
    """Record each orphan and announce it; of replicas racing, the one that records it wins."""
    announced: list[Finding] = []
    for start in range(0, len(found), ANNOUNCE_BATCH):
        delete_after = utcnow() + dt.timedelta(seconds=grace)
        events = {
            stored.key: (stored, _orphaned(stored, reason, delete_after))
            for stored, reason in found[start : start + ANNOUNCE_BATCH]
        }
        async with pool.acquire() as connection, connection.transaction():
            recorded = await record(connection, events.values())
            # Published inside the transaction: a lost announcement is a lost record, and the
            # next scan finds the file again. Confirms are awaited together, not one by one.
            await asyncio.gather(*(publish(events[key][1]) for key in recorded))
        announced += [
            Finding(
                "announced",
                key,
                events[key][0].size,
                events[key][1].reason,
                f"{delete_after:%FT%TZ}",
            )
            for key in recorded
        ]
    if announced:
        logger.info("announced %d orphaned files", len(announced))
    return announced


def _orphaned(stored: StoredFile, reason: OrphanReason, delete_after: dt.datetime) -> FileOrphaned:
    return FileOrphaned(
        item_id=item_of(stored.key),
        storage_key=stored.key,
        size=stored.size,
        reason=reason,
        delete_after=delete_after,
    )


async def record(
    connection: Connection, orphans: Iterable[tuple[StoredFile, FileOrphaned]]
) -> list[str]:
    """Note orphans to remove after their ``delete_after``; returns the keys not noted before."""
    pairs = list(orphans)
    rows = await connection.fetch(
        "INSERT INTO janitor_orphans (storage_key, item_id, size, mtime, reason, delete_after) "
        "SELECT * FROM unnest($1::text[], $2::uuid[], $3::bigint[], $4::float8[], $5::text[], "
        "$6::timestamptz[]) ON CONFLICT (storage_key) DO NOTHING RETURNING storage_key",
        [stored.key for stored, _ in pairs],
        [event.item_id for _, event in pairs],
        [stored.size for stored, _ in pairs],
        [stored.mtime for stored, _ in pairs],
        [event.reason for _, event in pairs],
        [event.delete_after for _, event in pairs],
    )
    return [row["storage_key"] for row in rows]


async def remove_due(pool: asyncpg.Pool, store: MediaStore) -> list[Finding]:
    """Remove every recorded orphan whose grace has passed and that is still an orphan."""
    findings: list[Finding] = []
    while True:
        async with pool.acquire() as connection, connection.transaction():
            due = await connection.fetchrow(
                "SELECT * FROM janitor_orphans WHERE delete_after <= now() "
                "ORDER BY delete_after LIMIT 1 FOR UPDATE SKIP LOCKED"
            )
            if due is None:
                return findings
            findings.append(await _settle(connection, store, due))
            await connection.execute(
                "DELETE FROM janitor_orphans WHERE storage_key = $1", due["storage_key"]
            )


async def _settle(connection: Connection, store: MediaStore, due: asyncpg.Record) -> Finding:
    """Remove one due orphan if it still is one; the item's row stays locked meanwhile."""
    key, size, reason = due["storage_key"], due["size"], due["reason"]
    kept = await _why_kept_now(connection, store, due)
    if kept is not None:
        logger.info("orphan %s kept: %s", key, kept)
        return Finding("kept", key, size, reason, kept)
    try:
        removed = await asyncio.to_thread(store.delete, key)
    except (OSError, TransientError) as exc:
        logger.warning("could not remove orphan %s: %s", key, exc)
        detail = exc.strerror if isinstance(exc, OSError) else exc.message
        return Finding("kept", key, size, reason, f"removal failed: {detail}")
    return Finding("removed" if removed else "kept", key, size, reason, "" if removed else "gone")


async def _why_kept_now(connection: Connection, store: MediaStore, due: Row) -> str | None:
    row = await connection.fetchrow(
        f"SELECT {_ROW_COLUMNS} FROM items WHERE id = $1 FOR SHARE",  # noqa: S608
        due["item_id"],
    )
    kept = why_kept(row, due["storage_key"])
    if kept is not None:
        return kept
    stored = await store.head(due["storage_key"])
    if stored is None:
        return "gone"
    if stored.size != due["size"] or stored.mtime != due["mtime"]:
        return "written since it was announced"
    return None


async def pending(pool: asyncpg.Pool, store: MediaStore) -> list[Finding]:
    """What :func:`remove_due` would do now, and the orphans still in their grace (dry run)."""
    findings = []
    async with pool.acquire() as connection:
        rows = await connection.fetch(
            "SELECT *, delete_after <= now() AS due FROM janitor_orphans ORDER BY delete_after"
        )
        for row in rows:
            if not row["due"]:
                after = f"{row['delete_after']:%FT%TZ}"
                findings.append(
                    Finding("waiting", row["storage_key"], row["size"], row["reason"], after)
                )
                continue
            kept = await _why_kept_now(connection, store, row)
            action = "would-remove" if kept is None else "kept"
            findings.append(
                Finding(action, row["storage_key"], row["size"], row["reason"], kept or "")
            )
    return findings
