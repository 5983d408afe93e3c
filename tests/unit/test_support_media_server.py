"""Tests for the test-support media server routes and the ffmpeg clip generators."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clips import (
    make_clip,
    make_garbage,
    make_hls,
    make_truncated,
    probe,
)
from tests.support.media_server import MediaServer

_REPO_ROOT = Path(__file__).resolve().parents[2]

SMALL_SIZE = 300_000
needs_ffmpeg = pytest.mark.skipif(
    shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None,
    reason="ffmpeg/ffprobe not installed",
)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Lets a test look at each 302 itself instead of urllib following it."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: object,
        code: int,
        msg: str,
        headers: object,
        newurl: str,
    ) -> None:
        return None


_no_redirect_opener = urllib.request.build_opener(_NoRedirect)


@pytest.fixture
def media_root(tmp_path: Path) -> Path:
    """Small random files of every served type; they only need to be bytes, not media."""
    root = tmp_path / "media"
    (root / "hls" / "show").mkdir(parents=True)
    (root / "sub").mkdir()
    for name in ("small.mp4", "clip.webm", "clip.mkv", "sub/nested.mp4"):
        (root / name).write_bytes(os.urandom(SMALL_SIZE))
    (root / "blob.bin").write_bytes(os.urandom(1000))
    (root / "empty.mp4").write_bytes(b"")
    (root / "hls" / "show" / "index.m3u8").write_text(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        "#EXTINF:2.0,\nsegment_000.ts\n#EXT-X-ENDLIST\n"
    )
    (root / "hls" / "show" / "segment_000.ts").write_bytes(os.urandom(188 * 100))
    # Outside root: traversal attempts must never reach it.
    (tmp_path / "secret.txt").write_text("secret")
    return root


@pytest.fixture
def server(media_root: Path) -> Iterator[MediaServer]:
    with MediaServer(media_root) as srv:
        yield srv


def _connection(server: MediaServer) -> http.client.HTTPConnection:
    return http.client.HTTPConnection(server.host, server.port, timeout=10)


def _request(
    server: MediaServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a fresh connection; returns the response and its full body."""
    conn = _connection(server)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    finally:
        conn.close()


# -- lifecycle ----------------------------------------------------------------------------


def test_base_url_and_url_helper(media_root: Path) -> None:
    srv = MediaServer(media_root)
    with pytest.raises(RuntimeError):
        _ = srv.base_url
    with srv:
        assert srv.base_url == f"http://127.0.0.1:{srv.port}"
        assert srv.port > 0
        assert srv.url("/files/a.mp4") == f"{srv.base_url}/files/a.mp4"
        assert srv.url("files/a.mp4") == f"{srv.base_url}/files/a.mp4"
    srv.stop()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/status/200", timeout=2)


def test_request_log_and_reset(server: MediaServer) -> None:
    _request(server, "GET", "/files/small.mp4", {"Range": "bytes=0-9"})
    _request(server, "HEAD", "/files/small.mp4?x=1")
    assert server.requests == [
        ("GET", "/files/small.mp4", "bytes=0-9"),
        ("HEAD", "/files/small.mp4?x=1", None),
    ]
    assert server.requests[0].range == "bytes=0-9"
    server.reset_counters()
    assert server.requests == []


def test_connection_log_counts_silent_connections(server: MediaServer) -> None:
    """A client that connects and sends nothing is still seen (the canary relies on it)."""
    with socket.create_connection((server.host, server.port), timeout=5):
        pass
    deadline = time.monotonic() + 5
    while not server.connections and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.connections) == 1
    assert server.requests == []
    server.reset_counters()
    assert server.connections == []


# -- /files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("small.mp4", "video/mp4"),
        ("clip.webm", "video/webm"),
        ("clip.mkv", "video/x-matroska"),
        ("sub/nested.mp4", "video/mp4"),
        ("blob.bin", "application/octet-stream"),
    ],
)
def test_files_get(server: MediaServer, media_root: Path, name: str, content_type: str) -> None:
    response, body = _request(server, "GET", f"/files/{name}")
    assert response.status == 200
    assert response.getheader("Content-Type") == content_type
    assert response.getheader("Content-Length") == str(len(body))
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("Last-Modified", "").endswith(" GMT")
    assert body == (media_root / name).read_bytes()


