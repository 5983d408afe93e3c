"""The items resource: list, detail, live events, video streaming, thumbnails, retry,
re-transcode and delete."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit

import asyncpg
from litestar import Controller, Request, Response, delete, get, post, route
from litestar.datastructures import State
from litestar.enums import HttpMethod
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from prsnl_common.events import Platform
from prsnl_ingest import catalog, quotas
from prsnl_ingest.api.deps import (
    Gateway,
    GatewayDep,
    LinksDep,
    OwnerDep,
    owner_of_link,
    provide_gateway,
    provide_links,
    provide_owner,
    require_json,
)
from prsnl_ingest.api.problems import ApiError, problem, problem_responses
from prsnl_ingest.api.schemas import PROFILES, ItemPage, ItemView, TranscodeRequest
from prsnl_ingest.catalog import CatalogError
from prsnl_ingest.metrics import MEDIA_AUTHORIZATIONS
from prsnl_ingest.quotas import quota_defaults
from prsnl_ingest.signing import LinkGrant, LinkRefused, MediaLinks
from prsnl_ingest.streaming import (
    FileStream,
    FileValidators,
    RangeNotSatisfiable,
    if_range_allows,
    not_modified,
    parse_range,
)

AnyRequest = Request[object, object, State]
SSE = "text/event-stream"
SSE_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
LinkParam = Annotated[
    str | None, QueryParameter(description="Part of a signed link (exp, kid, sig)")
]
ItemId = FromPath[uuid.UUID]
CONTENT_TYPES = {".mp4": "video/mp4", ".m4a": "audio/mp4", ".jpg": "image/jpeg"}
CACHE = "private, max-age=3600"
Status = Literal["pending", "downloading", "downloaded", "processing", "ready", "failed"]
# PostgreSQL text cannot hold NUL, so it is refused here as a malformed parameter.
SEARCH_TEXT = r"^[^\x00]*$"


class ItemController(Controller):
    path = "/api/v1/items"
    tags = ["items"]

    @get("/", summary="List items, newest first", responses=problem_responses())
    async def list_items(
        self,
        owner_id: OwnerDep,
        gateway: GatewayDep,
        links: LinksDep,
        status: FromQuery[Status | None] = None,
        platform: FromQuery[Platform | None] = None,
        q: Annotated[
            str | None,
            QueryParameter(
                description="Words in title, uploader, description or URL",
                max_length=500,
                pattern=SEARCH_TEXT,
            ),
        ] = None,
        cursor: Annotated[
            str | None,
            QueryParameter(
                description="next_cursor of the previous page",
                max_length=200,
                pattern=SEARCH_TEXT,
            ),
        ] = None,
        limit: Annotated[int | None, QueryParameter(ge=1, le=500)] = None,
    ) -> ItemPage:
        page = await catalog.list_items(
            gateway.pool,
            owner_id,
            status=status,
            platform=platform,
            text=q,
            cursor=cursor,
            limit=limit or gateway.settings.page_size,
        )
        return ItemPage(
            [ItemView.from_row(r, links, pauses=gateway.pauses) for r in page.items],
            page.next_cursor,
        )

    @get("/{item_id:uuid}", summary="One item", responses=problem_responses(404))
    async def get_item(self, item_id: ItemId, request: AnyRequest) -> ItemView:
        # The owner and the links are found here, not as dependencies: the most frequent
        # read (a client polling its item) skips their resolution.
        gateway = provide_gateway(request)
        owner_id = await provide_owner(request, gateway)
        row = await gateway.items.get(gateway.pool, owner_id, item_id)
        return ItemView.from_row(row, provide_links(owner_id, request), pauses=gateway.pauses)

    @delete(
        "/{item_id:uuid}",
        status_code=204,
        summary="Delete an item and (through the janitor) its files",
        responses=problem_responses(404),
    )
    async def delete_item(self, item_id: ItemId, owner_id: OwnerDep, gateway: GatewayDep) -> None:
        await catalog.delete_item(gateway.pool, owner_id, item_id)

    @post(
        "/{item_id:uuid}/retry",
        status_code=202,
        summary="Run a failed item again",
        description="202 with the item, pending again. 409 when it is not failed (or an "
        "upload); 422 `quota_exceeded` when the owner already stores as much as the bytes "
        "quota allows. The new download is held to what the quota leaves, like a capture's.",
        responses=problem_responses(404, 409, s409="not_retryable", s422="quota_exceeded"),
    )
    async def retry_item(
        self, item_id: ItemId, owner_id: OwnerDep, gateway: GatewayDep, links: LinksDep
    ) -> ItemView:
        standing = await quotas.standing(
            gateway.pool, gateway.store, owner_id, quota_defaults(gateway.settings)
        )
        row = await catalog.retry_item(
            gateway.pool,
            owner_id,
            item_id,
            admit=lambda: quotas.refuse_bytes(standing),
            quota=standing.bytes_quota,
        )
        return ItemView.from_row(row, links, pauses=gateway.pauses)

    @post(
        "/{item_id:uuid}/transcode",
        status_code=202,
        summary="Make the video again with a profile",
        guards=[require_json],
        responses=problem_responses(404, 409, 413, 415, s409="not_ready"),
    )
    async def transcode_item(
        self,
        item_id: ItemId,
        data: JSONBody[TranscodeRequest],
        owner_id: OwnerDep,
        gateway: GatewayDep,
        links: LinksDep,
    ) -> ItemView:
        if data.profile not in PROFILES:
            raise ApiError("unknown_profile", f"profile must be one of {', '.join(PROFILES)}.")
        row = await catalog.request_transcode(gateway.pool, owner_id, item_id, data.profile)
        return ItemView.from_row(row, links, pauses=gateway.pauses)

    @get(
        "/{item_id:uuid}/events",
        summary="Live progress and status (Server-Sent Events)",
        media_type=SSE,
        responses=problem_responses(404, 429, s429="too_many_streams"),
    )
    async def item_events(
        self, item_id: ItemId, owner_id: OwnerDep, gateway: GatewayDep, links: LinksDep
    ) -> ServerSentEvent:
        await catalog.get_item(gateway.pool, owner_id, item_id)  # 404 before the stream starts
        _check_stream_limit(gateway, owner_id)
        return ServerSentEvent(
            _event_stream(gateway, owner_id, item_id, links),
            headers=SSE_HEADERS,
        )

    @get(
        "/events",
        summary="Live updates of all the caller's items (Server-Sent Events)",
        media_type=SSE,
        description="First a `listening` event once subscribed, then for every change of any "
        "of the caller's items an event named by its kind (`created`, `status`, `progress`, "
        "`retry`, `deleted`) whose data has the `item_id` and the changed fields, as on the "
        "item's own stream. Counts against the per-owner stream limit.",
        responses=problem_responses(429, s429="too_many_streams"),
    )
    async def owner_events(self, owner_id: OwnerDep, gateway: GatewayDep) -> ServerSentEvent:
        _check_stream_limit(gateway, owner_id)
        return ServerSentEvent(_owner_stream(gateway, owner_id), headers=SSE_HEADERS)

    @route(
        "/{item_id:uuid}/video",
        http_method=[HttpMethod.GET, HttpMethod.HEAD],
        summary="Stream the playable video (Range, If-Range, ETag, Last-Modified)",
        description="With a Bearer key, or without one through the signed link of an item "
        "answer (links.video).",
        responses=problem_responses(403, 404, 409, 416, s409="not_ready"),
    )
    async def item_video(
        self,
        item_id: ItemId,
        gateway: GatewayDep,
        request: AnyRequest,
        exp: LinkParam = None,
        kid: LinkParam = None,
        sig: LinkParam = None,
    ) -> Response[Any]:
        grant = LinkGrant.from_query({"exp": exp, "kid": kid, "sig": sig} if sig else {})
        row, owner_id = await _item_for_media(gateway, request, item_id, grant)
        _check_grant(gateway, grant, row["video_key"], owner_id)
        if not row["video_key"]:
            raise ApiError("not_ready", f"The item is {row['status']}; no video yet.")
        return await _serve(request, gateway, row["video_key"])

    @get(
        "/{item_id:uuid}/thumbnails/{width:int}",
        summary="A JPEG thumbnail of the given width",
        description="With a Bearer key, or without one through the signed link of an item "
        "answer (links.thumbnails).",
        responses=problem_responses(403, 404),
    )
    async def item_thumbnail(
        self,
        item_id: ItemId,
        width: FromPath[int],
        gateway: GatewayDep,
        request: AnyRequest,
        exp: LinkParam = None,
        kid: LinkParam = None,
        sig: LinkParam = None,
    ) -> Response[Any]:
        grant = LinkGrant.from_query({"exp": exp, "kid": kid, "sig": sig} if sig else {})
        row, owner_id = await _item_for_media(gateway, request, item_id, grant)
        key = (row["thumbnail_keys"] or {}).get(str(width))
        _check_grant(gateway, grant, key, owner_id)
        if not key:
            raise ApiError("not_found", f"No {width}px thumbnail for this item.")
        return await _serve(request, gateway, key)


def _check_stream_limit(gateway: Gateway, owner_id: uuid.UUID) -> None:
    limit = gateway.settings.max_streams_per_owner
    if gateway.hub.streams_of(owner_id) >= limit:
        raise ApiError("too_many_streams", f"At most {limit} live streams per owner.")


MEDIA_PATH = re.compile(
    r"^/api/v1/items/(?P<item>[0-9a-fA-F-]{36})/(?P<name>video|thumbnails/(?P<width>[0-9]{1,5}))$"
)


class MediaAuthorizationController(Controller):
    """What nginx asks before it serves a signed media link itself (``auth_request``).

    nginx sends the link in ``X-Original-URI``; the answer is 200 with the file's storage
    key in ``X-Media-Key`` (nginx caches it for a few seconds and serves every range of
    the link from disk), or 403 for any refusal, after which nginx passes the request to
    the gateway's own route so the client gets the problem with its code.
    """

    path = "/_internal/media-authorization"
    include_in_schema = False

    @get("/", status_code=200)
    async def authorize_media(self, gateway: GatewayDep, request: AnyRequest) -> Response[bytes]:
        try:
            key = await _signed_media_key(gateway, request, request.headers.get("x-original-uri"))
        except (ApiError, CatalogError, LinkRefused, ValueError):
            key = None
        MEDIA_AUTHORIZATIONS.labels("refused" if key is None else "allowed").inc()
        if key is None:
            return Response(b"", status_code=403, headers={"Cache-Control": "no-store"})
        return Response(b"", headers={"X-Media-Key": key})


async def _signed_media_key(
    gateway: Gateway, request: AnyRequest, original: str | None
) -> str | None:
    """The storage key a signed link opens, or None when it is no signed media link."""
    parts = urlsplit(original or "")
    match = MEDIA_PATH.match(parts.path)
    query = {k: v[0] for k, v in parse_qs(parts.query, max_num_fields=10).items()}
    grant = LinkGrant.from_query(query) if match else None
    if match is None or grant is None:
        return None
    row, owner_id = await _item_for_media(gateway, request, uuid.UUID(match["item"]), grant)
    thumbs = row["thumbnail_keys"] or {}
    key = row["video_key"] if match["name"] == "video" else thumbs.get(match["width"])
    _check_grant(gateway, grant, key, owner_id)
    return key if isinstance(key, str) else None


async def _item_for_media(
    gateway: Gateway, request: AnyRequest, item_id: uuid.UUID, grant: LinkGrant | None
) -> tuple[asyncpg.Record, uuid.UUID]:
    """The item and its owner, known from the Bearer key or from the signed link's key."""
    if grant is None:
        owner_id = await provide_owner(request, request.app.state.gateway)
    else:
        owner_id = await owner_of_link(gateway, grant)
    return await gateway.items.get(gateway.pool, owner_id, item_id), owner_id


