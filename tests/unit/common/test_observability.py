"""Tracing records spans only when they are exported; logs carry trace ids either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import logging
from opentelemetry import trace
from prsnl_common.observability import JsonFormatter, setup_tracing
setup_tracing("probe")
with trace.get_tracer("probe").start_as_current_span("work") as span:
    record = logging.LogRecord("probe", logging.INFO, "", 0, "hello", None, None)
    record.item_id = "item-1"
    print(span.is_recording())
    print(JsonFormatter("probe").format(record))
"""


@pytest.mark.parametrize(
    ("endpoint", "recording"), [(None, "False"), ("http://127.0.0.1:9", "True")]
)
def test_spans_are_recorded_only_with_an_exporter(endpoint: str | None, recording: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        env["OTEL_EXPORTER_OTLP_TIMEOUT"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    is_recording, line = result.stdout.strip().splitlines()
    assert is_recording == recording
    entry = json.loads(line)
    assert entry["msg"] == "hello" and entry["item_id"] == "item-1"
    assert len(entry["trace_id"]) == 32 and int(entry["trace_id"], 16) != 0
