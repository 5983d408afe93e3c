"""Two janitors sweeping the same orphans at once: each file announced once and removed once."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections import Counter

import aio_pika
import asyncpg
import pytest

from prsnl_common.broker import Topology
from prsnl_common.events import FileOrphaned
from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from tests.integration.janitor.conftest import put
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ORPHANS = 400
GRACE = 10.0  # longer than announcing every orphan takes on a busy machine


def sweep_command(common: CommonSettings, *extra: str) -> subprocess.Popen[str]:
    """``prsnl-storage-janitor sweep`` as its own process, as a second replica would run it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRSNL_")}
    env.update(
        PRSNL_DATABASE_URL=common.database_url,
        PRSNL_RABBITMQ_URL=common.rabbitmq_url,
        PRSNL_NAMESPACE=common.namespace,
        PRSNL_MEDIA_ROOT=str(common.media_root),
        PRSNL_JANITOR_ORPHAN_GRACE_SECONDS=str(GRACE),
        PRSNL_JANITOR_ORPHAN_MIN_AGE_SECONDS="60",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "prsnl_janitor", "sweep", *extra],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def announcements(common: CommonSettings) -> list[str]:
    """The storage keys of the file.orphaned messages waiting in the janitor's queue."""
    queue_name = Topology(common).queue_name("storage-janitor", FileOrphaned.routing_key)
    connection = await aio_pika.connect(common.rabbitmq_url)
    keys = []
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(queue_name, passive=True)
        waiting = queue.declaration_result.message_count or 0
        async with queue.iterator(no_ack=True) as messages:
            async for message in messages:
                keys.append(FileOrphaned.model_validate_json(message.body).storage_key)
                if len(keys) == waiting:
                    break
    return keys


async def test_two_janitors_at_once_remove_each_orphan_once(
    common: CommonSettings, store: LocalMediaStore
) -> None:
    keys = {f"items/{uuid.uuid4()}/original.mp4" for _ in range(ORPHANS)}
    for key in keys:
        put(store, key, size=100)
    planned = sweep_command(common, "--dry-run").communicate(timeout=120)[0]
    assert {line.split("\t")[3] for line in planned.splitlines()} == keys
    assert all(store.exists(key) for key in keys)
    first = [sweep_command(common) for _ in range(2)]
    lines = [line.split("\t") for out in finished(first) for line in out.splitlines()]
    announced = Counter(fields[3] for fields in lines if fields[0] == "announced")
    assert set(announced) == keys and set(announced.values()) == {1}
    assert sorted(await announcements(common)) == sorted(keys)
    assert all(store.exists(key) for key in keys)  # still in their grace

    connection = await asyncpg.connect(common.database_url)

    async def all_due() -> bool:
        due = await connection.fetchval(
            "SELECT count(*) FROM janitor_orphans WHERE delete_after <= now()"
        )
        return bool(due == ORPHANS)

    try:
        await eventually(all_due, within=GRACE + 10, what="every orphan past its grace")
    finally:
        await connection.close()

    second = [sweep_command(common) for _ in range(2)]
    outputs = finished(second)
    lines = [line.split("\t") for out in outputs for line in out.splitlines()]
    removed = Counter(fields[3] for fields in lines if fields[0] == "removed")
    assert set(removed) == keys and set(removed.values()) == {1}
    assert not any(fields[0] == "kept" for fields in lines), lines
    assert not any(store.exists(key) for key in keys)


def finished(replicas: list[subprocess.Popen[str]]) -> list[str]:
    """The output of each replica, which must end without an error."""
    outputs = []
    for replica in replicas:
        out, errors = replica.communicate(timeout=120)
        assert replica.returncode == 0, errors
        assert "Traceback" not in errors, errors
        outputs.append(out)
    return outputs
