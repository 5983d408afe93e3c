"""Hostile input against the real gateway: every case gets its exact status and problem code,
and leaves nothing behind (no item, outbox row, queued message, file or key) and reaches
nothing (the canary on 127.0.0.2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from tests.integration.hostile.conftest import VIDEO_SIZE, Seeded, snapshot
from tests.support.media_server import MediaServer
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
JSON = {"Content-Type": "application/json"}
HUGE = "9" * 5000  # past int()'s 4300-digit limit
ITEM = "/api/v1/items/{mine}"
THEIRS = "/api/v1/items/{theirs}"


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    status: int
    code: str | None  # None: a success, no problem body
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def body(raw: bytes, status: int, code: str, **headers: str) -> Case:
    return Case("POST", "/api/v1/captures", status, code, raw, {**JSON, **headers})


def link(url: str, code: str, status: int = 422) -> Case:
    return body(f'{{"url": "{url}"}}'.encode(), status, code)


def video(status: int, code: str | None, **headers: str) -> Case:
    return Case("GET", f"{ITEM}/video", status, code, headers=headers)


def listing(query: str, code: str = "invalid_request") -> Case:
    return Case("GET", f"/api/v1/items?{query}", 422, code)


CASES = {
    # bodies
    "not json": body(b"url=http://example.com", 400, "invalid_request"),
    "not utf-8": body(b'{"url": "\xff\xfe"}', 400, "invalid_request"),
    "nested 100000 deep": body(b"[" * 100_000 + b"]" * 100_000, 413, "payload_too_large"),
    "nested 20000 deep": body(b"[" * 20_000 + b"]" * 20_000, 400, "invalid_request"),
    "huge": body(b'{"url": "' + b"a" * 1_000_000 + b'"}', 413, "payload_too_large"),
    "url not a string": body(b'{"url": 5}', 422, "invalid_request"),
    "audio_only a list": body(
        b'{"url": "https://example.com/v.mp4", "audio_only": []}', 422, "invalid_request"
    ),
    "max_height too small": body(
        b'{"url": "https://example.com/v.mp4", "max_height": 10}', 422, "invalid_request"
    ),
    "extra field": body(b'{"url": "https://example.com/v.mp4", "x": 1}', 422, "invalid_request"),
    "empty body": body(b"", 422, "invalid_request"),
    "json array": body(b"[]", 422, "invalid_request"),
    "json null": body(b"null", 422, "invalid_request"),
    "text/plain": Case(
        "POST",
        "/api/v1/captures",
        415,
        "unsupported_media_type",
        b"{}",
        {"Content-Type": "text/plain"},
    ),
    "no content type": Case("POST", "/api/v1/captures", 415, "unsupported_media_type", b"{}"),
    "wrong method": Case("PUT", "/api/v1/captures", 405, "method_not_allowed", b"{}", JSON),
    # schemes and pseudo-URLs
    "javascript:": link("javascript:alert(1)", "unsupported_scheme"),
    "data:": link("data:video/mp4;base64,AAAA", "unsupported_scheme"),
    "file:": link("file:///etc/passwd", "unsupported_scheme"),
    "ftp:": link("ftp://127.0.0.2/clip.mp4", "unsupported_scheme"),
    "gopher:": link("gopher://127.0.0.2:70/_GET", "unsupported_scheme"),
    "no scheme": link("127.0.0.2/clip.mp4", "invalid_url"),
    "http:/x": link("http:/x", "invalid_url"),
    "http://": link("http://", "invalid_url"),
    "credentials": link("http://user:pw@127.0.0.2/clip.mp4", "credentials_in_url"),
    "canary literal": link("http://127.0.0.2/clip.mp4", "blocked_address"),
    "canary decimal": link("http://2130706434/clip.mp4", "blocked_address"),
    "canary v4-mapped": link("http://[::ffff:127.0.0.2]/clip.mp4", "blocked_address"),
    "zero address": link("http://0.0.0.0/clip.mp4", "blocked_address"),
    "metadata": link("http://169.254.169.254/latest/meta-data/", "blocked_address"),
    "private": link("http://192.168.0.1/clip.mp4", "blocked_address"),
    "ipv6 loopback": link("http://[::1]/clip.mp4", "blocked_address"),
    "backslash host": link("http:\\\\\\\\127.0.0.2\\\\clip.mp4", "invalid_url"),
    "inner whitespace": link("http://127.0.0.2/a b.mp4", "invalid_url"),
    "outer whitespace": link("  http://127.0.0.2/clip.mp4  ", "blocked_address"),
    "too long": link("https://example.com/" + "a" * 5000, "invalid_request"),
    # Range and conditional headers on my own 1000-byte video
    "range end huge": video(206, None, Range=f"bytes=0-{HUGE}"),
    "range start huge": video(416, "range_not_satisfiable", Range=f"bytes={HUGE}-"),
    "suffix huge": video(206, None, Range=f"bytes=-{HUGE}"),
    "suffix beyond size": video(206, None, Range="bytes=-5000"),
    "start at size": video(416, "range_not_satisfiable", Range=f"bytes={VIDEO_SIZE}-"),
    "multiple ranges": video(200, None, Range="bytes=0-1,5-6"),
    "other unit": video(200, None, Range="items=0-1"),
    "garbage if-range": video(200, None, Range="bytes=0-1", **{"If-Range": "garbage"}),
    "garbage if-none-match": video(200, None, **{"If-None-Match": "garbage"}),
    "garbage if-modified-since": video(200, None, **{"If-Modified-Since": "garbage"}),
    "far-future if-range": video(
        200, None, Range="bytes=0-1", **{"If-Range": "Fri, 31 Dec 9999 23:59:59 GMT"}
    ),
    # ids
    "not a uuid": Case("GET", "/api/v1/items/not-a-uuid", 404, "not_found"),
    "nul id": Case("GET", "/api/v1/items/%00", 404, "not_found"),
    "unknown id": Case(
        "GET", "/api/v1/items/00000000-0000-0000-0000-000000000000", 404, "not_found"
    ),
    "huge thumbnail width": Case("GET", f"{ITEM}/thumbnails/{'9' * 40}", 404, "not_found"),
    # list parameters
    "nul in q": listing("q=a%00b"),
    "nul in platform": listing("platform=direct%00"),
    "nul in status": listing("status=ready%00"),
    "nul in cursor": listing("cursor=a%00b"),
    "unknown status": listing("status=lost"),
    "huge limit": listing(f"limit={HUGE}"),
    "negative limit": listing("limit=-1"),
    "bad cursor": listing("cursor=bm90LWEtY3Vyc29y"),
    "long q": listing("q=" + "a" * 600),
    # another owner's item on every route
    "their item": Case("GET", THEIRS, 404, "not_found"),
    "their video": Case("GET", f"{THEIRS}/video", 404, "not_found"),
    "their video head": Case("HEAD", f"{THEIRS}/video", 404, None),
    "their thumbnail": Case("GET", f"{THEIRS}/thumbnails/320", 404, "not_found"),
    "their events": Case("GET", f"{THEIRS}/events", 404, "not_found"),
    "their delete": Case("DELETE", THEIRS, 404, "not_found"),
    "their retry": Case("POST", f"{THEIRS}/retry", 404, "not_found"),
    "their transcode": Case(
        "POST", f"{THEIRS}/transcode", 404, "not_found", b'{"profile": "720p"}', JSON
    ),
    # keys
    "no key": Case("GET", "/api/v1/items", 401, "unauthorized", headers={"Authorization": ""}),
    "unknown key": Case(
        "GET", "/api/v1/items", 401, "unauthorized", headers={"Authorization": "Bearer nope"}
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_hostile_input_gets_its_problem_and_leaves_nothing(
    case: Case,
    api: httpx.AsyncClient,
    gateway: Stack,
    db: asyncpg.Pool,
    seeded: Seeded,
    canary: MediaServer,
) -> None:
    before = await snapshot(gateway, db)
    path = case.path.format(mine=seeded.mine, theirs=seeded.theirs)
    response = await api.request(
        case.method,
        path,
        content=case.content,
        headers={**seeded.my_headers, **case.headers},
    )
    assert response.status_code == case.status, response.text[:500]
    if case.code is not None:
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert (problem["status"], problem["code"]) == (case.status, case.code)
        assert problem["detail"]
    elif case.status == 206:
        assert response.headers["content-range"].endswith(f"/{VIDEO_SIZE}")
    assert await snapshot(gateway, db) == before
    assert await db.fetchval("SELECT count(*) FROM items WHERE id = $1", seeded.theirs) == 1
