"""Request and response types of the API (separate from the event contracts)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict, Field, model_validator

from prsnl_ingest.signing import MediaLinks
from prsnl_ingest.stages import StagePauses, Waiting

PROFILES = ("480p", "720p", "1080p", "audio")


class RequestBody(BaseModel):
    """A request body: exact JSON types ("yes" is no boolean, "720" no height), no extras.

    Unknown fields are refused by a model-level check rather than ``extra="forbid"``:
    Litestar reports a field error under the bare field name, and one that happens to
    name a handler dependency (``owner_id``, ``gateway``) would be answered as a 500.
    """

    model_config = ConfigDict(strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_fields(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in cls.model_fields)
            if unknown:
                raise ValueError(f"unknown field(s): {', '.join(unknown)[:200]}")
        return data


class ReplyToBody(RequestBody):
    """Where a chat front end wants the item's answers (recorded with the item)."""

    chat_id: int = Field(description="Telegram chat id")
    message_id: int | None = Field(default=None, description="The message that sent the link")


class CaptureRequest(RequestBody):
    # The body limit bounds the text; the guard refuses links over 4096 characters as
    # invalid_url, the code every source of links gets for one that is too long.
    url: str = Field(description="The link to save (at most 4096 characters)")
    max_height: int | None = Field(
        default=None, ge=144, le=4320, description="Highest video height"
    )
    audio_only: bool = Field(default=False, description="Keep only the audio")
    source: Literal["api", "telegram"] = Field(
        default="api", description="The front end the link came from"
    )
    reply_to: ReplyToBody | None = Field(
        default=None, description="The chat and message a chat front end answers (telegram)"
    )


class TranscodeRequest(RequestBody):
    profile: str = Field(description="One of 480p, 720p, 1080p, audio")


@dataclass
class Problem:
    """An error answer (RFC 9457 problem details) with the stable ``code`` clients switch on."""

    type: str
    title: str
    status: int
    code: str
    detail: str


@dataclass
class ItemError:
    code: str
    message: str
    stage: str | None
    attempts: int | None
    retryable: bool | None


@dataclass
class ItemLinks:
    """Absolute links; ``video`` and ``thumbnails`` are signed (they open without a header
    until ``expires_at``, and the same paths without the query take a Bearer key)."""

    self: str
    events: str
    video: str | None
    thumbnails: dict[str, str]
    expires_at: dt.datetime


@dataclass
class ItemView:
    id: uuid.UUID
    status: str
    url: str
    platform: str
    source: str
    created_at: dt.datetime
    updated_at: dt.datetime
    links: ItemLinks
    duplicate: bool = False
    title: str | None = None
    uploader: str | None = None
    description: str | None = None
    webpage_url: str | None = None
    upload_date: str | None = None
    duration: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    bitrate: int | None = None
    size: int | None = None
    action: str | None = None
    profile: str | None = None
    requested_profile: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] | None = None
    retry: dict[str, Any] | None = None
    error: ItemError | None = None
    ready_at: dt.datetime | None = None
    waiting: Waiting | None = None

    @classmethod
    def from_row(
        cls,
        row: asyncpg.Record,
        links: MediaLinks,
        duplicate: bool = False,
        pauses: StagePauses | None = None,
    ) -> ItemView:
        """The view of a catalog row; ``pauses`` says whether its next stage is paused."""
        meta: dict[str, Any] = row["metadata"] or {}
        error = (
            ItemError(
                row["error_code"],
                row["error_message"] or "",
                row["error_stage"],
                row["error_attempts"],
                row["error_retryable"],
            )
            if row["error_code"]
            else None
        )
        return cls(
            id=row["id"],
            status=row["status"],
            url=row["url"],
            platform=row["platform"],
            source=row["source"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            links=_links(row, links),
            duplicate=duplicate,
            title=row["title"],
            uploader=row["uploader"],
            description=row["description"],
            webpage_url=row["webpage_url"],
            upload_date=row["upload_date"],
            duration=meta.get("duration") or row["duration"],
            width=meta.get("width"),
            height=meta.get("height"),
            fps=meta.get("fps"),
            container=meta.get("container"),
            video_codec=meta.get("video_codec"),
            audio_codec=meta.get("audio_codec"),
            bitrate=meta.get("bitrate"),
            size=meta.get("size"),
            action=row["action"],
            profile=row["profile"],
            requested_profile=row["requested_profile"],
            options=row["options"] or {},
            progress=row["progress"],
            retry=row["retry"],
            error=error,
            ready_at=row["ready_at"],
            waiting=pauses.waiting(row["status"]) if pauses is not None else None,
        )


def _links(row: asyncpg.Record, links: MediaLinks) -> ItemLinks:
    item_id = row["id"]
    thumbs = row["thumbnail_keys"] or {}
    return ItemLinks(
        self=links.item(item_id),
        events=f"{links.item(item_id)}/events",
        video=links.file(item_id, "video", row["video_key"]) if row["video_key"] else None,
        thumbnails={
            width: links.file(item_id, f"thumbnails/{width}", thumbs[width])
            for width in sorted(thumbs, key=int)
        },
        expires_at=dt.datetime.fromtimestamp(links.expires_at, dt.UTC),
    )


@dataclass
class ItemPage:
    items: list[ItemView]
    next_cursor: str | None
