"""Capture API: refusals with stable codes leave nothing behind; accepted captures reach the
downloader's queue through the outbox."""

from __future__ import annotations

import asyncio
import uuid

import aio_pika
import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from prsnl_common.events import UrlCaptured
from prsnl_common.settings import CommonSettings
from tests.integration.ingest.conftest import published, queued_events

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("not a url", "invalid_url"),
        ("example.com/video", "invalid_url"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("ftp://127.0.0.1/video.mp4", "unsupported_scheme"),
        ("https://user:secret@example.com/v.mp4", "credentials_in_url"),
        ("http://127.0.0.1:9/v.mp4", "blocked_address"),  # loopback, allow-list empty
        ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
        ("http://[::1]/v.mp4", "blocked_address"),
        ("http://2130706433/v.mp4", "blocked_address"),  # decimal 127.0.0.1
        ("http://0x7f.1/v.mp4", "blocked_address"),  # hex-dotted 127.0.0.1
        ("http://[::ffff:127.0.0.1]/v.mp4", "blocked_address"),
        ("http://localhost/v.mp4", "blocked_address"),  # a name that resolves to loopback
        ("http://10.1.2.3/v.mp4", "blocked_address"),
        ("http://no-such-host.invalid/v.mp4", "unresolvable_host"),
        ("http://127.0.0.1:9/" + "a" * 5000, "invalid_url"),  # too long: the guard's code
    ],
)
async def test_refused_links_get_422_with_a_code_and_leave_nothing(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
    url: str,
    code: str,
) -> None:
    owner_id, headers = owner
    response = await client.post("/api/v1/captures", json={"url": url}, headers=headers)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code
    assert body["status"] == 422 and body["detail"]
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id) == 0
    # Other tests' captures may be in the outbox or queued; none of this owner's.
    mine = "SELECT count(*) FROM outbox WHERE payload->>'owner_id' = $1"
    assert await pool.fetchval(mine, str(owner_id)) == 0
    queued = await queued_events(gateway_env, "downloader", "url.captured")
    assert [event for event in queued if event["owner_id"] == str(owner_id)] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"url": 5},
        {"url": "https://example.com/v.mp4", "max_height": 10},
        {"url": "https://example.com/v.mp4", "unknown": 1},
    ],
)
async def test_malformed_bodies_get_invalid_request(
    client: AsyncTestClient,  # type: ignore[type-arg]
    owner: tuple[uuid.UUID, dict[str, str]],
    body: dict[str, object],
) -> None:
    response = await client.post("/api/v1/captures", json=body, headers=owner[1])
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


async def test_missing_or_unknown_key_is_401(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/api/v1/items")).json()["code"] == "unauthorized"
    response = await client.get("/api/v1/items", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


async def test_accepted_capture_is_published_through_the_outbox(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
    gateway_env: CommonSettings,
) -> None:
    owner_id, headers = owner
    # A public address literal needs no DNS; nothing connects to it in this test.
    url = "http://93.184.215.14/clips/cat.mp4?utm_source=x"
    # The caller's trace goes on: the published event carries its trace id.
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    traced = {**headers, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    response = await client.post(
        "/api/v1/captures", json={"url": url, "max_height": 720}, headers=traced
    )
    assert response.status_code == 202, response.text
    item = response.json()
    assert item["status"] == "pending" and item["platform"] == "direct"
    assert item["options"] == {"max_height": 720, "audio_only": False}

    message = await published(gateway_env, "downloader", "url.captured", item["id"])
    event = UrlCaptured.model_validate_json(message.body)
    assert str(event.item_id) == item["id"]
    assert event.owner_id == owner_id
    assert event.normalized_url == "http://93.184.215.14/clips/cat.mp4"
    assert event.options.max_height == 720
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert str(message.headers.get("traceparent")).split("-")[1] == trace_id

    again = await client.post("/api/v1/captures", json={"url": url}, headers=headers)
    assert again.status_code == 200 and again.json()["id"] == item["id"]
    assert again.json()["duplicate"] is True


async def test_health_and_openapi(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "consumers": "ok"}
    schema = (await client.get("/api/v1/schema/openapi.json")).json()
    assert "/api/v1/captures" in schema["paths"]
    assert "/api/v1/items/{item_id}/video" in schema["paths"]
    metrics = await client.get("/metrics")
    assert "prsnl_captures_total" in metrics.text


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PUT", "/api/v1/captures", 405, "method_not_allowed"),
        ("PATCH", "/api/v1/items", 405, "method_not_allowed"),
        ("GET", "/api/v1/items?q=a%00b", 422, "invalid_request"),
        ("GET", "/api/v1/items?platform=%00", 422, "invalid_request"),
        ("GET", "/api/v1/items?status=ready%00", 422, "invalid_request"),
    ],
)
async def test_refusals_have_their_own_code_never_a_500(
    client: AsyncTestClient,  # type: ignore[type-arg]
    owner: tuple[uuid.UUID, dict[str, str]],
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    response = await client.request(method, path, headers=owner[1])
    assert (response.status_code, response.json()["code"]) == (status, code), response.text


async def test_racing_spellings_of_one_video_make_one_item_through_the_api(
    client: AsyncTestClient,  # type: ignore[type-arg]
    pool: asyncpg.Pool,
    owner: tuple[uuid.UUID, dict[str, str]],
) -> None:
    """The one-statement capture and its fallback settle a race of twins as one item."""
    owner_id, headers = owner
    # A public address literal needs no DNS; the tracking parameter is not part of the video.
    spellings = [f"http://93.184.215.14/clips/race.mp4?utm_source={s}" for s in ("a", "b")]
    answers = await asyncio.gather(
        *(
            client.post("/api/v1/captures", json={"url": spellings[i % 2]}, headers=headers)
            for i in range(12)
        )
    )
    assert sorted(a.status_code for a in answers) == [200] * 11 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    assert await pool.fetchval("SELECT count(*) FROM items WHERE owner_id = $1", owner_id) == 1
