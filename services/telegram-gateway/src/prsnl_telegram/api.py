"""The bot's adapter for the PRSNL HTTP API: every capture, query and change goes through it.

The API is the one capture path and the only writer of the catalog; the bot
holds one API key per allowed Telegram user, so what a user saves is theirs in
the API as well. An answer the API refuses raises :class:`Refused` with the
API's stable code; anything that says "not now" (connection errors, 5xx,
timeouts) raises :class:`Unavailable`, which the bot tells the user as "try
again" — a capture it did not see accepted is never claimed as saved.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from opentelemetry import propagate

TIMEOUT = httpx.Timeout(15.0, connect=5.0)
UPLOAD_TIMEOUT = httpx.Timeout(300.0, connect=5.0)


class ApiError(Exception):
    """The API could not do what the bot asked."""


class Refused(ApiError):
    """The API answered with a problem (4xx): ``code`` is its stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Unavailable(ApiError):
    """The API (or the database behind it) did not answer; trying again later may help."""


@dataclass(frozen=True)
class Captured:
    item: dict[str, Any]
    created: bool


class Api:
    """A client of ``/api/v1`` that acts with the API key of one owner per call."""

    def __init__(self, base_url: str, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=TIMEOUT, transport=transport
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def capture(self, key: str, url: str, chat_id: int, message_id: int) -> Captured:
        body = {
            "url": url,
            "source": "telegram",
            "reply_to": {"chat_id": chat_id, "message_id": message_id},
        }
        response = await self._call("POST", "/api/v1/captures", key, json=body)
        return Captured(response.json(), created=response.status_code == 202)

    async def upload(
        self, key: str, body: AsyncIterator[bytes], size: int, content_type: str, name: str
    ) -> Captured:
        headers = {
            "Content-Type": content_type,
            "Content-Length": str(size),
            "X-Filename": name,
            "X-Source": "telegram",
        }
        response = await self._call(
            "POST", "/api/v1/uploads", key, content=body, headers=headers, timeout=UPLOAD_TIMEOUT
        )
        return Captured(response.json(), created=response.status_code == 202)

    async def item(self, key: str, item_id: uuid.UUID | str) -> dict[str, Any]:
        return dict((await self._call("GET", f"/api/v1/items/{item_id}", key)).json())

    async def items(self, key: str, limit: int, cursor: str | None = None) -> dict[str, Any]:
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        return dict((await self._call("GET", "/api/v1/items", key, params=params)).json())

    async def retry(self, key: str, item_id: uuid.UUID | str) -> dict[str, Any]:
        return dict((await self._call("POST", f"/api/v1/items/{item_id}/retry", key)).json())

    async def delete(self, key: str, item_id: uuid.UUID | str) -> None:
        await self._call("DELETE", f"/api/v1/items/{item_id}", key)

    async def usage(self, key: str) -> dict[str, Any]:
        return dict((await self._call("GET", "/api/v1/storage", key)).json())

    async def _call(self, method: str, path: str, key: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}", **kwargs.pop("headers", {})}
        propagate.inject(headers)  # the update's span is the parent of the API's
        try:
            response = await self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise Unavailable(f"the API did not answer: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise Unavailable(f"the API answered {response.status_code}")
        if response.status_code >= 400:
            raise _refusal(response)
        return response


def _refusal(response: httpx.Response) -> Refused:
    try:
        problem = response.json()
        code, detail = str(problem["code"]), str(problem.get("detail") or problem["title"])
    except (ValueError, KeyError, TypeError):
        code, detail = f"http_{response.status_code}", response.text[:200]
    return Refused(response.status_code, code, detail)
