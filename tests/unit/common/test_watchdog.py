"""The one deadline and stall judgement of the stages, on a clock the test moves."""

from __future__ import annotations

from prsnl_common.watchdog import Watchdog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_ends_a_job_that_keeps_moving() -> None:
    clock = Clock()
    watch = Watchdog(limit=10, stall=3, clock=clock)
    for second in range(1, 10):
        clock.now = 100 + second
        watch.progressed(second * 1000)
        assert watch.verdict() is None
    clock.now = 110
    assert watch.verdict() == "timeout"
    assert watch.remaining() == 0


def test_silence_is_a_stall_and_a_trickle_is_too_slow() -> None:
    clock = Clock()
    silent = Watchdog(limit=60, stall=3, min_progress=3000, clock=clock)
    trickle = Watchdog(limit=60, stall=3, min_progress=3000, clock=clock)
    silent.progressed(5000)
    trickle.progressed(5000)
    for step in range(1, 4):
        clock.now = 100 + step
        trickle.progressed(5000 + step * 10)  # ten bytes a second: moving, far too slowly
    assert silent.verdict() == "stalled"
    assert trickle.verdict() == "too_slow"


def test_enough_bytes_in_the_window_or_the_next_file_count_as_progress() -> None:
    clock = Clock()
    watch = Watchdog(limit=60, stall=3, min_progress=3000, clock=clock)
    watch.progressed(0)
    clock.now = 102
    watch.progressed(3000)
    clock.now = 104
    watch.progressed(100)  # the audio after the video: its count starts again
    clock.now = 106
    assert watch.verdict() is None
    clock.now = 107.5
    assert watch.verdict() == "stalled"
    assert watch.next_check() == 0


def test_a_budget_hands_each_step_what_is_left() -> None:
    clock = Clock()
    budget = Watchdog(limit=100, clock=clock)
    assert budget.remaining(30) == 30
    clock.now = 180
    assert budget.remaining(30) == 20
    assert budget.remaining() == 20
    assert budget.next_check() == 20


def test_a_throttle_lets_one_report_per_interval_and_key_through_and_always_the_last() -> None:
    from prsnl_common.throttle import Throttle

    clock = Clock()
    throttle = Throttle(1.0, clock)
    assert throttle.due("a") and throttle.due("b")
    assert not throttle.due("a")
    assert throttle.due("a", final=True)
    clock.now += 1.0
    assert throttle.due("a") and not throttle.due("a")
