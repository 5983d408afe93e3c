"""The Telegram gateway end to end: a fake Bot API on loopback, the real pipeline, every
service its own process (C2)."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack, free_port
from tests.support.telegram import FakeBotApi, Sent
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TOKEN = "7000000001:AAE-prsnl-test-token-9f8e7d6c5b4a3210"
ALICE = 111_111
STRANGER = 999_999
NO_VIDEO_PAGE = b"<!DOCTYPE html><html><head><title>No video here</title></head><body><p>Just text."


def gateway_env(bot_api: FakeBotApi, stack: Stack, users: dict[int, str], **extra: str) -> dict[str, str]:
    return {
        "PRSNL_TELEGRAM_BOT_TOKEN": bot_api.token,
        "PRSNL_TELEGRAM_USERS": ", ".join(f"{uid}={key}" for uid, key in users.items()),
        "PRSNL_TELEGRAM_GATEWAY_URL": stack.base_url,
        "PRSNL_TELEGRAM_API_URL": bot_api.url,
        "PRSNL_TELEGRAM_POLL_TIMEOUT": "1",
        "PRSNL_TELEGRAM_EDIT_INTERVAL_SECONDS": "0.5",
        "PRSNL_TELEGRAM_LEADER_RETRY_SECONDS": "0.5",
        **extra,
    }


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, clips: Path) -> Iterator[MediaServer]:
    """Links of these tests: the session's clips, and files a test may change."""
    root = tmp_path_factory.mktemp("telegram-sources")
    for name in ("small.mp4", "short.mp4"):
        shutil.copy(clips / name, root / name)
    with MediaServer(root) as server:
        yield server


@pytest.fixture(scope="module")
def bot_api() -> Iterator[FakeBotApi]:
    with FakeBotApi(TOKEN) as api:
        yield api


@pytest.fixture(scope="module")
def telegram(stack: Stack, bot_api: FakeBotApi, alice: Api) -> Iterator[Stack]:
    stack.start("telegram-gateway", extra_env=gateway_env(bot_api, stack, {ALICE: alice.key}))
    yield stack
    stack.kill("telegram-gateway", signal.SIGTERM)
    print(stack.logs("telegram-gateway")[-6000:])  # shown when a test of the module failed


def replies(bot_api: FakeBotApi, update: dict[str, Any]) -> list[Sent]:
    message = update["message"]
    return bot_api.replies_to(message["chat"]["id"], message["message_id"])


async def reply_where(
    bot_api: FakeBotApi, update: dict[str, Any], check: Any, within: float = 120, what: str = ""
) -> Sent:
    found: list[Sent] = []

    def seen() -> bool:
        found[:] = [s for s in replies(bot_api, update) if check(s)]
        return bool(found)

    await eventually(seen, within, what or "a reply")
    return found[0]


def saving(sent: Sent) -> bool:
    return sent.method == "sendMessage" and (sent.text or "").startswith("Saving")


def video(sent: Sent) -> bool:
    return sent.method == "sendVideo"


def item_by_url(api: Api, url: str) -> dict[str, Any]:
    items = api.get("/api/v1/items?limit=100").json()["items"]
    return next(item for item in items if item["url"] == url)


async def test_a_link_is_saved_with_progress_and_the_video_comes_back_then_by_file_id(
    telegram: Stack, bot_api: FakeBotApi, sources: MediaServer, alice: Api
) -> None:
    url = sources.url("/slow/small.mp4?rate=120000")
    update = bot_api.send_text(ALICE, f"have a look: {url} thanks")
    status = await reply_where(bot_api, update, saving, 30, "Saving…")
    sent = await reply_where(bot_api, update, video, 120, "the video")
    item = item_by_url(alice, url)
    assert item["status"] == "ready" and item["source"] == "telegram"
    stored = telegram.media_root / "items" / item["id"] / "video.mp4"
    assert sent.video == stored.read_bytes()
    assert sent.thumbnail, "a thumbnail goes with the video"
    assert sent.caption and item["title"] in sent.caption
    assert sent.params["supports_streaming"] in (True, "true", "True")
    assert int(sent.params["width"]) == 640 and int(sent.params["height"]) == 360
    assert int(sent.params["duration"]) == round(item["duration"])
    progress = [e for e in status.edits if e.startswith(("Downloading", "Processing"))]
    assert progress, f"no progress edit: {status.edits}"

    again = bot_api.send_text(ALICE, url)
    resent = await reply_where(bot_api, again, video, 30, "the video by file_id")
    assert resent.video is None, "the same video again must not be uploaded"
    assert resent.video_file_id == sent.video_file_id
    assert len([s for s in bot_api.sent if video(s) and s.video is not None]) >= 1
