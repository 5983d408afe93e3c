"""Every text the bot sends, in one place."""

from __future__ import annotations

from typing import Any

LIST_PAGE = 8
STATUS_ICONS = {
    "pending": "\u23f3",
    "downloading": "\u2b07\ufe0f",
    "downloaded": "\u2b07\ufe0f",
    "processing": "\u2699\ufe0f",
    "ready": "\u2705",
    "failed": "\u274c",
}


def size(value: float | None) -> str:
    if value is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def help_text(max_links: int, upload_mb: int, download_mb: int | None) -> str:
    download = f"up to {download_mb} MB" if download_mb else "of any size"
    return (
        "Send me a link (or several, up to "
        f"{max_links} a message) and I save the video and send it back here.\n"
        f"Videos up to {upload_mb} MB come back as a video, bigger ones as a link.\n"
        f"You can also send a video file {download}.\n\n"
        "/list \u2014 your recent items\n"
        "/status <id> \u2014 one item\n"
        "/retry <id> \u2014 run a failed item again\n"
        "/delete <id> \u2014 remove an item and its files\n"
        "/usage \u2014 what you store"
    )


REFUSED = "Sorry, this is a private bot."
TRY_AGAIN = "I could not save {what} right now. Please send it again in a moment."
NO_LINKS = "Send me a link to a video (or a video file). /help says more."


def saving(url: str) -> str:
    return f"Saving\u2026\n{url}"


def skipped(count: int, limit: int) -> str:
    return f"I saved the first {limit} links; {count} more were skipped. Send them again."


def progress(
    stage: str, fraction: float | None, done: int | None, total: int | None, speed: float | None
) -> str:
    parts = [stage]
    if fraction is not None:
        parts.append(f"{fraction * 100:.0f}%")
    if done is not None:
        parts.append(f"{size(done)} of {size(total)}" if total else size(done))
    if speed:
        parts.append(f"{size(speed)}/s")
    return " \u00b7 ".join(parts)


def title_of(item: dict[str, Any]) -> str:
    return str(item.get("title") or item.get("url") or item["id"])


def caption(item: dict[str, Any]) -> str:
    return (
        f"{title_of(item)[:900]}\n{duration(item.get('duration'))} \u00b7 {size(item.get('size'))}"
    )


def too_big(item: dict[str, Any], link: str, limit: int) -> str:
    return (
        f"{title_of(item)[:900]}\n{duration(item.get('duration'))} \u00b7 {size(item.get('size'))}"
        f"\nToo big to send here (over {size(limit)}); watch or download it:\n{link}"
    )


def failed(item: dict[str, Any]) -> str:
    error = item.get("error") or {}
    return (
        f"Could not save {item.get('url', 'it')}:\n{error.get('message') or 'unknown error'}\n"
        f"(code: {error.get('code') or 'unknown'})"
    )


def status_line(item: dict[str, Any]) -> str:
    icon = STATUS_ICONS.get(str(item["status"]), "")
    return f"{icon} {item['status']} \u00b7 {title_of(item)[:60]}\n   /status {item['id']}"


def status(item: dict[str, Any]) -> str:
    lines = [status_line(item), f"   {item['url']}"]
    if item.get("status") == "ready":
        lines.append(f"   {duration(item.get('duration'))} \u00b7 {size(item.get('size'))}")
    if item.get("error"):
        lines.append(f"   {item['error']['message']} ({item['error']['code']})")
    return "\n".join(lines)


def usage(answer: dict[str, Any]) -> str:
    """The caller's part of GET /api/v1/storage: items, stored bytes, and quotas if any."""
    you = answer["you"]
    by_status = you.get("items", {})
    counts = ", ".join(f"{n} {s}" for s, n in sorted(by_status.items()))
    total = you["usage"]["total"]
    lines = [
        f"{sum(by_status.values())} items ({counts or 'none'}), "
        f"{size(total['bytes'])} stored in {total['files']} files."
    ]
    quota = you.get("quota") or {}
    if quota.get("max_bytes"):
        lines.append(f"Storage quota: {size(quota['used_bytes'])} of {size(quota['max_bytes'])}.")
    if quota.get("max_captures_per_day"):
        lines.append(
            f"Captures: {quota['captures_last_24h']} of {quota['max_captures_per_day']} "
            "in the last 24 hours."
        )
    return "\n".join(lines)


def file_too_big(file_size: int | None, limit: int) -> str:
    return (
        f"This file is {size(file_size)}; bots can take files up to {size(limit)} from "
        "Telegram. Send a link to it instead, or ask the operator for a local Bot API server."
    )