def test_files_head(server: MediaServer) -> None:
    response, body = _request(server, "HEAD", "/files/small.mp4")
    assert response.status == 200
    assert response.getheader("Content-Length") == str(SMALL_SIZE)
    assert response.getheader("Content-Type") == "video/mp4"
    assert body == b""


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),
        ("bytes=1000-", 1000, SMALL_SIZE - 1),
        ("bytes=-500", SMALL_SIZE - 500, SMALL_SIZE - 1),
        ("bytes=299990-999999999", 299990, SMALL_SIZE - 1),  # end clamps to the file
        ("bytes=-999999999", 0, SMALL_SIZE - 1),  # suffix longer than the file
    ],
)
def test_files_range(
    server: MediaServer, media_root: Path, header: str, start: int, end: int
) -> None:
    response, body = _request(server, "GET", "/files/small.mp4", {"Range": header})
    assert response.status == 206
    assert response.getheader("Content-Range") == f"bytes {start}-{end}/{SMALL_SIZE}"
    assert response.getheader("Content-Length") == str(end - start + 1)
    assert body == (media_root / "small.mp4").read_bytes()[start : end + 1]


@pytest.mark.parametrize(
    "header", [f"bytes={SMALL_SIZE}-", f"bytes={SMALL_SIZE + 5}-{SMALL_SIZE + 10}", "bytes=-0"]
)
def test_files_range_unsatisfiable(server: MediaServer, header: str) -> None:
    response, _ = _request(server, "GET", "/files/small.mp4", {"Range": header})
    assert response.status == 416
    assert response.getheader("Content-Range") == f"bytes */{SMALL_SIZE}"


def test_files_range_on_empty_file_is_unsatisfiable(server: MediaServer) -> None:
    response, body = _request(server, "GET", "/files/empty.mp4")
    assert (response.status, body) == (200, b"")
    response, _ = _request(server, "GET", "/files/empty.mp4", {"Range": "bytes=0-"})
    assert response.status == 416


@pytest.mark.parametrize("header", ["bytes=5-1", "items=0-5", "bytes=0-1,5-9", "bytes=abc"])
def test_files_unusable_range_is_ignored(server: MediaServer, header: str) -> None:
    response, body = _request(server, "GET", "/files/small.mp4", {"Range": header})
    assert response.status == 200
    assert len(body) == SMALL_SIZE


def test_keep_alive_reuses_connection(server: MediaServer) -> None:
    conn = _connection(server)
    try:
        for path in ("/files/small.mp4", "/status/404", "/files/blob.bin"):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            assert response.version == 11
            assert not response.will_close
        assert len(server.requests) == 3
    finally:
        conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/files/../secret.txt",
        "/files/%2e%2e/secret.txt",
        "/files/sub/../../secret.txt",
        "/files//etc/passwd",
        "/chunked/../secret.txt",
        "/slow/../secret.txt",
        "/redirect/1/../secret.txt",
        "/flaky/k/../secret.txt",
        "/truncated-length/../secret.txt",
        "/hls/../secret.txt",
    ],
)
def test_traversal_is_rejected(server: MediaServer, path: str) -> None:
    response, body = _request(server, "GET", path)
    assert response.status == 400
    assert b"secret" not in body.replace(b"secret.txt", b"")


@pytest.mark.parametrize(
    "path", ["/files/missing.mp4", "/nope", "/", "/page/other.html", "/chunked/missing.mp4"]
)
def test_not_found(server: MediaServer, path: str) -> None:
    response, _ = _request(server, "GET", path)
    assert response.status == 404


# -- /chunked -----------------------------------------------------------------------------


