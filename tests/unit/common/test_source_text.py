"""Text from sources is untrusted: whatever comes in, what SourceInfo keeps is storable."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from prsnl_common.events import TEXT_LIMITS, SourceInfo, clean_text

FORBIDDEN = {chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))} | set(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)


@given(st.text(max_size=6000))
def test_any_title_becomes_storable_bounded_text(raw: str) -> None:
    info = SourceInfo(title=raw, description=raw)
    for value, limit in ((info.title, 500), (info.description, 5000)):
        if value is None:
            continue
        assert len(value) <= limit
        assert "\x00" not in value
        value.encode("utf-8")  # no lone surrogates: PostgreSQL and JSON take it
    assert info.title is None or not FORBIDDEN & set(info.title)


def test_ordinary_unicode_and_emoji_stay_controls_and_bidi_go() -> None:
    info = SourceInfo(
        title="Ca\x00ts \u202eat\u202c play 🐈 — 猫\x1b[31m",
        uploader="\u2067someone\u2069",
        description="line one\nline two\tand a tab\x07",
    )
    assert info.title == "Cats at play 🐈 — 猫[31m"
    assert info.uploader == "someone"
    assert info.description == "line one\nline two\tand a tab"


def test_one_bad_field_never_loses_the_others() -> None:
    info = SourceInfo.model_validate(
        {"title": {"not": "text"}, "uploader": "someone", "duration": "long", "upload_date": 2024}
    )
    assert (info.title, info.uploader, info.duration, info.upload_date) == (
        None,
        "someone",
        None,
        "2024",
    )


def test_long_text_is_cut_with_an_ellipsis() -> None:
    text = clean_text("x" * 600, TEXT_LIMITS["title"])
    assert text is not None and len(text) == 500 and text.endswith("\u2026")
    assert clean_text("\x00\u202e  ", 10) is None
