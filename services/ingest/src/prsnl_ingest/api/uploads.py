"""POST /api/v1/uploads: a video file becomes an item, as durable as a captured link."""

from __future__ import annotations

from litestar import Controller, Request, Response, post
from litestar.datastructures import State

from prsnl_common.errors import PipelineError
from prsnl_ingest import quotas
from prsnl_ingest.api.deps import AllowanceDep, GatewayDep, LinksDep, OwnerDep
from prsnl_ingest.api.problems import ApiError, problem_responses
from prsnl_ingest.api.schemas import ItemView
from prsnl_ingest.capture import Upload, capture_upload

MB = 1024 * 1024


class UploadController(Controller):
    path = "/api/v1/uploads"
    tags = ["captures"]

    @post(
        "/",
        status_code=202,
        summary="Save a video file",
        description="The body is the file (Content-Type video/*), streamed; `X-Filename` "
        "names it. 202 with the new item, processed like a download; 200 with the existing "
        "item when this owner uploaded the same bytes before; 413 over the upload limit.",
        request_max_body_size=None,  # the upload has its own cap, checked while streaming
        responses=problem_responses(413, 415, 429, s429="rate_limited"),
    )
    async def upload_video(
        self,
        owner_id: OwnerDep,
        capture_allowance: AllowanceDep,
        gateway: GatewayDep,
        links: LinksDep,
        request: Request[object, object, State],
    ) -> Response[ItemView]:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content_type.startswith("video/"):
            raise ApiError("unsupported_media_type", "Send the file as Content-Type video/*.")
        cap = gateway.settings.max_upload_mb * MB
        if int(request.headers.get("content-length") or 0) > cap:
            raise ApiError("payload_too_large", f"Uploads are limited to {cap // MB} MB.")
        upload = Upload(
            body=request.stream(),
            content_type=content_type,
            filename=request.headers.get("x-filename"),
            max_bytes=cap,
            source="telegram" if request.headers.get("x-source") == "telegram" else "api",
        )
        try:
            outcome = await capture_upload(
                gateway.pool,
                gateway.store,
                owner_id,
                upload,
                quotas.quota_defaults(gateway.settings),
            )
        except PipelineError as exc:
            status = 413 if exc.code == "too_large" else 422
            code = "payload_too_large" if exc.code == "too_large" else exc.code
            raise ApiError(code, exc.message, status, capture_allowance) from exc
        view = ItemView.from_row(outcome.item, links, not outcome.created, gateway.pauses)
        return Response(
            view, status_code=202 if outcome.created else 200, headers=capture_allowance
        )
