"""prsnl-ingest set-quota reads sizes with units, counts, 0 and 'default', and refuses the rest."""

from __future__ import annotations

import pytest

from prsnl_ingest.__main__ import _limit


@pytest.mark.parametrize(
    ("text", "sizes", "expected"),
    [
        ("20G", True, 20 * 1024**3),
        ("500m", True, 500 * 1024**2),
        ("1.5GB", True, int(1.5 * 1024**3)),
        ("4096", True, 4096),
        ("0", True, 0),
        ("default", True, None),
        ("50", False, 50),
        ("Default", False, None),
    ],
)
def test_limits_are_read(text: str, sizes: bool, expected: int | None) -> None:
    assert _limit(text, sizes=sizes) == expected


@pytest.mark.parametrize(
    ("text", "sizes"), [("lots", True), ("-1", True), ("2.5", False), ("5G", False)]
)
def test_bad_limits_are_refused_with_a_reason(text: str, sizes: bool) -> None:
    with pytest.raises(ValueError, match=text):
        _limit(text, sizes=sizes)
