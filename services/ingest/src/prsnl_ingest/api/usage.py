"""GET /api/v1/usage: what the caller's owner keeps (items and stored bytes)."""

from __future__ import annotations

from litestar import Controller, get

from prsnl_ingest import catalog
from prsnl_ingest.api.deps import GatewayDep, OwnerDep
from prsnl_ingest.api.problems import problem_responses
from prsnl_ingest.api.schemas import Usage


class UsageController(Controller):
    path = "/api/v1/usage"
    tags = ["usage"]

    @get("/", summary="Items and stored bytes of the caller's owner", responses=problem_responses())
    async def owner_usage(self, owner_id: OwnerDep, gateway: GatewayDep) -> Usage:
        by_status, stored = await catalog.owner_usage(gateway.pool, owner_id)
        return Usage(items=sum(by_status.values()), bytes=stored, by_status=by_status)
