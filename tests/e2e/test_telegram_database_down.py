"""PostgreSQL away: the Telegram user is told to send the link again and nothing is
half-stored; once it is back the same link is saved. PostgreSQL is taken away from this
module's stack only, through a proxy, so nobody else's tests notice."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from tests.support.media_server import MediaServer
from tests.support.stack import POSTGRES_URL, Stack, running_stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.telegram import FakeBotApi
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
DORA = 444_444


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    server = urlsplit(POSTGRES_URL)
    with TcpProxy(server.hostname or "127.0.0.1", server.port or 5432) as running:
        yield running


@pytest.fixture(scope="module")
def db_stack(tmp_path_factory: pytest.TempPathFactory, proxy: TcpProxy) -> Iterator[Stack]:
    dsn = f"postgresql://postgres@127.0.0.1:{proxy.port}/prsnl_d{uuid.uuid4().hex[:10]}"
    with running_stack(
        tmp_path_factory.mktemp("db-down-stack"), downloaders=1, PRSNL_DATABASE_URL=dsn
    ) as stack:
        yield stack


async def count(stack: Stack, sql: str, *args: object) -> int:
    connection = await asyncpg.connect(stack.database_url)
    try:
        return int(await connection.fetchval(sql, *args))
    finally:
        await connection.close()


async def test_with_postgresql_down_the_user_is_told_to_try_again_and_nothing_is_stored(
    db_stack: Stack, proxy: TcpProxy, media: MediaServer
) -> None:
    key = db_stack.create_key("dora")
    with FakeBotApi("7000000006:AAE-database-down-token") as bot_api:
        db_stack.start(
            "telegram-gateway",
            extra_env={
                "PRSNL_TELEGRAM_BOT_TOKEN": bot_api.token,
                "PRSNL_TELEGRAM_USERS": f"{DORA}={key}",
                "PRSNL_TELEGRAM_GATEWAY_URL": db_stack.base_url,
                "PRSNL_TELEGRAM_API_URL": bot_api.url,
                "PRSNL_TELEGRAM_POLL_TIMEOUT": "1",
            },
        )
        try:
            await eventually(lambda: bot_api.calls("getUpdates") > 0, 60, "the poller")
            url = media.url("/files/small.mp4?database-down=1")
            proxy.cut()
            try:
                down = bot_api.send_text(DORA, url)
                chat, message = down["message"]["chat"]["id"], down["message"]["message_id"]
                await eventually(
                    lambda: any(
                        "send it again" in (s.text or "") for s in bot_api.replies_to(chat, message)
                    ),
                    60,
                    "try again",
                )
                assert not [
                    s for s in bot_api.replies_to(chat, message) if "Saving" in (s.text or "")
                ]
            finally:
                proxy.restore()
            assert await count(db_stack, "SELECT count(*) FROM items WHERE url = $1", url) == 0
            assert (
                await count(db_stack, "SELECT count(*) FROM outbox WHERE payload->>'url' = $1", url)
                == 0
            )
            assert not (Path(db_stack.media_root) / "items").exists() or not any(
                (Path(db_stack.media_root) / "items").iterdir()
            )
            await eventually(
                lambda: httpx.get(f"{db_stack.base_url}/readyz", timeout=5).status_code == 200,
                60,
                "the gateway ready again",
            )
            again = bot_api.send_text(DORA, url)
            message = again["message"]["message_id"]
            await eventually(
                lambda: any(s.method == "sendVideo" for s in bot_api.replies_to(chat, message)),
                180,
                "the video once PostgreSQL is back",
            )
        finally:
            db_stack.kill("telegram-gateway", signal.SIGTERM)
