"""The prsnl command-line client against every service running as its own process."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from tests.support.media_server import MediaServer
from tests.support.stack import Api, free_port

pytestmark = pytest.mark.e2e


def cli_env(api: Api, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PRSNL_", "TTY_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / "config"),
        PRSNL_API_URL=api.base_url,
        PRSNL_API_KEY=api.key,
    )
    env.update(extra)
    return env


def prsnl(
    api: Api, home: Path, *args: str, timeout: float = 120, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prsnl_cli", *args],
        env=cli_env(api, home, **extra),
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(scope="module")
def ready_item(alice: Api, media: MediaServer, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One item saved through `prsnl save --wait`, with its progress bars forced on a pipe."""
    home = tmp_path_factory.mktemp("cli")
    url = media.url("/slow/h264.mp4?rate=3000000&cli=ready")
    result = prsnl(alice, home, "save", "--wait", "--json", url, TTY_COMPATIBLE="1")
    assert result.returncode == 0, result.stderr
    [item] = as_json(result)
    assert item["status"] == "ready" and item["links"]["video"]
    item["_progress_output"] = result.stderr
    return item


def test_save_wait_follows_live_progress_to_ready(ready_item: dict, alice: Api) -> None:
    bars = ready_item["_progress_output"]
    # The bar went through the download stage with byte counts before it was done.
    assert "downloading" in bars and " MB" in bars and "100%" in bars, bars[-2000:]
    assert alice.item(ready_item["id"])["status"] == "ready"


def test_save_without_wait_returns_the_pending_item_and_a_twin_is_reported(
    alice: Api, media: MediaServer, home: Path
) -> None:
    url = media.url("/files/small.mp4?cli=twin")
    first = prsnl(alice, home, "save", url)
    assert first.returncode == 0, first.stderr
    item_id, status = first.stdout.split()[:2]
    assert status == "pending" and alice.item(item_id)["url"] == url
    again = prsnl(alice, home, "save", "--json", url)
    assert again.returncode == 0 and as_json(again)[0]["duplicate"] is True
    assert as_json(again)[0]["id"] == item_id


def test_ls_follows_filters_and_show_prints_the_item(
    ready_item: dict, alice: Api, bob: Api, home: Path
) -> None:
    listed = as_json(prsnl(alice, home, "ls", "--json", "--status", "ready", "--limit", "0"))
    assert ready_item["id"] in [i["id"] for i in listed]
    assert {i["status"] for i in listed} == {"ready"}
    assert len(as_json(prsnl(alice, home, "ls", "--json", "-n", "1"))) == 1
    words = as_json(prsnl(alice, home, "ls", "--json", "--q", "h264", "--platform", "direct"))
    assert ready_item["id"] in [i["id"] for i in words]
    assert all("h264" in f"{i['title']} {i['url']}" and i["platform"] == "direct" for i in words)
    assert ready_item["id"] not in prsnl(bob, home, "ls").stdout
    table = prsnl(alice, home, "ls", "--status", "ready")
    assert table.returncode == 0 and ready_item["id"] in table.stdout and "ready" in table.stdout
    shown = prsnl(alice, home, "show", ready_item["id"])
    assert shown.returncode == 0, shown.stderr
    assert "h264" in shown.stdout and "1280x720" in shown.stdout
    assert as_json(prsnl(alice, home, "show", "--json", ready_item["id"]))["size"] > 0


def test_get_writes_the_bytes_of_the_stream(ready_item: dict, alice: Api, home: Path) -> None:
    expected = alice.get(f"/api/v1/items/{ready_item['id']}/video").content
    result = prsnl(alice, home, "get", "--json", ready_item["id"], "-o", "clip.mp4")
    assert result.returncode == 0, result.stderr
    facts = as_json(result)
    assert facts["size"] == len(expected) and facts["resumed_from"] == 0
    assert (home / "clip.mp4").read_bytes() == expected
    assert not list(home.glob("*.part*"))
    again = prsnl(alice, home, "get", ready_item["id"], "-o", "clip.mp4")
    assert again.returncode == 2 and "--force" in again.stderr
    default = prsnl(alice, home, "get", ready_item["id"])
    assert default.returncode == 0, default.stderr
    [named] = [p for p in home.glob("*.mp4") if p.name != "clip.mp4"]
    assert ready_item["id"][:8] in named.name and named.read_bytes() == expected


