"""Tracing records spans only when they are exported; logs carry trace ids either way."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.otlp import OtlpReceiver

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


def _probe(script: str, **otel: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter with only the given ``OTEL_*`` variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")} | otel
    return subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize(
    ("endpoint", "recording"), [(None, "False"), ("http://127.0.0.1:9", "True")]
)
def test_spans_are_recorded_only_with_an_exporter(endpoint: str | None, recording: str) -> None:
    exporter = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_TIMEOUT": "1"}
    result = _probe(PROBE, **(exporter if endpoint else {}))
    is_recording, line = result.stdout.strip().splitlines()
    assert is_recording == recording
    entry = json.loads(line)
    assert entry["msg"] == "hello" and entry["item_id"] == "item-1"
    assert len(entry["trace_id"]) == 32 and int(entry["trace_id"], 16) != 0


EXPORTING = """
import logging
from opentelemetry import trace
from prsnl_common.observability import setup_logging, setup_tracing
setup_logging("probe")
setup_tracing("probe")
with trace.get_tracer("probe").start_as_current_span("work") as span:
    logging.getLogger("probe.work").warning("disk %s", "low", extra={"item_id": "item-1"})
    context = span.get_span_context()
    print(f"{context.trace_id:032x} {context.span_id:016x}")
"""


@pytest.mark.parametrize(
    ("variables", "exported"),
    [
        ({"OTEL_LOGS_EXPORTER": "otlp"}, True),
        ({"OTEL_LOGS_EXPORTER": "console, otlp"}, True),
        ({"OTEL_LOGS_EXPORTER": "none"}, False),
        ({}, False),  # a traces endpoint alone (Jaeger) takes no logs
    ],
)
def test_log_records_are_exported_over_otlp_when_asked(
    variables: dict[str, str], exported: bool
) -> None:
    with OtlpReceiver() as receiver:
        result = _probe(EXPORTING, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, **variables)
        trace_id, span_id = result.stdout.split()
        # The exit flushes the batch: what arrived is all there will be.
        records = [r for r in receiver.logs if r.logger == "probe.work"]
    assert json.loads(result.stderr.splitlines()[-1])["msg"] == "disk low"  # stderr stays
    if not exported:
        assert records == []
        return
    (record,) = records
    assert (record.service, record.severity, record.body) == ("probe", "WARN", "disk low")
    assert (record.trace_id, record.span_id) == (trace_id, span_id)
    assert record.attributes["item_id"] == "item-1"
