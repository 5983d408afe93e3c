"""The item's life is order-proof: any order, duplicates and older runs end as in order.

Histories are what the pipeline produces, built by the functions the services
use to build their events; Hypothesis shuffles and duplicates them (and mixes
in events of an abandoned run), and the final state must equal the in-order
one. Every file an event announced ends either referenced by the item or handed
to the janitor: nothing is left behind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from hypothesis import given, settings
from hypothesis import strategies as st

from prsnl_common.consumer import failure_event, retry_notice
from prsnl_common.errors import PermanentError, TransientError
from prsnl_common.events import (
    Event,
    MediaMetadata,
    SourceInfo,
    TranscodeRequested,
    UrlCaptured,
    VideoDownloaded,
    VideoDownloadProgress,
    VideoTranscodeProgress,
)
from prsnl_common.store import original_key, thumbnail_key, video_key
from prsnl_downloader.service import downloaded_event
from prsnl_ingest.lifecycle import DEAD_LETTERED, ItemState, Transition, apply, restart
from prsnl_ingest.subscribers import dead_letter_notice
from prsnl_transcoder.service import transcoded_event

ITEM = uuid.UUID("01900000-0000-7000-8000-000000000001")
PROFILES = ("480p", "720p", "1080p", "audio")


def captured(run: int) -> UrlCaptured:
    url = "https://example.org/cat.mp4"
    return UrlCaptured(
        item_id=ITEM,
        run=run,
        url=url,
        normalized_url=url,
        platform="direct",
        source="api",
        owner_id=uuid.uuid4(),
    )


def downloaded(run: int) -> VideoDownloaded:
    info = SourceInfo(title=f"Cats, run {run}", uploader="someone", duration=3.0)
    return downloaded_event(captured(run), original_key(ITEM, "mp4"), 1000 + run, info)


def transcoded(source: VideoDownloaded | TranscodeRequested, profile: str | None = None) -> Event:
    thumbs = {w: thumbnail_key(ITEM, w, profile) for w in (320, 640)}
    metadata = MediaMetadata(width=640, height=360, duration=3.1, video_codec="h264")
    return transcoded_event(source, video_key(ITEM, profile), thumbs, metadata, "remuxed", profile)


def request_of(download: VideoDownloaded, profile: str) -> TranscodeRequested:
    return TranscodeRequested(item_id=ITEM, original_key=download.original_key, profile=profile)


def dead_letter_copy(event: Event, queue: str) -> Event:
    notice = dead_letter_notice(event.model_dump_json().encode(), {"x-first-death-queue": queue})
    assert notice is not None
    return notice


@dataclass(frozen=True)
class Recipe:
    """What happens in one run; the events are built from it outside the strategy.

    (Event ids are UUIDv7, drawn from the random module, which strategies must not use.)
    """

    run: int
    retries: int
    downloads: int
    outcome: str
    permanent: bool
    fractions: tuple[float, ...]
    dead_letter: bool


@st.composite
def run_recipe(draw: st.DrawFn, run: int) -> Recipe:
    """A run: progress, retries, then ready, or a failure at the download or the process."""
    return Recipe(
        run=run,
        retries=draw(st.integers(0, 2)),
        downloads=draw(st.integers(0, 3)),
        outcome=draw(st.sampled_from(["ready", "download_failed", "process_failed"])),
        permanent=draw(st.booleans()),
        fractions=tuple(draw(st.lists(st.floats(0, 1), max_size=3))),
        dead_letter=draw(st.booleans()),
    )


def history(recipe: Recipe) -> list[Event]:
    """The events the services publish for ``recipe``, in the order they happen."""
    run = recipe.run
    captured_event = captured(run)
    events: list[Event] = []
    for attempt in range(1, recipe.retries + 1):
        error = TransientError("network_error", f"reset {attempt}")
        events.append(retry_notice(captured_event, "download", error, attempt, 5, 2.0))
    events += [
        VideoDownloadProgress(item_id=ITEM, run=run, downloaded_bytes=100 * i, total_bytes=400)
        for i in range(1, recipe.downloads + 1)
    ]
    if recipe.outcome == "download_failed":
        kind = PermanentError if recipe.permanent else TransientError
        events.append(
            failure_event(captured_event, "download", kind("source_forbidden", "403"), 5, [])
        )
        if not recipe.permanent:  # an exhausted transient failure is also dead-lettered
            events.append(dead_letter_copy(captured_event, "downloader.url-captured"))
        return events
    download = downloaded(run)
    events.append(download)
    events += [VideoTranscodeProgress(item_id=ITEM, run=run, fraction=f) for f in recipe.fractions]
    if recipe.outcome == "process_failed":
        error = TransientError("processing_failed", "ffmpeg exited 1")
        events.append(failure_event(download, "process", error, 5, [download.original_key]))
        if recipe.dead_letter:
            events.append(dead_letter_copy(download, "transcoder.video-downloaded"))
        return events
    events.append(transcoded(download))
    return events


def replay(state: ItemState, events: Sequence[Event]) -> tuple[ItemState, set[str]]:
    """Apply events in order; the final state and every file handed to the janitor."""
    orphaned: set[str] = set()
    for event in events:
        transition: Transition = apply(state, event)
        state = transition.state
        orphaned |= {key for key, _ in transition.orphaned}
    return state, orphaned


def announced(events: Sequence[Event]) -> set[str]:
    files: set[str] = set()
    for event in events:
        body = json.loads(event.model_dump_json())
        files |= {body[k] for k in ("original_key", "video_key") if body.get(k)}
        files |= set((body.get("thumbnail_keys") or {}).values())
    return files


shuffles = st.randoms(use_true_random=False)


@settings(max_examples=300, deadline=None)
@given(recipe=run_recipe(1), random=shuffles, duplicates=st.integers(0, 4))
def test_any_order_with_duplicates_ends_as_in_order(
    recipe: Recipe, random: object, duplicates: int
) -> None:
    events = history(recipe)
    expected, expected_orphans = replay(ItemState(), events)
    delivered = list(events)
    delivered += [random.choice(events) for _ in range(duplicates)]  # type: ignore[attr-defined]
    random.shuffle(delivered)  # type: ignore[attr-defined]
    final, orphans = replay(ItemState(), delivered)
    assert final == expected
    assert orphans == expected_orphans
    assert final.status in ("ready", "failed")
    if final.status == "failed":
        assert final.error is not None and final.error.code != DEAD_LETTERED


@settings(max_examples=200, deadline=None)
@given(first=run_recipe(1), second=run_recipe(2), random=shuffles)
def test_events_of_an_abandoned_run_change_nothing(
    first: Recipe, second: Recipe, random: object
) -> None:
    """A retried item (run 2) ignores whatever run 1 still delivers, in any interleaving."""
    old, new = history(first), history(second)
    retried = restart(replay(ItemState(), old)[0])
    expected, _ = replay(retried, new)
    mixed = [*old, *new]
    random.shuffle(mixed)  # type: ignore[attr-defined]
    final, _ = replay(retried, mixed)
    assert final == expected


@settings(max_examples=200, deadline=None)
@given(
    requests=st.lists(st.sampled_from(PROFILES), min_size=1, max_size=4),
    random=shuffles,
)
def test_only_the_latest_requested_profile_is_applied_and_nothing_is_left_behind(
    requests: list[str], random: object
) -> None:
    download = downloaded(1)
    ready, _ = replay(ItemState(), [download, transcoded(download)])
    # The catalog records the latest request; results of earlier ones arrive in any order.
    waiting = ItemState(**{**ready.__dict__, "requested_profile": requests[-1]})
    results = [
        transcoded(
            TranscodeRequested(item_id=ITEM, original_key=download.original_key, profile=p), p
        )
        for p in requests
    ]
    random.shuffle(results)  # type: ignore[attr-defined]
    final, orphans = replay(waiting, results)
    assert final.profile == requests[-1] and final.requested_profile is None
    assert final.video_key == video_key(ITEM, requests[-1])
    produced = announced([transcoded(download), *results])
    assert produced <= final.files() | orphans, "every file is served or handed to the janitor"
    assert not final.files() & orphans, "nothing served is handed to the janitor"


def test_transcoded_before_downloaded_keeps_the_source_facts() -> None:
    download = downloaded(1)
    in_order, _ = replay(ItemState(), [download, transcoded(download)])
    reversed_order, _ = replay(ItemState(), [transcoded(download), download])
    assert reversed_order == in_order
    assert (in_order.title, in_order.uploader, in_order.original_size) == (
        "Cats, run 1",
        "someone",
        1001,
    )


def test_the_real_reason_wins_over_the_dead_letter_notice_in_either_order() -> None:
    source = captured(1)
    real = failure_event(source, "download", TransientError("network_error", "reset"), 5, [])
    notice = dead_letter_copy(source, "downloader.url-captured")
    for order in ([real, notice], [notice, real]):
        final, _ = replay(ItemState(), order)
        assert final.error is not None and final.error.code == "network_error"


def test_a_dead_lettered_re_transcode_leaves_the_video_served() -> None:
    download = downloaded(1)
    ready, _ = replay(ItemState(), [download, transcoded(download)])
    waiting = replace(ready, requested_profile="720p")
    request = request_of(download, "720p")
    final, _ = replay(waiting, [dead_letter_copy(request, "transcoder.transcode-requested")])
    assert final.status == "ready" and final.video_key == ready.video_key
    assert final.requested_profile is None and final.error is not None