def _check_grant(
    gateway: Gateway, grant: LinkGrant | None, key: str | None, owner_id: uuid.UUID
) -> None:
    """A signed link must sign exactly the file the item has now (none: it is not this one)."""
    if grant is not None:
        gateway.signer.verify(grant, key or "", owner_id)


async def _event_stream(
    gateway: Gateway, owner_id: uuid.UUID, item_id: uuid.UUID, links: MediaLinks
) -> AsyncIterator[ServerSentEventMessage]:
    """The item's state, then every change: subscribed before reading, so none falls between."""
    from litestar.serialization import encode_json

    async with gateway.hub.listen(item_id, owner_id) as queue:
        try:
            row = await catalog.get_item(gateway.pool, owner_id, item_id)
        except CatalogError:
            yield ServerSentEventMessage(data="{}", event="deleted")
            return
        view = ItemView.from_row(row, links, pauses=gateway.pauses)
        yield ServerSentEventMessage(data=encode_json(view).decode(), event="item")
        async for message in _updates(gateway, queue, keep_item_id=False):
            yield message
            if message.event == "deleted":
                return


async def _owner_stream(
    gateway: Gateway, owner_id: uuid.UUID
) -> AsyncIterator[ServerSentEventMessage]:
    """Every change of the owner's items, after a ``listening`` event once subscribed."""
    async with gateway.hub.listen_owner(owner_id) as queue:
        yield ServerSentEventMessage(data="{}", event="listening")
        async for message in _updates(gateway, queue, keep_item_id=True):
            yield message


