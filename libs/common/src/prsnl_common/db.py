"""PostgreSQL pool and the migrations runner.

Migrations are plain ``NNNN_name.sql`` files owned by the service that owns the
tables. The runner takes a session advisory lock, so replicas that start
together apply each migration exactly once.
"""

from __future__ import annotations

import logging
from pathlib import Path

import asyncpg

logger = logging.getLogger(__name__)
MIGRATION_LOCK = 0x7072736E6C  # "prsnl"


COMMAND_TIMEOUT = 30.0  # seconds; no statement of ours should come near it


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    command_timeout: float = COMMAND_TIMEOUT,
    session_state: bool = True,
) -> asyncpg.Pool:
    """A pool with the JSON codecs the services expect and a time limit on every command.

    A database that stops answering fails a request or a relay round with
    TimeoutError (answered 503 at the edge) instead of hanging it forever.

    ``session_state=False`` is for callers that never leave session state on a
    pooled connection (no LISTEN, no session advisory lock, no SET, no cursor
    outside a transaction): a released connection then skips asyncpg's reset
    query, a round trip per checkout. An open transaction is still rolled back.
    """

    async def init(connection: asyncpg.Connection) -> None:
        import json

        for name in ("json", "jsonb"):
            await connection.set_type_codec(
                name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
            )

    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init,
        command_timeout=command_timeout,
        reset=None if session_state else _no_session_state,
    )
    assert pool is not None
    return pool


async def _no_session_state(_connection: asyncpg.Connection) -> None:
    """Nothing to reset: asyncpg has already ended any transaction left open."""


async def migrate(dsn: str, directory: Path) -> list[str]:
    """Apply the migrations in ``directory`` not applied yet; returns their names."""
    files = sorted(p for p in directory.glob("*.sql") if p.name[:4].isdigit())
    connection = await asyncpg.connect(dsn)
    applied: list[str] = []
    try:
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await connection.fetch("SELECT name FROM schema_migrations")}
        for path in files:
            if path.name in done:
                continue
            async with connection.transaction():
                await connection.execute(path.read_text())
                await connection.execute(
                    "INSERT INTO schema_migrations (name) VALUES ($1)", path.name
                )
            applied.append(path.name)
            logger.info("applied migration %s", path.name)
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
        await connection.close()
    return applied


async def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it is missing (a fresh machine).

    Connects to the ``postgres`` maintenance database of the same server.
    Returns True when it created the database.
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(dsn)
    name = parts.path.lstrip("/")
    if not name:
        return False
    admin = urlunsplit(parts._replace(path="/postgres"))
    connection = await asyncpg.connect(admin)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            # Another replica created it between our check and our CREATE.
            return False
        return True
    finally:
        await connection.close()
