"""Group 3: hostile capture bodies get a 4xx problem with a code, never a 500."""

from __future__ import annotations

import uuid

import pytest

from tests.hostile.conftest import AnyClient, LeftBehind

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("canary")]

JSON = "application/json"
URL = "http://93.184.215.14/hostile/body.mp4"  # public literal: valid if the body were

# (raw body, content type, status, code)
BODIES = [
    (b"{", JSON, 400, "invalid_request"),  # not JSON
    (b"url=http://example.com/", JSON, 400, "invalid_request"),
    (b'\xff\xfe{"url": "' + URL.encode() + b'"}', JSON, 400, "invalid_request"),  # not UTF-8
    (b'{"url": "http://93.184.215.14/\xc3\x28.mp4"}', JSON, 400, "invalid_request"),
    # Nested far deeper than any decoder recursion, yet under the body cap.
    (b"[" * 30_000 + b"]" * 30_000, JSON, 400, "invalid_request"),
    (b'{"url": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", JSON, 400, "invalid_request"),
    (b"[" * 100_000 + b"]" * 100_000, JSON, 413, "payload_too_large"),  # over the cap
    (b"", JSON, 422, "invalid_request"),  # empty body
    (b"null", JSON, 422, "invalid_request"),
    (b"[]", JSON, 422, "invalid_request"),  # an array
    (b'["' + URL.encode() + b'"]', JSON, 422, "invalid_request"),
    (b'"' + URL.encode() + b'"', JSON, 422, "invalid_request"),  # a bare string
    (b"{}", JSON, 422, "invalid_request"),
    (b'{"url": 5}', JSON, 422, "invalid_request"),  # wrong types
    (b'{"url": null}', JSON, 422, "invalid_request"),
    (b'{"url": ["' + URL.encode() + b'"]}', JSON, 422, "invalid_request"),
    (b'{"url": {"href": "' + URL.encode() + b'"}}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "max_height": "720p"}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "max_height": 720.5}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "max_height": 0}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "max_height": -1}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "max_height": 100000}', JSON, 422, "invalid_request"),
    (
        b'{"url": "' + URL.encode() + b'", "max_height": 1' + b"0" * 5000 + b"}",
        JSON,
        400,
        "invalid_request",
    ),
    (b'{"url": "' + URL.encode() + b'", "max_height": 1e999}', JSON, 400, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "__proto__": {}}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "audio_only": "yes"}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "audio_only": 1}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "max_height": "720"}', JSON, 422, "invalid_request"),
    # Extra fields named like the handler's dependencies.
    (b'{"url": "' + URL.encode() + b'", "owner_id": "x"}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'", "gateway": null}', JSON, 422, "invalid_request"),
    (b'{"url": "' + URL.encode() + b'" ,}', JSON, 400, "invalid_request"),  # trailing comma
    (b'{"url": "' + URL.encode() + b'"} {"url": "x"}', JSON, 400, "invalid_request"),
    (b"<url>" + URL.encode() + b"</url>", "text/xml", 415, "unsupported_media_type"),
    (
        b'{"url": "' + URL.encode() + b'", "pad": "' + b"x" * (11 * 1024 * 1024) + b'"}',
        JSON,
        413,
        "payload_too_large",
    ),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    BODIES,
    ids=[f"body{index}" for index in range(len(BODIES))],
)
async def test_a_hostile_body_is_a_4xx_with_a_code(
    client: AnyClient,
    owner: tuple[uuid.UUID, dict[str, str]],
    nothing_left_behind: LeftBehind,
    body: bytes,
    content_type: str,
    status: int,
    code: str,
) -> None:
    headers = {**owner[1], "Content-Type": content_type}
    response = await client.post("/api/v1/captures", content=body, headers=headers)
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text[:500]
    await nothing_left_behind.assert_nothing_left()