async def _updates(
    gateway: Gateway, queue: asyncio.Queue[dict[str, Any]], keep_item_id: bool
) -> AsyncIterator[ServerSentEventMessage]:
    """The hub's notifications as events named by their kind, with keep-alives in between."""
    while True:
        try:
            message = await asyncio.wait_for(queue.get(), gateway.settings.sse_keepalive_seconds)
        except TimeoutError:
            yield ServerSentEventMessage(comment="keep-alive")
            continue
        kind = message.pop("kind", "status")
        message.pop("owner_id", None)
        if not keep_item_id:
            message.pop("item_id", None)
        yield ServerSentEventMessage(data=json.dumps(message), event=kind)


async def _serve(request: AnyRequest, gateway: Gateway, key: str) -> Response[Any]:
    """The file of ``key``: handed to nginx, redirected to the object store, or streamed."""
    media_type = CONTENT_TYPES.get(PurePosixPath(key).suffix, "application/octet-stream")
    prefix = gateway.settings.accel_redirect_prefix
    if prefix:
        # nginx in front serves the bytes (Range, ETag, sendfile) once we have
        # authorised the request; the store's keys are its paths under the prefix.
        return Response(
            b"",
            headers={"X-Accel-Redirect": f"{prefix}{key}", "Cache-Control": CACHE},
            media_type=media_type,
        )
    if gateway.settings.store_redirects:
        seconds = gateway.settings.store_link_seconds
        url = gateway.store.presigned_url(key, seconds, request.method)
        if url is not None:
            # The object store (or a CDN in front of it) answers the ranges from here on.
            cache = f"private, max-age={seconds // 2}"
            return Response(b"", status_code=307, headers={"Location": url, "Cache-Control": cache})
    stored = await gateway.store.head(key)
    if stored is None:
        raise ApiError("not_found", "The file is gone from the media store.")
    return _stream(request, gateway, key, FileValidators(stored.size, stored.mtime), media_type)


def _stream(
    request: AnyRequest,
    gateway: Gateway,
    key: str,
    validators: FileValidators,
    media_type: str,
) -> Response[Any]:
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": validators.etag,
        "Last-Modified": validators.last_modified,
        "Cache-Control": CACHE,
    }
    if not_modified(request.headers, validators):
        return Response(b"", status_code=304, headers=headers, media_type=media_type)
    size = validators.size
    span: tuple[int, int] | None = None
    if if_range_allows(request.headers.get("if-range"), validators):
        try:
            span = parse_range(request.headers.get("range"), size)
        except RangeNotSatisfiable:
            return problem(
                416,
                "range_not_satisfiable",
                f"The file has {size} bytes.",
                {"Content-Range": f"bytes */{size}"},
            )
    start, end = span if span else (0, size - 1)
    length = max(0, end - start + 1)
    headers["Content-Length"] = str(length)
    status = 200
    if span:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    if request.method == HttpMethod.HEAD:
        return Response(b"", status_code=status, headers=headers, media_type=media_type)
    return FileStream(
        gateway.store.read_range(key, start, length, gateway.settings.stream_chunk_bytes),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )
