"""O3: every line every service writes is one JSON object, with the item and trace it is about."""

from __future__ import annotations

import json

import pytest

from tests.support.media_server import MediaServer
from tests.support.stack import MODULES, Api, Stack

pytestmark = pytest.mark.e2e
FIELDS = {"ts", "level", "service", "logger", "msg"}


def _lines(stack: Stack, service: str) -> list[str]:
    return [line for line in stack.logs(service).splitlines() if line.strip()]


def test_every_line_of_every_service_is_json_with_trace_and_item(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    item_id = alice.capture(media.url("/files/small.mp4"), max_height=240).json()["id"]
    assert alice.wait_for(item_id)["status"] in ("ready", "failed")
    # The Telegram gateway runs only in its own tests (it needs a Bot API); they check its
    # lines the same way.
    for service in (name for name in MODULES if name != "telegram-gateway"):
        lines = _lines(stack, service)
        assert lines, f"{service} wrote nothing"
        for line in lines:
            assert "\x1b[" not in line, f"{service}: ANSI escapes in {line[:200]!r}"
            entry = json.loads(line)  # fails the test on a line that is not JSON
            assert isinstance(entry, dict) and entry.keys() >= FIELDS, (service, line[:200])
            assert entry["service"] == service, (service, line[:200])
    about_item = [
        json.loads(line)
        for service in ("downloader", "transcoder")
        for line in _lines(stack, service)
        if item_id in line
    ]
    assert about_item, "the workers logged nothing about the item"
    assert all(entry.get("item_id") == item_id for entry in about_item if "item_id" in entry)
    assert any(entry.get("trace_id") and entry.get("item_id") == item_id for entry in about_item)
