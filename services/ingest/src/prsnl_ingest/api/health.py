"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Controller, Response, get

from prsnl_common.worker import consumer_checks
from prsnl_ingest.api.deps import Gateway, GatewayDep

CHECK_SECONDS = 2.0


class HealthController(Controller):
    include_in_schema = False

    @get("/healthz", summary="The process is alive")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="PostgreSQL and RabbitMQ reachable, every consumer in place")
    async def readyz(self, gateway: GatewayDep) -> Response[dict[str, Any]]:
        """Each dependency is "ok" or a reason an operator can act on (no exception names)."""
        checks = {
            "database": await _database(gateway),
            "broker": await _broker(gateway),
            **consumer_checks(gateway.consumers),
        }
        ready = all(v == "ok" for v in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready", "checks": checks}
        if not ready:
            body["down"] = sorted(name for name, value in checks.items() if value != "ok")
        return Response(body, status_code=200 if ready else 503)


async def _database(gateway: Gateway) -> str:
    try:
        await gateway.pool.fetchval("SELECT 1", timeout=CHECK_SECONDS)
    except TimeoutError:
        return f"PostgreSQL did not answer within {CHECK_SECONDS:g} s"
    except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):
        return "cannot connect to PostgreSQL (down, restarting or unreachable)"
    except asyncpg.PostgresError as exc:
        return f"PostgreSQL refused the check: {exc.sqlstate or 'error'}"
    return "ok"


async def _broker(gateway: Gateway) -> str:
    try:
        reachable = await gateway.broker.ping(timeout=CHECK_SECONDS)
    except Exception:  # ping should not raise; if it does the broker is still not usable
        reachable = False
    return "ok" if reachable else "cannot reach RabbitMQ (down, restarting or unreachable)"
