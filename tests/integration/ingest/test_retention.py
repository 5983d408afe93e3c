"""Retention: the dry run lists what the real run then removes, exactly, oldest finished first."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.settings import CommonSettings
from prsnl_ingest.catalog import create_owner_key
from tests.support.catalog import new_item

pytestmark = pytest.mark.integration


def cli(common: CommonSettings, *args: str) -> list[list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRSNL_")}
    env.update(PRSNL_DATABASE_URL=common.database_url, PRSNL_MEDIA_ROOT=str(common.media_root))
    result = subprocess.run(
        [sys.executable, "-m", "prsnl_ingest", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split("\t") for line in result.stdout.splitlines() if "\t" in line]


async def stored_item(
    pool: asyncpg.Pool, root: Path, owner_id: uuid.UUID, status: str, age_days: int, size: int
) -> str:
    item_id = await new_item(pool, owner_id, f"https://example.com/{uuid.uuid4().hex}.mp4")
    await pool.execute(
        "UPDATE items SET status = $2, created_at = now() - make_interval(days => $3) "
        "WHERE id = $1",
        item_id,
        status,
        age_days,
    )
    path = root / "items" / str(item_id) / "video.mp4"
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(size))
    return str(item_id)


async def test_dry_run_then_the_real_run_removes_exactly_what_it_listed(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    gateway_env: CommonSettings,
) -> None:
    name = f"keeper-{uuid.uuid4().hex[:6]}"
    owner_id, _ = await create_owner_key(pool, name)
    root = gateway_env.media_root
    oldest = await stored_item(pool, root, owner_id, "ready", 40, 100)
    in_flight = await stored_item(pool, root, owner_id, "downloading", 41, 50)
    older = await stored_item(pool, root, owner_id, "failed", 10, 300)
    newest = await stored_item(pool, root, owner_id, "ready", 0, 500)

    cli(gateway_env, "set-retention", "--owner", name, "--older-than-days", "30")
    by_age = cli(gateway_env, "apply-retention", "--dry-run")
    assert [(r[0], r[1], r[2], r[4]) for r in by_age] == [("would-remove", name, oldest, "100")]

    cli(gateway_env, "set-retention", "--owner", name, "--max-size", "600")
    planned = cli(gateway_env, "apply-retention", "--dry-run")
    assert [(r[2], r[4]) for r in planned] == [(oldest, "100"), (older, "300")]
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id) == 4

    done = cli(gateway_env, "apply-retention")
    assert [r[1:] for r in done] == [r[1:] for r in planned]
    left = {
        str(r["id"]) for r in await pool.fetch("SELECT id FROM items WHERE owner_id = $1", owner_id)
    }
    assert left == {in_flight, newest}
    assert cli(gateway_env, "apply-retention", "--dry-run") == []

    cli(gateway_env, "set-retention", "--owner", name)  # neither limit: off
    assert (
        await pool.fetchval("SELECT count(*) FROM owner_retention WHERE owner_id = $1", owner_id)
        == 0
    )
