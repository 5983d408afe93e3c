"""Logging, tracing and metrics set-up, written once for every service.

* Logs: one JSON object per line with the trace id, span id and item id when
  known (``extra={"item_id": ...}``). With ``OTEL_LOGS_EXPORTER=otlp`` (or
  ``OTEL_EXPORTER_OTLP_LOGS_ENDPOINT``) every record also goes out as an OTLP
  log record, trace and span ids included, to the collector that feeds the log
  store: an operator goes from a trace to its lines by the trace id.
* Traces: an OpenTelemetry tracer provider named after the service; spans are
  exported with OTLP/HTTP when the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) variable is set, so Jaeger or Tempo
  receive one trace per capture. FastStream and Litestar middlewares come from
  :func:`broker_middlewares` and the ingest app.
* Metrics: one Prometheus registry per process; workers expose it with
  :func:`serve_metrics`, beside ``/healthz`` and ``/readyz`` for probes.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from prometheus_client import REGISTRY, CollectorRegistry, make_wsgi_app

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with trace context and any ``extra`` fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            entry["trace_id"] = f"{context.trace_id:032x}"
            entry["span_id"] = f"{context.span_id:016x}"
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {service} %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler, *_exported_logs(service)]
    root.setLevel(level.upper())
    # Libraries that bring a text handler of their own (FastStream's "faststream" logger
    # writes coloured lines): their records go through the root handler instead.
    for library in ("faststream",):
        own = logging.getLogger(library)
        own.handlers.clear()
        own.propagate = True
    # Per-message framework chatter stays out of the way unless asked for.
    for noisy in ("aiormq", "aio_pika", "faststream.access", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


_LOG_EXPORT: dict[str, logging.Handler] = {}


def logs_exported() -> bool:
    """Whether log records also go out over OTLP (asked for, not implied by a traces endpoint).

    Jaeger takes spans but no logs, so the shared ``OTEL_EXPORTER_OTLP_ENDPOINT``
    alone does not turn log export on.
    """
    exporters = os.environ.get("OTEL_LOGS_EXPORTER", "").replace(" ", "").split(",")
    return "otlp" in exporters or bool(os.environ.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"))


def _exported_logs(service: str) -> list[logging.Handler]:
    """The OTLP log handler, made once per process (set-up may run again)."""
    if not logs_exported():
        return []
    if service not in _LOG_EXPORT:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.instrumentation.logging.handler import LoggingHandler
        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

        provider = LoggerProvider(resource=_resource(service))  # flushed at exit
        provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        handler = LoggingHandler(logger_provider=provider)
        # The exporter's own complaints (collector down) stay on stderr, not in a loop.
        handler.addFilter(lambda record: not record.name.startswith("opentelemetry"))
        _LOG_EXPORT[service] = handler
    return [_LOG_EXPORT[service]]


def _resource(service: str) -> Resource:
    return Resource.create({"service.name": service})


def setup_tracing(service: str) -> TracerProvider:
    """Install the global tracer provider; OTLP export when an endpoint is configured.

    Without an exporter nothing would read the spans, so they are not recorded
    (sampler off): trace ids still flow through HTTP, the outbox and every
    message, and still appear in the logs, but requests skip the recording
    cost (measured: +60 % requests/s on item reads).
    """
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    resource = _resource(service)
    if tracing_exported():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=resource)  # sampler from OTEL_TRACES_SAMPLER
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider = TracerProvider(resource=resource, sampler=ALWAYS_OFF)
    trace.set_tracer_provider(provider)
    return provider


_TRACE_HEADERS = frozenset({b"traceparent", b"tracestate", b"baggage"})
_requests = trace.get_tracer("prsnl.requests")


class TraceContextMiddleware:
    """ASGI middleware for when no span is exported: the caller's trace context, nothing more.

    Each request runs in a (non-recording) span that continues the caller's
    ``traceparent``, so trace ids still reach the logs, the outbox and every
    message. OpenTelemetry's ASGI middleware would also collect a dozen request
    attributes per request for spans nobody records (measured: 13 % of an item read).
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _TRACE_HEADERS
        }
        with _requests.start_as_current_span("request", context=propagate.extract(carrier)):
            await self.app(scope, receive, send)


def broker_middlewares(service: str, registry: CollectorRegistry = REGISTRY) -> tuple[Any, ...]:
    """FastStream's telemetry and Prometheus middlewares, configured once."""
    from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
    from faststream.rabbit.prometheus import RabbitPrometheusMiddleware

    provider = setup_tracing(service)
    return (
        RabbitTelemetryMiddleware(tracer_provider=provider),
        RabbitPrometheusMiddleware(registry=registry, app_name=service),
    )


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds are not worth a log line."""


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def health_app(
    registry: CollectorRegistry, ready: Callable[[], dict[str, str]] | None
) -> Callable[..., Any]:
    """``/metrics`` plus ``/healthz`` (alive) and ``/readyz`` (every check "ok", else 503).

    ``ready`` returns named checks; anything but "ok" is the human reason it is not.
    """
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        path = environ.get("PATH_INFO", "")
        if path not in ("/healthz", "/readyz"):
            return metrics(environ, start_response)
        checks = ready() if ready and path == "/readyz" else {}
        ok = all(value == "ok" for value in checks.values())
        body = json.dumps({"status": "ok" if ok else "not ready", "checks": checks}).encode()
        status = "200 OK" if ok else "503 Service Unavailable"
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return app


def serve_metrics(
    port: int,
    registry: CollectorRegistry = REGISTRY,
    *,
    ready: Callable[[], dict[str, str]] | None = None,
) -> bool:
    """Expose ``/metrics``, ``/healthz`` and ``/readyz`` on ``port`` (0 disables).

    False when the port is taken: several replicas on one machine cannot share a
    port; the second one logs and goes on without its own endpoint rather than
    failing to start.
    """
    if port <= 0:
        return False
    try:
        server = make_server(
            "0.0.0.0",
            port,
            health_app(registry, ready),
            server_class=_ThreadingWSGIServer,
            handler_class=_QuietHandler,
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("metrics port %d unavailable: %s", port, exc)
        return False
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return True


def tracing_exported() -> bool:
    """Whether spans go anywhere: an OTLP endpoint is configured."""
    # Reading OTEL_* here is the OpenTelemetry convention, not service configuration.
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def instrument_asyncpg() -> None:
    """A span per query, when spans are exported: without an exporter they would only cost.

    A query span is a leaf (nothing propagates from it), so leaving it out when
    nothing records spans loses no trace context.
    """
    if not tracing_exported():
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()
