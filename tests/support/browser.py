"""Debian's headless Chromium driven by Playwright, and where the browser tests keep screenshots.

Playwright's own browser downloads are never used: the project installs
``chromium`` from Debian (scripts/bootstrap.sh) and Playwright launches it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = os.environ.get("PRSNL_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS_VARIABLE = "PRSNL_TEST_ARTIFACTS"


def artifacts_dir(default: Path) -> Path:
    """``$PRSNL_TEST_ARTIFACTS`` when set, else ``default``; created."""
    folder = Path(os.environ.get(ARTIFACTS_VARIABLE) or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system Chromium, headless; a clear error when it is not installed."""
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        raise RuntimeError(
            f"{CHROMIUM} not found: run `make deps` (installs Debian's chromium) "
            "or point PRSNL_TEST_CHROMIUM at a Chromium binary"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()
