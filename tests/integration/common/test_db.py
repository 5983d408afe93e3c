"""Migrations are applied once even when several replicas start at the same moment."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest

from prsnl_common.db import ensure_database, migrate
from tests.support.stack import POSTGRES_URL, drop_database

pytestmark = pytest.mark.integration


async def test_concurrent_migrations_apply_each_file_once(tmp_path: Path) -> None:
    (tmp_path / "0001_first.sql").write_text("CREATE TABLE t (n int); INSERT INTO t VALUES (1);")
    (tmp_path / "0002_second.sql").write_text("INSERT INTO t VALUES (2);")
    dsn = f"{POSTGRES_URL}/prsnl_m{uuid.uuid4().hex[:10]}"
    try:
        created = await asyncio.gather(*(ensure_database(dsn) for _ in range(3)))
        assert created.count(True) == 1
        results = await asyncio.gather(*(migrate(dsn, tmp_path) for _ in range(4)))
        assert sorted(name for applied in results for name in applied) == [
            "0001_first.sql",
            "0002_second.sql",
        ]
        connection = await asyncpg.connect(dsn)
        try:
            assert await connection.fetchval("SELECT array_agg(n ORDER BY n) FROM t") == [1, 2]
        finally:
            await connection.close()
        assert await migrate(dsn, tmp_path) == []
    finally:
        await drop_database(dsn)


async def test_a_failing_migration_is_rolled_back_and_reported(tmp_path: Path) -> None:
    (tmp_path / "0001_bad.sql").write_text("CREATE TABLE ok (n int); SELECT no_such_function();")
    dsn = f"{POSTGRES_URL}/prsnl_m{uuid.uuid4().hex[:10]}"
    try:
        await ensure_database(dsn)
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await migrate(dsn, tmp_path)
        connection = await asyncpg.connect(dsn)
        try:
            assert await connection.fetchval("SELECT to_regclass('ok')") is None
            assert await connection.fetchval("SELECT count(*) FROM schema_migrations") == 0
        finally:
            await connection.close()
    finally:
        await drop_database(dsn)
