"""Backup → wipe the catalog and the media → restore: every item streams again, byte for byte."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clips import make_clip
from tests.support.media_server import MediaServer
from tests.support.stack import Stack, drop_database, running_stack

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MediaServer]:
    root = tmp_path_factory.mktemp("backup-clips")
    make_clip(root / "a.mp4", duration=2, width=320, height=240)
    make_clip(root / "b.webm", duration=2, width=320, height=240, vcodec="vp9", acodec="opus")
    with MediaServer(root) as server:
        yield server


def janitor(stack: Stack, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prsnl_janitor", *args],
        env=stack.env,
        capture_output=True,
        text=True,
        check=check,
    )


def test_backup_wipe_restore_streams_every_item_byte_identical(
    tmp_path: Path, clip_server: MediaServer
) -> None:
    backups = tmp_path / "backups"
    with running_stack(tmp_path / "stack", downloaders=1) as stack:
        api = stack.client(stack.create_key("alice"))
        ids = []
        for name in ("a.mp4", "b.webm"):
            created = api.capture(clip_server.url(f"/files/{name}"))
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])
        items = [api.wait_for(item_id) for item_id in ids]
        assert [i["status"] for i in items] == ["ready", "ready"], items
        videos = {i: api.get(f"/api/v1/items/{i}/video").content for i in ids}
        thumbs = {i: api.get(f"/api/v1/items/{i}/thumbnails/320").content for i in ids}

        first = janitor(stack, "backup", "--to", str(backups)).stdout
        again = janitor(stack, "backup", "--to", str(backups)).stdout
        assert " 0 copied now" in again and " 0 copied now" not in first, (first, again)

        stack.stop_all()
        asyncio.run(drop_database(stack.database_url))
        shutil.rmtree(stack.media_root)
        restored = janitor(stack, "restore", "--from", str(backups))
        assert "restored" in restored.stdout, restored.stderr

        stack.start("ingest")
        stack.wait_ready()
        assert {i: api.get(f"/api/v1/items/{i}/video").content for i in ids} == videos
        assert {i: api.get(f"/api/v1/items/{i}/thumbnails/320").content for i in ids} == thumbs
        assert [api.item(i)["status"] for i in ids] == ["ready", "ready"]

        # Refused on a catalog that is not empty.
        refused = janitor(stack, "restore", "--from", str(backups), check=False)
        assert refused.returncode != 0 and "not empty" in refused.stderr

        newest = sorted(p.parent for p in backups.glob("*/manifest.json"))[-1]
        assert "verifies" in janitor(stack, "restore", "--from", str(newest), "--verify").stdout
        entry = json.loads((newest / "manifest.json").read_text())["files"][0]
        blob = backups / "files" / entry["sha256"]
        data = bytearray(blob.read_bytes())
        data[len(data) // 2] ^= 0xFF
        blob.write_bytes(bytes(data))
        broken = janitor(stack, "restore", "--from", str(newest), "--verify", check=False)
        assert broken.returncode != 0
        assert f"{entry['key']}: checksum mismatch" in broken.stderr
