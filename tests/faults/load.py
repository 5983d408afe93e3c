"""A bounded load generator: captures of locally served clips, kept in flight, loopback only.

Each capture has a link of its own (a per-capture file name, a symlink to one
clip), so every one is a new item. A refused request while a service is down
(503, a dropped connection) is sent again after a pause; an answer of 200 for
a link already sent is its own earlier capture, accepted before the connection
dropped. The generator stops after ``total`` accepted captures or ``deadline``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

RETRY_PAUSE = 0.2
POLL = 0.25


@dataclass
class Load:
    """``total`` captures for one owner, at most ``window`` of them not yet ready or failed."""

    base_url: str
    key: str
    clips: Path  # the media server's root: per-capture links are made here
    clip: str  # the clip's file name in ``clips``
    media_url: str  # the media server's base URL
    tag: str
    total: int
    window: int
    rate: int = 400_000  # bytes/s the media server sends each download at
    deadline: float = 600.0
    accepted: dict[str, str] = field(default_factory=dict)  # item id -> link
    refused: list[str] = field(default_factory=list)  # 4xx answers (a bug: links are good)
    retries: int = 0
    _thread: threading.Thread | None = None
    _done: threading.Event = field(default_factory=threading.Event)

    def link(self, index: int) -> str:
        name = f"{self.tag}-{index}{Path(self.clip).suffix}"
        target = self.clips / name
        if not target.is_symlink():
            target.symlink_to(self.clip)
        return f"{self.media_url}/slow/{name}?rate={self.rate}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"load-{self.tag}", daemon=True)
        self._thread.start()

    @property
    def sent_all(self) -> bool:
        return self._done.is_set()

    def join(self) -> None:
        assert self._thread is not None
        self._thread.join(self.deadline)

    def _run(self) -> None:
        ends = time.monotonic() + self.deadline
        headers = {"Authorization": f"Bearer {self.key}"}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=10) as client:
            for index in range(self.total):
                url = self.link(index)
                while time.monotonic() < ends and not self._send(client, url):
                    self.retries += 1
                    time.sleep(RETRY_PAUSE)
                while time.monotonic() < ends and self._in_flight(client) >= self.window:
                    time.sleep(POLL)
        self._done.set()

    def _send(self, client: httpx.Client, url: str) -> bool:
        """True once the capture is accepted (or refused for good); False to send it again."""
        try:
            answer = client.post("/api/v1/captures", json={"url": url})
        except httpx.HTTPError:
            return False
        if answer.status_code in (200, 202):
            self.accepted[str(answer.json()["id"])] = url
            return True
        if answer.status_code >= 500 or answer.status_code == 429:
            return False
        self.refused.append(f"{answer.status_code} {answer.text[:200]}")
        return True

    def _in_flight(self, client: httpx.Client) -> int:
        try:
            counts = client.get("/api/v1/storage").json()["you"]["items"]
        except (httpx.HTTPError, ValueError, KeyError):
            return self.window  # the gateway is down: hold on
        return len(self.accepted) - int(counts.get("ready", 0)) - int(counts.get("failed", 0))
