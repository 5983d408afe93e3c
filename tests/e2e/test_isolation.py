"""De-duplication per owner and isolation between owners (C5, A7)."""

from __future__ import annotations

import pytest

from tests.support.media_server import MediaServer
from tests.support.stack import Api, Stack

pytestmark = pytest.mark.e2e


def test_same_link_twice_is_one_item_per_owner(
    stack: Stack, alice: Api, bob: Api, media: MediaServer
) -> None:
    url = media.url("/files/small.mp4?owners=1")
    first = alice.capture(url)
    assert first.status_code == 202
    item_id = first.json()["id"]
    again = alice.capture(url + "&utm_source=share")  # tracking parameters do not matter
    assert again.status_code == 200
    assert again.json()["id"] == item_id and again.json()["duplicate"] is True

    theirs = bob.capture(url)
    assert theirs.status_code == 202
    assert theirs.json()["id"] != item_id

    alice.wait_for(item_id)
    for path in ("", "/video", "/thumbnails/320", "/events"):
        response = bob.get(f"/api/v1/items/{item_id}{path}")
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"
    assert bob.delete(f"/api/v1/items/{item_id}").status_code == 404
    assert bob.post(f"/api/v1/items/{item_id}/retry").status_code == 404
    listed = {i["id"] for i in bob.get("/api/v1/items?limit=500").json()["items"]}
    assert item_id not in listed
    assert alice.get(f"/api/v1/items/{item_id}").status_code == 200


def test_requests_without_a_valid_key_are_refused(stack: Stack) -> None:
    anonymous = Api(stack.base_url, "not-a-key")
    response = anonymous.get("/api/v1/items")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["www-authenticate"].startswith("Bearer")
