"""Webhook mode: Telegram posts each update to us; the secret token header is checked (403).

The update is answered 200 only after it was handled (its captures durable),
so Telegram delivers it again if this replica dies first; behind a load
balancer each delivery reaches one replica, and a redelivered update is
recognised by its id (:class:`~prsnl_telegram.polling.UpdateHandler`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from typing import Any

import tornado.web
from telegram import Update
from telegram.ext import Application

from prsnl_telegram.polling import UpdateHandler
from prsnl_telegram.settings import TelegramSettings

PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name
MAX_UPDATE_BYTES = 1024 * 1024
logger = logging.getLogger(__name__)


class _Hook(tornado.web.RequestHandler):
    def initialize(self, secret: str, bot: Any, handler: UpdateHandler) -> None:
        self.secret = secret
        self.bot = bot
        self.handler = handler

    async def post(self) -> None:
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            self.set_status(403)
            return
        if len(self.request.body) > MAX_UPDATE_BYTES:
            self.set_status(413)
            return
        try:
            update = Update.de_json(json.loads(self.request.body), self.bot)
        except (ValueError, TypeError, KeyError):
            self.set_status(400)
            return
        await self.handler(update)
        self.set_status(200)

    def log_exception(self, *args: Any) -> None:
        logger.error("webhook update failed", exc_info=args if args[0] else None)


async def serve_webhook(
    settings: TelegramSettings,
    application: Application[Any, Any, Any, Any, Any, Any],
    handler: UpdateHandler,
) -> None:
    """Listen until cancelled; register the public URL with Telegram when it is set."""
    secret = settings.webhook_secret.get_secret_value()
    web = tornado.web.Application(
        [(PATH, _Hook, {"secret": secret, "bot": application.bot, "handler": handler})]
    )
    server = web.listen(settings.webhook_port, address=settings.webhook_host)
    logger.info("webhook listening on %s:%d%s", settings.webhook_host, settings.webhook_port, PATH)
    if settings.webhook_url:
        await application.bot.set_webhook(
            settings.webhook_url, secret_token=secret, allowed_updates=Update.ALL_TYPES
        )
    try:
        await asyncio.Event().wait()
    finally:
        server.stop()
