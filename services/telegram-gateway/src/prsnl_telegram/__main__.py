"""Command line of the Telegram gateway."""

from __future__ import annotations

import argparse
import asyncio
import sys

from pydantic import ValidationError

from prsnl_common.observability import setup_logging
from prsnl_common.settings import CommonSettings
from prsnl_common.worker import build_worker
from prsnl_telegram import redact
from prsnl_telegram.app import SERVICE, make_setup
from prsnl_telegram.settings import TelegramSettings

DESCRIPTION = """PRSNL Media Telegram gateway: people send the bot links (or video files) and
get the saved video back in the chat. Everything goes through the PRSNL HTTP API at
PRSNL_TELEGRAM_GATEWAY_URL with the API key of each allowed user.

Required: PRSNL_TELEGRAM_BOT_TOKEN (from @BotFather) and PRSNL_TELEGRAM_USERS
("<telegram user id>=<API key>, ...", keys from `prsnl-ingest create-key --owner NAME`).
Optional: PRSNL_TELEGRAM_MODE=polling|webhook (webhook needs PRSNL_TELEGRAM_WEBHOOK_SECRET,
PRSNL_TELEGRAM_WEBHOOK_URL, _HOST, _PORT), PRSNL_TELEGRAM_API_URL and
PRSNL_TELEGRAM_LOCAL_MODE=true for a local Bot API server (2000 MB uploads, no download
limit), PRSNL_TELEGRAM_MAX_LINKS (10), PRSNL_TELEGRAM_EDIT_INTERVAL_SECONDS (3),
PRSNL_TELEGRAM_METRICS_PORT (9105: /metrics, /healthz, /readyz).
Shared settings: PRSNL_DATABASE_URL, PRSNL_RABBITMQ_URL, PRSNL_MEDIA_ROOT, PRSNL_NAMESPACE.
Several replicas may run: one polls at a time (a PostgreSQL advisory lock), the others
stand by and take over."""


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="prsnl-telegram-gateway",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        settings = TelegramSettings()
    except ValidationError as exc:
        problems = "; ".join(
            f"PRSNL_TELEGRAM_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors(include_input=False)
        )
        sys.exit(f"prsnl-telegram-gateway: invalid settings: {problems}")
    common = CommonSettings()
    setup_logging(SERVICE, level=common.log_level, fmt=common.log_format)
    redact.install(settings.bot_token.get_secret_value())
    app = build_worker(
        SERVICE, common, make_setup(settings, common), metrics_port=settings.metrics_port
    )
    asyncio.run(app.run())


if __name__ == "__main__":
    main()
