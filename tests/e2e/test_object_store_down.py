"""The object store stopped in the middle of an upload: the job retries, the item ends ready,
and nothing partial stays in the bucket (the janitor aborts the cut-off multipart upload)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prsnl_common.s3store import S3MediaStore
from prsnl_janitor.uploads import client_for, uploads
from tests.support.media_server import MediaServer
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Stack, running_stack
from tests.support.tcp_proxy import TcpProxy
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def own_seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """A SeaweedFS of this module's own: the test stops it."""
    with SeaweedS3(tmp_path_factory.mktemp("seaweedfs-down")) as server:
        yield server


@pytest.fixture(scope="module")
def proxy(own_seaweed: SeaweedS3) -> Iterator[TcpProxy]:
    with TcpProxy("127.0.0.1", own_seaweed.ports["s3"]) as running:
        yield running


@pytest.fixture(scope="module")
def s3_stack(
    tmp_path_factory: pytest.TempPathFactory, own_seaweed: SeaweedS3, proxy: TcpProxy
) -> Iterator[Stack]:
    store = own_seaweed.env(own_seaweed.bucket())
    store["PRSNL_S3_ENDPOINT"] = f"http://127.0.0.1:{proxy.port}"
    with running_stack(
        tmp_path_factory.mktemp("s3-down-stack"),
        downloaders=1,
        **store,
        # Room for SeaweedFS to come back, also on a busy machine: 2 + 4 + 8 + 8 x 6 = 62 s
        # between ten attempts.
        PRSNL_RETRY_DELAYS="2,4,8",
        PRSNL_MAX_ATTEMPTS="10",
        PRSNL_JANITOR_SWEEP_INTERVAL_SECONDS="2",
        PRSNL_JANITOR_TEMP_TTL_SECONDS="30",
    ) as running:
        yield running


def test_seaweedfs_stopped_mid_upload_retries_and_leaves_nothing_partial(
    s3_stack: Stack, own_seaweed: SeaweedS3, proxy: TcpProxy, media: MediaServer
) -> None:
    api = s3_stack.client(s3_stack.create_key("mid-upload"))
    store = s3_stack.store
    assert isinstance(store, S3MediaStore)
    tripped = proxy.trip_after(30 * MIB)  # well into the 105 MB original's parts
    created = api.capture(media.url("/files/large.mp4?store-down=1"))
    assert created.status_code == 202, created.text
    assert tripped.wait(180), "the upload never passed 30 MiB"
    own_seaweed.stop()
    proxy.restore()  # connections reach the stopped server now: refused
    wait_until(
        lambda: "store_unavailable" in s3_stack.logs("downloader"),
        within=120,
        what="the downloader reporting the object store unavailable",
    )
    own_seaweed.start()

    item = api.wait_for(created.json()["id"], timeout=300)
    assert item["status"] == "ready", item
    expected = {f"items/{item['id']}/{name}" for name in ("video.mp4", "thumb-320.jpg")}
    stored = {f.key for f in store.list()}
    assert expected <= stored
    assert all(key.startswith(f"items/{item['id']}/") for key in stored), stored
    # The cut-off upload is aborted by the janitor once older than the scratch TTL.
    client = client_for(store)
    wait_until(
        lambda: not list(uploads(store, client)),
        within=180,
        what="no multipart upload left in the bucket",
    )
    assert "aborted abandoned upload" in s3_stack.logs("storage-janitor")
