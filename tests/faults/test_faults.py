"""The short form of the fault suite, inside make test: every fault with a small load.

``make test-faults`` runs the full form (python -m tests.faults --full).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.suite import SHORT, faults, harness, table

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(1800)
def test_nothing_is_lost_duplicated_stuck_or_left_over_after_any_fault(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with harness(tmp_path, SHORT) as running:
        outcomes = [running.run(name, inject) for name, inject in faults(running, SHORT)]
    report = table(outcomes)
    with capsys.disabled():
        print(f"\nfault suite (short form)\n{report}")
    assert all(o.ok for o in outcomes), report
