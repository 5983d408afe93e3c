"""The one contract module: every event exchanged between services, typed and versioned.

Routing key ``<noun>.<past-tense verb>``; the model name is the same words in
CamelCase. Every event carries the envelope (``event_id`` as UUIDv7,
``schema_version``, ``occurred_at``, ``item_id``) and ``run``, the item's
processing generation: a retry of a failed item starts run + 1, so the catalog
can ignore late events of an abandoned run. Changes are additive; a breaking
change is a new model with a new ``schema_version``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, ClassVar, Literal

import uuid6
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

Platform = Literal["youtube", "instagram", "twitter", "tiktok", "direct", "hls", "other"]
Source = Literal["api", "telegram"]
Stage = Literal["capture", "download", "process", "catalog"]
TranscodeAction = Literal["copied", "remuxed", "transcoded"]
OrphanReason = Literal["unreferenced", "temp-expired", "partial", "superseded"]


def new_event_id() -> uuid.UUID:
    """A time-ordered UUIDv7, so event ids sort by creation time."""
    return uuid.UUID(str(uuid6.uuid7()))


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Event(BaseModel):
    """The envelope every event carries."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    routing_key: ClassVar[str]
    persistent: ClassVar[bool] = True

    event_id: uuid.UUID = Field(default_factory=new_event_id, description="UUIDv7 of this event")
    schema_version: int = Field(default=1, description="Version of this event's schema")
    occurred_at: dt.datetime = Field(default_factory=utcnow, description="When it happened (UTC)")
    item_id: uuid.UUID = Field(description="The catalog item this event is about")
    run: int = Field(default=1, ge=1, description="Processing generation of the item")


class ReplyTo(BaseModel):
    """Where a Telegram-originated capture wants its answers."""

    model_config = ConfigDict(frozen=True)

    chat_id: int
    message_id: int | None = None


class CaptureOptions(BaseModel):
    """What the owner asked for with this capture."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_height: Annotated[int, Field(ge=144, le=4320)] | None = Field(
        default=None, description="Highest video height to download (None: the service cap)"
    )
    audio_only: bool = Field(default=False, description="Keep only the audio track")


class StorageQuota(BaseModel):
    """An owner's bytes quota as the gateway saw it: a download must stay within what is left."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    max_bytes: int = Field(ge=0, description="The owner's limit of bytes stored")
    used_bytes: int = Field(ge=0, description="Bytes the owner stored when the link was captured")

    @property
    def left_bytes(self) -> int:
        return max(0, self.max_bytes - self.used_bytes)


class UrlCaptured(Event):
    """A link was accepted and its item created ``pending``."""

    routing_key: ClassVar[str] = "url.captured"

    url: str = Field(description="The URL as the owner sent it")
    normalized_url: str = Field(description="The canonical form used for de-duplication")
    platform: Platform
    platform_video_id: str | None = None
    source: Source
    owner_id: uuid.UUID
    options: CaptureOptions = Field(default_factory=CaptureOptions)
    reply_to: ReplyTo | None = None
    quota: StorageQuota | None = Field(
        default=None, description="The owner's bytes quota at capture; None: no bytes quota"
    )


class VideoDownloadProgress(Event):
    """Download progress; transient and may be dropped."""

    routing_key: ClassVar[str] = "video.download.progress"
    persistent: ClassVar[bool] = False

    downloaded_bytes: int
    total_bytes: int | None = None
    speed: float | None = Field(default=None, description="Bytes per second")
    eta: float | None = Field(default=None, description="Seconds left, if known")


class VideoTranscodeProgress(Event):
    """Processing progress of ffmpeg; transient and may be dropped."""

    routing_key: ClassVar[str] = "video.transcode.progress"
    persistent: ClassVar[bool] = False

    fraction: float = Field(ge=0.0, le=1.0)
    profile: str | None = None


# Characters no stored text keeps: bidi overrides/isolates and marks (they reorder what a
# reader sees), and every control character (NUL is refused by PostgreSQL outright).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
TEXT_LIMITS = {
    "title": 500,
    "uploader": 200,
    "description": 5000,
    "webpage_url": 2000,
    "extractor": 100,
    "upload_date": 8,
    "platform_video_id": 200,
}
DEFAULT_TEXT_LIMIT = 2048


def clean_text(value: object, limit: int, *, multiline: bool = False) -> str | None:
    """Untrusted text made storable: controls, bidi and surrogates out, bounded, else None."""
    if value is None or isinstance(value, bool):
        return None
    if not isinstance(value, str):
        value = str(value) if isinstance(value, int | float) else None
        if value is None:
            return None
    kept = "".join(ch for ch in value if _keep(ch, multiline))
    text = kept.strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "\u2026"
    return text or None


def _keep(ch: str, multiline: bool) -> bool:
    if ch in _BIDI or "\ud800" <= ch <= "\udfff":
        return False
    if ch < " " or "\x7f" <= ch <= "\x9f":
        return multiline and ch in "\n\t"
    return True


