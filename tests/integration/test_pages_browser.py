"""The public pages in a real browser: headless Chromium, JavaScript off, the app on loopback.

Drives Debian's Chromium (``/usr/bin/chromium``, from ``make system-deps``)
with the ``playwright`` package; ``playwright install`` is never needed.
The check-in form is filled and sent with the real, the duress and a wrong
phrase; the release page's download and key links are followed and their
bytes decrypted. The run refreshes the screenshots the README shows,
``docs/screenshots/checkin.png`` and ``docs/screenshots/release.png``.

Without Chromium the tests skip, saying why, except in CI, where they fail.
"""

from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, ConsoleMessage, Page
from werkzeug.serving import make_server

from server import migrate
from server.app import HTML_CSP, create_app
from server.clock import ManualClock
from server.config import Config
from server.keyfile import create_key_file
from tests.conftest import ROOT
from tests.server._pages import (
    DURESS_PHRASE,
    HANDLE,
    HOSTILE,
    PHRASE,
    Vault,
    armed_vault,
    released_vault,
)
from vault import age

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

SCREENSHOTS = ROOT / "docs" / "screenshots"
VIEWPORT = {"width": 960, "height": 900}
TIMEOUT_MS = 15_000


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    """The app on a fresh SQLite database and a clock the test moves."""
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    config = Config.for_data_dir(data_dir)
    migrate.upgrade(config.database_url)
    create_key_file(config.key_file, "pages.test/log")
    app = create_app(config, clock=ManualClock())
    app.config["TESTING"] = True
    yield app
    app.extensions["evault"].engine.dispose()


@pytest.fixture
def live_url(app: Flask) -> Iterator[str]:
    """The app served by werkzeug on a free loopback port, in a thread."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page with JavaScript off; a CSP refusal in the console fails the test."""
    context = browser.new_context(
        java_script_enabled=False,
        accept_downloads=True,
        viewport=VIEWPORT,  # type: ignore[arg-type]
    )
    context.set_default_timeout(TIMEOUT_MS)
    messages: list[str] = []

    def record(message: ConsoleMessage) -> None:
        # Chromium reports a blocked stylesheet, image or form target here.
        # ("Failed to load resource" lines are the 403 and the favicon's 404.)
        if "Content Security Policy" in message.text or "Refused" in message.text:
            messages.append(f"{message.type}: {message.text}")

    page = context.new_page()
    page.on("console", record)
    try:
        yield page
    finally:
        context.close()
    assert messages == [], f"the browser refused something: {messages}"


def _screenshot(page: Page, name: str) -> None:
    """A full-page PNG in docs/screenshots, replaced whole (written aside, then renamed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    final = SCREENSHOTS / name
    partial = final.with_name(f".{name}.partial")
    page.screenshot(path=str(partial), full_page=True, type="png")
    os.replace(partial, final)


def _submit(page: Page, handle: str, phrase: str) -> int:
    """Fill and send the check-in form; the status of the page that answers."""
    page.fill("#handle", handle)
    page.fill("#phrase", phrase)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    response = navigation.value
    assert response is not None
    assert response.headers["content-security-policy"] == HTML_CSP
    return response.status


def _stylesheet_loaded(page: Page) -> bool:
    found = page.locator("link[rel=stylesheet]").get_attribute("href")
    return found is not None and found.startswith("/static/evault.css?v=")


def test_check_in_with_the_browser(app: Flask, live_url: str, page: Page) -> None:
    config = app.extensions["evault"].config
    armed_vault(app, config, app.test_client(), [("a.txt", b"a")])
    styles: list[int] = []
    page.on(
        "response", lambda r: styles.append(r.status) if "/static/evault.css" in r.url else None
    )
    response = page.goto(f"{live_url}/checkin")
    assert response is not None
    assert response.status == 200
    assert response.headers["cache-control"] == "no-store"
    assert _stylesheet_loaded(page)
    assert page.locator("#phrase").get_attribute("type") == "password"
    _screenshot(page, "checkin.png")

    assert _submit(page, HANDLE, PHRASE) == 200
    real = page.locator("main").inner_text()
    assert "Checked in. Your next check-in is due before" in real
    page.goto(f"{live_url}/checkin")
    assert _submit(page, HANDLE, DURESS_PHRASE) == 200
    assert page.locator("main").inner_text() == real
    page.goto(f"{live_url}/checkin")
    assert _submit(page, HANDLE, "not the phrase") == 403
    refused = page.locator("main").inner_text()
    assert "Not accepted. Check the handle and phrase and try again." in refused
    assert "not the phrase" not in page.content()
    assert styles
    assert set(styles) <= {200, 304}


def _download(page: Page, selector: str) -> bytes:
    with page.expect_download() as download:
        page.click(selector)
    path = download.value.path()
    return Path(path).read_bytes()


def test_the_release_page_in_the_browser(app: Flask, live_url: str, page: Page) -> None:
    config = app.extensions["evault"].config
    vault: Vault = released_vault(app, config, app.test_client())
    response = page.goto(f"{live_url}/release/{vault.vault}")
    assert response is not None
    assert response.status == 200
    assert response.headers["content-security-policy"] == HTML_CSP
    assert _stylesheet_loaded(page)
    assert page.locator("script").count() == 0
    assert page.locator("h1").inner_text() == "Evidence released for Ana Reporter"
    # The hostile file name is shown as text, not run as markup.
    assert page.locator("h3", has_text=HOSTILE).count() == 1
    _screenshot(page, "release.png")

    key_text = _download(page, f'a[href="/release/{vault.vault}/key.txt"]').decode("ascii")
    assert key_text == f"{vault.release}\n"
    assert page.locator("pre.key").inner_text() == str(vault.release)
    identity = age.X25519Identity.parse(key_text.strip())
    for item, plaintext in vault.who.items.items():
        data = _download(page, f'a[href="/release/{vault.vault}/items/{item}.age"]')
        out = io.BytesIO()
        age.decrypt(io.BytesIO(data), out, [identity])
        assert out.getvalue() == plaintext
        article = page.locator(f"#item-{item}").inner_text()
        assert re.search(rf"age -d -i key\.txt -o \S+ {item}\.age", article)