def test_an_interrupted_get_resumes_with_a_range_request(
    ready_item: dict, alice: Api, home: Path
) -> None:
    expected = alice.get(f"/api/v1/items/{ready_item['id']}/video").content
    target, part = home / "resumed.mp4", home / "resumed.mp4.part"
    rate = str(max(64_000, len(expected) // 8))  # about eight seconds for the whole file
    process = subprocess.Popen(
        [
            *[sys.executable, "-m", "prsnl_cli", "get", ready_item["id"]],
            *["-o", str(target), "--limit-rate", rate],
        ],
        env=cli_env(alice, home),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr
    assert "resume" in stderr
    kept = part.stat().st_size
    assert 0 < kept < len(expected) and not target.exists()
    # Mark the bytes already there: if the second run fetched them again, they would be
    # overwritten by the real ones. They survive only if it asked for the rest alone.
    part.write_bytes(b"\xab" * kept)
    result = prsnl(alice, home, "get", "--json", ready_item["id"], "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert as_json(result)["resumed_from"] == kept
    assert target.read_bytes() == b"\xab" * kept + expected[kept:]
    assert not part.exists() and not Path(f"{part}.etag").exists()


def test_a_part_of_another_version_of_the_file_is_downloaded_again(
    ready_item: dict, alice: Api, home: Path
) -> None:
    expected = alice.get(f"/api/v1/items/{ready_item['id']}/video").content
    target = home / "stale.mp4"
    Path(f"{target}.part").write_bytes(b"\xab" * 1000)
    Path(f"{target}.part.etag").write_text('"0-stale"\n')
    result = prsnl(alice, home, "get", "--json", ready_item["id"], "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert as_json(result)["resumed_from"] == 0
    assert target.read_bytes() == expected


def test_retry_of_a_failed_item_and_its_exit_codes(
    alice: Api, media: MediaServer, home: Path
) -> None:
    url = media.url("/flaky/cli-retry/small.mp4?fail=4")
    failed = prsnl(alice, home, "save", "--wait", url)
    assert failed.returncode == 1, failed.stderr
    item_id = failed.stdout.split()[0]
    assert "failed: source_unavailable" in failed.stdout
    retried = prsnl(alice, home, "retry", "--wait", "--json", item_id)
    assert retried.returncode == 0, retried.stderr
    assert as_json(retried)[0]["status"] == "ready"
    again = prsnl(alice, home, "retry", item_id)
    assert again.returncode == 7 and "not_retryable" in again.stderr


def test_rm_deletes_and_an_unknown_id_exits_4(alice: Api, media: MediaServer, home: Path) -> None:
    response = alice.capture(media.url("/files/small.mp4?cli=rm"))
    item_id = response.json()["id"]
    removed = prsnl(alice, home, "rm", item_id)
    assert removed.returncode == 0 and f"deleted {item_id}" in removed.stdout
    assert alice.get(f"/api/v1/items/{item_id}").status_code == 404
    for command in (["rm", item_id], ["show", item_id], ["get", item_id], ["retry", item_id]):
        result = prsnl(alice, home, *command)
        assert result.returncode == 4, (command, result.stderr)
        assert "not_found" in result.stderr
    malformed = prsnl(alice, home, "show", "../../healthz")
    assert malformed.returncode == 4


def test_exit_codes_of_a_refused_link_a_wrong_key_and_no_api(
    alice: Api, home: Path, private_media: MediaServer
) -> None:
    refused = prsnl(alice, home, "save", "--json", private_media.url("/files/small.mp4"))
    assert refused.returncode == 5
    [entry] = as_json(refused)
    assert entry["error"]["code"] == "blocked_address" and entry["error"]["status"] == 422
    text = prsnl(alice, home, "save", private_media.url("/files/small.mp4"))
    assert text.returncode == 5 and "blocked_address" in text.stderr
    wrong = prsnl(alice, home, "ls", PRSNL_API_KEY="prsnl_not-a-key")
    assert wrong.returncode == 3 and "unauthorized" in wrong.stderr
    wrong_json = prsnl(alice, home, "ls", "--json", PRSNL_API_KEY="prsnl_not-a-key")
    assert json.loads(wrong_json.stderr)["error"]["code"] == "unauthorized"
    unknown = prsnl(alice, home, "show", str(uuid.uuid4()))
    assert unknown.returncode == 4 and "not_found" in unknown.stderr
    nowhere = prsnl(alice, home, "ls", PRSNL_API_URL=f"http://127.0.0.1:{free_port()}")
    assert nowhere.returncode == 6 and "Cannot reach" in nowhere.stderr
    no_key = prsnl(alice, home, "ls", PRSNL_API_KEY="")
    assert no_key.returncode == 3 and "prsnl login" in no_key.stderr
    assert prsnl(alice, home, "--api-key", alice.key, "ls", PRSNL_API_KEY="").returncode == 0
    assert prsnl(alice, home, "--api-key", "prsnl_nope", "ls").returncode == 3
    assert prsnl(alice, home, "save").returncode == 2


def test_login_keeps_the_key_in_a_private_config_file(alice: Api, home: Path) -> None:
    bad = prsnl(alice, home, "login", "--key", "prsnl_wrong", PRSNL_API_KEY="")
    assert bad.returncode == 3
    config = home / "config" / "prsnl" / "config.toml"
    assert not config.exists()
    good = prsnl(alice, home, "login", "--key", alice.key, PRSNL_API_KEY="")
    assert good.returncode == 0, good.stderr
    assert config.stat().st_mode & 0o777 == 0o600
    listed = prsnl(alice, home, "ls", "--json", PRSNL_API_KEY="", PRSNL_API_URL="")
    assert listed.returncode == 0, listed.stderr


class Lines:
    """The lines a process writes to one pipe, read in a thread so waits have deadlines."""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.reader.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            self.lines.put(line)

    def until(self, predicate: Any, within: float) -> Iterator[str]:
        deadline = time.monotonic() + within
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no matching line within {within} s") from None
            yield line
            if predicate(line):
                return


def test_watch_follows_the_owners_items_only(
    alice: Api, bob: Api, media: MediaServer, home: Path
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "prsnl_cli", "watch", "--json"],
        env=cli_env(alice, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    out, err = Lines(process.stdout), Lines(process.stderr)
    try:
        list(err.until(lambda line: "watching" in line, 30))
        theirs = bob.capture(media.url("/files/small.mp4?cli=watch-bob")).json()["id"]
        mine = alice.capture(media.url("/slow/small.mp4?rate=400000&cli=watch")).json()["id"]
        ended = lambda line: mine in line and '"ready"' in line  # noqa: E731
        events = [json.loads(line) for line in out.until(ended, 90)]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        for lines, pipe in ((out, process.stdout), (err, process.stderr)):
            lines.reader.join(timeout=10)
            pipe.close()
    assert process.returncode == 0
    kinds = [e["event"] for e in events if e["item_id"] == mine]
    assert kinds[0] == "created" and "progress" in kinds
    assert events[-1]["status"] == "ready"
    assert all(e["item_id"] != theirs for e in events)
