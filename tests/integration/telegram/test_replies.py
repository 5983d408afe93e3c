"""Progress edits of the "Saving…" message stop once the item's final answer is given."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from prsnl_common.db import create_pool, ensure_database, migrate
from prsnl_common.events import VideoDownloadProgress
from prsnl_telegram.replies import Replies
from prsnl_telegram.state import MIGRATIONS, Reply, State
from tests.support.stack import POSTGRES_URL, drop_database

pytestmark = pytest.mark.integration


class RecordedEdits:
    """Stands in for the bot's answers: only the edits matter here."""

    def __init__(self) -> None:
        self.edits: list[tuple[int, int, str]] = []

    async def edit(self, chat_id: int, message_id: int, text: str) -> None:
        self.edits.append((chat_id, message_id, text))


@pytest.fixture
async def state() -> AsyncIterator[State]:
    dsn = f"{POSTGRES_URL}/prsnl_tg{uuid.uuid4().hex[:10]}"
    await ensure_database(dsn)
    await migrate(dsn, MIGRATIONS)
    pool: asyncpg.Pool = await create_pool(dsn, max_size=2)
    try:
        yield State(pool, bot_id=1)
    finally:
        await pool.close()
        await drop_database(dsn)


def _progress(item_id: uuid.UUID, run: int) -> VideoDownloadProgress:
    return VideoDownloadProgress(item_id=item_id, run=run, downloaded_bytes=10, total_bytes=100)


async def test_a_late_progress_event_never_overwrites_the_final_answer(state: State) -> None:
    item_id = uuid.uuid4()
    reply = Reply(item_id, chat_id=7, user_id=42, source_message_id=1, status_message_id=2)
    await state.remember_reply(reply)
    answers: Any = RecordedEdits()
    replies = Replies(state, api=None, answers=answers, keys={42: "k"}, edit_interval=0)  # type: ignore[arg-type]

    await replies.on_progress(_progress(item_id, run=1))
    assert len(answers.edits) == 1, "progress before the answer is shown"
    assert await state.claim_delivery(reply, 1, "ready")
    await state.delivery_done(reply, 1, "ready")
    await replies.on_progress(_progress(item_id, run=1))
    assert len(answers.edits) == 1, "a progress event after the final answer changed the message"
    await replies.on_progress(_progress(item_id, run=2))
    assert len(answers.edits) == 2, "a new run (a retry) shows its progress again"
