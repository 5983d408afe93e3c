"""Liveness and readiness for orchestrators."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get

from prsnl_ingest.api.deps import GatewayDep


class HealthController(Controller):
    include_in_schema = False

    @get("/healthz", summary="The process is alive")
    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="PostgreSQL and RabbitMQ are reachable")
    async def readyz(self, gateway: GatewayDep) -> Response[dict[str, Any]]:
        checks: dict[str, str] = {}
        try:
            await gateway.pool.fetchval("SELECT 1", timeout=2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        checks["broker"] = "ok" if await gateway.broker.ping(timeout=2) else "unreachable"
        ready = all(v == "ok" for v in checks.values())
        return Response(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )
