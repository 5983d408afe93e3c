"""Pure helpers for the benchmark report: medians, ratios, number formatting and text tables."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

MIB = 1024 * 1024


def median(values: Sequence[float]) -> float:
    """The median of at least one value (the mean of the middle two for an even count)."""
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


def fmt_ratio(value: float | None) -> str:
    """``"1.23x"`` (three significant digits under 10), ``"n/a"`` for no ratio."""
    if value is None:
        return "n/a"
    if value >= 100:
        return f"{value:.0f}x"
    if value >= 10:
        return f"{value:.1f}x"
    if value >= 0.01:
        return f"{value:.2f}x"
    return f"{value:.4f}x"


def fmt_seconds(value: float | None) -> str:
    """A duration for humans: ``"850 us"``, ``"12.3 ms"``, ``"1.23 s"``, ``"73.4 s"``."""
    if value is None:
        return "n/a"
    if value < 0.001:
        return f"{value * 1e6:.0f} us"
    if value < 0.1:
        return f"{value * 1e3:.1f} ms"
    if value < 1:
        return f"{value * 1e3:.0f} ms"
    if value < 10:
        return f"{value:.2f} s"
    return f"{value:.1f} s"


def fmt_count(value: float | None, decimals: int = 0) -> str:
    """A number with thousands separators: ``"12,345"`` or ``"1,234.5"``."""
    if value is None:
        return "n/a"
    return f"{value:,.{decimals}f}"


def fmt_mib(value_bytes: float | None) -> str:
    """Bytes (or bytes per second) as MiB with one decimal and separators: ``"1,234.5"``."""
    if value_bytes is None:
        return "n/a"
    return f"{value_bytes / MIB:,.1f}"


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "  "
) -> str:
    """Columns padded to their widest cell: the first left-aligned, the others right-aligned.

    A header line, a rule of dashes, then one line per row; every row must have as many
    cells as there are headers.
    """
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"row {list(row)} has {len(row)} cells for {len(headers)} headers")
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [
            cell.ljust(width) if index == 0 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(parts)).rstrip()

    rule = indent + "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
