"""POST /api/v1/captures: validate a link and create its item (202), or return its twin (200)."""

from __future__ import annotations

import uuid

from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.params import JSONBody

from prsnl_common.errors import PipelineError
from prsnl_common.events import CaptureOptions, ReplyTo
from prsnl_ingest.api.deps import (
    AllowanceDep,
    Gateway,
    GatewayDep,
    OwnerDep,
    provide_links,
    require_json,
)
from prsnl_ingest.api.problems import ApiError, problem_responses
from prsnl_ingest.api.schemas import CaptureRequest, ItemView
from prsnl_ingest.capture import capture
from prsnl_ingest.catalog import CaptureOutcome
from prsnl_ingest.quotas import quota_defaults


class CaptureController(Controller):
    path = "/api/v1/captures"
    tags = ["captures"]

    @post(
        "/",
        status_code=202,
        summary="Save the video behind a link",
        description="202 with the new pending item; 200 with the existing item when this "
        "owner already captured the same video. 422 problem with a code when the link is refused.",
        guards=[require_json],
        responses=problem_responses(
            409, 413, 415, 429, s409="capture_conflict", s429="rate_limited"
        ),
    )
    async def create_capture(
        self,
        data: JSONBody[CaptureRequest],
        owner_id: OwnerDep,
        capture_allowance: AllowanceDep,
        gateway: GatewayDep,
        request: Request[object, object, State],
    ) -> Response[ItemView]:
        # The links are made here, not as a dependency: beside the allowance (both need the
        # owner) Litestar would resolve the two in a task group of their own per capture.
        try:
            outcome = await _capture(gateway, owner_id, data)
        except PipelineError as exc:  # a refused link still counts and says what is left
            raise ApiError(exc.code, exc.message, 422, capture_allowance) from exc
        links = provide_links(owner_id, request)
        view = ItemView.from_row(outcome.item, links, not outcome.created, gateway.pauses)
        return Response(
            view, status_code=202 if outcome.created else 200, headers=capture_allowance
        )


async def _capture(gateway: Gateway, owner_id: uuid.UUID, data: CaptureRequest) -> CaptureOutcome:
    return await capture(
        gateway.pool,
        writer=gateway.captures,
        store=gateway.store,
        quota_defaults=quota_defaults(gateway.settings),
        allowlist=gateway.common.allow_rules,
        default_max_height=gateway.settings.default_max_height,
        owner_id=owner_id,
        url=data.url,
        options=CaptureOptions(max_height=data.max_height, audio_only=data.audio_only),
        source=data.source,
        reply_to=ReplyTo(**data.reply_to.model_dump()) if data.reply_to else None,
    )
