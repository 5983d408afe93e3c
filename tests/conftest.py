"""Fixtures every tier shares: the canary, a server on a forbidden loopback address."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.support.clips import make_clip
from tests.support.media_server import MediaServer
from tests.support.seaweed import SeaweedS3

# Property tests explore the same examples on every run (and keep no example database), so
# the suite passes or fails the same way run after run; explore freely with
# HYPOTHESIS_PROFILE=explore.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))

# Outside every allow-list the tests use (they open 127.0.0.1 only): a request that
# reaches this address went around the address guard.
CANARY_HOST = "127.0.0.2"


@pytest.fixture(scope="session")
def canary_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    """A real media server on 127.0.0.2 with a playable clip, so a bypass would succeed."""
    root = tmp_path_factory.mktemp("canary-media")
    make_clip(root / "clip.mp4", duration=1, width=160, height=120, fps=10)
    with MediaServer(root, host=CANARY_HOST) as server:
        yield server


@pytest.fixture
def canary(canary_server: MediaServer) -> Iterator[MediaServer]:
    """The canary, fresh for this test; the test fails if anything connected to it."""
    canary_server.reset_counters()
    yield canary_server
    reached = canary_server.connections
    assert not reached, (
        f"{len(reached)} connection(s) reached the canary on {CANARY_HOST}: "
        f"{canary_server.requests}"
    )


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A real S3 server (SeaweedFS) on loopback; each user takes a bucket of its own."""
    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
