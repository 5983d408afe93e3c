"""POST /api/v1/captures: validate a link and create its item (202), or return its twin (200)."""

from __future__ import annotations

from litestar import Controller, Request, Response, post
from litestar.datastructures import State
from litestar.params import JSONBody

from prsnl_common.events import CaptureOptions
from prsnl_common.netguard import check_url
from prsnl_common.platforms import classify
from prsnl_ingest import catalog, metrics
from prsnl_ingest.api.deps import GatewayDep, OwnerDep, base_url
from prsnl_ingest.api.schemas import CaptureRequest, ItemView


class CaptureController(Controller):
    path = "/api/v1/captures"
    tags = ["captures"]

    @post(
        "/",
        status_code=202,
        summary="Save the video behind a link",
        description="202 with the new pending item; 200 with the existing item when this "
        "owner already captured the same video. 422 problem with a code when the link is refused.",
    )
    async def create_capture(
        self,
        data: JSONBody[CaptureRequest],
        owner_id: OwnerDep,
        gateway: GatewayDep,
        request: Request[object, object, State],
    ) -> Response[ItemView]:
        try:
            await check_url(data.url, gateway.common.allow_rules)
        except Exception as exc:
            metrics.CAPTURES.labels(platform="unknown", outcome=getattr(exc, "code", "error")).inc()
            raise
        classified = classify(data.url)
        options = CaptureOptions(
            max_height=data.max_height or gateway.settings.default_max_height,
            audio_only=data.audio_only,
        )
        outcome = await catalog.capture(
            gateway.pool,
            catalog.NewCapture(
                owner_id=owner_id,
                url=data.url.strip(),
                normalized_url=classified.normalized_url,
                platform=classified.platform,
                platform_video_id=classified.video_id,
                source="api",
                options=options,
            ),
        )
        metrics.CAPTURES.labels(
            platform=classified.platform, outcome="created" if outcome.created else "duplicate"
        ).inc()
        view = ItemView.from_row(outcome.item, base_url(request, gateway), not outcome.created)
        return Response(view, status_code=202 if outcome.created else 200)
