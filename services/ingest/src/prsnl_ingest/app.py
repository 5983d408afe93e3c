"""Wiring of the gateway: Litestar app, catalog subscribers, outbox relay, live hub.

One process serves HTTP and keeps the catalog; run several behind a load
balancer to scale, or several on one port (``PRSNL_INGEST_WORKERS``, see
serving.py). The lifespan creates every resource once and hands it to
handlers as the ``gateway`` dependency.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import limits
from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.opentelemetry import OpenTelemetryConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController
from litestar.plugins.pydantic import PydanticPlugin
from opentelemetry.sdk.trace import TracerProvider

from prsnl_common.broker import Topology, create_broker
from prsnl_common.db import create_pool, ensure_database, migrate
from prsnl_common.liveness import ConsumerWatch
from prsnl_common.observability import (
    TraceContextMiddleware,
    broker_middlewares,
    instrument_asyncpg,
    serve_metrics,
    setup_tracing,
    tracing_exported,
)
from prsnl_common.settings import CommonSettings
from prsnl_common.store import open_store
from prsnl_common.worker import consumer_checks
from prsnl_ingest import catalog
from prsnl_ingest.api.captures import CaptureController
from prsnl_ingest.api.deps import (
    CaptureLimiter,
    Gateway,
    KeyCache,
    provide_capture_allowance,
    provide_gateway,
    provide_links,
    provide_owner,
)
from prsnl_ingest.api.health import HealthController
from prsnl_ingest.api.items import ItemController, MediaAuthorizationController
from prsnl_ingest.api.problems import EXCEPTION_HANDLERS
from prsnl_ingest.api.storage import StorageController
from prsnl_ingest.api.uploads import UploadController
from prsnl_ingest.api.web import web_router
from prsnl_ingest.catalog import KEYS_CHANNEL
from prsnl_ingest.itemcache import CHANNEL as ITEM_CHANGES_CHANNEL
from prsnl_ingest.itemcache import ItemCache
from prsnl_ingest.live import LiveHub
from prsnl_ingest.outbox import CHANNEL as OUTBOX_CHANNEL
from prsnl_ingest.outbox import OutboxRelay
from prsnl_ingest.settings import IngestSettings
from prsnl_ingest.signing import LinkSigner
from prsnl_ingest.stages import CHANNEL as STAGES_CHANNEL
from prsnl_ingest.stages import StagePauses
from prsnl_ingest.subscribers import SERVICE, subscribe_catalog

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger(__name__)


class MetricsController(PrometheusController):
    path = "/metrics"
    include_in_schema = False


async def _link_signer(pool: asyncpg.Pool, settings: IngestSettings) -> LinkSigner:
    """The signer of media links, with the configured secret or the catalog's shared one."""
    secret = settings.link_secret.get_secret_value().encode()
    if not secret:
        secret = await catalog.link_secret(pool, secrets.token_bytes(32))
    return LinkSigner(secret, settings.signed_link_seconds)


def _tracing_middleware(tracer_provider: TracerProvider) -> Any:
    """OpenTelemetry's request spans when they are exported, else only the trace context."""
    if not tracing_exported():
        return TraceContextMiddleware
    # A span per request, not three more per response part (each SSE message).
    return OpenTelemetryConfig(
        tracer_provider=tracer_provider, exclude_spans=["receive", "send"]
    ).middleware


def create_app(
    settings: IngestSettings | None = None, common: CommonSettings | None = None
) -> Litestar:
    settings = settings or IngestSettings()
    common = common or CommonSettings()
    tracer_provider = setup_tracing(SERVICE)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        await ensure_database(common.database_url)
        await migrate(common.database_url, MIGRATIONS)
        instrument_asyncpg()
        # The gateway LISTENs and locks on connections of its own, never on pooled ones.
        pool = await create_pool(
            common.database_url, max_size=settings.pool_size, session_state=False
        )
        broker = create_broker(common, middlewares=broker_middlewares(SERVICE))
        topology = Topology(common)
        subscribe_catalog(broker, topology, pool, settings.progress_interval_seconds)
        captures = catalog.CaptureWriter(pool)
        keys = KeyCache(settings.key_cache_seconds)
        items = ItemCache(settings.item_cache_size)
        pauses = StagePauses()
        relay = OutboxRelay(
            pool,
            common.rabbitmq_url,
            topology,
            poll=settings.outbox_poll_seconds,
            linger=settings.outbox_linger_seconds,
        )
        # A revoked key is forgotten by every replica at once; "" means the listening
        # connection was re-established and a revocation, a pause or an outbox row may
        # have been missed.
        hub = LiveHub(
            {
                KEYS_CHANNEL: lambda key_hash: keys.forget(key_hash) if key_hash else keys.clear(),
                STAGES_CHANNEL: lambda state: (
                    pauses.heard(state) if state else pauses.reload_soon(pool)
                ),
                ITEM_CHANGES_CHANNEL: items.changed,
                OUTBOX_CHANNEL: relay.wake,
            },
            on_lost=items.lost,
        )
        watch = ConsumerWatch(broker, SERVICE)
        try:
            await broker.connect()
            await topology.declare(service=SERVICE)
            await broker.start()
            await watch.start()
            await hub.start(common.database_url)
            await pauses.load(pool)
            await relay.start()
            app.state.gateway = Gateway(
                settings=settings,
                common=common,
                pool=pool,
                captures=captures,
                store=open_store(common),
                hub=hub,
                broker=broker,
                keys=keys,
                items=items,
                capture_limiter=CaptureLimiter(limits.parse(settings.capture_rate_limit)),
                consumers=watch,
                signer=await _link_signer(pool, settings),
                pauses=pauses,
            )
            serve_metrics(settings.metrics_port, ready=lambda: consumer_checks(watch))
            logger.info(
                "ingest ready on %s:%d (namespace %s)",
                settings.host,
                settings.port,
                common.namespace,
            )
            yield
        finally:
            await watch.stop()
            await relay.stop()
            await hub.stop()
            await broker.stop()
            await captures.close()
            await pool.close()

    handlers: list[Any] = [
        CaptureController,
        UploadController,
        ItemController,
        StorageController,
        HealthController,
        web_router(settings),
        MediaAuthorizationController,
    ]
    if settings.metrics_on_api_port:
        handlers.append(MetricsController)
    return Litestar(
        route_handlers=handlers,
        dependencies={
            "gateway": Provide(provide_gateway, sync_to_thread=False),
            "owner_id": Provide(provide_owner),
            "capture_allowance": Provide(provide_capture_allowance),
            "links": Provide(provide_links, sync_to_thread=False),
        },
        request_max_body_size=settings.max_body_bytes,
        lifespan=[lifespan],
        # Request bodies are checked with their exact JSON types (see api.schemas).
        plugins=[PydanticPlugin(validate_strict=True)],
        logging_config=None,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        middleware=[
            _tracing_middleware(tracer_provider),
            PrometheusConfig(app_name="prsnl_ingest", group_path=True).middleware,
        ],
        openapi_config=OpenAPIConfig(
            title="PRSNL Media API",
            version="1.0.0",
            description="Save videos from links; list, watch and manage them.",
            path="/api/v1/schema",
        ),
    )
