"""Errors at the HTTP edge: every failure is a JSON problem detail with a stable code."""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from prsnl_common.errors import ERROR_CODES, PipelineError
from prsnl_ingest.catalog import CatalogError

logger = logging.getLogger(__name__)
STATUS_OF_CODE = {
    "unauthorized": 401,
    "not_found": 404,
    "not_retryable": 409,
    "not_ready": 409,
    "range_not_satisfiable": 416,
}


class ApiError(HTTPException):
    """An error answered as ``application/problem+json`` with ``code``."""

    def __init__(self, code: str, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail=detail, status_code=status_code or STATUS_OF_CODE.get(code, 422))
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
    return problem(exc.status_code, exc.code, exc.detail)


def on_pipeline_error(_: Request[Any, Any, Any], exc: PipelineError) -> Response[dict[str, object]]:
    return problem(422, exc.code, exc.message)


def on_catalog_error(_: Request[Any, Any, Any], exc: CatalogError) -> Response[dict[str, object]]:
    return problem(STATUS_OF_CODE.get(exc.code, 422), exc.code, exc.message)


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


CODE_OF_STATUS = {
    400: "invalid_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def on_http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, object]]:
    """Litestar's own refusals; any other 4xx is still the client's: invalid_request."""
    status = exc.status_code
    fallback = "invalid_request" if 400 <= status < 500 else "internal_error"
    headers = {k: str(v) for k, v in (exc.headers or {}).items()}
    return problem(status, CODE_OF_STATUS.get(status, fallback), exc.detail, headers or None)


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
    ValidationException: on_validation_error,
    NotAuthorizedException: on_not_authorized,
    HTTPException: on_http_error,
    Exception: on_unexpected,
}
