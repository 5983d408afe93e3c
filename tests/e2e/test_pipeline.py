"""The whole pipeline on real RabbitMQ, PostgreSQL, yt-dlp and ffmpeg, each service a process.

Every test runs twice: on the local media directory and on a real S3 server
(SeaweedFS). On the object store ``alice`` talks to a gateway that streams the
ranges from the store (redirects off), so the same assertions hold; the
redirect to presigned links has tests of its own below.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import e2e_stack, item_files, scratch_entries
from tests.support.clips import probe
from tests.support.media_server import MediaServer
from tests.support.otlp import OtlpReceiver
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Api, Stack, free_port
from tests.support.telegram import ALICE, TOKEN, FakeBotApi, gateway_env, reply_where, video
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["local", "s3"])
def stack(
    request: pytest.FixtureRequest,
    stack: Stack,
    tmp_path_factory: pytest.TempPathFactory,
    traces: OtlpReceiver,
) -> Iterator[Stack]:
    """The shared stack on the media directory, or one of this module's on a bucket."""
    if request.param == "local":
        yield stack
        return
    seaweed: SeaweedS3 = request.getfixturevalue("seaweed")
    with e2e_stack(
        tmp_path_factory.mktemp("s3-stack"), traces, **seaweed.env(seaweed.bucket())
    ) as running:
        yield running


def on_object_store(stack: Stack) -> bool:
    return "PRSNL_MEDIA_STORE" in stack.env


@pytest.fixture(scope="module")
def alice(stack: Stack) -> Api:
    """Alice on this stack; on the object store served by a streaming (proxy) gateway."""
    if not on_object_store(stack):
        return stack.client(stack.create_key("alice"))
    port = free_port()
    stack.start(
        "ingest",
        extra_env={"PRSNL_INGEST_PORT": str(port), "PRSNL_INGEST_STORE_REDIRECTS": "false"},
    )
    proxy = f"http://127.0.0.1:{port}"
    stack.wait_ready(base_url=proxy)
    return Api(proxy, stack.create_key("alice"))


def stored_copy(stack: Stack, key: str, into: Path) -> Path:
    """A local file with the bytes of ``key``, from either store."""
    return stack.store.local_file(key, into)


def capture_ready(api: Api, url: str, timeout: float = 120, **options: object) -> dict:
    response = api.capture(url, **options)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["status"] == "pending"
    item = api.wait_for(body["id"], timeout=timeout)
    assert item["status"] == "ready", item
    return item


def capture_failed(api: Api, url: str, timeout: float = 60) -> dict:
    response = api.capture(url)
    assert response.status_code == 202, response.text
    item = api.wait_for(response.json()["id"], timeout=timeout)
    assert item["status"] == "failed", item
    return item


