"""The catalog: items of owners, moved by pipeline events through the item's lifecycle.

Every write goes through here, and it is the only writer of the catalog
tables. How an event changes an item is decided by the pure
:mod:`prsnl_ingest.lifecycle`; this module only loads, stores and carries out
the effects, in one transaction per event. Changes are announced on the
``prsnl_items`` NOTIFY channel for live listeners on every gateway replica.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import datetime as dt
import hashlib
import json
import secrets
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from opentelemetry import trace

from prsnl_common.errors import PipelineError
from prsnl_common.events import (
    CaptureOptions,
    Event,
    FileOrphaned,
    ItemDeleted,
    OrphanReason,
    Platform,
    ReplyTo,
    Source,
    SourceInfo,
    StorageQuota,
    TranscodeRequested,
    UrlCaptured,
    VideoDownloaded,
    new_event_id,
)
from prsnl_common.store import item_prefix
from prsnl_ingest import lifecycle, metrics
from prsnl_ingest.lifecycle import outputs_of
from prsnl_ingest.outbox import CHANNEL as OUTBOX_CHANNEL
from prsnl_ingest.outbox import enqueue, outbox_row

ITEMS_CHANNEL = "prsnl_items"
KEYS_CHANNEL = "prsnl_keys"  # payload: the hex hash of a revoked key
UPLOAD_PREFIX = "upload:"  # the url of an uploaded file's item: upload:sha256:<digest>
KEY_ID_LENGTH = 12  # hex digits of the key's hash that name it in list-keys / revoke-key
tracer = trace.get_tracer(__name__)
STATUSES = ("pending", "downloading", "downloaded", "processing", "ready", "failed")


class CatalogError(Exception):
    """A request the catalog refuses; ``code`` is a documented error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class NewCapture:
    owner_id: uuid.UUID
    url: str
    normalized_url: str
    platform: Platform
    platform_video_id: str | None
    source: Source
    options: CaptureOptions
    reply_to: ReplyTo | None = None
    quota: StorageQuota | None = None


# Runs in the capturing transaction before the item is created; raises to refuse it.
Admit = Callable[[asyncpg.Connection | PoolConnectionProxy], Awaitable[None]]


@dataclass(frozen=True)
class CaptureOutcome:
    item: asyncpg.Record
    created: bool


@dataclass(frozen=True)
class Page:
    items: list[asyncpg.Record]
    next_cursor: str | None