def test_chunked_framing(server: MediaServer, media_root: Path) -> None:
    # Raw socket: http.client would hide the framing we want to check.
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(b"GET /chunked/small.mp4 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        raw = bytearray()
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, rest = bytes(raw).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert headers["content-type"] == "video/mp4"

    body, sizes = bytearray(), []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        sizes.append(size)
        if size == 0:
            assert rest == b"\r\n"  # no trailers, just the final CRLF
            break
        body += rest[:size]
        assert rest[size : size + 2] == b"\r\n"
        rest = rest[size + 2 :]
    assert bytes(body) == (media_root / "small.mp4").read_bytes()
    assert sizes[:-1] == [65536] * (SMALL_SIZE // 65536) + [SMALL_SIZE % 65536]


def test_chunked_decodes_with_urllib(server: MediaServer, media_root: Path) -> None:
    with urllib.request.urlopen(server.url("/chunked/clip.webm"), timeout=10) as response:
        assert response.headers["Content-Type"] == "video/webm"
        assert response.headers["Content-Length"] is None
        assert response.read() == (media_root / "clip.webm").read_bytes()


# -- redirects ----------------------------------------------------------------------------


def test_redirect_chain(server: MediaServer, media_root: Path) -> None:
    hops = []
    url = server.url("/redirect/3/small.mp4")
    for _ in range(3):
        with pytest.raises(urllib.error.HTTPError) as info:
            _no_redirect_opener.open(url, timeout=10)
        assert info.value.code == 302
        url = info.value.headers["Location"]
        info.value.close()
        hops.append(url)
    assert hops == [
        server.url("/redirect/2/small.mp4"),
        server.url("/redirect/1/small.mp4"),
        server.url("/files/small.mp4"),
    ]

    server.reset_counters()
    with urllib.request.urlopen(server.url("/redirect/3/small.mp4"), timeout=10) as response:
        assert response.status == 200
        assert response.url == server.url("/files/small.mp4")
        assert response.read() == (media_root / "small.mp4").read_bytes()
    assert [r.path for r in server.requests] == [
        "/redirect/3/small.mp4",
        "/redirect/2/small.mp4",
        "/redirect/1/small.mp4",
        "/files/small.mp4",
    ]


@pytest.mark.parametrize("path", ["/redirect/0/small.mp4", "/redirect/x/small.mp4"])
def test_redirect_bad_count(server: MediaServer, path: str) -> None:
    response, _ = _request(server, "GET", path)
    assert response.status == 400


def test_redirect_to_exact_url(server: MediaServer) -> None:
    target = f"http://127.0.0.2:{server.port}/files/small.mp4?a=1&b=2"
    query = urllib.parse.urlencode({"url": target})
    response, body = _request(server, "GET", f"/redirect-to?{query}")
    assert response.status == 302
    assert response.getheader("Location") == target
    assert body == b""
    response, _ = _request(server, "GET", "/redirect-to")
    assert response.status == 400


# -- /hls ---------------------------------------------------------------------------------


def test_hls_playlist_and_segment(server: MediaServer, media_root: Path) -> None:
    response, body = _request(server, "GET", "/hls/hls/show/index.m3u8")
    assert response.status == 200
    assert response.getheader("Content-Type") == "application/vnd.apple.mpegurl"
    assert b"#EXT-X-ENDLIST" in body
    segment_url = urllib.parse.urljoin(server.url("/hls/hls/show/index.m3u8"), "segment_000.ts")
    with urllib.request.urlopen(segment_url, timeout=10) as seg:
        assert seg.headers["Content-Type"] == "video/mp2t"
        assert seg.read() == (media_root / "hls/show/segment_000.ts").read_bytes()


# -- /flaky -------------------------------------------------------------------------------


def test_flaky_default_fails_once(server: MediaServer, media_root: Path) -> None:
    response, _ = _request(server, "GET", "/flaky/one/small.mp4")
    assert response.status == 503
    assert response.getheader("Retry-After") == "1"
    response, body = _request(server, "GET", "/flaky/one/small.mp4")
    assert response.status == 200
    assert body == (media_root / "small.mp4").read_bytes()
    # Once recovered, it keeps working, with ranges like /files.
    response, body = _request(server, "GET", "/flaky/one/small.mp4", {"Range": "bytes=0-9"})
    assert (response.status, len(body)) == (206, 10)


def test_flaky_counts_per_key_and_resets(server: MediaServer) -> None:
    statuses = [_request(server, "GET", "/flaky/a/small.mp4?fail=3")[0].status for _ in range(4)]
    assert statuses == [503, 503, 503, 200]
    # Another key has its own counter.
    assert _request(server, "GET", "/flaky/b/small.mp4")[0].status == 503
    server.reset_counters()
    assert _request(server, "GET", "/flaky/a/small.mp4?fail=1")[0].status == 503
    assert _request(server, "GET", "/flaky/a/small.mp4?fail=1")[0].status == 200


def test_flaky_counter_is_thread_safe(server: MediaServer) -> None:
    results: list[int] = []
    lock = threading.Lock()

    def fetch() -> None:
        status = _request(server, "GET", "/flaky/race/blob.bin?fail=5")[0].status
        with lock:
            results.append(status)

    threads = [threading.Thread(target=fetch) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] * 7 + [503] * 5


# -- /slow --------------------------------------------------------------------------------


def test_slow_rate(server: MediaServer, media_root: Path) -> None:
    rate = 400_000
    started = time.monotonic()
    response, body = _request(server, "GET", f"/slow/small.mp4?rate={rate}")
    elapsed = time.monotonic() - started
    assert response.status == 200
    assert response.getheader("Content-Length") == str(SMALL_SIZE)
    assert body == (media_root / "small.mp4").read_bytes()
    # The first 16 KiB go out at once, the rest paced: ~0.71 s at 400 kB/s.
    expected = (SMALL_SIZE - 16 * 1024) / rate
    assert expected * 0.8 < elapsed < expected + 1.0


def test_slow_client_disconnect_is_clean(
    server: MediaServer, capfd: pytest.CaptureFixture[str]
) -> None:
    conn = _connection(server)
    conn.request("GET", "/slow/small.mp4?rate=100000")
    response = conn.getresponse()
    assert response.status == 200
    assert len(response.read(20_000)) == 20_000
    conn.close()
    # The handler notices on one of its next writes and ends without a traceback. Only this
    # server's handlers count: other servers of the test session may be busy meanwhile.
    deadline = time.monotonic() + 10
    while server.active_connections and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.active_connections == 0
    assert _request(server, "GET", "/status/200")[0].status == 200
    assert "Traceback" not in capfd.readouterr().err


def test_stop_interrupts_slow_download(media_root: Path) -> None:
    srv = MediaServer(media_root).start()
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=10)
    conn.request("GET", "/slow/small.mp4?rate=1000")
    response = conn.getresponse()
    started = time.monotonic()
    srv.stop()
    with pytest.raises(http.client.IncompleteRead):
        response.read()
    conn.close()
    assert time.monotonic() - started < 3


# -- /status, /page, /truncated-length ----------------------------------------------------


@pytest.mark.parametrize("code", [200, 403, 404, 410, 429, 500, 502, 503])
def test_status(server: MediaServer, code: int) -> None:
    response, body = _request(server, "GET", f"/status/{code}")
    assert response.status == code
    assert response.getheader("Content-Type") == "text/plain; charset=utf-8"
    assert body.startswith(str(code).encode())


def test_status_without_body_and_bad_codes(server: MediaServer) -> None:
    response, body = _request(server, "GET", "/status/204")
    assert (response.status, body) == (204, b"")
    assert _request(server, "GET", "/status/99")[0].status == 400
    assert _request(server, "GET", "/status/abc")[0].status == 400


def test_no_video_page(server: MediaServer) -> None:
    response, body = _request(server, "GET", "/page/no-video.html")
    assert response.status == 200
    assert response.getheader("Content-Type", "").startswith("text/html")
    text = body.decode()
    assert "<title>" in text
    assert "<video" not in text
    assert "<source" not in text


def test_truncated_length(server: MediaServer, media_root: Path) -> None:
    conn = _connection(server)
    try:
        conn.request("GET", "/truncated-length/small.mp4")
        response = conn.getresponse()
        assert response.status == 200
        assert response.getheader("Content-Length") == str(SMALL_SIZE)
        with pytest.raises(http.client.IncompleteRead) as info:
            response.read()
        assert len(info.value.partial) == SMALL_SIZE // 2
        assert info.value.partial == (media_root / "small.mp4").read_bytes()[: SMALL_SIZE // 2]
    finally:
        conn.close()


# -- command line -------------------------------------------------------------------------


def test_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.support.media_server", "--help"],
        cwd=_REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert "--root" in result.stdout
    assert "--port" in result.stdout


def _ignoring_sigint() -> None:
    """What a shell does to a background job's children: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("background", [False, True], ids=["foreground", "background-job"])
def test_cli_serves_until_interrupted(media_root: Path, background: bool) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.media_server", "--root", str(media_root)],
        cwd=_REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_ignoring_sigint if background else None,  # noqa: PLW1509 - test only
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        base_url = next(word for word in line.split() if word.startswith("http://"))
        with urllib.request.urlopen(f"{base_url}/files/blob.bin", timeout=10) as response:
            assert response.read() == (media_root / "blob.bin").read_bytes()
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


# -- clips --------------------------------------------------------------------------------


@needs_ffmpeg
def test_make_clip_tiny_and_cached(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "tiny.mp4", duration=1.0, width=160, height=90)
    info = probe(path)
    codecs = {s["codec_type"]: s for s in info["streams"]}
    assert codecs["video"]["codec_name"] == "h264"
    assert (codecs["video"]["width"], codecs["video"]["height"]) == (160, 90)
    assert codecs["audio"]["codec_name"] == "aac"
    assert abs(float(info["format"]["duration"]) - 1.0) < 0.2
    # Cached: a second call does not rewrite the file.
    mtime = path.stat().st_mtime_ns
    assert make_clip(path, duration=1.0, width=160, height=90) == path
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.mp4"]  # no temp leftovers


@needs_ffmpeg
def test_make_clip_rotated_probes_as_portrait(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "phone.mp4", duration=1.0, width=160, height=90, rotate=90)
    video = next(s for s in probe(path)["streams"] if s["codec_type"] == "video")
    assert (video["width"], video["height"]) == (160, 90)  # coded size stays landscape
    matrices = [
        d for d in video.get("side_data_list", []) if d["side_data_type"] == "Display Matrix"
    ]
    assert len(matrices) == 1
    assert abs(int(matrices[0]["rotation"])) == 90  # so it displays as 90x160


@needs_ffmpeg
def test_make_hls_served_over_hls_route(tmp_path: Path) -> None:
    root = tmp_path / "media"
    playlist = make_hls(root / "show", duration=2.0, segment_seconds=1.0, width=160, height=90)
    assert playlist == root / "show" / "index.m3u8"
    with MediaServer(root) as srv:
        playlist_url = srv.url("/hls/show/index.m3u8")
        with urllib.request.urlopen(playlist_url, timeout=10) as response:
            text = response.read().decode()
        assert "#EXT-X-ENDLIST" in text
        segments = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert len(segments) == 2
        for name in segments:
            with urllib.request.urlopen(
                urllib.parse.urljoin(playlist_url, name), timeout=10
            ) as response:
                assert response.read() == (root / "show" / name).read_bytes()
    video = next(
        s for s in probe(root / "show" / segments[0])["streams"] if s["codec_type"] == "video"
    )
    assert video["codec_name"] == "h264"


def test_make_garbage_and_truncated(tmp_path: Path) -> None:
    garbage = make_garbage(tmp_path / "bad.mp4", size=10_000)
    assert garbage.stat().st_size == 10_000
    truncated = make_truncated(garbage, tmp_path / "cut.mp4", keep_fraction=0.25)
    assert truncated.read_bytes() == garbage.read_bytes()[:2500]
    with pytest.raises(ValueError):
        make_truncated(garbage, tmp_path / "other.mp4", keep_fraction=1.5)
