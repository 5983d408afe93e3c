"""The bot token never reaches a log line, an exception text or a span.

The token is part of every Bot API URL (``/bot<token>/getUpdates``), so any
library that logs a URL or an error would print it; one filter on the root
handler replaces it in the message, its arguments, extra fields and tracebacks.
"""

from __future__ import annotations

import logging
import traceback

MASK = "<bot-token>"


class RedactToken(logging.Filter):
    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def scrub(self, text: str) -> str:
        return text.replace(self.token, MASK) if self.token else text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
        record.msg, record.args = self.scrub(message), None
        record.exc_text = None
        for name, value in list(vars(record).items()):
            if isinstance(value, str) and self.token in value:
                setattr(record, name, self.scrub(value))
        return True


def install(token: str) -> None:
    """Filter every handler of the root logger (call after logging is set up)."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactToken(token))
    # httpx logs every request URL (the token is in it) at INFO; errors still get through.
    logging.getLogger("httpx").setLevel(logging.WARNING)
