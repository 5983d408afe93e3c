"""The Telegram gateway end to end: a fake Bot API on loopback, the real pipeline, every
service its own process (C2)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from prsnl_telegram.texts import size
from tests.support.clips import make_clip, make_large_h264
from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack, free_port
from tests.support.telegram import (
    ALICE,
    TOKEN,
    FakeBotApi,
    Sent,
    gateway_env,
    replies,
    reply_where,
    video,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

BOB = 222_222
STRANGER = 999_999
NO_VIDEO_PAGE = b"<!DOCTYPE html><html><head><title>No video here</title></head><body><p>Just text."


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
def polling_env(stack: Stack, bot_api: FakeBotApi, alice: Api) -> dict[str, str]:
    return gateway_env(bot_api, stack, {ALICE: alice.key})


@pytest.fixture(scope="module")
def telegram(stack: Stack, polling_env: dict[str, str]) -> Iterator[Stack]:
    stack.start("telegram-gateway", extra_env=polling_env)
    yield stack
    stack.kill("telegram-gateway", signal.SIGTERM)
    print(stack.logs("telegram-gateway")[-6000:])  # shown when a test of the module failed


def saving(sent: Sent) -> bool:
    return sent.method == "sendMessage" and (sent.text or "").startswith("Saving")


async def handled(stack: Stack, update: dict[str, Any]) -> bool:
    """The gateway recorded the update as handled (a replica taking over skips it)."""
    connection = await asyncpg.connect(stack.database_url)
    try:
        return bool(
            await connection.fetchval(
                "SELECT EXISTS (SELECT 1 FROM telegram_updates WHERE update_id = $1)",
                update["update_id"],
            )
        )
    finally:
        await connection.close()


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


async def test_a_failure_says_its_code_with_a_retry_button_that_ends_in_the_video(
    telegram: Stack, bot_api: FakeBotApi, sources: MediaServer, clips: Path
) -> None:
    name = f"fix-{uuid.uuid4().hex[:8]}"
    (sources.root / name).write_bytes(NO_VIDEO_PAGE)
    update = bot_api.send_text(ALICE, sources.url(f"/files/{name}"))
    failure = await reply_where(bot_api, update, lambda s: "code:" in (s.text or ""), 120)
    assert "unsupported_url" in (failure.text or "")
    [button] = failure.buttons
    assert button["text"] == "Retry"

    shutil.copy(clips / "short.mp4", sources.root / name)  # the source is fixed
    bot_api.press(ALICE, failure, button["callback_data"])
    await eventually(
        lambda: any(video(s) for s in bot_api.replies_to(ALICE, failure.message_id)),
        120,
        "the video after Retry",
    )
    assert bot_api.callback_answers, "the button press is answered"
    [sent] = [s for s in bot_api.replies_to(ALICE, failure.message_id) if video(s)]
    assert sent.video and sent.video[4:8] == b"ftyp"


async def test_a_stranger_is_refused_and_nothing_is_captured(
    telegram: Stack, bot_api: FakeBotApi, sources: MediaServer
) -> None:
    url = sources.url("/files/small.mp4?from=stranger")
    update = bot_api.send_text(STRANGER, f"save {url}")
    refusal = await reply_where(bot_api, update, lambda s: True, 30, "the refusal")
    assert refusal.text == "Sorry, this is a private bot."
    command = bot_api.send_text(STRANGER, "/list")
    await reply_where(bot_api, command, lambda s: "private" in (s.text or ""), 30)
    connection = await asyncpg.connect(telegram.database_url)
    try:
        assert await connection.fetchval("SELECT count(*) FROM items WHERE url = $1", url) == 0
        assert (
            await connection.fetchval("SELECT count(*) FROM outbox WHERE payload->>'url' = $1", url)
            == 0
        )
    finally:
        await connection.close()
    assert not [r for r in sources.requests if "stranger" in r.path], "the source was contacted"


async def test_commands_list_status_usage_and_delete(
    telegram: Stack, bot_api: FakeBotApi, sources: MediaServer, alice: Api
) -> None:
    url = sources.url("/files/short.mp4?for=commands")
    update = bot_api.send_text(ALICE, url)
    await reply_where(bot_api, update, video, 120, "the video")
    item = item_by_url(alice, url)

    async def answer(text: str) -> str:
        sent = await reply_where(bot_api, bot_api.send_text(ALICE, text), lambda s: True, 30)
        return sent.text or ""

    assert "/list" in await answer("/help")
    assert item["id"] in await answer("/list")
    status = await answer(f"/status {item['id']}")
    assert "ready" in status and url in status
    assert "items" in await answer("/usage") and "stored" in await answer("/usage")
    assert "/status <item id>" in await answer("/status nonsense")
    assert await answer(f"/delete {item['id']}") == "Deleted."
    assert alice.get(f"/api/v1/items/{item['id']}").status_code == 404
    assert "not_found" in await answer(f"/status {item['id']}")


async def test_odd_updates_and_a_fifty_link_message_never_crash_it(
    telegram: Stack, bot_api: FakeBotApi, sources: MediaServer
) -> None:
    sticker = {
        "file_id": "s1",
        "file_unique_id": "s1u",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    bot_api.send_raw("message", {**bot_api.new_message(ALICE), "sticker": sticker})
    bot_api.send_raw("message", {"chat": "not a chat", "date": "never"})
    bot_api.send_raw("message_reaction", {"chat": {"id": ALICE, "type": "private"}})
    bot_api.send_raw("a_kind_from_the_future", {"anything": [1, 2]})
    bot_api.send_text(ALICE, "x" * 4096)
    links = " ".join(sources.url(f"/status/404?n={n}") for n in range(50))
    update = bot_api.send_text(ALICE, links)
    skipped = await reply_where(bot_api, update, lambda s: "skipped" in (s.text or ""), 60)
    assert "40 more were skipped" in (skipped.text or "")
    assert len([s for s in replies(bot_api, update) if saving(s)]) == 10
    help_update = bot_api.send_text(ALICE, "/help")
    await reply_where(bot_api, help_update, lambda s: True, 30, "an answer after all that")


async def test_killed_after_saving_the_gateway_still_sends_the_video_once(
    telegram: Stack, bot_api: FakeBotApi, sources: MediaServer, polling_env: dict[str, str]
) -> None:
    update = bot_api.send_text(ALICE, sources.url("/slow/small.mp4?rate=150000&for=kill"))
    await reply_where(bot_api, update, saving, 30, "Saving…")
    telegram.kill("telegram-gateway")  # SIGKILL while the item is still downloading
    telegram.start("telegram-gateway", extra_env=polling_env)
    await reply_where(bot_api, update, video, 120, "the video after the restart")
    barrier = bot_api.send_text(ALICE, "/help")  # handled after everything that was due
    await reply_where(bot_api, barrier, lambda s: True, 60, "an answer after the restart")
    assert len([s for s in replies(bot_api, update) if video(s)]) == 1


async def test_two_polling_replicas_answer_each_update_once_and_one_takes_over(
    telegram: Stack, bot_api: FakeBotApi, polling_env: dict[str, str]
) -> None:
    await reply_where(bot_api, bot_api.send_text(ALICE, "/usage"), lambda s: True, 60)
    telegram.start("telegram-gateway", extra_env=polling_env)  # a stand-by replica
    [leader, standby] = telegram.processes["telegram-gateway"]
    standby_log = telegram.root / "logs" / "telegram-gateway-1.log"
    await eventually(
        lambda: "telegram-gateway ready" in standby_log.read_text(), 60, "the stand-by started"
    )
    before = [bot_api.send_text(ALICE, "/usage") for _ in range(5)]
    for update in before:
        await reply_where(bot_api, update, lambda s: True, 60)
    await eventually(lambda: handled(telegram, before[-1]), 30, "the updates recorded")
    os.kill(leader.pid, signal.SIGKILL)
    leader.wait(timeout=30)
    after = [bot_api.send_text(ALICE, "/usage") for _ in range(5)]
    for update in after:
        await reply_where(bot_api, update, lambda s: True, 60, "an answer from the new poller")
    barrier = bot_api.send_text(ALICE, "/help")
    await reply_where(bot_api, barrier, lambda s: True, 60)
    assert [len(replies(bot_api, u)) for u in before + after] == [1] * 10
    assert standby.poll() is None


async def test_a_webhook_with_a_wrong_secret_gets_403_and_captures_nothing(
    telegram: Stack, sources: MediaServer, alice: Api
) -> None:
    port = free_port()
    with FakeBotApi(
        "7000000002:AAE-webhook-test-token", first_update_id=900_000, first_message_id=900_000
    ) as hook_api:
        env = gateway_env(
            hook_api,
            telegram,
            {BOB: alice.key},
            PRSNL_TELEGRAM_MODE="webhook",
            PRSNL_TELEGRAM_WEBHOOK_SECRET="s3cret-Token_1",
            PRSNL_TELEGRAM_WEBHOOK_URL=f"http://127.0.0.1:{port}/telegram/webhook",
            PRSNL_TELEGRAM_WEBHOOK_PORT=str(port),
        )
        telegram.start("telegram-gateway", extra_env=env)
        process = telegram.processes["telegram-gateway"][-1]
        await eventually(lambda: bool(hook_api.webhook.get("url")), 60, "setWebhook")
        assert hook_api.webhook["secret_token"] == "s3cret-Token_1"
        hook = f"http://127.0.0.1:{port}/telegram/webhook"
        url = sources.url("/status/404?for=webhook")
        update = hook_api.send_text(BOB, url)
        async with httpx.AsyncClient(timeout=30) as client:
            for secret in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
                answer = await client.post(hook, json=update, headers=secret)
                assert answer.status_code == 403
        connection = await asyncpg.connect(telegram.database_url)
        try:
            assert await connection.fetchval("SELECT count(*) FROM items WHERE url = $1", url) == 0
        finally:
            await connection.close()
        assert hook_api.sent == []
        right = {"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token_1"}
        async with httpx.AsyncClient(timeout=30) as client:
            for _ in range(2):  # a redelivered update is answered once
                answer = await client.post(hook, json=update, headers=right)
                assert answer.status_code == 200
        assert [s.text for s in hook_api.sent if saving(s)] == [f"Saving\u2026\n{url}"]
        item_by_url(alice, url)
        stop(telegram, process)


def stop(stack: Stack, process: subprocess.Popen[bytes]) -> None:
    """Stop one gateway process of the stack, leaving the others running."""
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=40)
    stack.processes["telegram-gateway"].remove(process)


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    root = tmp_path_factory.mktemp("telegram-files")
    return {
        "3mb": make_clip(root / "3mb.mp4", duration=12, width=640, height=360).read_bytes(),
        # Over the 20 MB the Bot API lets bots download (noise: ~53 MB in about a second).
        "over-20mb": make_large_h264(root / "big.mp4", min_bytes=25 * 1024 * 1024).read_bytes(),
    }


async def test_videos_sent_as_files_are_saved_and_the_bot_api_limit_is_stated(
    telegram: Stack, bot_api: FakeBotApi, alice: Api, big_files: dict[str, bytes]
) -> None:
    update = bot_api.send_video_file(ALICE, big_files["3mb"])
    await reply_where(bot_api, update, saving, 60, "Saving… for the file")
    sent = await reply_where(bot_api, update, video, 180, "the video of the file")
    item = next(
        i
        for i in alice.get("/api/v1/items?limit=50").json()["items"]
        if i["source"] == "telegram" and i["url"].startswith("upload:")
    )
    assert sent.video == (telegram.media_root / "items" / item["id"] / "video.mp4").read_bytes()

    document = bot_api.send_video_file(ALICE, big_files["over-20mb"], as_kind="document")
    answer = await reply_where(bot_api, document, lambda s: True, 60, "the size answer")
    assert "up to 20.0 MB" in (answer.text or "")
    assert f"This file is {size(len(big_files['over-20mb']))}" in (answer.text or "")
    assert bot_api.calls("getFile") == 1, "the too-big file is not even asked for"


async def test_with_a_local_bot_api_server_a_file_over_20_mb_goes_through(
    telegram: Stack, sources: MediaServer, alice: Api, big_files: dict[str, bytes]
) -> None:
    with FakeBotApi(
        "7000000003:AAE-local-server-token",
        local_mode=True,
        first_update_id=800_000,
        first_message_id=800_000,
    ) as local_api:
        env = gateway_env(local_api, telegram, {BOB: alice.key}, PRSNL_TELEGRAM_LOCAL_MODE="true")
        telegram.start("telegram-gateway", extra_env=env)
        process = telegram.processes["telegram-gateway"][-1]
        try:
            update = local_api.send_video_file(BOB, big_files["over-20mb"], as_kind="document")
            await reply_where(local_api, update, saving, 120, "Saving… for the big file")
            digest = hashlib.sha256(big_files["over-20mb"]).hexdigest()
            item = alice.wait_for(item_by_url(alice, f"upload:sha256:{digest}")["id"], timeout=180)
            assert item["status"] == "ready" and item["source"] == "telegram"
        finally:
            stop(telegram, process)


def test_the_token_never_appears_in_the_logs(telegram: Stack) -> None:
    logs = telegram.logs("telegram-gateway")
    # At DEBUG the library logs its Bot API URL, which holds the token: it is masked.
    assert "/bot<bot-token>" in logs
    assert TOKEN not in logs
    assert TOKEN.split(":")[1] not in logs
    for line in filter(str.strip, logs.splitlines()):  # O3: JSON lines, like every service
        assert "\x1b[" not in line, line[:200]
        entry = json.loads(line)
        assert entry["service"] == "telegram-gateway" and entry["msg"] is not None, line[:200]
