"""Which items wait for a paused stage, and a pause whose worker stopped announcing fades."""

from __future__ import annotations

import pytest

from prsnl_common.events import StageState
from prsnl_ingest import stages
from prsnl_ingest.stages import FADE_SECONDS, StagePauses


def announced(service: str, instance: str, paused: bool, free: int = 10) -> str:
    return StageState(
        service=service, instance=instance, paused=paused, free_bytes=free, min_free_bytes=100
    ).model_dump_json()


def test_items_wait_for_the_stage_their_status_needs() -> None:
    pauses = StagePauses()
    pauses.heard(announced("transcoder", "a:1", paused=True))
    assert pauses.waiting("pending") is None
    waiting = pauses.waiting("downloaded")
    assert waiting is not None and (waiting.reason, waiting.stage) == ("low_disk", "transcoder")
    assert waiting.detail.startswith("Processing is paused: 10 B free")
    assert "10 B free in the media store, below 100 B" in waiting.detail
    for status in ("downloading", "processing", "ready", "failed"):
        assert pauses.waiting(status) is None


def test_the_lowest_free_space_of_several_paused_replicas_is_shown_and_a_resume_clears_one() -> (
    None
):
    pauses = StagePauses()
    pauses.heard(announced("downloader", "a:1", paused=True, free=50))
    pauses.heard(announced("downloader", "b:2", paused=True, free=20))
    first = pauses.waiting("pending")
    assert first is not None and "20 B free" in first.detail
    pauses.heard(announced("downloader", "b:2", paused=False))
    second = pauses.waiting("pending")
    assert second is not None and "50 B free" in second.detail
    pauses.heard(announced("downloader", "a:1", paused=False))
    assert pauses.waiting("pending") is None


def test_a_pause_not_announced_again_fades(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(stages.time, "monotonic", lambda: now[0])
    pauses = StagePauses()
    pauses.heard(announced("downloader", "a:1", paused=True))
    now[0] += FADE_SECONDS - 1
    assert pauses.waiting("pending") is not None
    now[0] += 2
    assert pauses.waiting("pending") is None


def test_an_unreadable_announcement_changes_nothing() -> None:
    pauses = StagePauses()
    pauses.heard("{not json")
    pauses.heard('{"service": "downloader"}')
    assert pauses.paused == {}
