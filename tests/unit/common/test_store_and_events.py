"""Media store keys and atomic writes; event contracts round-trip and carry their envelope."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from prsnl_common import usage
from prsnl_common.errors import ERROR_CODES, PermanentError
from prsnl_common.events import ALL_EVENTS, EVENTS_BY_KEY, ItemFailed, UrlCaptured
from prsnl_common.store import InvalidKey, LocalMediaStore, kind_of, original_key, video_key


def test_keys_follow_the_layout() -> None:
    item = uuid.UUID(int=1)
    assert original_key(item, ".MP4") == f"items/{item}/original.mp4"
    assert video_key(item) == f"items/{item}/video.mp4"
    assert video_key(item, "480p") == f"items/{item}/video-480p.mp4"
    assert video_key(item, "audio") == f"items/{item}/video-audio.m4a"
    assert [
        kind_of(k)
        for k in ("tmp/x/y", "items/a/thumb-320.jpg", "items/a/original.webm", "items/a/video.mp4")
    ] == ["temp", "thumbnail", "original", "video"]


@pytest.mark.parametrize("key", ["/etc/passwd", "../x", "items/../../x", "", "."])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidKey):
        LocalMediaStore(tmp_path).path(key)


def test_put_moves_atomically_and_delete_prunes_empty_folders(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path / "media")
    scratch = store.scratch("job-1")
    (scratch / "out.mp4").write_bytes(b"x" * 10)
    stored = store.put_file("items/abc/video.mp4", scratch / "out.mp4")
    assert stored.size == 10 and store.exists("items/abc/video.mp4")
    assert not list((tmp_path / "media" / "items" / "abc").glob(".*part"))
    assert usage.count(store.list()).kinds["video"].bytes == 10
    store.discard_scratch("job-1")
    assert list((tmp_path / "media" / "tmp").iterdir()) == []
    assert store.delete("items/abc/video.mp4")
    assert not (tmp_path / "media" / "items" / "abc").exists()
    assert not store.delete("items/abc/video.mp4")


def test_scratch_starts_clean_after_a_crash(tmp_path: Path) -> None:
    store = LocalMediaStore(tmp_path)
    (store.scratch("download-1") / "partial.part").write_bytes(b"half")
    assert list(store.scratch("download-1").iterdir()) == []


def test_every_event_round_trips_with_its_envelope() -> None:
    assert set(EVENTS_BY_KEY) == {e.routing_key for e in ALL_EVENTS}
    event = UrlCaptured(
        item_id=uuid.uuid4(),
        url="https://a.example/v",
        normalized_url="x",
        platform="direct",
        source="api",
        owner_id=uuid.uuid4(),
    )
    again = UrlCaptured.model_validate_json(event.model_dump_json())
    assert again == event
    assert event.event_id.version == 7 and event.schema_version == 1
    later = UrlCaptured(
        item_id=event.item_id,
        url="u",
        normalized_url="x",
        platform="direct",
        source="api",
        owner_id=event.owner_id,
    )
    assert later.event_id > event.event_id  # UUIDv7 sorts by time


def test_error_codes_are_documented() -> None:
    with pytest.raises(ValueError, match="undocumented"):
        PermanentError("made_up_code", "x")
    failed = ItemFailed(item_id=uuid.uuid4(), stage="download", error_code="too_large", message="m")
    assert failed.error_code in ERROR_CODES
