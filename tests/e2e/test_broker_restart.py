"""A capture accepted with 202 never waits forever, whatever the broker does (R2).

These tests stop and start RabbitMQ, so they run on a private node of their
own with a stack of their own: the shared broker, and every other test using
it, never notice.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from tests.support.media_server import MediaServer
from tests.support.rabbit import PrivateRabbit, consumed_queues, private_rabbit
from tests.support.stack import Api, Stack, running_stack
from tests.support.telegram import FakeBotApi
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
RESTARTS = 10


@pytest.fixture(scope="module")
def rabbit() -> Iterator[PrivateRabbit]:
    with private_rabbit() as node:
        yield node


@pytest.fixture(scope="module")
def restart_stack(
    tmp_path_factory: pytest.TempPathFactory, rabbit: PrivateRabbit
) -> Iterator[Stack]:
    with running_stack(
        tmp_path_factory.mktemp("restart-stack"),
        downloaders=1,
        PRSNL_RABBITMQ_URL=rabbit.url,
        PRSNL_RETRY_DELAYS="0.5,1,2",
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def carol(restart_stack: Stack) -> Api:
    return restart_stack.client(restart_stack.create_key("carol"))


def wait_for_consumers(rabbit: PrivateRabbit, namespace: str, timeout: float = 60) -> None:
    expected = consumed_queues(namespace)
    deadline = time.monotonic() + timeout
    while True:
        counts = rabbit.consumers(f"{namespace}.")
        missing = sorted(q for q in expected if counts.get(q, 0) < 1)
        if not missing:
            return
        assert time.monotonic() < deadline, f"queues without a consumer: {missing}"
        time.sleep(0.5)


def test_every_consumer_comes_back_after_each_of_ten_broker_restarts(
    rabbit: PrivateRabbit, restart_stack: Stack, carol: Api, media: MediaServer
) -> None:
    wait_for_consumers(rabbit, restart_stack.namespace)
    for attempt in range(RESTARTS):
        rabbit.stop_app()
        rabbit.start_app()
        wait_for_consumers(rabbit, restart_stack.namespace)
        response = carol.capture(media.url(f"/files/small.mp4?restart={attempt}"))
        assert response.status_code == 202, response.text
        item = carol.wait_for(response.json()["id"], timeout=120)
        assert item["status"] == "ready", (attempt, item)


def test_capture_while_the_broker_is_down_is_accepted_and_finishes(
    rabbit: PrivateRabbit, restart_stack: Stack, carol: Api, media: MediaServer
) -> None:
    rabbit.stop_app()
    try:
        response = carol.capture(media.url("/files/small.mp4?broker-down=1"))
        assert response.status_code == 202, response.text
        item_id = response.json()["id"]
        assert carol.item(item_id)["status"] == "pending"
    finally:
        rabbit.start_app()
    item = carol.wait_for(item_id, timeout=180)
    assert item["status"] == "ready", item


async def test_a_telegram_link_while_the_broker_is_down_is_saved_and_answered_after(
    rabbit: PrivateRabbit, restart_stack: Stack, carol: Api, media: MediaServer
) -> None:
    with FakeBotApi("7000000005:AAE-broker-down-token") as bot_api:
        env = {
            "PRSNL_TELEGRAM_BOT_TOKEN": bot_api.token,
            "PRSNL_TELEGRAM_USERS": f"555={carol.key}",
            "PRSNL_TELEGRAM_GATEWAY_URL": restart_stack.base_url,
            "PRSNL_TELEGRAM_API_URL": bot_api.url,
            "PRSNL_TELEGRAM_POLL_TIMEOUT": "1",
        }
        restart_stack.start("telegram-gateway", extra_env=env)
        try:
            await eventually(
                lambda: bool(rabbit.consumers(f"{restart_stack.namespace}.telegram-gateway.")),
                60,
                "the gateway's consumers",
            )
            rabbit.stop_app()
            try:
                update = bot_api.send_text(555, media.url("/files/small.mp4?telegram-down=1"))
                chat, message = update["message"]["chat"]["id"], update["message"]["message_id"]
                await eventually(
                    lambda: any(
                        (s.text or "").startswith("Saving")
                        for s in bot_api.replies_to(chat, message)
                    ),
                    60,
                    "Saving… with the broker down",
                )
            finally:
                rabbit.start_app()
            await eventually(
                lambda: any(s.method == "sendVideo" for s in bot_api.replies_to(chat, message)),
                180,
                "the video once the broker is back",
            )
        finally:
            restart_stack.kill("telegram-gateway", signal.SIGTERM)