def test_h264_mp4_is_remuxed_with_metadata_thumbnails_and_range_streaming(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    item = capture_ready(alice, media.url("/files/h264.mp4"))
    item_id = item["id"]
    assert item["action"] in ("copied", "remuxed")
    assert (item["video_codec"], item["audio_codec"]) == ("h264", "aac")
    assert (item["width"], item["height"]) == (1280, 720)
    assert item["duration"] == pytest.approx(10, abs=0.2)
    assert item["fps"] == pytest.approx(30, abs=0.1)
    assert item["bitrate"] > 0 and item["size"] > 0
    assert item["title"]
    assert item["platform"] == "direct"
    assert sorted(item["links"]["thumbnails"], key=int) == ["320", "640", "1280"]
    for width, url in item["links"]["thumbnails"].items():
        response = httpx.get(url, headers=alice.headers)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content[:3] == b"\xff\xd8\xff"
        assert int(width) in (320, 640, 1280)

    video = f"/api/v1/items/{item_id}/video"
    full = alice.get(video)
    assert full.status_code == 200
    size = len(full.content)
    assert size == item["size"]
    assert full.headers["accept-ranges"] == "bytes"
    etag, modified = full.headers["etag"], full.headers["last-modified"]

    first = alice.get(video, {"Range": "bytes=0-1"})
    assert first.status_code == 206
    assert first.content == full.content[:2]
    assert first.headers["content-range"] == f"bytes 0-1/{size}"
    assert first.headers["content-length"] == "2"

    tail = alice.get(video, {"Range": f"bytes={size - 100}-"})
    assert tail.status_code == 206 and tail.content == full.content[-100:]
    suffix = alice.get(video, {"Range": "bytes=-500"})
    assert suffix.status_code == 206 and suffix.content == full.content[-500:]
    assert suffix.headers["content-range"] == f"bytes {size - 500}-{size - 1}/{size}"

    unsatisfiable = alice.get(video, {"Range": f"bytes={size}-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert unsatisfiable.json()["code"] == "range_not_satisfiable"

    head = alice.head(video)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["etag"] == etag

    assert alice.get(video, {"Range": "bytes=0-1", "If-Range": etag}).status_code == 206
    stale = alice.get(video, {"Range": "bytes=0-1", "If-Range": '"stale"'})
    assert stale.status_code == 200 and len(stale.content) == size
    assert alice.get(video, {"If-None-Match": etag}).status_code == 304
    assert alice.get(video, {"If-Modified-Since": modified}).status_code == 304

    # A real player: ffprobe reads the stream over HTTP (it seeks with Range).
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-headers",
            f"Authorization: Bearer {alice.key}\r\n",
            "-print_format",
            "json",
            "-show_streams",
            f"{stack.base_url}{video}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    codecs = sorted(s["codec_name"] for s in json.loads(result.stdout)["streams"])
    assert codecs == ["aac", "h264"]
    assert scratch_entries(stack, item_id) == []


@pytest.mark.parametrize("name", ["vp9.webm", "hevc.mkv"])
def test_other_codecs_are_transcoded_to_h264_aac_mp4(
    stack: Stack, alice: Api, media: MediaServer, name: str
) -> None:
    item = capture_ready(alice, media.url(f"/files/{name}"))
    assert item["action"] == "transcoded"
    assert (item["video_codec"], item["audio_codec"], item["container"]) == ("h264", "aac", "mp4")
    video = alice.get(f"/api/v1/items/{item['id']}/video")
    assert video.content[4:8] == b"ftyp"
    assert item_files(stack, item["id"]) == sorted(
        [
            f"original.{name.rsplit('.', 1)[1]}",
            "video.mp4",
            "thumb-320.jpg",
            "thumb-640.jpg",
            "thumb-1280.jpg",
        ]
    )


def test_hls_stream_becomes_ready(alice: Api, media: MediaServer) -> None:
    item = capture_ready(alice, media.url("/hls/hls/index.m3u8"))
    assert item["platform"] == "hls"
    assert item["duration"] == pytest.approx(6, abs=0.5)
    assert item["video_codec"] == "h264"


def test_video_over_100_mb_becomes_ready(stack: Stack, alice: Api, media: MediaServer) -> None:
    item = capture_ready(alice, media.url("/files/large.mp4"), timeout=240)
    assert item["size"] > 100 * 1024 * 1024
    assert item["action"] in ("copied", "remuxed")


def test_twelve_captures_at_once_across_two_downloaders(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    urls = [media.url(f"/files/small.mp4?batch={n}") for n in range(12)]
    media.reset_counters()
    with ThreadPoolExecutor(12) as pool:
        responses = list(pool.map(alice.capture, urls))
    assert [r.status_code for r in responses] == [202] * 12
    ids = [r.json()["id"] for r in responses]
    assert len(set(ids)) == 12
    items = [alice.wait_for(i, timeout=180) for i in ids]
    assert [i["status"] for i in items] == ["ready"] * 12
    # Each link was downloaded exactly once: the same number of GETs for every one.
    gets = [
        sum(1 for r in media.requests if r.method == "GET" and r.path.endswith(f"batch={n}"))
        for n in range(12)
    ]
    assert len(set(gets)) == 1 and gets[0] >= 1, gets
    for item in items:
        assert item_files(stack, item["id"]).count("video.mp4") == 1
    # Both downloader processes took part.
    for process in stack.processes["downloader"]:
        assert process.poll() is None
    logs = [stack.root / "logs" / f"downloader-{n}.log" for n in range(2)]
    worked = [sum(log.read_text().count(i) > 0 for i in ids) for log in logs]
    assert all(w > 0 for w in worked), worked


def test_short_clip_thumbnails_and_rotated_clip_upright(
    stack: Stack, alice: Api, media: MediaServer, tmp_path: Path
) -> None:
    short = capture_ready(alice, media.url("/files/short.mp4"))
    for width in (320, 640, 1280):
        path = stored_copy(stack, f"items/{short['id']}/thumb-{width}.jpg", tmp_path)
        stream = probe(path)["streams"][0]
        assert stream["width"] == width
        assert stream["height"] == width * 720 // 1280

    rotated = capture_ready(alice, media.url("/files/rotated.mp4"))
    assert rotated["action"] == "transcoded"
    assert (rotated["width"], rotated["height"]) == (360, 640)
    thumb = probe(stored_copy(stack, f"items/{rotated['id']}/thumb-320.jpg", tmp_path))
    thumb = thumb["streams"][0]
    assert thumb["height"] > thumb["width"]


@pytest.mark.parametrize(
    ("path", "code", "stage"),
    [
        ("/page/no-video.html", "unsupported_url", "download"),
        ("/status/404", "source_not_found", "download"),
        ("/files/over.mp4", "too_large", "download"),
        ("/chunked/over.mp4", "too_large", "download"),
        ("/files/truncated.mp4", "invalid_media", "process"),
        ("/files/garbage.mp4", "invalid_media", "process"),
    ],
)
def test_failures_have_a_code_and_leave_no_files(
    stack: Stack, alice: Api, media: MediaServer, path: str, code: str, stage: str
) -> None:
    media.reset_counters()
    item = capture_failed(alice, media.url(path))
    assert item["error"]["code"] == code, item["error"]
    assert item["error"]["stage"] == stage
    assert item["error"]["message"]
    assert item["error"]["retryable"] is False
    assert item["error"]["attempts"] == 1
    # A failed processing hands the downloaded original to the janitor.
    deadline = time.monotonic() + 20
    while item_files(stack, item["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert item_files(stack, item["id"]) == []
    assert scratch_entries(stack, item["id"]) == []
    if path == "/status/404":
        assert sum(1 for r in media.requests if r.path == path) == 1, media.requests


def test_redirect_to_a_private_address_fails_at_download(
    stack: Stack, alice: Api, media: MediaServer, private_media: MediaServer
) -> None:
    target = private_media.url("/files/small.mp4")
    item = capture_failed(alice, media.url(f"/redirect-to?url={target}"))
    assert item["error"]["code"] == "blocked_address"
    assert not [r for r in private_media.requests if r.path.startswith("/files/")]
    assert item_files(stack, item["id"]) == []


def test_503_then_ok_is_retried_and_ends_ready(alice: Api, media: MediaServer) -> None:
    item = capture_ready(alice, media.url("/flaky/e2e-503/small.mp4?fail=1"))
    assert item["error"] is None
    assert sum(1 for r in media.requests if r.path.startswith("/flaky/e2e-503/")) >= 2


def test_retranscode_to_480p_serves_480p_and_removes_the_old_file(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    item = capture_ready(alice, media.url("/files/h264.mp4?retranscode=1"))
    old = f"items/{item['id']}/video.mp4"
    assert stack.store.exists(old)
    response = alice.post(f"/api/v1/items/{item['id']}/transcode", {"profile": "480p"})
    assert response.status_code == 202, response.text
    # Still serving the current video while the new one is made.
    assert alice.head(f"/api/v1/items/{item['id']}/video").status_code == 200
    done = alice.wait_for(item["id"], ("ready",), predicate=lambda i: i["profile"] == "480p")
    assert (done["width"], done["height"]) == (854, 480)
    served = alice.get(f"/api/v1/items/{done['id']}/video")
    assert served.status_code == 200 and len(served.content) == done["size"]
    deadline = time.monotonic() + 30
    while stack.store.exists(old) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not stack.store.exists(old)
    assert "video-480p.mp4" in item_files(stack, item["id"])
    bad = alice.post(f"/api/v1/items/{item['id']}/transcode", {"profile": "4k"})
    assert bad.status_code == 422 and bad.json()["code"] == "unknown_profile"


def test_delete_removes_the_item_and_its_files(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    item = capture_ready(alice, media.url("/files/small.mp4?delete=1"))
    assert item_files(stack, item["id"])
    assert alice.delete(f"/api/v1/items/{item['id']}").status_code == 204
    assert alice.get(f"/api/v1/items/{item['id']}").status_code == 404
    deadline = time.monotonic() + 30
    while item_files(stack, item["id"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert item_files(stack, item["id"]) == []


def test_retry_of_a_failed_item_starts_a_new_run(alice: Api, media: MediaServer) -> None:
    item = capture_failed(alice, media.url("/flaky/e2e-retry/small.mp4?fail=4"))
    assert item["error"]["code"] == "source_unavailable"
    assert item["error"]["retryable"] is True
    assert item["error"]["attempts"] == 4
    response = alice.post(f"/api/v1/items/{item['id']}/retry")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    assert alice.wait_for(item["id"])["status"] == "ready"
    again = alice.post(f"/api/v1/items/{item['id']}/retry")
    assert again.status_code == 409 and again.json()["code"] == "not_retryable"


def test_live_progress_over_server_sent_events(alice: Api, media: MediaServer) -> None:
    response = alice.capture(media.url("/slow/h264.mp4?rate=4000000&sse=1"))
    item_id = response.json()["id"]
    events: list[tuple[str, dict]] = []
    with httpx.stream(
        "GET", f"{alice.base_url}/api/v1/items/{item_id}/events", headers=alice.headers, timeout=60
    ) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
                if kind == "status" and events[-1][1].get("status") in ("ready", "failed"):
                    break
    kinds = [k for k, _ in events]
    assert kinds[0] == "item"
    progress = [d["progress"] for k, d in events if k == "progress"]
    assert any(p["stage"] == "download" and p["downloaded_bytes"] > 0 for p in progress)
    assert events[-1][1]["status"] == "ready"


def test_the_object_store_serves_ranges_through_a_presigned_redirect(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    if not on_object_store(stack):
        pytest.skip("the media directory has no presigned links")
    item = capture_ready(alice, media.url("/files/small.mp4?redirect=1"))
    expected = alice.get(f"/api/v1/items/{item['id']}/video").content  # streamed by the proxy
    redirecting = Api(stack.base_url, alice.key)
    video = f"/api/v1/items/{item['id']}/video"

    answer = redirecting.get(video)
    assert answer.status_code == 307, answer.text
    location = answer.headers["location"]
    assert location.startswith(stack.env["PRSNL_S3_ENDPOINT"]) and "X-Amz-Signature" in location
    # The store answers the ranges itself; the Bearer key does not follow to it.
    with httpx.Client(follow_redirects=True, timeout=30) as client:
        ranged = client.get(
            f"{stack.base_url}{video}", headers={**alice.headers, "Range": "bytes=100-199"}
        )
        assert ranged.status_code == 206 and ranged.content == expected[100:200]
        assert ranged.headers["content-range"] == f"bytes 100-199/{len(expected)}"
        head = client.head(f"{stack.base_url}{video}", headers=alice.headers)
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(expected)
        # A signed link of the answer (no header at all) goes the same way.
        signed = redirecting.item(item["id"])["links"]["video"]
        whole = client.get(signed)
        assert whole.status_code == 200 and whole.content == expected
        thumb = client.get(redirecting.item(item["id"])["links"]["thumbnails"]["320"])
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"
    # A player: ffprobe follows the redirect and seeks in the store.
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_streams", signed],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert sorted(s["codec_name"] for s in json.loads(result.stdout)["streams"]) == ["aac", "h264"]
    # A link of a deleted item stops at the gateway, before any redirect.
    assert redirecting.delete(f"/api/v1/items/{item['id']}").status_code == 204
    gone = httpx.get(signed)
    assert gone.status_code == 404, gone.text


def test_every_service_stays_small_through_a_150_mb_video(
    stack: Stack, alice: Api, media: MediaServer
) -> None:
    """Peak RSS (VmHWM) of each service process, after a 150 MB video went through it all."""
    item = capture_ready(alice, media.url("/files/150mb.mp4?memory=1"), timeout=300)
    assert item["size"] >= 150 * 1000 * 1000
    peaks = {
        f"{service}-{index}": peak_rss_mib(process.pid)
        for service, processes in stack.processes.items()
        for index, process in enumerate(processes)
    }
    print("peak RSS MiB:", {name: round(peak) for name, peak in peaks.items()})
    assert all(peak < 150 for peak in peaks.values()), peaks


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmHWM for {pid}")


async def test_the_bot_sends_a_video_kept_in_the_object_store(
    stack: Stack, alice: Api, media: MediaServer, tmp_path: Path
) -> None:
    if not on_object_store(stack):
        pytest.skip("the bot on the media directory: tests/e2e/test_telegram.py")
    url = media.url("/files/small.mp4?telegram=1")
    with FakeBotApi(TOKEN) as bot_api:
        stack.start("telegram-gateway", extra_env=gateway_env(bot_api, stack, {ALICE: alice.key}))
        try:
            update = bot_api.send_text(ALICE, url)
            sent = await reply_where(bot_api, update, video, 120, "the video")
        finally:
            stack.kill("telegram-gateway", signal.SIGTERM)
    item = alice.get("/api/v1/items?limit=100").json()["items"]
    (saved,) = [i for i in item if i["url"] == url]
    assert sent.video == stored_copy(stack, f"items/{saved['id']}/video.mp4", tmp_path).read_bytes()
    assert sent.thumbnail, "a thumbnail goes with the video"
    # The scratch copies go too, once the upload is over.
    wait_until(lambda: not scratch_entries(stack, "telegram-"), within=30, what="no scratch left")
