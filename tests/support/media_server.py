"""Loopback test media server: direct, chunked, ranged, redirected and broken downloads."""

from __future__ import annotations

import argparse
import email.utils
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, NamedTuple
from urllib.parse import parse_qs, unquote, urlsplit

_CONTENT_TYPES: dict[str, str] = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".m3u8": "application/vnd.apple.mpegurl",
    ".ts": "video/mp2t",
    ".html": "text/html; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
}
_DEFAULT_CONTENT_TYPE = "application/octet-stream"

_FILE_CHUNK = 64 * 1024  # body writes for /files, /chunked and /truncated-length
_SLOW_CHUNK = 16 * 1024  # /slow writes small pieces so the pacing stays smooth
_DEFAULT_SLOW_RATE = 256 * 1024  # bytes per second when /slow has no ?rate=

_RANGE_RE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)

_NO_VIDEO_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>An article without any video</title></head>
<body>
<h1>An article without any video</h1>
<p>This page is plain text: there is no video, audio or embedded player on it.</p>
</body>
</html>
"""

# Errors that mean the client went away mid-response; the handler just stops writing.
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class LoggedRequest(NamedTuple):
    """One request seen by the server: method, raw path (with query) and Range header."""

    method: str
    path: str
    range: str | None


class _BadRequest(Exception):
    """Raised while routing to answer 400 with the message."""


class _Unsatisfiable(Exception):
    """Raised by range parsing when the requested range lies outside the file."""


def content_type_for(path: Path) -> str:
    """The Content-Type the server sends for a file, chosen by its suffix."""
    return _CONTENT_TYPES.get(path.suffix.lower(), _DEFAULT_CONTENT_TYPE)


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Resolve a single ``bytes=`` range to inclusive (start, end), or None for the whole file.

    Malformed and multi-range headers are ignored (RFC 9110 allows serving 200 instead);
    ranges that start past the end, or empty suffix ranges, raise _Unsatisfiable (416).
    """
    if header is None:
        return None
    match = _RANGE_RE.match(header)
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise _Unsatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    if last and int(last) < start:
        return None  # syntactically invalid, so ignored like any other bad Range
    if start >= size:
        raise _Unsatisfiable
    end = min(int(last), size - 1) if last else size - 1
    return start, end


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its MediaServer (for root, counters and the log)."""

    daemon_threads = True
    # Slow downloads may still be running at shutdown; never wait for them on close.
    block_on_close = False

    def __init__(self, address: tuple[str, int], media: MediaServer) -> None:
        self.media = media
        super().__init__(address, _Handler)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Count the connections being handled right now (tests wait for them to end)."""
        self.media._count_active(1)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.media._count_active(-1)

    def get_request(self) -> tuple[socket.socket, Any]:
        """Count every accepted connection, even one that never sends a request line."""
        connection = super().get_request()
        self.media._count_connection(connection[1])
        return connection

    def handle_error(
        self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        """Stay quiet about clients that hang up; report anything else (it's a bug)."""
        if isinstance(sys.exception(), (*_DISCONNECTS, TimeoutError)):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the media server behaviours; one instance per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "PRSNLTestMedia/1.0"
    # An idle keep-alive connection is dropped after this, so stray clients never pin threads.
    timeout = 30

    # -- plumbing ---------------------------------------------------------------------------

    @property
    def media(self) -> MediaServer:
        server = self.server
        assert isinstance(server, _HTTPServer)
        return server.media

    def log_message(self, format: str, *args: object) -> None:
        """Silence the default per-request stderr logging."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def _write(self, data: bytes) -> bool:
        """Write body bytes unless this is HEAD; False (and close) if the client is gone."""
        if self.command == "HEAD":
            return True
        try:
            self.wfile.write(data)
        except _DISCONNECTS:
            self.close_connection = True
            return False
        return True

    def _send_text(
        self, status: int, text: str, *, headers: Sequence[tuple[str, str]] = ()
    ) -> None:
        """A complete small text/plain response with Content-Length (keep-alive safe)."""
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self._write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _resolve(self, name: str) -> Path:
        """Map a route's relative file name to a path under root; 400 for escapes."""
        parts = name.split("/")
        if not name or name.startswith("/") or any(p in ("..", ".") for p in parts):
            raise _BadRequest(f"bad file name {name!r}")
        root = self.media.root.resolve()
        target = (root / name).resolve()
        # Symlinks could still point outside root; only serve what really lives below it.
        if not target.is_relative_to(root):
            raise _BadRequest(f"bad file name {name!r}")
        return target

    def _absolute(self, path: str) -> str:
        """Absolute URL for a path on this server, using the Host the client asked for."""
        host = self.headers.get("Host") or self.media.base_url.removeprefix("http://")
        return f"http://{host}{path}"

    # -- routing ----------------------------------------------------------------------------

    def _dispatch(self) -> None:
        range_header = self.headers.get("Range")
        self.media._log(LoggedRequest(self.command, self.path, range_header))
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = parse_qs(split.query)
        try:
            self._route(path, query)
        except _BadRequest as exc:
            self._send_text(HTTPStatus.BAD_REQUEST, f"400 Bad Request: {exc}\n")

    def _route(self, path: str, query: dict[str, list[str]]) -> None:
        head, _, rest = path.lstrip("/").partition("/")
        if head == "files":
            self._serve_file(self._resolve(rest))
        elif head == "hls":
            # Playlists reference their segments relatively, so /hls/<dir>/index.m3u8 leads
            # the client to /hls/<dir>/segment_000.ts, served from root/<dir>/.
            if "/" not in rest:
                raise _BadRequest("use /hls/<dir>/<file>")
            self._serve_file(self._resolve(rest))
        elif head == "chunked":
            self._serve_chunked(self._resolve(rest))
        elif head == "redirect":
            self._serve_redirect(rest)
        elif head == "redirect-to" and not rest:
            url = _query_value(query, "url")
            if not url:
                raise _BadRequest("missing ?url=")
            self._redirect(url)
        elif head == "flaky":
            self._serve_flaky(rest, query)
        elif head == "slow":
            rate = _int_query(query, "rate", _DEFAULT_SLOW_RATE)
            chunk = _int_query(query, "chunk", _SLOW_CHUNK)
            if rate <= 0 or chunk <= 0:
                raise _BadRequest("rate and chunk must be positive")
            self._serve_file(self._resolve(rest), rate=rate, chunk=chunk)
        elif head == "status":
            self._serve_status(rest)
        elif head == "page" and rest == "no-video.html":
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(_NO_VIDEO_PAGE)))
            self.end_headers()
            self._write(_NO_VIDEO_PAGE)
        elif head == "truncated-length":
            self._serve_truncated(self._resolve(rest))
        else:
            self._send_text(HTTPStatus.NOT_FOUND, "404 Not Found\n")

    # -- behaviours -------------------------------------------------------------------------

    def _serve_file(
        self, target: Path, *, rate: int | None = None, chunk: int = _SLOW_CHUNK
    ) -> None:
        """Serve a file with Range support; ``rate`` throttles the body to bytes/second."""
        if not target.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "404 Not Found\n")
            return
        stat = target.stat()
        size = stat.st_size
        try:
            byte_range = _parse_range(self.headers.get("Range"), size)
        except _Unsatisfiable:
            self._send_text(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                "416 Range Not Satisfiable\n",
                headers=[("Content-Range", f"bytes */{size}")],
            )
            return
        start, end = byte_range if byte_range is not None else (0, size - 1)
        length = end - start + 1
        self.send_response(HTTPStatus.PARTIAL_CONTENT if byte_range else HTTPStatus.OK)
        self.send_header("Content-Type", content_type_for(target))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True))
        if byte_range is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if self.command == "HEAD" or length <= 0:
            return
        with target.open("rb") as fh:
            fh.seek(start)
            if rate is None:
                self._copy(fh, length, _FILE_CHUNK)
            else:
                self._copy_throttled(fh, length, rate, chunk)

    def _copy(self, fh: BinaryIO, length: int, chunk: int) -> bool:
        """Copy ``length`` bytes from ``fh`` to the client; False if it disconnected."""
        remaining = length
        while remaining > 0:
            block = fh.read(min(chunk, remaining))
            if not block:
                # The file shrank under us; the promised length can't be met, so hang up.
                self.close_connection = True
                return False
            if not self._write(block):
                return False
            remaining -= len(block)
        return True

    def _copy_throttled(self, fh: BinaryIO, length: int, rate: int, chunk: int) -> None:
        """Copy at ``rate`` bytes/s: each write waits until its scheduled time.

        Pacing against the start time (not a fixed sleep per chunk) keeps the average rate
        accurate regardless of how long writes take. A stopping server cuts the wait short.
        """
        stopping = self.media._stopping
        started = time.monotonic()
        sent = 0
        while sent < length:
            delay = started + sent / rate - time.monotonic()
            if delay > 0 and stopping.wait(delay):
                self.close_connection = True
                return
            block = fh.read(min(chunk, length - sent))
            if not block:
                self.close_connection = True
                return
            if not self._write(block):
                return
            sent += len(block)

    def _serve_chunked(self, target: Path) -> None:
        """Serve the file with Transfer-Encoding: chunked and no Content-Length."""
        if not target.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "404 Not Found\n")
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type_for(target))
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if self.command == "HEAD":
            return
        with target.open("rb") as fh:
            while block := fh.read(_FILE_CHUNK):
                if not self._write(b"%X\r\n%s\r\n" % (len(block), block)):
                    return
        self._write(b"0\r\n\r\n")

    def _serve_redirect(self, rest: str) -> None:
        """/redirect/<n>/<name>: n hops of 302, the last one to /files/<name>."""
        count, _, name = rest.partition("/")
        if not count.isdigit() or int(count) < 1:
            raise _BadRequest("use /redirect/<n>/<name> with n >= 1")
        self._resolve(name)  # reject bad names at the first hop, not only at the end
        hops = int(count)
        target = f"/files/{name}" if hops == 1 else f"/redirect/{hops - 1}/{name}"
        self._redirect(self._absolute(target))

    def _serve_flaky(self, rest: str, query: dict[str, list[str]]) -> None:
        """/flaky/<key>/<name>: the first ?fail=N (default 1) requests per key get 503."""
        key, _, name = rest.partition("/")
        if not key:
            raise _BadRequest("use /flaky/<key>/<name>")
        target = self._resolve(name)
        failures = _int_query(query, "fail", 1)
        if self.media._count_flaky(key) <= failures:
            self._send_text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "503 Service Unavailable (flaky test route)\n",
                headers=[("Retry-After", "1")],
            )
            return
        self._serve_file(target)

    def _serve_status(self, rest: str) -> None:
        """/status/<code>: answer with that status and a short text body."""
        if not rest.isdigit() or not 200 <= int(rest) <= 599:
            raise _BadRequest("use /status/<code> with 200 <= code <= 599")
        code = int(rest)
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = ""
        if code in (HTTPStatus.NO_CONTENT, HTTPStatus.NOT_MODIFIED):
            # These statuses must not carry a body (RFC 9110).
            self.send_response(code, phrase or None)
            self.end_headers()
            return
        self.send_response(code, phrase or None)
        body = f"{code} {phrase}".strip().encode() + b"\n"
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self._write(body)

    def _serve_truncated(self, target: Path) -> None:
        """Announce the full Content-Length, send half of the bytes, then close."""
        if not target.is_file():
            self._send_text(HTTPStatus.NOT_FOUND, "404 Not Found\n")
            return
        size = target.stat().st_size
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type_for(target))
        self.send_header("Content-Length", str(size))
        self.end_headers()
        # The connection can't be reused after a short body, so it always closes.
        self.close_connection = True
        if self.command == "HEAD":
            return
        with target.open("rb") as fh:
            self._copy(fh, size // 2, _FILE_CHUNK)


def _query_value(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values else None


def _int_query(query: dict[str, list[str]], name: str, default: int) -> int:
    value = _query_value(query, name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise _BadRequest(f"?{name}= must be an integer") from None


class MediaServer:
    """A threaded HTTP server on loopback that serves test media from ``root``.

    Routes (``<name>`` is a path relative to root; ``..`` is rejected with 400):
    ``/files/<name>`` (GET/HEAD, Range), ``/chunked/<name>``, ``/redirect/<n>/<name>``,
    ``/redirect-to?url=``, ``/hls/<dir>/<file>``, ``/flaky/<key>/<name>?fail=N``,
    ``/slow/<name>?rate=B&chunk=N``, ``/status/<code>``, ``/page/no-video.html`` and
    ``/truncated-length/<name>``; anything else is 404.
    """

    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root)
        self.host = host
        self.port = port
        self._server: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._requests: list[LoggedRequest] = []
        self._connections: list[Any] = []
        self._active = 0
        self._flaky: dict[str, int] = {}
        self._stopping = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> MediaServer:
        """Bind (port 0 picks a free port) and serve in a daemon thread; returns self."""
        if self._server is not None:
            raise RuntimeError("MediaServer is already running")
        self._stopping.clear()
        server = _HTTPServer((self.host, self.port), self)
        self.port = server.server_address[1]
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"media-server-{self.port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent); in-flight slow bodies are cut."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> MediaServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("MediaServer is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        """Absolute URL for a server path, e.g. ``url("/files/a.mp4")``."""
        return f"{self.base_url}/{path.lstrip('/')}"

    # -- observation ------------------------------------------------------------------------

    @property
    def requests(self) -> list[LoggedRequest]:
        """A snapshot of every request so far as (method, path, range header) tuples."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> list[Any]:
        """The peer address of every TCP connection accepted so far."""
        with self._lock:
            return list(self._connections)

    def reset_counters(self) -> None:
        """Clear the flaky-route counters, the request log and the connection log."""
        with self._lock:
            self._flaky.clear()
            self._requests.clear()
            self._connections.clear()

    @property
    def active_connections(self) -> int:
        """Connections this server is handling at the moment."""
        with self._lock:
            return self._active

    def _count_active(self, change: int) -> None:
        with self._lock:
            self._active += change

    def _count_connection(self, peer: Any) -> None:
        with self._lock:
            self._connections.append(peer)

    def _log(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._requests.append(entry)

    def _count_flaky(self, key: str) -> int:
        """Count one more request for a flaky key and return the new total."""
        with self._lock:
            self._flaky[key] = self._flaky.get(key, 0) + 1
            return self._flaky[key]


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: serve a directory until Ctrl-C, printing the base URL."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.media_server",
        description="Serve test media over HTTP with the PRSNL test routes "
        "(/files, /chunked, /redirect, /hls, /flaky, /slow, /status, ...).",
    )
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="directory to serve")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free)")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        parser.error(f"--root {args.root} is not a directory")
    # Started from a background job, the shell hands us SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler: take Ctrl-C (and SIGTERM) back explicitly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = MediaServer(args.root, host=args.host, port=args.port).start()
    print(f"serving {args.root.resolve()} at {server.base_url} (Ctrl-C to stop)", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
