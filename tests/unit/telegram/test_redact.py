"""The bot token is masked in every part of a log record: message, arguments, extras and
tracebacks."""

from __future__ import annotations

import io
import logging

from prsnl_common.observability import JsonFormatter
from prsnl_telegram.redact import MASK, RedactToken

TOKEN = "7000000001:AAE-secret-part-of-the-token"


def test_the_token_is_masked_everywhere_in_a_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("telegram-gateway"))
    handler.addFilter(RedactToken(TOKEN))
    logger = logging.getLogger("test.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("POST https://api.telegram.org/bot%s/getMe", TOKEN, extra={"url": TOKEN})
        try:
            raise RuntimeError(f"connection to /bot{TOKEN}/sendVideo failed")
        except RuntimeError:
            logger.exception("send failed")
    finally:
        logger.removeHandler(handler)
    output = stream.getvalue()
    assert TOKEN not in output and "secret-part" not in output
    assert output.count(MASK) == 3  # message, extra field, exception text
    assert "RuntimeError" in output, "the traceback itself is kept"
