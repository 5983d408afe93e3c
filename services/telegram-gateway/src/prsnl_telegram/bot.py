"""The bot's handlers: links and files become captures through the API, commands query it.

Trust is decided here, at the edge: only allowed Telegram users (each mapped to
the API key of a catalog owner) get past :meth:`Bot.owner_key`; everyone else
gets a short refusal and nothing is captured. A capture is durable (the API
answered 202/200) before the bot says "Saving…"; when the API cannot make it
durable the user is told to send it again.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatType
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from prsnl_telegram import texts
from prsnl_telegram.answers import Answers
from prsnl_telegram.api import Api, Refused, Unavailable
from prsnl_telegram.files import Files
from prsnl_telegram.links import links_in
from prsnl_telegram.settings import MB, TelegramSettings
from prsnl_telegram.state import DB_ERRORS, Reply, State

logger = logging.getLogger(__name__)
OUTCOME: contextvars.ContextVar[str] = contextvars.ContextVar("outcome", default="ignored")
Context = ContextTypes.DEFAULT_TYPE
VIDEO_FILES = (
    filters.VIDEO | filters.ANIMATION | filters.VIDEO_NOTE | filters.Document.Category("video/")
)


class Bot:
    def __init__(
        self,
        settings: TelegramSettings,
        api: Api,
        state: State,
        answers: Answers,
        files: Files,
    ) -> None:
        self.settings = settings
        self.api = api
        self.state = state
        self.answers = answers
        self.files = files
        self.keys = settings.allowed_users

    def install(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        commands = {
            "start": self.on_help,
            "help": self.on_help,
            "list": self.on_list,
            "status": self.on_status,
            "retry": self.on_retry,
            "delete": self.on_delete,
            "usage": self.on_usage,
        }
        for name, handler in commands.items():
            app.add_handler(CommandHandler(name, handler))
        app.add_handler(MessageHandler(VIDEO_FILES, self.on_file))
        app.add_handler(
            MessageHandler(filters.UpdateType.MESSAGES & ~filters.COMMAND, self.on_text)
        )
        app.add_handler(CallbackQueryHandler(self.on_callback))
        app.add_error_handler(self.on_error)

    def owner_key(self, update: Update) -> str | None:
        user = update.effective_user
        return self.keys.get(user.id) if user is not None else None

    async def refuse(self, update: Update) -> None:
        OUTCOME.set("refused")
        if update.callback_query is not None:
            await update.callback_query.answer(texts.REFUSED, show_alert=True)
        elif update.effective_message is not None:
            await update.effective_message.reply_text(texts.REFUSED)

    # -- links ----------------------------------------------------------------------------

    async def on_text(self, update: Update, context: Context) -> None:
        message = update.effective_message
        if message is None:
            return
        key = self.owner_key(update)
        if key is None:
            await self.refuse(update)
            return
        links = links_in(message)
        if not links:
            if message.chat.type == ChatType.PRIVATE:
                await message.reply_text(texts.NO_LINKS)
            return
        OUTCOME.set("captured")
        limit = self.settings.max_links
        for url in links[:limit]:
            await self.capture(key, message, url)
        if len(links) > limit:
            await message.reply_text(texts.skipped(len(links) - limit, limit))

    async def capture(self, key: str, message: Message, url: str) -> None:
        try:
            marker = await self.state.capture_started()
        except DB_ERRORS:
            OUTCOME.set("unavailable")
            await message.reply_text(texts.TRY_AGAIN.format(what=url))
            return
        try:
            captured = await self.api.capture(key, url, message.chat_id, message.message_id)
        except Unavailable:
            await self.state.capture_finished(marker)
            OUTCOME.set("unavailable")
            await message.reply_text(texts.TRY_AGAIN.format(what=url))
            return
        except Refused as exc:
            await self.state.capture_finished(marker)
            await message.reply_text(f"Could not save {url}:\n{exc.message}\n(code: {exc.code})")
            return
        item = captured.item
        reply = self._reply(item["id"], message, None)
        await self.state.remember_reply(reply)
        await self.state.capture_finished(marker)
        if not captured.created and item["status"] in ("ready", "failed"):
            await self.answer_finished(message, item)
            return
        status = await message.reply_text(texts.saving(url))
        await self.state.remember_reply(self._reply(item["id"], message, status.message_id))

    async def answer_finished(self, message: Message, item: dict[str, Any]) -> None:
        """A link saved before: the video at once (by file_id), or its failure."""
        if item["status"] == "ready":
            await self.answers.ready(message.chat_id, message.message_id, item)
        else:
            code = (item.get("error") or {}).get("code") or "unknown"
            await self.answers.failed(
                message.chat_id, message.message_id, item["id"], texts.failed(item), code
            )

    def _reply(self, item_id: str, message: Message, status_id: int | None) -> Reply:
        user = message.from_user
        return Reply(
            item_id=uuid.UUID(str(item_id)),
            chat_id=message.chat_id,
            user_id=user.id if user else 0,
            source_message_id=message.message_id,
            status_message_id=status_id,
        )

    # -- files ----------------------------------------------------------------------------

    async def on_file(self, update: Update, context: Context) -> None:
        message = update.effective_message
        key = self.owner_key(update)
        if message is None:
            return
        if key is None:
            await self.refuse(update)
            return
        OUTCOME.set("file")
        try:
            captured = await self.files.capture(key, message)
        except Unavailable:
            await message.reply_text(texts.TRY_AGAIN.format(what="this file"))
            return
        except Refused as exc:
            await message.reply_text(f"Could not save this file:\n{exc.message}\n({exc.code})")
            return
        if captured is None:
            return  # Files has answered (too big for the Bot API)
        item = captured.item
        await self.state.remember_reply(self._reply(item["id"], message, None))
        if not captured.created and item["status"] in ("ready", "failed"):
            await self.answer_finished(message, item)
            return
        status = await message.reply_text("Saving\u2026 (your file)")
        await self.state.remember_reply(self._reply(item["id"], message, status.message_id))

    # -- commands -------------------------------------------------------------------------

    async def on_help(self, update: Update, context: Context) -> None:
        if update.effective_message is None:
            return
        if self.owner_key(update) is None:
            await self.refuse(update)
            return
        OUTCOME.set("command")
        download = self.settings.download_limit_bytes
        await update.effective_message.reply_text(
            texts.help_text(
                self.settings.max_links,
                self.settings.upload_limit_bytes // MB,
                download // MB if download else None,
            )
        )

    async def on_list(self, update: Update, context: Context) -> None:
        await self._command(update, lambda key, _: self._list_page(key, 0))

    async def on_status(self, update: Update, context: Context) -> None:
        async def status(key: str, item_id: str) -> str:
            return texts.status(await self.api.item(key, item_id))

        await self._command(update, status, needs_id=True)

    async def on_retry(self, update: Update, context: Context) -> None:
        message = update.effective_message

        async def retry(key: str, item_id: str) -> str:
            item = await self.api.retry(key, item_id)
            if message is not None:
                await self.state.remember_reply(self._reply(item["id"], message, None))
            return f"Trying again\u2026\n{item['url']}"

        await self._command(update, retry, needs_id=True)

    async def on_delete(self, update: Update, context: Context) -> None:
        async def delete(key: str, item_id: str) -> str:
            await self.api.delete(key, item_id)
            await self.state.forget_item(uuid.UUID(item_id))
            return "Deleted."

        await self._command(update, delete, needs_id=True)

    async def on_usage(self, update: Update, context: Context) -> None:
        async def usage(key: str, _: str) -> str:
            return texts.usage(await self.api.usage(key))

        await self._command(update, usage)

    async def _command(self, update: Update, run: Any, needs_id: bool = False) -> None:
        message = update.effective_message
        if message is None or message.text is None:
            return
        key = self.owner_key(update)
        if key is None:
            await self.refuse(update)
            return
        OUTCOME.set("command")
        argument = message.text.split(maxsplit=1)[1].strip() if " " in message.text else ""
        if needs_id and not _is_uuid(argument):
            command = message.text.split()[0]
            await message.reply_text(f"Send it as {command} <item id> (from /list).")
            return
        try:
            answer = await run(key, argument)
        except Refused as exc:
            answer = f"{exc.message} ({exc.code})"
        except Unavailable:
            answer = "The catalog is not answering right now. Please try again in a moment."
        if isinstance(answer, tuple):
            await message.reply_text(answer[0], reply_markup=answer[1])
        else:
            await message.reply_text(answer)

    async def _list_page(self, key: str, page: int) -> tuple[str, InlineKeyboardMarkup | None]:
        cursor: str | None = None
        answer: dict[str, Any] = {"items": [], "next_cursor": None}
        for _ in range(page + 1):  # callback data is too small for a cursor; walk to the page
            answer = await self.api.items(key, texts.LIST_PAGE, cursor)
            cursor = answer.get("next_cursor")
            if cursor is None:
                break
        items = answer["items"]
        if not items:
            return "Nothing saved yet. Send me a link.", None
        text = "\n".join(texts.status_line(item) for item in items)
        buttons = []
        if page > 0:
            buttons.append(InlineKeyboardButton("\u2039 Newer", callback_data=f"list:{page - 1}"))
        if answer.get("next_cursor"):
            buttons.append(InlineKeyboardButton("Older \u203a", callback_data=f"list:{page + 1}"))
        return text, InlineKeyboardMarkup([buttons]) if buttons else None

    # -- buttons --------------------------------------------------------------------------

    async def on_callback(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None:
            return
        key = self.owner_key(update)
        if key is None:
            await self.refuse(update)
            return
        OUTCOME.set("button")
        action, _, value = (query.data or "").partition(":")
        try:
            if action == "retry" and _is_uuid(value):
                await self._retry_button(key, query.message, value, query.from_user.id)
                await query.answer("Trying again\u2026")
            elif action == "list" and value.isdigit() and int(value) < 100:
                text, markup = await self._list_page(key, int(value))
                await query.answer()
                if isinstance(query.message, Message):
                    await query.message.edit_text(text, reply_markup=markup)
            else:
                await query.answer("This button is not mine.")
        except Refused as exc:
            await query.answer(f"{exc.message} ({exc.code})", show_alert=True)
        except Unavailable:
            await query.answer("The catalog is not answering; try again.", show_alert=True)

    async def _retry_button(self, key: str, message: object, item_id: str, user_id: int) -> None:
        item = await self.api.retry(key, item_id)
        if not isinstance(message, Message):
            return
        # The answers of the new run go to the chat of the button, under the failure message.
        await message.edit_reply_markup(None)
        status = await message.reply_text(texts.saving(item["url"]))
        await self.state.remember_reply(
            Reply(
                item_id=uuid.UUID(item_id),
                chat_id=message.chat_id,
                user_id=user_id,
                source_message_id=message.message_id,
                status_message_id=status.message_id,
            )
        )

    async def on_error(self, update: object, context: Context) -> None:
        OUTCOME.set("error")
        logger.error("handling an update failed: %r", context.error, exc_info=context.error)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
