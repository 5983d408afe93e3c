"""What handlers receive: the gateway's resources and the caller's owner id."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from faststream.rabbit import RabbitBroker
from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import ClientException, NotAuthorizedException

from prsnl_common.settings import CommonSettings
from prsnl_common.store import LocalMediaStore
from prsnl_ingest.catalog import owner_for_key
from prsnl_ingest.live import LiveHub
from prsnl_ingest.settings import IngestSettings

KEY_CACHE_SECONDS = 30.0


@dataclass
class Gateway:
    """Resources created in the lifespan and shared by every request."""

    settings: IngestSettings
    common: CommonSettings
    pool: asyncpg.Pool
    store: LocalMediaStore
    hub: LiveHub
    broker: RabbitBroker
    key_cache: dict[str, tuple[uuid.UUID, float]] = field(default_factory=dict)


class GatewayRequest(Request[object, object, State]):
    """A request whose JSON body fails as the client's error, whatever the decoder trips on.

    Litestar turns msgspec's DecodeError into a 400 but lets through the errors msgspec
    raises for invalid UTF-8 inside a string and for nesting deeper than the interpreter's
    recursion limit, which would end as 500s.
    """

    async def json(self) -> Any:
        try:
            return await super().json()
        except (UnicodeDecodeError, RecursionError) as exc:
            raise ClientException(f"The body is not valid JSON ({type(exc).__name__}).") from None


def provide_gateway(state: State) -> Gateway:
    gateway: Gateway = state.gateway
    return gateway


async def provide_owner(request: Request[object, object, State], state: State) -> uuid.UUID:
    """The owner of the Bearer API key; 401 problem otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise NotAuthorizedException("Send an API key as 'Authorization: Bearer <key>'.")
    gateway: Gateway = state.gateway
    key = key.strip()
    cached = gateway.key_cache.get(key)
    now = time.monotonic()
    if cached and cached[1] > now:
        return cached[0]
    owner_id = await owner_for_key(gateway.pool, key)
    if owner_id is None:
        raise NotAuthorizedException("Unknown API key.")
    gateway.key_cache[key] = (owner_id, now + KEY_CACHE_SECONDS)
    return owner_id


def base_url(request: Request[object, object, State], gateway: Gateway) -> str:
    return gateway.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")


GatewayDep = NamedDependency[Gateway]
OwnerDep = NamedDependency[uuid.UUID]
