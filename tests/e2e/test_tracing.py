"""One OpenTelemetry trace per capture, across every service that touched it (O1)."""

from __future__ import annotations

import time

import pytest

from tests.support.media_server import MediaServer
from tests.support.otlp import OtlpReceiver
from tests.support.stack import Api

pytestmark = pytest.mark.e2e


def test_a_capture_is_one_trace_across_the_services(
    alice: Api, media: MediaServer, traces: OtlpReceiver
) -> None:
    response = alice.capture(media.url("/files/small.mp4?traced=1"))
    assert response.status_code == 202
    item_id = response.json()["id"]
    assert alice.wait_for(item_id)["status"] == "ready"

    def trace_of_item() -> set[str]:
        return {s.trace_id for s in traces.spans if s.attributes.get("prsnl.item_id") == item_id}

    deadline = time.monotonic() + 20
    while not trace_of_item() and time.monotonic() < deadline:
        time.sleep(0.2)
    trace_ids = trace_of_item()
    assert len(trace_ids) == 1, trace_ids
    (trace_id,) = trace_ids
    expected = {"ingest", "downloader", "transcoder"}
    finishing = ("ffmpeg process", "video.transcoded process")  # the transcoder's work, the catalog

    def spans_of_trace() -> list:  # type: ignore[type-arg]
        return [s for s in traces.spans if s.trace_id == trace_id]

    def roots() -> list:  # type: ignore[type-arg]
        spans = spans_of_trace()
        ids = {s.span_id for s in spans}
        return [s for s in spans if s.parent_span_id not in ids]

    def complete() -> bool:
        names = [s.name for s in spans_of_trace()]
        return all(any(n.endswith(f) for n in names) for f in finishing)

    # Each service exports in its own batches, so a parent may arrive after its children:
    # wait until every span's parent is in (one root), not only until the last one is.
    deadline = time.monotonic() + 30
    while not (complete() and len(roots()) == 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    spans = spans_of_trace()
    assert expected <= {s.service for s in spans}, sorted((s.service, s.name) for s in spans)
    names = {s.name for s in spans}
    assert any(n.startswith("POST /api/v1/captures") for n in names), names
    assert complete(), sorted({(s.service, s.name) for s in spans})
    assert any(s.service == "downloader" and s.name == "yt-dlp download" for s in spans)
    # Every span but the root has its parent in the same trace.
    assert len(roots()) == 1, [(s.service, s.name) for s in roots()]