def hash_key(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


async def create_owner_key(
    pool: asyncpg.Pool, owner_name: str, label: str = "", role: str = "owner"
) -> tuple[uuid.UUID, str]:
    """Create the owner if needed and a new API key for it; returns (owner id, key).

    An ``admin`` key also sees every owner's storage usage.
    """
    key = "prsnl_" + secrets.token_urlsafe(32)
    async with pool.acquire() as connection, connection.transaction():
        owner_id = await connection.fetchval(
            "INSERT INTO owners (id, name) VALUES ($1, $2) "
            "ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            new_event_id(),
            owner_name,
        )
        await connection.execute(
            "INSERT INTO api_keys (key_hash, owner_id, label, role) VALUES ($1, $2, $3, $4)",
            hash_key(key),
            owner_id,
            label,
            role,
        )
    return owner_id, key


async def owner_for_key(pool: asyncpg.Pool, key: str) -> uuid.UUID | None:
    """The owner of an unrevoked key; notes its use (at most once a minute, to spare writes)."""
    value = await pool.fetchval(
        "WITH key AS (SELECT key_hash, owner_id, last_used_at FROM api_keys "
        "WHERE key_hash = $1 AND revoked_at IS NULL), touched AS (UPDATE api_keys "
        "SET last_used_at = now() FROM key WHERE api_keys.key_hash = key.key_hash AND "
        "(key.last_used_at IS NULL OR key.last_used_at < now() - interval '1 minute')) "
        "SELECT owner_id FROM key",
        hash_key(key),
    )
    return value if isinstance(value, uuid.UUID) else None


async def owner_for_key_id(pool: asyncpg.Pool, key_id: str) -> uuid.UUID | None:
    """The owner of the unrevoked key whose id (the first hex digits of its hash) is given."""
    if len(key_id) != KEY_ID_LENGTH or len(key_id) % 2:
        return None
    value = await pool.fetchval(
        "SELECT owner_id FROM api_keys WHERE substring(key_hash FROM 1 FOR $2) = $1 "
        "AND revoked_at IS NULL LIMIT 1",
        bytes.fromhex(key_id),
        KEY_ID_LENGTH // 2,
    )
    return value if isinstance(value, uuid.UUID) else None


async def link_secret(pool: asyncpg.Pool, candidate: bytes) -> bytes:
    """The stored secret of signed links; ``candidate`` becomes it on the first start."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(
            "INSERT INTO link_secret (secret) VALUES ($1) ON CONFLICT DO NOTHING", candidate
        )
        secret: bytes = await connection.fetchval("SELECT secret FROM link_secret")
    return secret


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    owner: str
    label: str
    created_at: dt.datetime
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


async def list_keys(pool: asyncpg.Pool, owner_name: str | None = None) -> list[KeyInfo]:
    """Every key (of one owner, if named), oldest first; the key itself is never stored."""
    rows = await pool.fetch(
        "SELECT k.key_hash, o.name, k.label, k.created_at, k.last_used_at, k.revoked_at "
        "FROM api_keys k JOIN owners o ON o.id = k.owner_id "
        "WHERE $1::text IS NULL OR o.name = $1 ORDER BY k.created_at, k.key_hash",
        owner_name,
    )
    return [
        KeyInfo(
            r["key_hash"].hex()[:KEY_ID_LENGTH],
            r["name"],
            r["label"],
            r["created_at"],
            r["last_used_at"],
            r["revoked_at"],
        )
        for r in rows
    ]


async def revoke_key(pool: asyncpg.Pool, key_or_id: str) -> KeyInfo | None:
    """Revoke a key named by itself or by its id; every replica hears of it through NOTIFY.

    None when nothing matches (or an id prefix is ambiguous); revoking twice keeps the
    first revocation time.
    """
    async with pool.acquire() as connection, connection.transaction():
        rows = await connection.fetch(
            "SELECT key_hash FROM api_keys WHERE key_hash = $1 OR "
            "(length($2) >= 8 AND encode(key_hash, 'hex') LIKE $2 || '%')",
            hash_key(key_or_id),
            key_or_id.lower() if all(c in "0123456789abcdefABCDEF" for c in key_or_id) else "",
        )
        if len(rows) != 1:
            return None
        key_hash = rows[0]["key_hash"]
        await connection.execute(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE key_hash = $1",
            key_hash,
        )
        await connection.execute("SELECT pg_notify($1, $2)", KEYS_CHANNEL, key_hash.hex())
    return next(k for k in await list_keys(pool) if k.key_id == key_hash.hex()[:KEY_ID_LENGTH])


async def _notify(
    connection: asyncpg.Connection | PoolConnectionProxy,
    item: asyncpg.Record,
    kind: str,
    **data: Any,
) -> None:
    """Tell live listeners of the item, and of its owner's items, what changed (on commit)."""
    message = {"item_id": str(item["id"]), "owner_id": str(item["owner_id"]), "kind": kind, **data}
    payload = json.dumps(message, default=str)
    await connection.execute("SELECT pg_notify($1, $2)", ITEMS_CHANNEL, payload)


# The twin of a capture (C5): its owner's item of the same normalised URL or, for a
# platform video, of the same platform video id (the oldest, should both match).
_TWIN_OF = """
SELECT * FROM items i
WHERE i.owner_id = {owner_id} AND (i.normalized_url = {normalized_url} OR (
    {video_id} IS NOT NULL AND i.platform = {platform} AND i.platform_video_id = {video_id}))
ORDER BY i.created_at LIMIT 1
"""
# New items, their url.captured in the outbox and, on commit, their "created" notifications
# and the relay's wake-up: one statement for any number of captures (one column array per
# parameter), so one round trip and (outside a transaction) one atomic commit for all.
# Unless $16 says its quota was read and applied, a capture of an owner with a quota of
# its own (a limit not 0; NULL is the default, 0 here) inserts nothing. Each row answers
# the capture ``capture_id``: its new item (``created``), or the twin it already had
# (either unique index; over quota too, as it stores nothing new). A capture gets no row
# when it inserted nothing and the statement's snapshot holds no twin: the owner has
# limits, or the twin was committed by another while this statement ran (or is a row
# before it in the same statement).
_CAPTURE_TEMPLATE = """
WITH capture AS (
    SELECT * FROM unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::text[],
                         $6::text[], $7::text[], $8::text[], $9::jsonb[], $10::jsonb[],
                         $11::text[], $12::jsonb[], $13::jsonb[])
        WITH ORDINALITY AS c(id, run, owner_id, url, normalized_url, platform,
                             platform_video_id, source, options, reply_to,
                             routing_key, payload, headers, n)
), item AS (
    INSERT INTO items (id, run, owner_id, url, normalized_url, platform, platform_video_id,
                       source, options, reply_to)
    SELECT id, run, owner_id, url, normalized_url, platform, platform_video_id, source,
           options, reply_to
    FROM capture c
    WHERE $16 OR NOT EXISTS (
        SELECT FROM owner_quotas q WHERE q.owner_id = c.owner_id
        AND (coalesce(q.max_bytes, 0) > 0 OR coalesce(q.max_captures_per_day, 0) > 0)
    )
    -- One order for every statement (a platform video's normalized URL is made from its
    -- id): two statements racing over the same links wait for each other, never deadlock.
    ORDER BY owner_id, normalized_url, n
    ON CONFLICT DO NOTHING
    RETURNING *
), queued AS (
    INSERT INTO outbox (routing_key, payload, headers)
    SELECT c.routing_key, c.payload, c.headers FROM item JOIN capture c ON c.id = item.id
    ORDER BY c.n
)
SELECT item.*, item.id AS capture_id, true AS created, pg_notify($14, json_build_object(
    'item_id', item.id, 'owner_id', item.owner_id, 'kind', 'created',
    'status', item.status, 'run', item.run)::text) AS notified, pg_notify($15, '') AS woke
FROM item
UNION ALL
SELECT twin.*, c.id, false, NULL, NULL
FROM capture c CROSS JOIN LATERAL ({twin}) twin
WHERE NOT EXISTS (SELECT FROM item WHERE item.id = c.id)
"""
_CAPTURE_STATEMENT = _CAPTURE_TEMPLATE.format(
    twin=_TWIN_OF.format(
        owner_id="c.owner_id",
        normalized_url="c.normalized_url",
        video_id="c.platform_video_id",
        platform="c.platform",
    )
)
_FIND_TWIN = _TWIN_OF.format(owner_id="$1", normalized_url="$2", video_id="$3::text", platform="$4")
FIRST_RUN = 1


async def capture(
    pool: asyncpg.Pool, new: NewCapture, admit: Admit | None = None
) -> CaptureOutcome:
    """Create a pending item and its ``url.captured`` in one transaction, or return the twin.

    The same normalised URL, or the same platform video id, of the same owner is
    the same item (C5), settled by the unique indexes: a capture that inserts
    nothing, racing or not, returns the item that is there. A twin is returned
    even when ``admit`` refuses (over quota): it stores nothing new.
    """
    for _ in range(3):  # again only if the twin that stopped the insert was deleted since
        try:
            row = await _insert_capture(pool, new, admit)
        except PipelineError:  # refused (over quota): a twin is still returned
            existing = await _find_duplicate(pool, new)
            if existing is None:
                raise
            return CaptureOutcome(existing, created=False)
        if row is not None:
            return CaptureOutcome(row, created=row["created"])
        existing = await _find_duplicate(pool, new)  # committed while the statement ran
        if existing is not None:
            return CaptureOutcome(existing, created=False)
    raise CatalogError(
        "capture_conflict", "The same video was saved and deleted meanwhile; send it again."
    )


CAPTURE_BATCH = 100  # captures one statement of the CaptureWriter writes at most


@dataclass(frozen=True)
class _Waiting:
    """A capture handed to the :class:`CaptureWriter`: its parameters, its caller's span,
    and the future of its answer: the new item's row or its twin's (None: neither)."""

    args: tuple[Any, ...]
    span: trace.SpanContext
    item: asyncio.Future[asyncpg.Record | None]


class CaptureWriter:
    """Captures of owners without a quota of their own, written together (group commit).

    A capture that comes while the writer's statement is out waits for the next one,
    with every other that came meanwhile (at most ``most``): under load one statement,
    one commit and one relay wake-up serve many captures; alone, a capture is written
    at once. Each capture's rows are made in its caller's context (its trace goes into
    the outbox); the statement is traced as ``capture batch``, a child of the first
    capture's span, linked to the others'. A statement that fails is tried again for
    each capture alone, so each gets its own outcome: its twin, or its own error.
    """

    def __init__(self, pool: asyncpg.Pool, most: int = CAPTURE_BATCH) -> None:
        self.pool = pool
        self.most = most
        self._waiting: list[_Waiting] = []
        self._writing: asyncio.Task[None] | None = None

    async def capture(self, new: NewCapture) -> CaptureOutcome | None:
        """The created item or the twin the owner had; None when neither (an owner with
        limits of its own, or a twin committed meanwhile): :func:`capture` then decides,
        after the quota is read."""
        loop = asyncio.get_running_loop()
        span = trace.get_current_span().get_span_context()
        waiting = _Waiting(_capture_args(new), span, loop.create_future())
        self._waiting.append(waiting)
        if self._writing is None:  # a task of no request's context: it serves them all
            self._writing = loop.create_task(self._write_waiting(), context=contextvars.Context())
        item = await waiting.item
        return None if item is None else CaptureOutcome(item, created=item["created"])

    async def close(self) -> None:
        """Return once the captures handed over are written."""
        if self._writing is not None:
            await asyncio.shield(self._writing)

    async def _write_waiting(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
                batch = [waiting for waiting in batch if not waiting.item.done()]  # callers gone
                try:
                    if batch:
                        await self._write(batch)
                finally:  # cancelled meanwhile: no caller waits for ever
                    for waiting in batch:
                        waiting.item.cancel()
        finally:
            self._writing = None

    async def _write(self, batch: list[_Waiting]) -> None:
        params = _capture_params([waiting.args for waiting in batch], quota_applied=False)
        try:
            with _batch_span(batch):
                rows = await self.pool.fetch(_CAPTURE_STATEMENT, *params)
        except Exception as exc:
            if len(batch) > 1:
                for waiting in batch:
                    await self._write([waiting])
            elif not batch[0].item.done():
                batch[0].item.set_exception(exc)
            return
        metrics.CAPTURE_BATCH_ROWS.observe(len(batch))
        answers = {row["capture_id"]: row for row in rows}
        for waiting in batch:
            if not waiting.item.done():
                waiting.item.set_result(answers.get(waiting.args[0]))


def _batch_span(batch: list[_Waiting]) -> AbstractContextManager[trace.Span]:
    first, *others = (waiting.span for waiting in batch)
    return tracer.start_as_current_span(
        "capture batch",
        context=trace.set_span_in_context(trace.NonRecordingSpan(first)),
        links=[trace.Link(span) for span in others if span.is_valid],
        attributes={"prsnl.captures": len(batch)},
    )


async def _insert_capture(
    pool: asyncpg.Pool, new: NewCapture, admit: Admit | None
) -> asyncpg.Record | None:
    """The new item's row or its twin's (``created`` tells); None when neither was seen."""
    args = _capture_params([_capture_args(new)], quota_applied=True)
    if admit is None:
        return await pool.fetchrow(_CAPTURE_STATEMENT, *args)
    async with pool.acquire() as connection, connection.transaction():
        await admit(connection)
        return await connection.fetchrow(_CAPTURE_STATEMENT, *args)


def _capture_args(new: NewCapture) -> tuple[Any, ...]:
    """The item's columns (in ``_CAPTURE_STATEMENT``'s order) and, made from the same row
    by :func:`url_captured`, its outbox row; in the caller's trace context."""
    row = {
        "id": new_event_id(),
        "run": FIRST_RUN,
        "owner_id": new.owner_id,
        "url": new.url,
        "normalized_url": new.normalized_url,
        "platform": new.platform,
        "platform_video_id": new.platform_video_id,
        "source": new.source,
        "options": new.options.model_dump(mode="json"),
        "reply_to": new.reply_to.model_dump(mode="json") if new.reply_to else None,
    }
    return (*row.values(), *outbox_row(url_captured(row, new.quota)))


def _capture_params(captures: Sequence[tuple[Any, ...]], *, quota_applied: bool) -> tuple[Any, ...]:
    """``_CAPTURE_STATEMENT``'s parameters for ``captures`` (each from :func:`_capture_args`)."""
    return (*zip(*captures, strict=True), ITEMS_CHANNEL, OUTBOX_CHANNEL, quota_applied)


@dataclass(frozen=True)
class NewUpload:
    """A video file sent by its owner, already stored under ``original_key``."""

    item_id: uuid.UUID
    owner_id: uuid.UUID
    digest: str  # sha256 of the bytes: the same file twice is the same item
    original_key: str
    size: int
    title: str | None
    source: Source
    reply_to: ReplyTo | None = None

    @property
    def url(self) -> str:
        return f"{UPLOAD_PREFIX}sha256:{self.digest}"


async def find_upload(pool: asyncpg.Pool, owner_id: uuid.UUID, url: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT * FROM items WHERE owner_id = $1 AND normalized_url = $2", owner_id, url
    )


async def create_upload(
    pool: asyncpg.Pool, new: NewUpload, admit: Admit | None = None
) -> CaptureOutcome:
    """The item of an uploaded original and its ``video.downloaded``, in one transaction.

    The processing starts as after a download; the same bytes uploaded again by
    the same owner return the existing item (the race is settled by the index).
    """
    event = VideoDownloaded(
        item_id=new.item_id,
        original_key=new.original_key,
        size=new.size,
        info=SourceInfo(title=new.title),
    )
    try:
        async with pool.acquire() as connection, connection.transaction():
            if admit is not None:
                await admit(connection)
            item = await connection.fetchrow(
                "INSERT INTO items (id, owner_id, url, normalized_url, platform, source, options, "
                "reply_to, title) VALUES ($1, $2, $3, $3, 'direct', $4, '{}', $5, $6) RETURNING *",
                new.item_id,
                new.owner_id,
                new.url,
                new.source,
                new.reply_to.model_dump(mode="json") if new.reply_to else None,
                event.info.title,
            )
            assert item is not None
            await enqueue(connection, event)
    except asyncpg.UniqueViolationError:
        existing = await find_upload(pool, new.owner_id, new.url)
        if existing is None:
            raise
        return CaptureOutcome(existing, created=False)
    return CaptureOutcome(item, created=True)


def url_captured(
    item: asyncpg.Record | Mapping[str, Any], quota: StorageQuota | None = None
) -> UrlCaptured:
    """The ``url.captured`` of an item's current run, from its row (stored or about to be)."""
    return UrlCaptured(
        item_id=item["id"],
        run=item["run"],
        url=item["url"],
        normalized_url=item["normalized_url"],
        platform=item["platform"],
        platform_video_id=item["platform_video_id"],
        source=item["source"],
        owner_id=item["owner_id"],
        options=CaptureOptions.model_validate(item["options"]),
        reply_to=ReplyTo.model_validate(item["reply_to"]) if item["reply_to"] else None,
        quota=quota,
    )


async def _find_duplicate(pool: asyncpg.Pool, new: NewCapture) -> asyncpg.Record | None:
    return await pool.fetchrow(
        _FIND_TWIN,
        new.owner_id,
        new.normalized_url,
        new.platform_video_id,
        new.platform,
    )


async def get_item(pool: asyncpg.Pool, owner_id: uuid.UUID, item_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM items WHERE id = $1 AND owner_id = $2", item_id, owner_id
    )
    if row is None:
        raise CatalogError("not_found", "No such item.")
    return row


def encode_cursor(row: asyncpg.Record) -> str:
    """An opaque, URL-safe position after ``row`` in (created_at, id) order."""
    raw = f"{row['created_at'].isoformat()}|{row['id']}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, item_id = raw.split("|", 1)
        return dt.datetime.fromisoformat(stamp), uuid.UUID(item_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CatalogError("invalid_request", "The cursor is not one this API returned.") from exc


async def list_items(
    pool: asyncpg.Pool,
    owner_id: uuid.UUID,
    *,
    status: str | None = None,
    platform: str | None = None,
    text: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """Newest first, keyset-paginated on (created_at, id)."""
    if any("\x00" in value for value in (status, platform, text, cursor) if value):
        # PostgreSQL refuses NUL in text; no stored value can contain one either.
        raise CatalogError("invalid_request", "A list parameter contains a NUL character.")
    clauses = ["owner_id = $1"]
    args: list[Any] = [owner_id]
    if status:
        args.append(status)
        clauses.append(f"status = ${len(args)}")
    if platform:
        args.append(platform)
        clauses.append(f"platform = ${len(args)}")
    if text:
        args.append(text)
        clauses.append(f"search @@ websearch_to_tsquery('simple', ${len(args)})")
    if cursor:
        stamp, last_id = decode_cursor(cursor)
        args.extend([stamp, last_id])
        clauses.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(limit + 1)
    rows = await pool.fetch(
        f"SELECT * FROM items WHERE {' AND '.join(clauses)} "  # noqa: S608 - fixed fragments
        f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
        *args,
    )
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(list(rows), encode_cursor(rows[-1]) if more and rows else None)


async def _lock_owned(
    connection: asyncpg.Connection | PoolConnectionProxy, owner_id: uuid.UUID, item_id: uuid.UUID
) -> asyncpg.Record:
    """The owner's item, locked for the rest of the transaction; not_found otherwise."""
    row = await connection.fetchrow(
        "SELECT * FROM items WHERE id = $1 AND owner_id = $2 FOR UPDATE", item_id, owner_id
    )
    if row is None:
        raise CatalogError("not_found", "No such item.")
    return row


async def retry_item(
    pool: asyncpg.Pool,
    owner_id: uuid.UUID,
    item_id: uuid.UUID,
    admit: Callable[[], None] | None = None,
    quota: StorageQuota | None = None,
) -> asyncpg.Record:
    """Start a new run of a failed item from the download.

    ``admit`` may refuse it (over the owner's bytes quota) once the item is known to
    be retryable; ``quota`` goes with the new run's ``url.captured`` like a capture's.
    """
    async with pool.acquire() as connection, connection.transaction():
        row = await _lock_owned(connection, owner_id, item_id)
        if row["status"] != "failed":
            raise CatalogError("not_retryable", f"The item is {row['status']}, not failed.")
        if row["url"].startswith(UPLOAD_PREFIX):
            # A run starts from the download; an upload has no source to fetch again.
            raise CatalogError("not_retryable", "An uploaded file cannot be fetched again.")
        if admit is not None:
            admit()
        await _store(connection, item_id, lifecycle.restart(state_of(row)))
        item = await connection.fetchrow("SELECT * FROM items WHERE id = $1", item_id)
        assert item is not None
        await enqueue(connection, url_captured(item, quota))
        await _notify(connection, item, "status", status="pending", run=item["run"])
    return item


async def request_transcode(
    pool: asyncpg.Pool, owner_id: uuid.UUID, item_id: uuid.UUID, profile: str
) -> asyncpg.Record:
    """Ask the transcoder for ``profile``; the current video keeps serving meanwhile."""
    async with pool.acquire() as connection, connection.transaction():
        row = await _lock_owned(connection, owner_id, item_id)
        if row["status"] != "ready":
            raise CatalogError("not_ready", f"The item is {row['status']}; wait until ready.")
        if not row["original_key"]:
            raise CatalogError("not_ready", "The item has no original to transcode from.")
        item = await connection.fetchrow(
            "UPDATE items SET requested_profile = $2, updated_at = now() WHERE id = $1 RETURNING *",
            item_id,
            profile,
        )
        assert item is not None
        await enqueue(
            connection,
            TranscodeRequested(
                item_id=item_id, run=row["run"], original_key=row["original_key"], profile=profile
            ),
        )
    return item


async def delete_item(pool: asyncpg.Pool, owner_id: uuid.UUID, item_id: uuid.UUID) -> None:
    """Remove the item; its files are announced to the janitor in the same transaction."""
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "DELETE FROM items WHERE id = $1 AND owner_id = $2 RETURNING *", item_id, owner_id
        )
        if row is None:
            raise CatalogError("not_found", "No such item.")
        keys = [k for k in (row["original_key"], row["video_key"]) if k]
        keys += list((row["thumbnail_keys"] or {}).values())
        await enqueue(
            connection,
            ItemDeleted(
                item_id=item_id, run=row["run"], storage_keys=keys, prefix=item_prefix(item_id)
            ),
        )
        await _notify(connection, row, "deleted")


# --- pipeline events ------------------------------------------------------------------


async def apply_event(pool: asyncpg.Pool, event: Event) -> bool:
    """Apply a pipeline event to its item through :mod:`prsnl_ingest.lifecycle`; True if it moved.

    The row is locked, the pure transition computed and stored, and its effects
    (files for the janitor, the live notification) committed with it. Files an
    event announces for an item that no longer exists (deleted while its work
    was in flight) are handed to the janitor at once.
    """
    async with pool.acquire() as connection, connection.transaction():
        row = await connection.fetchrow(
            "SELECT * FROM items WHERE id = $1 FOR UPDATE", event.item_id
        )
        if row is None:
            await _orphan(connection, event, [(k, "unreferenced") for k in outputs_of(event)])
            return False
        transition = lifecycle.apply(state_of(row), event)
        if not transition.changed:
            return False
        await _store(connection, event.item_id, transition.state)
        if isinstance(event, VideoDownloaded) and event.info.platform_video_id:
            await _adopt_video_id(connection, event.item_id, event.info.platform_video_id)
        await _orphan(connection, event, list(transition.orphaned))
        if transition.notify is not None:
            await _notify(connection, row, **transition.notify)
    return transition.notify is not None


def state_of(row: asyncpg.Record) -> lifecycle.ItemState:
    """The lifecycle state stored in an item row."""
    values = {name: row[name] for name in lifecycle.FIELDS if name != "error"}
    values["thumbnail_keys"] = row["thumbnail_keys"] or {}
    error = None
    if row["error_code"]:
        error = lifecycle.Failure(
            row["error_code"],
            row["error_message"] or "",
            row["error_stage"] or "",
            row["error_attempts"] or 1,
            bool(row["error_retryable"]),
        )
    return lifecycle.ItemState(**values, error=error)


_STORED = [name for name in lifecycle.FIELDS if name != "error"]
_ERROR_COLUMNS = ["error_code", "error_message", "error_stage", "error_attempts", "error_retryable"]
_ASSIGNMENTS = ", ".join(
    f"{name} = ${index}" for index, name in enumerate([*_STORED, *_ERROR_COLUMNS], start=2)
)


async def _store(
    connection: asyncpg.Connection | PoolConnectionProxy,
    item_id: uuid.UUID,
    state: lifecycle.ItemState,
) -> None:
    error = state.error
    error_values = (
        [error.code, error.message, error.stage, error.attempts, error.retryable]
        if error
        else [None] * len(_ERROR_COLUMNS)
    )
    values = [_column_value(getattr(state, name)) for name in _STORED]
    await connection.execute(
        f"UPDATE items SET {_ASSIGNMENTS}, updated_at = now(), "  # noqa: S608 - fixed names
        "ready_at = CASE WHEN status <> 'ready' AND $2 = 'ready' THEN now() ELSE ready_at END "
        "WHERE id = $1",
        item_id,
        *values,
        *error_values,
    )


def _column_value(value: Any) -> Any:
    return dict(value) if isinstance(value, Mapping) else value


async def _adopt_video_id(
    connection: asyncpg.Connection | PoolConnectionProxy, item_id: uuid.UUID, video_id: str
) -> None:
    """yt-dlp's id names a site's video; for direct links it is only a file name, and it
    must never collide with another item of the owner."""
    await connection.execute(
        "UPDATE items SET platform_video_id = $2 WHERE id = $1 AND platform_video_id IS NULL "
        "AND platform NOT IN ('direct', 'hls', 'other') AND NOT EXISTS (SELECT 1 FROM items "
        "AS twin WHERE twin.owner_id = items.owner_id AND twin.platform = items.platform "
        "AND twin.platform_video_id = $2)",
        item_id,
        video_id,
    )


async def _orphan(
    connection: asyncpg.Connection | PoolConnectionProxy,
    event: Event,
    files: list[tuple[str, OrphanReason]],
) -> None:
    for key, reason in files:
        await enqueue(
            connection,
            FileOrphaned(item_id=event.item_id, run=event.run, storage_key=key, reason=reason),
        )


async def items_by_status(pool: asyncpg.Pool, owner_id: uuid.UUID) -> dict[str, int]:
    """How many items the owner has in each status."""
    rows = await pool.fetch(
        "SELECT status, count(*) AS items FROM items WHERE owner_id = $1 GROUP BY status",
        owner_id,
    )
    return {r["status"]: r["items"] for r in rows}
