"""Errors at the HTTP edge: every failure is a JSON problem detail with a stable code."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.openapi import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from prsnl_common.errors import ERROR_CODES, PipelineError
from prsnl_ingest.api.schemas import Problem
from prsnl_ingest.catalog import CatalogError
from prsnl_ingest.signing import LinkRefused

logger = logging.getLogger(__name__)
STATUS_OF_CODE = {
    "unauthorized": 401,
    "link_invalid": 403,
    "link_expired": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "not_retryable": 409,
    "capture_conflict": 409,
    "not_ready": 409,
    "payload_too_large": 413,
    "unsupported_media_type": 415,
    "range_not_satisfiable": 416,
    "rate_limited": 429,
    "store_unavailable": 503,
    "too_many_streams": 429,
}
# Litestar's own refusals (routing, body decoding, size), by status.
CODE_OF_STATUS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def problem_responses(*statuses: int, **codes: str) -> dict[int, ResponseSpec]:
    """OpenAPI ``responses=`` for the problems a route can answer, each status naming its codes.

    Every authenticated route can answer 400 (undecodable input), 401, 422 and
    503; ``statuses`` adds the route's own. ``codes`` overrides the code list of
    a status, keyed ``s409="not_ready"``.
    """
    wanted = sorted({400, 401, 422, 503, *statuses})
    return {
        status: ResponseSpec(
            data_container=Problem,
            media_type="application/problem+json",
            description="Problem with code " + codes.get(f"s{status}", _codes_of(status)),
            generate_examples=False,
        )
        for status in wanted
    }


def _codes_of(status: int) -> str:
    if status == 422:
        return "invalid_request or a capture code (invalid_url, blocked_address, ...)"
    if status == 503:
        return "unavailable"
    names = [c for c, s in STATUS_OF_CODE.items() if s == status]
    return ", ".join(names or [CODE_OF_STATUS.get(status, "invalid_request")])


class ApiError(HTTPException):
    """An error answered as ``application/problem+json`` with ``code``."""

    def __init__(
        self,
        code: str,
        detail: str,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(
            detail=detail,
            status_code=status_code or STATUS_OF_CODE.get(code, 422),
            headers=headers,
        )
        self.code = code


def problem(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> Response[dict[str, object]]:
    title = ERROR_CODES.get(code, "Error")
    return Response(
        {
            "type": f"about:blank#{code}",
            "title": title,
            "status": status,
            "code": code,
            "detail": detail,
        },
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def on_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[dict[str, object]]:
    return problem(exc.status_code, exc.code, exc.detail, exc.headers)


def on_pipeline_error(_: Request[Any, Any, Any], exc: PipelineError) -> Response[dict[str, object]]:
    status = STATUS_OF_CODE.get(exc.code, 422)
    return problem(status, exc.code, exc.message, {"Retry-After": "5"} if status == 503 else None)


def on_catalog_error(_: Request[Any, Any, Any], exc: CatalogError) -> Response[dict[str, object]]:
    return problem(STATUS_OF_CODE.get(exc.code, 422), exc.code, exc.message)


def on_link_refused(_: Request[Any, Any, Any], exc: LinkRefused) -> Response[dict[str, object]]:
    return problem(403, exc.code, exc.message)


def on_validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, object]]:
    details = "; ".join(
        f"{e.get('key', 'body')}: {e.get('message')}"
        for e in (exc.extra or [])
        if isinstance(e, dict)
    )
    return problem(422, "invalid_request", details or exc.detail)


def on_not_authorized(
    _: Request[Any, Any, Any], exc: NotAuthorizedException
) -> Response[dict[str, object]]:
    return problem(401, "unauthorized", exc.detail, {"WWW-Authenticate": 'Bearer realm="prsnl"'})


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    status = exc.status_code
    code = CODE_OF_STATUS.get(status, "invalid_request" if status < 500 else "internal_error")
    # Keep Litestar's headers (Allow on 405, RateLimit-* on 429).
    return problem(status, code, exc.detail, dict(exc.headers or {}) or None)


def on_too_deep(_: Request[Any, Any, Any], exc: RecursionError) -> Response[dict[str, object]]:
    """JSON nested deeper than the decoder's recursion limit is the client's fault, not ours."""
    return problem(400, "invalid_request", "The JSON body is nested too deeply.")


def on_not_utf8(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[dict[str, object]]:
    """The JSON decoder lets invalid UTF-8 inside a string escape as this, not as its own error."""
    return problem(400, "invalid_request", "The body is not valid UTF-8.")


# The database restarting or unreachable: a clear, retryable answer, not a 500.
UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    ConnectionError,
    TimeoutError,
)


def on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, object]]:
    if isinstance(exc, UNAVAILABLE):
        return problem(
            503,
            "unavailable",
            "The catalog database is unavailable; try again shortly.",
            {"Retry-After": "5"},
        )
    logger.error("unexpected error", exc_info=exc)
    return problem(HTTP_500_INTERNAL_SERVER_ERROR, "internal_error", "Unexpected server error.")


EXCEPTION_HANDLERS = {
    ApiError: on_api_error,
    PipelineError: on_pipeline_error,
    CatalogError: on_catalog_error,
    LinkRefused: on_link_refused,
    ValidationException: on_validation_error,
    NotAuthorizedException: on_not_authorized,
    HTTPException: on_http_error,
    RecursionError: on_too_deep,
    UnicodeDecodeError: on_not_utf8,
    Exception: on_unexpected,
}
