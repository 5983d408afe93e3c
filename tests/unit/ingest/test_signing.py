"""Signed media links: a signature covers one file of one owner for one key, until it expires."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prsnl_ingest.signing import LinkGrant, LinkRefused, LinkSigner

SIGNER = LinkSigner(b"s" * 32, lifetime=3600)
OWNER = uuid.UUID("0191e2a4-0000-7000-8000-000000000001")
KEY_ID = "a1b2c3d4e5f6"
NOW = 1_800_000_000.0


def _refused(grant: LinkGrant, key: str, owner: uuid.UUID, now: float = NOW) -> str:
    with pytest.raises(LinkRefused) as caught:
        SIGNER.verify(grant, key, owner, now)
    return caught.value.code


def test_a_link_opens_its_file_until_it_expires() -> None:
    grant = SIGNER.sign("items/x/video.mp4", OWNER, KEY_ID, NOW)
    assert grant.expires >= NOW + 3600
    assert grant.expires % SIGNER.step == 0, "expiries are rounded so answers can be cached"
    SIGNER.verify(grant, "items/x/video.mp4", OWNER, NOW)
    SIGNER.verify(grant, "items/x/video.mp4", OWNER, grant.expires)
    assert _refused(grant, "items/x/video.mp4", OWNER, grant.expires + 1) == "link_expired"


def test_answers_within_one_step_hand_out_the_same_link() -> None:
    first = SIGNER.sign("items/x/thumb-320.jpg", OWNER, KEY_ID, NOW)
    later = SIGNER.sign("items/x/thumb-320.jpg", OWNER, KEY_ID, NOW + 1)
    assert first == later or later.expires == first.expires + SIGNER.step


@given(
    key=st.text(min_size=1, max_size=40),
    other_key=st.text(min_size=1, max_size=40),
    owner=st.uuids(),
    other_owner=st.uuids(),
    key_id=st.text("0123456789abcdef", min_size=12, max_size=12),
    shift=st.integers(min_value=1, max_value=10**6),
)
def test_any_other_file_owner_key_or_expiry_is_refused(
    key: str, other_key: str, owner: uuid.UUID, other_owner: uuid.UUID, key_id: str, shift: int
) -> None:
    grant = SIGNER.sign(key, owner, key_id, NOW)
    SIGNER.verify(grant, key, owner, NOW)
    if other_key != key:
        assert _refused(grant, other_key, owner) == "link_invalid"
    if other_owner != owner:
        assert _refused(grant, key, other_owner) == "link_invalid"
    moved = LinkGrant(grant.expires + shift, grant.key_id, grant.signature)
    assert _refused(moved, key, owner) == "link_invalid", "a later expiry needs a new signature"
    other_id = LinkGrant(
        grant.expires, "f" * 12 if key_id != "f" * 12 else "0" * 12, grant.signature
    )
    assert _refused(other_id, key, owner) == "link_invalid"


def test_another_secret_refuses_the_link() -> None:
    grant = SIGNER.sign("items/x/video.mp4", OWNER, KEY_ID, NOW)
    other = LinkSigner(b"t" * 32, lifetime=3600)
    with pytest.raises(LinkRefused):
        other.verify(grant, "items/x/video.mp4", OWNER, NOW)


def test_the_query_round_trips_and_bearer_access_has_none() -> None:
    grant = SIGNER.sign("items/x/video.mp4", OWNER, KEY_ID, NOW)
    query = dict(part.split("=", 1) for part in grant.query().split("&"))
    assert LinkGrant.from_query(query) == grant
    assert LinkGrant.from_query({}) is None


@pytest.mark.parametrize(
    "query",
    [
        {"sig": "x" * 32},
        {"exp": "soon", "kid": KEY_ID, "sig": "x" * 32},
        {"exp": "1" * 40, "kid": KEY_ID, "sig": "x" * 32},
        {"exp": "-5", "kid": KEY_ID, "sig": "x" * 32},
        {"exp": "1800000000", "kid": "not hex!", "sig": "x" * 32},
        {"exp": "1800000000", "kid": KEY_ID, "sig": ""},
        {"exp": "1800000000", "kid": KEY_ID, "sig": "x" * 5000},
        {"exp": "1800000000\x00", "kid": KEY_ID, "sig": "x" * 32},
    ],
)
def test_a_malformed_link_is_refused_not_crashed_on(query: dict[str, str]) -> None:
    with pytest.raises(LinkRefused) as caught:
        LinkGrant.from_query(query)
    assert caught.value.code == "link_invalid"
