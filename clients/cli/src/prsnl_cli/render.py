"""How items, progress and events read in a terminal: plain functions, tested on their own."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text

from prsnl_cli.api import Item

STATUS_STYLES = {
    "pending": "dim",
    "downloading": "cyan",
    "downloaded": "cyan",
    "processing": "magenta",
    "ready": "green",
    "failed": "red",
    "deleted": "red",
}
_UNITS = ("B", "kB", "MB", "GB", "TB")


def human_bytes(count: float | None) -> str:
    """``1234567`` → ``1.2 MB`` (decimal units, as download tools show them)."""
    if count is None:
        return "-"
    value = float(count)
    for unit in _UNITS:
        if abs(value) < 1000 or unit == _UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def human_duration(seconds: float | None) -> str:
    """``75.4`` → ``1:15``, ``3725`` → ``1:02:05``."""
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def parse_rate(text: str) -> int:
    """``500k``, ``2M``, ``1.5m`` or ``800`` → bytes per second (k/M/G are 1000s)."""
    value = text.strip().lower().removesuffix("/s").removesuffix("b")
    factor = {"k": 1000, "m": 1000**2, "g": 1000**3}.get(value[-1:], 1)
    number = value[:-1] if factor > 1 else value
    try:
        rate = float(number) * factor
    except ValueError:
        raise ValueError(f"not a rate like 500k or 2M: {text!r}") from None
    if not math.isfinite(rate) or rate < 1:
        raise ValueError(f"a rate must be at least 1 byte per second: {text!r}")
    return int(rate)


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLES.get(status, ""))


def label(item: Item, width: int = 40) -> str:
    """The item's title, or its link while it has none, cut to ``width``."""
    text = str(item.get("title") or item.get("url") or item.get("id") or "")
    return text if len(text) <= width else text[: width - 1] + "…"


def error_text(item: Item) -> str:
    error = item.get("error") or {}
    return f"{error.get('code')}: {error.get('message')}" if error else ""


def progress_fields(progress: dict[str, Any] | None) -> tuple[float | None, str]:
    """(fraction done, what to show) of an item's ``progress``."""
    if not progress:
        return None, ""
    fraction = progress.get("fraction")
    if progress.get("stage") == "process":
        return fraction, f"making {progress['profile']}" if progress.get("profile") else ""
    done, total = progress.get("downloaded_bytes"), progress.get("total_bytes")
    parts = [human_bytes(done) + (f" / {human_bytes(total)}" if total else "")]
    if progress.get("speed"):
        parts.append(f"{human_bytes(progress['speed'])}/s")
    if progress.get("eta") is not None:
        parts.append(f"eta {human_duration(progress['eta'])}")
    return fraction, ", ".join(parts)


def update_text(kind: str, data: dict[str, Any], percent: bool = True) -> str:
    """One line for a live update of an item (what ``watch`` and progress bars show)."""
    status = str(data.get("status") or kind)
    if kind == "progress":
        fraction, detail = progress_fields(data.get("progress"))
        share = f" {fraction:.0%}" if fraction is not None and percent else ""
        return f"{status}{share} {detail}".rstrip()
    if kind == "retry":
        retry = data.get("retry") or {}
        return (
            f"{status}, retry {retry.get('attempt')}/{retry.get('max_attempts')} after "
            f"{retry.get('error_code')}: {retry.get('message')}"
        )
    if kind == "created":
        return f"{status} (new)"
    if data.get("error_code"):
        return f"{status}: {data['error_code']}: {data.get('message')}"
    if kind == "item" and data.get("error"):
        return f"{status}: {error_text(data)}"
    return status


def items_table(items: Iterable[Item]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("ID", "STATUS", "PLATFORM", "TITLE", "DURATION", "SIZE", "SAVED"):
        table.add_column(name, no_wrap=name != "TITLE", overflow="fold")
    for item in items:
        table.add_row(
            str(item["id"]),
            status_text(str(item["status"])),
            str(item.get("platform") or ""),
            label(item, 60),
            human_duration(item.get("duration")),
            human_bytes(item.get("size")),
            short_time(item.get("created_at")),
        )
    return table


def short_time(value: object) -> str:
    """An ISO 8601 moment in local time, to the minute."""
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value or "")
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def item_details(item: Item) -> Table:
    """``show``: every fact of one item, one per line."""
    table = Table(box=None, show_header=False, pad_edge=False)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(overflow="fold")
    for name, value in detail_rows(item):
        table.add_row(name, value)
    return table


def detail_rows(item: Item) -> list[tuple[str, str | Text]]:
    rows: list[tuple[str, str | Text]] = [
        ("id", str(item["id"])),
        ("status", status_text(str(item["status"]))),
        ("title", str(item.get("title") or "-")),
        ("url", str(item.get("url") or "")),
        ("platform", str(item.get("platform") or "")),
    ]
    optional = {
        "uploader": item.get("uploader"),
        "duration": item.get("duration") and human_duration(item["duration"]),
        "size": item.get("size") and human_bytes(item["size"]),
        "video": _video_facts(item),
        "audio": item.get("audio_codec"),
        "profile": item.get("profile"),
        "progress": update_text("progress", item) if item.get("progress") else None,
        "error": error_text(item) or None,
        "waiting": (item.get("waiting") or {}).get("detail"),
        "saved": short_time(item.get("created_at")),
        "ready": item.get("ready_at") and short_time(item["ready_at"]),
    }
    rows += [(name, str(value)) for name, value in optional.items() if value]
    links = item.get("links") or {}
    if links.get("video"):
        rows.append(("video link", str(links["video"])))
    if links.get("expires_at"):
        rows.append(("links expire", short_time(links["expires_at"])))
    return rows


def _video_facts(item: Item) -> str | None:
    if not item.get("video_codec"):
        return None
    size = f" {item['width']}x{item['height']}" if item.get("width") else ""
    fps = f" {item['fps']:g} fps" if item.get("fps") else ""
    return f"{item['video_codec']}{size}{fps}"
