"""What the browser tests share: Debian's Chromium, headless, driven by Playwright.

``playwright install`` is never needed: the tests launch ``/usr/bin/chromium``
(``make system-deps`` installs it). Without it the tests skip, saying why,
except in CI, where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "browser", "launch"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def launch(*needed: Path) -> Iterator[Browser]:
    """Chromium, headless, while the caller iterates; skip (fail in CI) without ``needed``."""
    missing = [str(path) for path in (CHROMIUM, *needed) if not path.is_file()]
    if missing:
        reason = f"{', '.join(missing)} missing (make system-deps; make test installs them)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI requires them")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, for the tests of one module."""
    yield from launch()
