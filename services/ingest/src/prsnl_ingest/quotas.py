"""Quotas per owner and key roles: the limits a capture is admitted under.

Two limits: bytes stored (counted from the media tree, as the storage API
counts them) and captures in the last 24 hours. Defaults come from the
settings (``PRSNL_INGEST_QUOTA_*``, 0 = unlimited); ``prsnl-ingest set-quota``
overrides them per owner. The captures count is taken under a per-owner
advisory lock in the capturing transaction, so concurrent captures cannot
both slip under the limit.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from prsnl_common.errors import PermanentError
from prsnl_common.events import StorageQuota
from prsnl_common.store import MediaStore
from prsnl_common.usage import owner_usage
from prsnl_ingest.catalog import hash_key
from prsnl_ingest.settings import IngestSettings

ROLES = ("owner", "admin")
Connection = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class Limits:
    """An owner's limits; 0 is unlimited."""

    max_bytes: int
    max_captures_per_day: int

    @property
    def any(self) -> bool:
        """Whether any limit is set."""
        return bool(self.max_bytes or self.max_captures_per_day)


@dataclass(frozen=True)
class Standing:
    """An owner's limits and how much of them is used."""

    limits: Limits
    used_bytes: int

    @property
    def bytes_quota(self) -> StorageQuota | None:
        if not self.limits.max_bytes:
            return None
        return StorageQuota(max_bytes=self.limits.max_bytes, used_bytes=self.used_bytes)

    @property
    def full(self) -> bool:
        """The bytes quota is reached: nothing new may be stored."""
        return bool(self.limits.max_bytes) and self.used_bytes >= self.limits.max_bytes

    @property
    def checked_on_insert(self) -> bool:
        """Whether a capture must be admitted in its transaction (refused, or counted per day)."""
        return self.full or bool(self.limits.max_captures_per_day)


def quota_defaults(settings: IngestSettings) -> Limits:
    return Limits(settings.quota_bytes, settings.quota_captures_per_day)


async def limits_of(pool: asyncpg.Pool, owner_id: uuid.UUID, defaults: Limits) -> Limits:
    row = await pool.fetchrow(
        "SELECT max_bytes, max_captures_per_day FROM owner_quotas WHERE owner_id = $1", owner_id
    )
    if row is None:
        return defaults
    return Limits(
        defaults.max_bytes if row["max_bytes"] is None else row["max_bytes"],
        defaults.max_captures_per_day
        if row["max_captures_per_day"] is None
        else row["max_captures_per_day"],
    )


async def captures_today(connection: Connection | asyncpg.Pool, owner_id: uuid.UUID) -> int:
    value = await connection.fetchval(
        "SELECT count(*) FROM items WHERE owner_id = $1 AND created_at > now() - interval '1 day'",
        owner_id,
    )
    return int(value or 0)


async def standing(
    pool: asyncpg.Pool, store: MediaStore, owner_id: uuid.UUID, defaults: Limits
) -> Standing:
    limits = await limits_of(pool, owner_id, defaults)
    # Only a limit that exists is measured: the usage walks the owner's folders, which a
    # capture of an owner without a bytes quota (the default) must not pay for.
    used = (await owner_usage(pool, store, owner_id)).total.bytes if limits.max_bytes else 0
    return Standing(limits, used)  # the captures of the day are counted in the transaction


def refuse_bytes(standing: Standing) -> None:
    """``quota_exceeded`` when the owner already stores as much as the bytes quota allows."""
    if standing.full:
        raise PermanentError(
            "quota_exceeded",
            f"Storage quota reached: {standing.used_bytes} of {standing.limits.max_bytes} "
            "bytes stored. "
            "Delete items or ask for a larger quota.",
        )


async def admit_capture(connection: Connection, owner_id: uuid.UUID, limit: int) -> None:
    """Inside the capturing transaction: refuse a capture past the daily limit (0: none)."""
    if not limit:
        return
    await connection.execute("SELECT pg_advisory_xact_lock(hashtext($1::text))", str(owner_id))
    made = await captures_today(connection, owner_id)
    if made >= limit:
        raise PermanentError(
            "quota_exceeded",
            f"Capture quota reached: {made} of {limit} captures in the last 24 hours. "
            "Try again later or ask for a larger quota.",
        )


async def set_limits(
    pool: asyncpg.Pool, owner_name: str, max_bytes: int | None, max_captures: int | None
) -> bool:
    """Override an owner's limits (None keeps the default); False for an unknown owner."""
    owner_id = await pool.fetchval("SELECT id FROM owners WHERE name = $1", owner_name)
    if owner_id is None:
        return False
    await pool.execute(
        "INSERT INTO owner_quotas (owner_id, max_bytes, max_captures_per_day) "
        "VALUES ($1, $2, $3) ON CONFLICT (owner_id) DO UPDATE SET max_bytes = $2, "
        "max_captures_per_day = $3, updated_at = now()",
        owner_id,
        max_bytes,
        max_captures,
    )
    return True


async def role_of_key(pool: asyncpg.Pool, key: str) -> str | None:
    """The role of an unrevoked key."""
    value = await pool.fetchval(
        "SELECT role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", hash_key(key)
    )
    return str(value) if value is not None else None
