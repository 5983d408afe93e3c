"""Errors at the HTTP edge become problem details with the right status and code."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from prsnl_ingest.api.problems import on_unexpected


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.CannotConnectNowError("starting up"),
        ConnectionRefusedError(111, "refused"),
        asyncpg.TooManyConnectionsError("full"),
        TimeoutError(),
    ],
)
def test_an_unreachable_database_is_a_retryable_503(error: Exception) -> None:
    response = on_unexpected(None, error)  # type: ignore[arg-type]
    content: dict[str, Any] = response.content
    assert response.status_code == 503
    assert content["code"] == "unavailable"
    assert response.headers["Retry-After"] == "5"


def test_anything_else_is_a_500_without_details() -> None:
    response = on_unexpected(None, RuntimeError("secret internals"))  # type: ignore[arg-type]
    assert response.status_code == 500
    assert response.content["code"] == "internal_error"
    assert "secret" not in str(response.content)
