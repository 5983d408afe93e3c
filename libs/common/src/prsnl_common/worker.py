"""The runtime every worker service shares: logging, tracing, broker, topology, shutdown.

A worker supplies ``setup(broker, topology)``, an async context manager that
creates its resources (pools, child processes), subscribes its handlers and
cleans up on exit. SIGTERM/SIGINT stop consuming, give in-flight jobs the
broker's grace period, then cancel them; unacknowledged messages are
redelivered to another replica.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from prsnl_common.broker import SUBSCRIPTIONS, Topology, create_broker
from prsnl_common.diskguard import LowDiskPause
from prsnl_common.liveness import ConsumerWatch
from prsnl_common.observability import broker_middlewares, serve_metrics, setup_logging
from prsnl_common.settings import CommonSettings

Setup = Callable[[RabbitBroker, Topology], AbstractAsyncContextManager[Any]]
logger = logging.getLogger(__name__)


def build_worker(
    service: str,
    common: CommonSettings,
    setup: Setup,
    *,
    metrics_port: int = 0,
    min_free_bytes: Callable[[], int] | None = None,
) -> FastStream:
    """The FastStream app of a worker (tests run it in-process, ``main`` runs it for real).

    With ``min_free_bytes`` the worker stops taking jobs from its stage queues
    while the media store has less free space (:mod:`prsnl_common.diskguard`).
    """
    broker = create_broker(common, middlewares=broker_middlewares(service))
    topology = Topology(common)
    watch = ConsumerWatch(broker, service)
    disk = None
    if min_free_bytes is not None:  # only the pipeline stages pause; front ends have none
        stage_queues = {topology.queue_name(service, e.routing_key) for e in SUBSCRIPTIONS[service]}
        disk = LowDiskPause(
            broker,
            watch,
            service,
            root=common.media_root,
            min_free=min_free_bytes,
            queues=stage_queues,
            announce=lambda state: topology.publish_state(broker, state),
        )

    def ready() -> dict[str, str]:
        return {**consumer_checks(watch), **(disk.readiness() if disk else {})}

    @asynccontextmanager
    async def lifespan() -> Any:
        async with setup(broker, topology):
            await broker.connect()
            await topology.declare(service=service)
            serve_metrics(metrics_port, ready=ready)
            logger.info("%s ready (namespace %s)", service, common.namespace)
            yield

    # FastStream's own app logger writes coloured text through a handler of its own;
    # this one goes through the root handler, so its lines are JSON like every other.
    app = FastStream(broker, lifespan=lifespan, logger=logging.getLogger(f"{__name__}.app"))
    app.after_startup(watch.start)
    app.on_shutdown(watch.stop)
    if disk is not None:
        app.after_startup(disk.start)
        app.on_shutdown(disk.stop)
    return app


def consumer_checks(watch: ConsumerWatch) -> dict[str, str]:
    """The readiness check of a worker: every subscriber has its consumer."""
    if watch.ready:
        return {"consumers": "ok"}
    missing = ", ".join(watch.missing) or "not started"
    return {"consumers": f"no consumer on {missing}"}


def run_worker(
    service: str,
    common: CommonSettings,
    setup: Setup,
    *,
    metrics_port: int = 0,
    min_free_bytes: Callable[[], int] | None = None,
) -> None:
    """Run a worker until SIGTERM/SIGINT."""
    setup_logging(service, level=common.log_level, fmt=common.log_format)
    app = build_worker(
        service, common, setup, metrics_port=metrics_port, min_free_bytes=min_free_bytes
    )
    asyncio.run(app.run())