class SourceInfo(BaseModel):
    """The parts of yt-dlp's info dict the catalog keeps.

    Every text field comes from the source and is untrusted: it is cleaned here,
    where it enters the typed world (see :func:`clean_text`), so a hostile title
    never fails an event or reaches a reader with control or bidi characters.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    @field_validator(
        "title",
        "uploader",
        "webpage_url",
        "extractor",
        "upload_date",
        "description",
        "platform_video_id",
        mode="before",
    )
    @classmethod
    def _clean(cls, value: object, info: ValidationInfo) -> str | None:
        name = info.field_name or ""
        limit = TEXT_LIMITS.get(name, DEFAULT_TEXT_LIMIT)
        return clean_text(value, limit, multiline=name == "description")

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return float(value) if value < 10**9 else None
        return None

    title: str | None = None
    uploader: str | None = None
    duration: float | None = None
    webpage_url: str | None = None
    extractor: str | None = None
    upload_date: str | None = None
    description: str | None = None
    platform_video_id: str | None = None


class VideoDownloaded(Event):
    """The original file is in the media store."""

    routing_key: ClassVar[str] = "video.downloaded"

    original_key: str = Field(description="Storage key of the downloaded original")
    size: int = Field(ge=0)
    info: SourceInfo = Field(default_factory=SourceInfo)
    options: CaptureOptions = Field(default_factory=CaptureOptions)


class MediaMetadata(BaseModel):
    """What ffprobe says about the playable output."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    container: str | None = None
    video_codec: str | None = None
    audio_codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    duration: float | None = None
    bitrate: int | None = None
    size: int | None = None


class VideoTranscoded(Event):
    """A web-playable file and its thumbnails are in the media store."""

    routing_key: ClassVar[str] = "video.transcoded"

    video_key: str
    original_key: str | None = Field(default=None, description="The original it was made from")
    thumbnail_keys: dict[int, str] = Field(description="Thumbnail width -> storage key")
    metadata: MediaMetadata
    action: TranscodeAction
    profile: str | None = Field(default=None, description="Set when a profile was requested")


class TranscodeRequested(Event):
    """Make the item's playable file again with a named profile."""

    routing_key: ClassVar[str] = "transcode.requested"

    original_key: str
    profile: str


class ItemFailed(Event):
    """A stage gave up on the item, with a stable code."""

    routing_key: ClassVar[str] = "item.failed"

    stage: Stage
    error_code: str
    message: str
    attempts: int = 1
    retryable: bool = False
    profile: str | None = Field(default=None, description="Set when a re-transcode failed")
    discard_keys: list[str] = Field(
        default_factory=list,
        description="Stored files of this run that nothing will use now (removed by the janitor)",
    )


class RetryScheduled(Event):
    """A stage failed transiently and will try again after a back-off."""

    routing_key: ClassVar[str] = "retry.scheduled"

    stage: Stage
    error_code: str
    message: str = Field(description="The last error, for people")
    attempt: int = Field(ge=1, description="The attempt that just failed")
    max_attempts: int = Field(ge=1, description="Attempts before the stage gives up")
    next_attempt_at: dt.datetime = Field(description="When the next attempt starts (UTC)")
    profile: str | None = Field(default=None, description="Set when a re-transcode is retried")


class ItemDeleted(Event):
    """An item left the catalog; its files must go."""

    routing_key: ClassVar[str] = "item.deleted"

    storage_keys: list[str] = Field(default_factory=list)
    prefix: str | None = Field(default=None, description="Remove everything under this prefix")


class FileOrphaned(Event):
    """A stored file that nothing should reference any more."""

    routing_key: ClassVar[str] = "file.orphaned"

    storage_key: str
    size: int | None = None
    reason: OrphanReason
    delete_after: dt.datetime | None = Field(
        default=None,
        description="Found by the janitor's scan: removed after this moment (UTC) if still "
        "unreferenced then; None: the catalog let go of it, remove it now",
    )


class StageState(BaseModel):
    """A worker's stage stopped taking jobs for low disk, or taking them again.

    Not about one item, so not an :class:`Event`: transient, announced on pause and
    resume and again every ``ANNOUNCE_SECONDS`` while paused, so a gateway started
    later learns it and a pause whose worker died fades out.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    routing_key: ClassVar[str] = "stage.state"

    service: str = Field(description="downloader or transcoder")
    instance: str = Field(description="host:pid of the worker replica")
    paused: bool
    free_bytes: int = Field(ge=0, description="Free bytes of the media store it saw")
    min_free_bytes: int = Field(ge=0, description="Its threshold")
    occurred_at: dt.datetime = Field(default_factory=utcnow)


ALL_EVENTS: tuple[type[Event], ...] = (
    UrlCaptured,
    VideoDownloadProgress,
    VideoTranscodeProgress,
    VideoDownloaded,
    VideoTranscoded,
    TranscodeRequested,
    ItemFailed,
    RetryScheduled,
    ItemDeleted,
    FileOrphaned,
)
EVENTS_BY_KEY: dict[str, type[Event]] = {e.routing_key: e for e in ALL_EVENTS}
