"""Group 2: schemes, pseudo-URLs and malformed links are refused at capture with the code
that says why, before any resolution or connection."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.hostile.conftest import AnyClient, LeftBehind
from tests.support.media_server import MediaServer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("canary")]

# {port} is the port the allow-list opens on 127.0.0.1, so only the spelling is at fault.
LINKS = [
    ("javascript:alert(1)", "unsupported_scheme"),
    ("JaVaScRiPt:fetch('http://127.0.0.2/')", "unsupported_scheme"),
    ("data:video/mp4;base64,AAAAIGZ0eXBpc29t", "unsupported_scheme"),
    ("file:///etc/passwd", "unsupported_scheme"),
    ("file://127.0.0.1/etc/passwd", "unsupported_scheme"),
    ("ftp://127.0.0.1:{port}/clip.mp4", "unsupported_scheme"),
    ("gopher://127.0.0.2:6379/_FLUSHALL", "unsupported_scheme"),
    ("dict://127.0.0.2:11211/stats", "unsupported_scheme"),
    ("ws://127.0.0.1:{port}/files/clip.mp4", "unsupported_scheme"),
    ("view-source:http://127.0.0.1:{port}/files/clip.mp4", "unsupported_scheme"),
    ("127.0.0.1:{port}/files/clip.mp4", "invalid_url"),  # no scheme (not "127.0.0.1:")
    ("//127.0.0.2/files/clip.mp4", "invalid_url"),  # scheme-relative: no scheme
    ("www.example.com/video.mp4", "invalid_url"),
    ("http:/x", "invalid_url"),
    ("http://", "invalid_url"),
    ("http:///files/clip.mp4", "invalid_url"),
    ("http://:{port}/files/clip.mp4", "invalid_url"),
    ("http://user:pass@127.0.0.1:{port}/files/clip.mp4", "credentials_in_url"),
    ("http://user@127.0.0.1:{port}/files/clip.mp4", "credentials_in_url"),
    ("http://:pass@127.0.0.1:{port}/files/clip.mp4", "credentials_in_url"),
    # A WHATWG parser reads the backslash as a slash (host 127.0.0.2); urllib as userinfo.
    ("http://127.0.0.2\\@127.0.0.1:{port}/files/clip.mp4", "credentials_in_url"),
    ("http://127.0.0.1:{port}\\files\\clip.mp4", "invalid_url"),
    ("http:\\\\127.0.0.2\\files\\clip.mp4", "invalid_url"),
    ("http://127.0.0.1:{port}/files/clip one.mp4", "invalid_url"),
    (" http://127.0.0.1:{port}/files/clip.mp4 x", "invalid_url"),
    ("http://127.0.0.1:{port}/files/clip.mp4\x00.html", "invalid_url"),
    ("http://127.0.0.2\x00.127.0.0.1:{port}/files/clip.mp4", "invalid_url"),
    ("http://127.0.0.1:{port}/files/clip.mp4\r\nHost: 127.0.0.2", "invalid_url"),
    ("http://127.0.0.1:{port}/files/\x07clip.mp4", "invalid_url"),
    ("http://127.0.0.1:{port}/files/\x7fclip.mp4", "invalid_url"),
    ("http://127.0.0.1:{port}/files/\x9bclip.mp4", "invalid_url"),  # C1 control
    ("http://" + "ä" * 64 + ".example/clip.mp4", "invalid_url"),  # IDN label of 64
    ("http://" + "a" * 64 + ".example/clip.mp4", "invalid_url"),  # ASCII label of 64
    ("http://a..b/clip.mp4", "invalid_url"),  # empty label
    ("http://.example/clip.mp4", "invalid_url"),
    ("http://127.0.0.1:{port}/" + "a" * 5000, "invalid_url"),  # 5000 characters
    ("http://127.0.0.1:99999/files/clip.mp4", "invalid_url"),  # port out of range
    ("http://127.0.0.1:0/files/clip.mp4", "invalid_url"),
    ("http://127.0.0.1:-1/files/clip.mp4", "invalid_url"),
    ("http://127.0.0.1:8o/files/clip.mp4", "invalid_url"),
    ("http://[::1/files/clip.mp4", "invalid_url"),  # unclosed bracket
    ("http://[127.0.0.2]/files/clip.mp4", "invalid_url"),  # IPv4 in brackets
    ("", "invalid_url"),
    ("   ", "invalid_url"),
]


@pytest.mark.parametrize(("template", "code"), LINKS)
async def test_a_malformed_or_foreign_link_is_refused_with_its_code(
    client: AnyClient,
    owner: tuple[uuid.UUID, dict[str, str]],
    allowed_media: MediaServer,
    nothing_left_behind: LeftBehind,
    template: str,
    code: str,
) -> None:
    allowed_media.reset_counters()
    url = template.replace("{port}", str(allowed_media.port))
    response = await client.post("/api/v1/captures", json={"url": url}, headers=owner[1])
    await _assert_refused(response, code, allowed_media, nothing_left_behind)


async def test_a_lone_surrogate_in_the_link_is_refused(
    client: AnyClient,
    owner: tuple[uuid.UUID, dict[str, str]],
    allowed_media: MediaServer,
    nothing_left_behind: LeftBehind,
) -> None:
    allowed_media.reset_counters()
    # Valid JSON (an escape) that decodes to text no encoder can write.
    body = f'{{"url": "http://127.0.0.1:{allowed_media.port}/files/\\ud800clip.mp4"}}'
    headers = {**owner[1], "Content-Type": "application/json"}
    response = await client.post("/api/v1/captures", content=body.encode(), headers=headers)
    # The JSON decoder refuses it before the guard sees it: a malformed body.
    await _assert_refused(response, "invalid_request", allowed_media, nothing_left_behind, 400)


async def _assert_refused(
    response: Any, code: str, allowed_media: MediaServer, left: LeftBehind, status: int = 422
) -> None:
    assert response.status_code == status, response.text
    assert response.json()["status"] == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text
    assert not allowed_media.connections
    await left.assert_nothing_left()
