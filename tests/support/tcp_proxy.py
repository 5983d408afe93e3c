"""A TCP proxy on loopback that can cut a service off and bring it back.

Used to take PostgreSQL away from one stack without stopping the PostgreSQL
every other test shares: the stack's DSN points at the proxy; :meth:`cut`
closes every connection and refuses new ones, as a stopped server would.
:meth:`trip_after` cuts in the middle of a transfer, after so many bytes.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._cut = False
        self._stopped = False
        self._trip_at: int | None = None
        self._tripped = threading.Event()
        self.sent = 0  # bytes passed to the target

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> TcpProxy:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stopped = True
        self.cut()
        self._listener.close()

    def cut(self) -> None:
        """Close every proxied connection and refuse new ones."""
        with self._lock:
            self._cut = True
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self._open.clear()

    def trip_after(self, upstream_bytes: int) -> threading.Event:
        """Cut once ``upstream_bytes`` more bytes went to the target (mid-request); the
        returned event is set then."""
        with self._lock:
            self._trip_at = self.sent + upstream_bytes
            self._tripped.clear()
        return self._tripped

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def _count(self, sent: int) -> bool:
        """Count bytes going to the target; True when the armed trip point is passed."""
        with self._lock:
            self.sent += sent
            if self._trip_at is None or self.sent < self._trip_at:
                return False
            self._trip_at = None
            return True

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._cut
            if refused:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._open.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                args = (source, sink, source is client)
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream and self._count(len(data)):
                    self.cut()
                    self._tripped.set()
                    return
                sink.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() first: it wakes the other direction's recv(); a bare close() would
            # leave it blocked on a descriptor number the next connection may reuse.
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.close()
            with self._lock:
                self._open.discard(source)
                self._open.discard(sink)
