"""A minimal OTLP/HTTP receiver on loopback: the spans Jaeger and the log records the log
store would get from the collector, for tests."""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, str]


@dataclass(frozen=True)
class ReceivedLog:
    service: str
    logger: str
    severity: str
    body: str
    trace_id: str
    span_id: str
    attributes: dict[str, str]


def _text(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    return "" if kind is None else str(getattr(value, kind))


def _attributes(pairs: list[KeyValue]) -> dict[str, str]:
    return {pair.key: _text(pair.value) for pair in pairs}


def _service(resource: Resource) -> str:
    return _attributes(list(resource.attributes)).get("service.name", "")


class OtlpReceiver:
    """Collects what is exported to ``http://127.0.0.1:<port>/v1/traces`` and ``/v1/logs``."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self._logs: list[ReceivedLog] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                signal = receiver._signals.get(self.path)
                if signal is None:
                    self.send_error(404)
                    return
                request, response, add = signal
                message = request()
                message.ParseFromString(body)
                add(message)
                answer = response().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self._signals: dict[str, tuple[type[Message], type[Message], Any]] = {
            "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse, self._add),
            "/v1/logs": (ExportLogsServiceRequest, ExportLogsServiceResponse, self._add_logs),
        }
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    @property
    def logs(self) -> list[ReceivedLog]:
        with self._lock:
            return list(self._logs)

    def _add_logs(self, request: ExportLogsServiceRequest) -> None:
        found = [
            ReceivedLog(
                service=_service(resource_logs.resource),
                logger=scope_logs.scope.name,
                severity=record.severity_text,
                body=_text(record.body),
                trace_id=record.trace_id.hex(),
                span_id=record.span_id.hex(),
                attributes=_attributes(list(record.attributes)),
            )
            for resource_logs in request.resource_logs
            for scope_logs in resource_logs.scope_logs
            for record in scope_logs.log_records
        ]
        with self._lock:
            self._logs.extend(found)

    def _add(self, request: ExportTraceServiceRequest) -> None:
        found: list[ReceivedSpan] = []
        for resource_spans in request.resource_spans:
            service = _service(resource_spans.resource)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(list(span.attributes)),
                        )
                    )
        with self._lock:
            self._spans.extend(found)

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OtlpReceiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
