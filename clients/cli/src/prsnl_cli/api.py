"""The PRSNL Media API over httpx: every answer checked, every problem a typed error."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from prsnl_cli import __version__
from prsnl_cli.errors import ApiProblem, NetworkError
from prsnl_cli.sse import ServerEvent, parse_events

Item = dict[str, Any]
FINAL_STATUSES = ("ready", "failed")
# Longest silence on a live stream before it counts as broken (the gateway sends a
# keep-alive every 15 s by default).
STREAM_READ_TIMEOUT = 60.0
# Broken connections in a row before a live stream gives up (about half a minute).
RECONNECTS = 8


def problem_of(response: httpx.Response) -> ApiProblem:
    """The problem a failed answer describes (a non-problem body still gives a readable one)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return ApiProblem(response.status_code, body["code"], str(body.get("detail") or ""))
    text = response.reason_phrase or "error"
    return ApiProblem(response.status_code, "http_error", f"HTTP {response.status_code} {text}")


async def checked(response: httpx.Response) -> httpx.Response:
    """The answer when it succeeded; its problem raised otherwise (the body read first)."""
    if response.is_success:
        return response
    await response.aread()
    raise problem_of(response)


@contextlib.contextmanager
def network_errors(base_url: str) -> Any:
    """httpx's transport errors as one :class:`NetworkError` naming the API."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise NetworkError(f"The API at {base_url} did not answer in time ({exc!r}).") from exc
    except httpx.TransportError as exc:
        raise NetworkError(f"Cannot reach the API at {base_url}: {exc}.") from exc


class Api:
    """One API base URL and key; use as ``async with Api(...) as api``."""

    def __init__(
        self,
        base_url: str,
        key: str,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url
        self._key = key
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            headers={"User-Agent": f"prsnl-cli/{__version__}"},
            transport=transport,
        )

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    async def __aenter__(self) -> Api:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One authorised request to the API; a problem or a network failure raised."""
        with network_errors(self.base_url):
            response = await self._http.request(method, path, headers=self.auth, **kwargs)
        return await checked(response)

    async def json(self, method: str, path: str, **kwargs: Any) -> Item:
        response = await self.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError as exc:
            raise ApiProblem(response.status_code, "bad_answer", "The API sent no JSON.") from exc
        if not isinstance(body, dict):
            raise ApiProblem(response.status_code, "bad_answer", "The API sent no JSON object.")
        return body

    async def capture(self, url: str, max_height: int | None, audio_only: bool) -> Item:
        body: dict[str, Any] = {"url": url, "audio_only": audio_only}
        if max_height is not None:
            body["max_height"] = max_height
        return await self.json("POST", "/api/v1/captures", json=body)

    async def item(self, item_id: str) -> Item:
        return await self.json("GET", f"/api/v1/items/{item_id}")

    async def retry(self, item_id: str) -> Item:
        return await self.json("POST", f"/api/v1/items/{item_id}/retry")

    async def delete(self, item_id: str) -> None:
        await self.request("DELETE", f"/api/v1/items/{item_id}")

    async def items(self, limit: int | None, **filters: str | None) -> AsyncIterator[Item]:
        """Items newest first, following the keyset cursor until ``limit`` (None: all)."""
        params = {name: value for name, value in filters.items() if value}
        cursor: str | None = None
        left = limit
        while left is None or left > 0:
            page_size = min(left or 500, 500)
            page = await self.json(
                "GET", "/api/v1/items", params={**params, "limit": page_size, "cursor": cursor}
            )
            for item in page.get("items", [])[:page_size]:
                yield item
            left = None if left is None else left - len(page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor:
                return

    @contextlib.asynccontextmanager
    async def stream(
        self, method: str, url: str, headers: dict[str, str], limits: httpx.Timeout
    ) -> AsyncIterator[httpx.Response]:
        """A streamed answer, checked before the body is read."""
        with network_errors(self.base_url):
            async with self._http.stream(method, url, headers=headers, timeout=limits) as answer:
                yield await checked(answer)

    async def events(self, path: str) -> AsyncIterator[ServerEvent]:
        """The Server-Sent Events of ``path`` (an item's ``/events`` or the owner's)."""
        limits = httpx.Timeout(30.0, read=STREAM_READ_TIMEOUT)
        headers = {**self.auth, "Accept": "text/event-stream"}
        async with self.stream("GET", path, headers, limits) as answer:
            with network_errors(self.base_url):
                async for event in parse_events(answer.aiter_lines()):
                    yield event


async def follow(api: Api, item_id: str) -> AsyncIterator[tuple[str, Item]]:
    """An item's live updates until it is ready, failed or deleted; reconnects when cut.

    Each connection starts with the item's whole state (``item``), so nothing is
    lost across a reconnect. Yields (kind, data): ``item`` with the full item,
    ``progress``/``status``/``retry`` with the changed fields, ``deleted``.
    """
    delay, failures = 0.5, 0
    while True:
        try:
            async for event in api.events(f"/api/v1/items/{item_id}/events"):
                data = event.json()
                yield event.event, data
                if event.event == "deleted" or data.get("status") in FINAL_STATUSES:
                    return
                delay, failures = 0.5, 0
        except NetworkError:
            # The stream broke (a gateway restart, an idle proxy): listen again, a while.
            failures += 1
            if failures > RECONNECTS:
                raise
        except ApiProblem as problem:
            if problem.code != "too_many_streams":
                raise
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)
