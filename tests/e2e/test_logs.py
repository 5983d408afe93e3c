"""O3: every line every service writes is one JSON object, with the item and trace it is about."""

from __future__ import annotations

import json

import pytest

from tests.support.media_server import MediaServer
from tests.support.otlp import OtlpReceiver, ReceivedLog
from tests.support.stack import MODULES, Api, Stack
from tests.support.waiting import wait_until

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


def test_log_records_reach_the_collector_with_the_trace_of_their_capture(
    alice: Api, media: MediaServer, traces: OtlpReceiver
) -> None:
    """From a trace to its lines: the records the log store gets carry the capture's trace."""
    item_id = alice.capture(media.url("/files/small.mp4?logged=1"), max_height=240).json()["id"]
    assert alice.wait_for(item_id)["status"] == "ready"

    def about_item() -> list[ReceivedLog]:
        return [r for r in traces.logs if r.attributes.get("item_id") == item_id]

    wait_until(lambda: bool(about_item()), within=30, what="log records about the item")
    trace_ids = {r.trace_id for r in about_item()}
    assert len(trace_ids) == 1 and "" not in trace_ids, trace_ids
    (trace_id,) = trace_ids

    def of_trace() -> list[ReceivedLog]:
        return [r for r in traces.logs if r.trace_id == trace_id]

    def spans_of_trace() -> set[str]:
        return {s.span_id for s in traces.spans if s.trace_id == trace_id}

    # Each record names a span of the capture's trace (spans come in their own batches).
    wait_until(
        lambda: {r.span_id for r in of_trace()} <= spans_of_trace(),
        within=30,
        what="the spans the log records point at",
    )
    assert {r.service for r in of_trace()} <= set(MODULES)
    for record in of_trace():
        assert record.body and record.severity in ("DEBUG", "INFO", "WARN", "ERROR"), record
    # Every service exports its records, not only the workers that touched the item.
    running = {name for name in MODULES if name != "telegram-gateway"}
    wait_until(lambda: running <= {r.service for r in traces.logs}, within=30, what="every service")
