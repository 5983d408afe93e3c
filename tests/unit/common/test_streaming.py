"""Byte ranges and validators of the video endpoint (RFC 9110 semantics)."""

from __future__ import annotations

import pytest

from prsnl_ingest.streaming import (
    FileValidators,
    RangeNotSatisfiable,
    if_range_allows,
    not_modified,
    parse_range,
)

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-1", (0, 1)),
        ("bytes=100-", (100, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
        ("bytes=5-2", None),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=-", None),
        ("bytes=0-" + "9" * 5000, (0, 999)),
        ("bytes=-" + "9" * 5000, (0, 999)),
        ("bytes=" + "0" * 5000 + "1-2", (1, 2)),
    ],
)
def test_parse_range(header: str | None, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, SIZE) == expected


@pytest.mark.parametrize(
    "header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0", "bytes=" + "9" * 5000 + "-"]
)
def test_unsatisfiable_ranges(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, SIZE)


def test_if_range_and_conditional_get() -> None:
    validators = FileValidators(size=SIZE, mtime=1_700_000_000.5)
    assert if_range_allows(None, validators)
    assert if_range_allows(validators.etag, validators)
    assert not if_range_allows('"other"', validators)
    assert if_range_allows(validators.last_modified, validators)
    assert not if_range_allows("Mon, 01 Jan 2001 00:00:00 GMT", validators)
    assert not_modified({"if-none-match": validators.etag}, validators)
    assert not not_modified({"if-none-match": '"x"'}, validators)
    assert not_modified({"if-modified-since": validators.last_modified}, validators)
    assert not not_modified({"if-modified-since": "garbage"}, validators)


@pytest.mark.parametrize("garbage", ["garbage", "Mon, 99 Foo 2001", "W", "0", "\x00"])
def test_an_if_range_that_is_no_date_and_no_tag_serves_the_whole_file(garbage: str) -> None:
    assert not if_range_allows(garbage, FileValidators(size=SIZE, mtime=1_700_000_000.5))
