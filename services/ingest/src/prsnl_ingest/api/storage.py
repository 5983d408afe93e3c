"""GET /api/v1/storage: bytes and files by kind, free disk, the caller's usage and quota.

Counted from the media tree (every regular file by its apparent size, as
``du -b --apparent-size`` and ``find -type f`` count them). An admin key also
gets every owner's usage and the files no item owns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from litestar import Controller, Request, get
from litestar.datastructures import State

from prsnl_common.usage import KIND_NAMES, StorageReport, Usage, storage_report
from prsnl_ingest import catalog, quotas
from prsnl_ingest.api.deps import GatewayDep, OwnerDep, bearer_key
from prsnl_ingest.api.problems import problem_responses


@dataclass
class Counted:
    bytes: int = field(metadata={"description": "Apparent size of the files, in bytes"})
    files: int = field(metadata={"description": "Number of regular files"})


@dataclass
class UsageView:
    """Bytes and files in total and by kind: originals, videos, thumbnails, scratch."""

    total: Counted
    kinds: dict[str, Counted]

    @classmethod
    def of(cls, usage: Usage) -> UsageView:
        total = usage.total
        kinds = {KIND_NAMES[k]: Counted(c.bytes, c.files) for k, c in usage.kinds.items()}
        return cls(Counted(total.bytes, total.files), kinds)


@dataclass
class QuotaView:
    """The caller's limits (null: unlimited) and how much of them is used."""

    max_bytes: int | None
    used_bytes: int
    max_captures_per_day: int | None
    captures_last_24h: int


@dataclass
class OwnerUsageView:
    owner: str
    usage: UsageView


@dataclass
class YourUsageView:
    owner: str
    usage: UsageView
    quota: QuotaView
    items: dict[str, int] = field(
        default_factory=dict, metadata={"description": "The caller's items by status"}
    )


@dataclass
class StorageView:
    """The media store: everything, free disk, the caller; for an admin key every owner."""

    usage: UsageView
    free_bytes: int
    disk_bytes: int
    you: YourUsageView
    role: str = field(metadata={"description": "owner or admin"})
    owners: list[OwnerUsageView] | None = field(
        default=None, metadata={"description": "Every owner's usage (admin keys only)"}
    )
    unowned: UsageView | None = field(
        default=None,
        metadata={"description": "Files under items/ that no item owns (admin keys only)"},
    )


class StorageController(Controller):
    path = "/api/v1/storage"
    tags = ["storage"]

    @get("/", summary="Storage usage and the caller's quota", responses=problem_responses())
    async def storage(
        self, owner_id: OwnerDep, gateway: GatewayDep, request: Request[object, object, State]
    ) -> StorageView:
        report = await storage_report(gateway.pool, gateway.store)
        role = await quotas.role_of_key(gateway.pool, bearer_key(request)) or "owner"
        limits = await quotas.limits_of(
            gateway.pool, owner_id, quotas.quota_defaults(gateway.settings)
        )
        captures = await quotas.captures_today(gateway.pool, owner_id)
        view = StorageView(
            usage=UsageView.of(report.everything),
            free_bytes=report.free_bytes,
            disk_bytes=report.disk_bytes,
            you=_yours(report, owner_id, limits, captures),
            role=role,
        )
        view.you.items = await catalog.items_by_status(gateway.pool, owner_id)
        if role == "admin":
            view.owners = [OwnerUsageView(o.name, UsageView.of(o.usage)) for o in report.owners]
            view.unowned = UsageView.of(report.unowned)
        return view


def _yours(
    report: StorageReport, owner_id: uuid.UUID, limits: quotas.Limits, captures: int
) -> YourUsageView:
    owner = next(o for o in report.owners if o.owner_id == owner_id)
    quota = QuotaView(
        max_bytes=limits.max_bytes or None,
        used_bytes=owner.usage.total.bytes,
        max_captures_per_day=limits.max_captures_per_day or None,
        captures_last_24h=captures,
    )
    return YourUsageView(owner.name, UsageView.of(owner.usage), quota)
