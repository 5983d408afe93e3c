"""The item's life, once: ``apply(state, event) -> Transition``, pure and without I/O.

The catalog reads an item's row into an :class:`ItemState`, applies a pipeline
event here and stores what comes back; the effects (files to hand to the
janitor, a live notification) are carried out in the same transaction.

The rules make delivery order irrelevant: every event of a run, in any order,
duplicated, or mixed with events of older runs, ends in the state the in-order
delivery ends in (tests/unit/ingest/test_lifecycle.py proves it with Hypothesis).

* A run is one attempt at the item; events of another run change nothing.
* Within a run the status only moves forward: pending → downloading →
  downloaded → processing → ready, or failed. Progress and retry notices apply
  only while the item is still at their stage.
* ``video.downloaded`` records the source's facts whenever they are missing,
  also after ``video.transcoded`` (the two travel on separate queues).
* The real failure reason wins over the dead-letter notice, whichever comes first.
* A re-transcode result is applied only if it is the latest requested profile;
  the item serves its old files until then, and whatever is replaced or never
  used is handed to the janitor ("superseded").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from prsnl_common.events import (
    Event,
    ItemFailed,
    OrphanReason,
    RetryScheduled,
    VideoDownloaded,
    VideoDownloadProgress,
    VideoTranscoded,
    VideoTranscodeProgress,
)

DEAD_LETTERED = "dead_lettered"
ORDER = ("pending", "downloading", "downloaded", "processing", "ready")
TERMINAL = frozenset({"ready", "failed"})
# The statuses each stage's progress and retry notices may be applied in.
AT_DOWNLOAD = frozenset({"pending", "downloading"})
AT_PROCESS = frozenset({"pending", "downloading", "downloaded", "processing"})


@dataclass(frozen=True)
class Failure:
    code: str
    message: str
    stage: str
    attempts: int
    retryable: bool


@dataclass(frozen=True)
class ItemState:
    """Everything about an item that pipeline events change (the catalog stores it)."""

    status: str = "pending"
    run: int = 1
    progress: Mapping[str, Any] | None = None
    retry: Mapping[str, Any] | None = None
    title: str | None = None
    uploader: str | None = None
    description: str | None = None
    webpage_url: str | None = None
    extractor: str | None = None
    upload_date: str | None = None
    duration: float | None = None
    original_key: str | None = None
    original_size: int | None = None
    video_key: str | None = None
    thumbnail_keys: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, Any] | None = None
    action: str | None = None
    profile: str | None = None
    requested_profile: str | None = None
    error: Failure | None = None

    def files(self) -> set[str]:
        """Every stored file this state refers to."""
        keys = {self.original_key, self.video_key, *self.thumbnail_keys.values()}
        return {key for key in keys if key}


@dataclass(frozen=True)
class Transition:
    """The new state and what the catalog must do about it."""

    state: ItemState
    orphaned: tuple[tuple[str, OrphanReason], ...] = ()
    notify: Mapping[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return self.notify is not None or bool(self.orphaned)


def apply(state: ItemState, event: Event) -> Transition:
    """The transition ``event`` causes; an unchanged state when it changes nothing."""
    if event.run != state.run:
        return Transition(state)
    handler = _HANDLERS.get(type(event))
    return handler(state, event) if handler else Transition(state)


def restart(state: ItemState) -> ItemState:
    """A new run of a failed item: back to pending, downloading again from the start."""
    return replace(
        state,
        status="pending",
        run=state.run + 1,
        progress=None,
        retry=None,
        error=None,
        original_key=None,
        original_size=None,
    )


def outputs_of(event: Event) -> list[str]:
    """The stored files an event announces (for an item that no longer exists)."""
    if isinstance(event, VideoDownloaded):
        return [event.original_key]
    if isinstance(event, VideoTranscoded):
        return [event.video_key, *event.thumbnail_keys.values()]
    return []


# --- one function per event -----------------------------------------------------------------


def _download_progress(state: ItemState, event: VideoDownloadProgress) -> Transition:
    if state.status not in AT_DOWNLOAD:
        return Transition(state)
    total = event.total_bytes
    progress = {
        "stage": "download",
        "downloaded_bytes": event.downloaded_bytes,
        "total_bytes": total,
        "speed": event.speed,
        "eta": event.eta,
        "fraction": min(1.0, event.downloaded_bytes / total) if total else None,
    }
    return _moved(replace(state, status="downloading", progress=progress, retry=None), "progress")


def _transcode_progress(state: ItemState, event: VideoTranscodeProgress) -> Transition:
    progress = {"stage": "process", "fraction": event.fraction, "profile": event.profile}
    if event.profile is not None:
        if state.status != "ready" or state.requested_profile != event.profile:
            return Transition(state)
        return _moved(replace(state, progress=progress), "progress")
    if state.status not in AT_PROCESS:
        return Transition(state)
    return _moved(replace(state, status="processing", progress=progress, retry=None), "progress")


def _downloaded(state: ItemState, event: VideoDownloaded) -> Transition:
    """The source's facts, whenever they are missing; the status moves only at the download.

    After a failure the facts are still kept (the failure may have overtaken
    this event), but not the original: a failed run's original was discarded.
    """
    if state.original_size is not None:
        return Transition(state)
    info = event.info
    new = replace(
        state,
        original_size=event.size,
        title=info.title or state.title,
        uploader=info.uploader,
        description=info.description,
        webpage_url=info.webpage_url,
        extractor=info.extractor,
        upload_date=info.upload_date,
        duration=state.duration if state.duration is not None else info.duration,
    )
    if state.status != "failed":
        new = replace(new, original_key=event.original_key)
    if state.status in AT_DOWNLOAD:
        new = replace(new, status="downloaded", progress=None, retry=None)
    return _moved(new, "status")


def _transcoded(state: ItemState, event: VideoTranscoded) -> Transition:
    if event.profile is not None:
        return _retranscoded(state, event)
    if state.status not in AT_PROCESS:
        return Transition(state)
    new = replace(
        _with_outputs(state, event),
        status="ready",
        progress=None,
        retry=None,
        original_key=state.original_key or event.original_key,
        duration=event.metadata.duration if event.metadata.duration else state.duration,
    )
    return _moved(new, "status")


def _retranscoded(state: ItemState, event: VideoTranscoded) -> Transition:
    """Only the latest requested profile switches the files; anything else is superseded."""
    if state.status != "ready" or state.requested_profile != event.profile:
        unused = set(outputs_of(event)) - state.files()
        return Transition(state, _superseded(unused))
    new = replace(
        _with_outputs(state, event),
        profile=event.profile,
        requested_profile=None,
        progress=None,
        error=None,
    )
    return _moved(new, "status", _superseded(state.files() - new.files()))


def _failed(state: ItemState, event: ItemFailed) -> Transition:
    failure = Failure(event.error_code, event.message, event.stage, event.attempts, event.retryable)
    if event.profile is not None:
        if state.status != "ready" or state.requested_profile != event.profile:
            return Transition(state)
        kept = replace(state, error=failure, requested_profile=None, progress=None)
        return _moved(kept, "status")
    replaces_notice = state.status == "failed" and _reason_wins(state.error, failure)
    if state.status in TERMINAL and not replaces_notice:
        return Transition(state)
    new = replace(state, status="failed", progress=None, retry=None, error=failure)
    discard = sorted({key for key in event.discard_keys if key})
    if new.original_key in discard:
        new = replace(new, original_key=None)
    return _moved(new, "status", tuple((key, "partial") for key in discard))


def _retry_scheduled(state: ItemState, event: RetryScheduled) -> Transition:
    stage_statuses = AT_DOWNLOAD if event.stage == "download" else AT_PROCESS
    previous = (state.retry or {}).get("attempt", 0)
    if event.profile is not None or state.status not in stage_statuses or event.attempt < previous:
        return Transition(state)
    retry = {
        "stage": event.stage,
        "attempt": event.attempt,
        "max_attempts": event.max_attempts,
        "next_attempt_at": event.next_attempt_at.isoformat(),
        "error_code": event.error_code,
        "message": event.message,
    }
    return _moved(replace(state, retry=retry), "retry")


# --- helpers ---------------------------------------------------------------------------------


def _reason_wins(current: Failure | None, incoming: Failure) -> bool:
    """A real reason replaces the dead-letter notice; nothing else replaces a failure."""
    return current is not None and current.code == DEAD_LETTERED and incoming.code != DEAD_LETTERED


def _with_outputs(state: ItemState, event: VideoTranscoded) -> ItemState:
    return replace(
        state,
        video_key=event.video_key,
        thumbnail_keys={str(width): key for width, key in event.thumbnail_keys.items()},
        metadata=event.metadata.model_dump(mode="json"),
        action=event.action,
    )


def _superseded(keys: set[str]) -> tuple[tuple[str, OrphanReason], ...]:
    return tuple((key, "superseded") for key in sorted(keys))


def _moved(
    new: ItemState, kind: str, orphaned: tuple[tuple[str, OrphanReason], ...] = ()
) -> Transition:
    """A transition that changed the state; the notification says what it is now."""
    notify: dict[str, Any] = {"kind": kind, "status": new.status, "run": new.run}
    if kind == "progress":
        notify["progress"] = dict(new.progress or {})
    elif kind == "retry":
        notify["retry"] = dict(new.retry or {})
    elif new.error is not None:
        notify.update(error_code=new.error.code, message=new.error.message)
    return Transition(new, orphaned, notify)


_HANDLERS: dict[type[Event], Any] = {
    VideoDownloadProgress: _download_progress,
    VideoTranscodeProgress: _transcode_progress,
    VideoDownloaded: _downloaded,
    VideoTranscoded: _transcoded,
    ItemFailed: _failed,
    RetryScheduled: _retry_scheduled,
}

FIELDS = tuple(f.name for f in dataclasses.fields(ItemState))
