"""`make demo` fills a running install with sample items through the real pipeline (A8)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.stack import Api, Stack

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def test_demo_fills_a_fresh_owner_with_ready_items(stack: Stack, tmp_path: Path) -> None:
    key = stack.create_key("demo")
    key_file = tmp_path / "api-key"
    key_file.write_text(key)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--api",
            stack.base_url,
            "--key-file",
            str(key_file),
            "--timeout",
            "180",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    items = Api(stack.base_url, key).get("/api/v1/items").json()["items"]
    assert len(items) == 5
    assert {i["status"] for i in items} == {"ready"}
    assert {i["platform"] for i in items} == {"direct", "hls"}
    assert "ready" in result.stdout
