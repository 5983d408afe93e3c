"""Retention per owner: remove finished items older than N days, or the oldest over N bytes.

Off by default; ``prsnl-ingest retention set`` turns it on for one owner and
``prsnl-ingest retention apply [--dry-run]`` carries it out (from cron, or by
hand). Only finished items (ready or failed) are removed, oldest first, each
through :func:`prsnl_ingest.catalog.delete_item`, so the janitor removes the
files exactly as for a delete by the owner. A dry run lists the same plan the
real run would carry out at that moment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

from prsnl_common.store import MediaStore, item_prefix
from prsnl_common.usage import count, owner_usage
from prsnl_ingest import catalog

FINISHED = ("ready", "failed")


@dataclass(frozen=True)
class Removal:
    owner: str
    item_id: uuid.UUID
    created_at: dt.datetime
    bytes: int
    reason: str

    def line(self) -> str:
        return f"{self.owner}\t{self.item_id}\t{self.created_at:%F}\t{self.bytes}\t{self.reason}"


async def set_policy(
    pool: asyncpg.Pool, owner_name: str, max_age_days: int | None, max_bytes: int | None
) -> bool:
    """Set (or, with both None, turn off) an owner's policy; False for an unknown owner."""
    owner_id = await pool.fetchval("SELECT id FROM owners WHERE name = $1", owner_name)
    if owner_id is None:
        return False
    if max_age_days is None and max_bytes is None:
        await pool.execute("DELETE FROM owner_retention WHERE owner_id = $1", owner_id)
        return True
    await pool.execute(
        "INSERT INTO owner_retention (owner_id, max_age_days, max_bytes) VALUES ($1, $2, $3) "
        "ON CONFLICT (owner_id) DO UPDATE SET max_age_days = $2, max_bytes = $3, "
        "updated_at = now()",
        owner_id,
        max_age_days,
        max_bytes,
    )
    return True


async def plan(pool: asyncpg.Pool, store: MediaStore) -> list[Removal]:
    """What every owner's policy removes now, oldest first per owner."""
    policies = await pool.fetch(
        "SELECT r.owner_id, o.name, r.max_age_days, r.max_bytes FROM owner_retention r "
        "JOIN owners o ON o.id = r.owner_id ORDER BY o.name"
    )
    removals: list[Removal] = []
    for policy in policies:
        removals += await _plan_owner(pool, store, policy)
    return removals


async def _plan_owner(
    pool: asyncpg.Pool, store: MediaStore, policy: asyncpg.Record
) -> list[Removal]:
    items = await pool.fetch(
        "SELECT id, created_at, created_at < now() - make_interval(days => $2) AS expired "
        "FROM items WHERE owner_id = $1 AND status = ANY($3::text[]) ORDER BY created_at, id",
        policy["owner_id"],
        policy["max_age_days"] or 0,
        list(FINISHED),
    )
    stored = (await owner_usage(pool, store, policy["owner_id"])).total.bytes
    sizes = await asyncio.to_thread(_sizes, store, [item["id"] for item in items])
    removals = []
    for item in items:
        size = sizes[item["id"]]
        if policy["max_age_days"] and item["expired"]:
            reason = f"older than {policy['max_age_days']} days"
        elif policy["max_bytes"] and stored > policy["max_bytes"]:
            reason = f"owner stores {stored} bytes, over {policy['max_bytes']}"
        else:
            continue
        stored -= size
        removals.append(Removal(policy["name"], item["id"], item["created_at"], size, reason))
    return removals


async def apply(pool: asyncpg.Pool, store: MediaStore) -> list[Removal]:
    """Carry out the plan; returns what was removed (an item deleted meanwhile is skipped)."""
    removed = []
    for removal in await plan(pool, store):
        owner_id = await pool.fetchval("SELECT id FROM owners WHERE name = $1", removal.owner)
        try:
            await catalog.delete_item(pool, owner_id, removal.item_id)
        except catalog.CatalogError:
            continue
        removed.append(removal)
    return removed


def _sizes(store: MediaStore, item_ids: list[uuid.UUID]) -> dict[uuid.UUID, int]:
    return {i: count(store.list(item_prefix(i))).total.bytes for i in item_ids}
