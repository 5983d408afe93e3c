"""What handlers receive: the gateway's resources, the caller's owner id and capture allowance."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import limits
from faststream.rabbit import RabbitBroker
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import BaseRouteHandler

from prsnl_common.liveness import ConsumerWatch
from prsnl_common.settings import CommonSettings
from prsnl_common.store import MediaStore
from prsnl_ingest.api.problems import ApiError
from prsnl_ingest.catalog import (
    KEY_ID_LENGTH,
    CaptureWriter,
    hash_key,
    owner_for_key,
    owner_for_key_id,
)
from prsnl_ingest.itemcache import ItemCache
from prsnl_ingest.live import LiveHub
from prsnl_ingest.settings import IngestSettings
from prsnl_ingest.signing import LinkGrant, LinkRefused, LinkSigner, MediaLinks
from prsnl_ingest.stages import StagePauses


@dataclass
class KeyCache:
    """Owners of recently seen API keys, so each request need not ask PostgreSQL.

    Entries live ``seconds`` at most; a revocation is pushed by NOTIFY on
    ``prsnl_keys`` and drops its entry at once, the short life bounds a missed one.
    """

    seconds: float
    entries: dict[str, tuple[uuid.UUID, float]] = field(default_factory=dict)

    def get(self, key_hash: str) -> uuid.UUID | None:
        cached = self.entries.get(key_hash)
        if cached is None or cached[1] <= time.monotonic():
            self.entries.pop(key_hash, None)
            return None
        return cached[0]

    def put(self, key_hash: str, owner_id: uuid.UUID) -> None:
        if self.seconds > 0:
            self.entries[key_hash] = (owner_id, time.monotonic() + self.seconds)

    def forget(self, key_hash: str) -> None:
        """Drop a revoked key, looked up by its hash or by its id (for signed links)."""
        self.entries.pop(key_hash, None)
        self.entries.pop(key_id_entry(key_hash[:KEY_ID_LENGTH]), None)

    def clear(self) -> None:
        self.entries.clear()


def key_id_entry(key_id: str) -> str:
    """The cache entry of a key named by its id (signed links carry the id, not the key)."""
    return f"id:{key_id}"


@dataclass
class CaptureLimiter:
    """The per-key capture rate (``limits``' moving window, in this replica's memory)."""

    rate: limits.RateLimitItem
    limiter: MovingWindowRateLimiter = field(
        default_factory=lambda: MovingWindowRateLimiter(MemoryStorage())
    )

    async def take(self, key_hash: str) -> dict[str, str]:
        """Count one capture; the RateLimit-* headers, or a 429 ``rate_limited`` problem."""
        allowed = await self.limiter.hit(self.rate, key_hash)
        stats = await self.limiter.get_window_stats(self.rate, key_hash)
        reset = max(1, math.ceil(stats.reset_time - time.time()))
        headers = {
            "RateLimit-Limit": str(self.rate.amount),
            "RateLimit-Remaining": str(stats.remaining),
            "RateLimit-Reset": str(reset),
        }
        if not allowed:
            raise ApiError(
                "rate_limited",
                f"At most {self.rate.amount} captures per "
                f"{self.rate.get_expiry()} s with one key; retry in {reset} s.",
                headers={**headers, "Retry-After": str(reset)},
            )
        return headers


@dataclass
class Gateway:
    """Resources created in the lifespan and shared by every request."""

    settings: IngestSettings
    common: CommonSettings
    pool: asyncpg.Pool
    captures: CaptureWriter
    store: MediaStore
    hub: LiveHub
    broker: RabbitBroker
    keys: KeyCache
    items: ItemCache
    capture_limiter: CaptureLimiter
    consumers: ConsumerWatch
    signer: LinkSigner
    pauses: StagePauses = field(default_factory=StagePauses)


GatewayDep = NamedDependency[Gateway]
OwnerDep = NamedDependency[uuid.UUID]
AllowanceDep = NamedDependency[dict[str, str]]
LinksDep = NamedDependency[MediaLinks]


def provide_gateway(request: Request[object, object, State]) -> Gateway:
    """The gateway in the app's state (a ``state`` argument would be a copy per request)."""
    gateway: Gateway = request.app.state.gateway
    return gateway


def bearer_key(request: Request[object, object, State]) -> str:
    """The API key of the ``Authorization: Bearer`` header; 401 problem without one."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'.")
    return key.strip()


async def provide_owner(request: Request[object, object, State], gateway: GatewayDep) -> uuid.UUID:
    """The owner of the Bearer API key; 401 problem for an unknown or revoked key.

    It takes the gateway as a dependency so the two resolve one after the other:
    side by side, Litestar would start a task group for them on every request.
    """
    key = bearer_key(request)
    key_hash = hash_key(key).hex()
    owner_id = gateway.keys.get(key_hash)
    if owner_id is not None:
        return owner_id
    owner_id = await owner_for_key(gateway.pool, key)
    if owner_id is None:
        raise NotAuthorizedException("Unknown or revoked API key.")
    gateway.keys.put(key_hash, owner_id)
    return owner_id


def provide_links(owner_id: OwnerDep, request: Request[object, object, State]) -> MediaLinks:
    """The links of this answer, signed for the caller's key."""
    gateway = provide_gateway(request)
    key_id = hash_key(bearer_key(request)).hex()[:KEY_ID_LENGTH]
    return MediaLinks(base_url(request, gateway), gateway.signer, owner_id, key_id, time.time())


async def owner_of_link(gateway: Gateway, grant: LinkGrant) -> uuid.UUID:
    """The owner whose unrevoked key a signed link was handed to; 403 problem otherwise."""
    entry = key_id_entry(grant.key_id)
    owner_id = gateway.keys.get(entry)
    if owner_id is None:
        owner_id = await owner_for_key_id(gateway.pool, grant.key_id)
        if owner_id is None:
            raise LinkRefused("link_invalid", "The key this link was made for is revoked.")
        gateway.keys.put(entry, owner_id)
    return owner_id


async def provide_capture_allowance(
    owner_id: OwnerDep, request: Request[object, object, State]
) -> dict[str, str]:
    """One capture of the caller's key counted (after authentication); its RateLimit-* headers."""
    gateway = provide_gateway(request)
    return await gateway.capture_limiter.take(hash_key(bearer_key(request)).hex())


async def require_json(
    connection: ASGIConnection[BaseRouteHandler, Any, Any, Any], _: object
) -> None:
    """A JSON route refuses other media types before reading the body (415).

    A coroutine: Litestar would run a plain function guard in a worker thread.
    """
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not (
        media_type.startswith("application/") and media_type.endswith("+json")
    ):
        raise ApiError("unsupported_media_type", "Send the body as Content-Type: application/json.")


def base_url(request: Request[object, object, State], gateway: Gateway) -> str:
    return gateway.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
