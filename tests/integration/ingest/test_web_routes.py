"""The gateway serves the web page at / and its assets at /web/, with the security headers,
outside the OpenAPI document, without disturbing the API's own routing and errors."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from prsnl_ingest.api.web import WEB_ROOT

pytestmark = pytest.mark.integration

ASSETS = {
    "app.js": "text/javascript",
    "api.js": "text/javascript",
    "live.js": "text/javascript",
    "format.js": "text/javascript",
    "style.css": "text/css",
}


def assert_page_headers(headers: object) -> None:
    policy = headers["content-security-policy"]  # type: ignore[index]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert headers["x-content-type-options"] == "nosniff"  # type: ignore[index]
    assert headers["x-frame-options"] == "DENY"  # type: ignore[index]
    assert headers["referrer-policy"] == "no-referrer"  # type: ignore[index]
    assert headers["cache-control"] == "no-cache"  # type: ignore[index]


async def test_the_page_is_served_at_the_root_with_its_headers(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (WEB_ROOT / "index.html").read_text()
    assert_page_headers(response.headers)
    head = await client.head("/")
    assert head.status_code == 200 and head.content == b""


@pytest.mark.parametrize(("name", "media_type"), sorted(ASSETS.items()))
async def test_each_asset_is_served_with_its_type_and_headers(
    client: AsyncTestClient,  # type: ignore[type-arg]
    name: str,
    media_type: str,
) -> None:
    response = await client.get(f"/web/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert response.content == (WEB_ROOT / name).read_bytes()
    assert response.headers["etag"]
    assert_page_headers(response.headers)


@pytest.mark.parametrize(
    "path",
    [
        "/web/nope.js",
        "/web/",
        "/web/../app.py",
        "/web/%2e%2e/app.py",
        "/web/..%2fapp.py",
        "/web/%2e%2e%2f%2e%2e%2fsettings.py",
        "/web/%00",
        "/index.php",
        "/api/v1/nope",
    ],
)
async def test_unknown_and_escaping_paths_are_a_problem_404(
    client: AsyncTestClient,  # type: ignore[type-arg]
    path: str,
) -> None:
    response = await client.get(path)
    assert response.status_code == 404, response.text[:200]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "not_found"


async def test_other_methods_on_the_page_are_405_problems(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    for method in ("POST", "PUT", "DELETE"):
        response = await client.request(method, "/")
        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"


async def test_the_page_is_not_part_of_the_api_document(client: AsyncTestClient) -> None:  # type: ignore[type-arg]
    paths = (await client.get("/api/v1/schema/openapi.json")).json()["paths"]
    assert paths, "the document lists the API"
    assert all(path.startswith("/api/v1/") for path in paths), sorted(paths)


async def test_the_api_keeps_its_answers(
    client: AsyncTestClient,  # type: ignore[type-arg]
    owner: tuple[object, dict[str, str]],
) -> None:
    _, headers = owner
    listed = await client.get("/api/v1/items", headers=headers)
    assert listed.status_code == 200 and listed.json()["items"] == []
    refused = await client.get("/api/v1/items")
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert "content-security-policy" not in listed.headers
