"""Groups 4-6: Range and conditional headers on a ready item's video, hostile ids and
list parameters, and another owner's items on every route: the right status, never 500."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from prsnl_ingest.streaming import FileValidators
from tests.hostile.conftest import AnyClient, LeftBehind, ReadyItem

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("canary")]

BIG = "9" * 5000  # thousands of digits

# --- group 4: Range and conditional headers -------------------------------------------------

# (method, headers builder tag, expected status, expected Content-Range template or None)
RANGES = [
    ("GET", {"Range": f"bytes=0-{BIG}"}, 206, "bytes 0-{last}/{size}"),
    ("GET", {"Range": f"bytes={BIG}-"}, 416, "bytes */{size}"),
    ("GET", {"Range": f"bytes=-{BIG}"}, 206, "bytes 0-{last}/{size}"),
    ("GET", {"Range": "bytes=" + "0" * 5000 + "1-2"}, 206, "bytes 1-2/{size}"),
    ("GET", {"Range": "bytes=0-1,5-9"}, 200, None),  # several ranges: the whole file
    ("GET", {"Range": ",".join(["bytes=0-1"] * 2000)}, 200, None),
    ("GET", {"Range": "bytes=-0"}, 416, "bytes */{size}"),
    ("GET", {"Range": "bytes=-999999999"}, 206, "bytes 0-{last}/{size}"),  # suffix > size
    ("GET", {"Range": "bytes={size}-"}, 416, "bytes */{size}"),  # start at the size
    ("GET", {"Range": "bytes=999999999-1000000000"}, 416, "bytes */{size}"),
    ("GET", {"Range": "bytes=5-1"}, 200, None),  # end before start: ignored
    ("GET", {"Range": "items=0-1"}, 200, None),  # another unit
    ("GET", {"Range": "bytes=abc-def"}, 200, None),
    ("GET", {"Range": "bytes=\x00-1"}, 200, None),
    ("GET", {"Range": "bytes=0-1", "If-Range": "garbage"}, 200, None),
    ("GET", {"Range": "bytes=0-1", "If-Range": '"nope"'}, 200, None),
    ("GET", {"Range": "bytes=0-1", "If-Range": "W/{etag}"}, 200, None),  # weak never matches
    ("GET", {"Range": "bytes=0-1", "If-Range": "{etag}"}, 206, "bytes 0-1/{size}"),
    ("GET", {"Range": "bytes=0-1", "If-Range": "Mon, 01 Jan 99999 00:00:00 GMT"}, 200, None),
    ("GET", {"Range": "bytes=0-1", "If-Range": "Mon, 32 Foo 2024 25:61:61 GMT"}, 200, None),
    ("GET", {"If-None-Match": "garbage"}, 200, None),
    ("GET", {"If-None-Match": '"a", "b", ' * 500}, 200, None),
    ("GET", {"If-None-Match": "{etag}"}, 304, None),
    ("GET", {"If-None-Match": "*"}, 304, None),
    ("GET", {"If-Modified-Since": "garbage"}, 200, None),
    ("GET", {"If-Modified-Since": f"Mon, 01 Jan {BIG} 00:00:00 GMT"}, 200, None),
    ("HEAD", {}, 200, None),
    ("HEAD", {"Range": "bytes=0-9"}, 206, "bytes 0-9/{size}"),
    ("HEAD", {"Range": "bytes={size}-"}, 416, "bytes */{size}"),
]


@pytest.mark.parametrize(
    ("method", "headers", "status", "content_range"),
    RANGES,
    ids=[f"range{index}" for index in range(len(RANGES))],
)
async def test_range_and_conditional_headers_get_the_right_status(
    client: AnyClient,
    ready_item: ReadyItem,
    nothing_left_behind: LeftBehind,
    method: str,
    headers: dict[str, str],
    status: int,
    content_range: str | None,
) -> None:
    stat = ready_item.video.stat()
    validators = FileValidators(stat.st_size, stat.st_mtime)
    size = validators.size
    values = {"size": str(size), "last": str(size - 1), "etag": validators.etag}
    sent = {k: v.format(**values) if "{" in v else v for k, v in headers.items()}
    response = await client.request(
        method, f"/api/v1/items/{ready_item.id}/video", headers={**ready_item.headers, **sent}
    )
    assert response.status_code == status, response.text[:300]
    assert response.headers.get("content-range") == (
        content_range.format(**values) if content_range else None
    )
    if status == 416 and method == "GET":
        assert response.json()["code"] == "range_not_satisfiable"
    elif status in (200, 206) and method == "GET":
        body = response.content
        assert len(body) == int(response.headers["content-length"])
        if status == 200:
            assert body == ready_item.video.read_bytes()
    elif method == "HEAD":
        assert response.content == b""
    await nothing_left_behind.assert_nothing_left()


# --- group 5: ids and list parameters ----------------------------------------------------

PARAMETERS = [
    ("/api/v1/items/not-a-uuid", 404, "not_found"),
    ("/api/v1/items/%00", 404, "not_found"),
    ("/api/v1/items/01a23741-46cd-7d8d-b1fe-13a41a5684bf%00", 404, "not_found"),
    ("/api/v1/items/" + "1" * 5000, 404, "not_found"),
    ("/api/v1/items/00000000-0000-0000-0000-000000000000", 404, "not_found"),
    ("/api/v1/items/00000000-0000-0000-0000-000000000000/video", 404, "not_found"),
    ("/api/v1/items/00000000-0000-0000-0000-000000000000/thumbnails/" + BIG, 404, "not_found"),
    ("/api/v1/items?q=%00", 422, "invalid_request"),
    ("/api/v1/items?q=a%00b", 422, "invalid_request"),
    ("/api/v1/items?platform=%00", 422, "invalid_request"),
    ("/api/v1/items?status=%00", 422, "invalid_request"),
    ("/api/v1/items?status=everything", 422, "invalid_request"),
    ("/api/v1/items?cursor=%00", 422, "invalid_request"),
    ("/api/v1/items?limit=1000000", 422, "invalid_request"),
    ("/api/v1/items?limit=" + BIG, 422, "invalid_request"),
    ("/api/v1/items?limit=-1", 422, "invalid_request"),
    ("/api/v1/items?limit=0", 422, "invalid_request"),
    ("/api/v1/items?limit=ten", 422, "invalid_request"),
    ("/api/v1/items?cursor=not-a-cursor", 422, "invalid_request"),
    ("/api/v1/items?cursor=" + "A" * 5000, 422, "invalid_request"),
    ("/api/v1/items?cursor=fHw", 422, "invalid_request"),  # base64 of "||"
    ("/api/v1/items?cursor=MjAyNC0wMS0wMVQwMDowMDowMHxub3QtYS11dWlk", 422, "invalid_request"),
    ("/api/v1/items?q=%25%5F%5C", 200, None),  # LIKE wildcards are text
]


@pytest.mark.parametrize(
    ("path", "status", "code"), PARAMETERS, ids=[f"param{i}" for i in range(len(PARAMETERS))]
)
async def test_hostile_ids_and_list_parameters_are_refused_with_a_code(
    client: AnyClient,
    ready_item: ReadyItem,
    nothing_left_behind: LeftBehind,
    path: str,
    status: int,
    code: str | None,
) -> None:
    response = await client.get(path, headers=ready_item.headers)
    assert response.status_code == status, response.text[:300]
    if code is None:
        assert response.json()["items"] == []
    else:
        assert response.json()["code"] == code, response.text[:300]
    await nothing_left_behind.assert_nothing_left()


# --- group 6: owner isolation ------------------------------------------------------------

ROUTES = [
    ("GET", "", None),
    ("GET", "/events", None),
    ("GET", "/video", None),
    ("HEAD", "/video", None),
    ("GET", "/thumbnails/320", None),
    ("DELETE", "", None),
    ("POST", "/retry", None),
    ("POST", "/transcode", {"profile": "480p"}),
]


@pytest.mark.parametrize(("method", "suffix", "body"), ROUTES)
@pytest.mark.parametrize("which", ["ready", "failed"])
async def test_another_owners_item_is_404_on_every_route_and_untouched(
    client: AnyClient,
    pool: asyncpg.Pool,
    ready_item: ReadyItem,
    owner: tuple[uuid.UUID, dict[str, str]],
    nothing_left_behind: LeftBehind,
    method: str,
    suffix: str,
    body: dict[str, str] | None,
    which: str,
) -> None:
    item_id = ready_item.id if which == "ready" else ready_item.failed_id
    before = dict(await pool.fetchrow("SELECT * FROM items WHERE id = $1", item_id) or {})
    response = await client.request(
        method, f"/api/v1/items/{item_id}{suffix}", headers=owner[1], json=body
    )
    assert response.status_code == 404, response.text[:300]
    if method != "HEAD":
        assert response.json()["code"] == "not_found"
    after = dict(await pool.fetchrow("SELECT * FROM items WHERE id = $1", item_id) or {})
    assert after == before, "another owner's request changed the item"
    await nothing_left_behind.assert_nothing_left()
    # The item's own owner still reaches it, so the 404 is about ownership.
    mine = await client.get(f"/api/v1/items/{item_id}", headers=ready_item.headers)
    assert mine.status_code == 200
