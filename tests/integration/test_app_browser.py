"""``evault app`` in a real browser: headless Chromium driven by Playwright, a real server.

The app runs as the reporter runs it (``evault app --no-browser``, the link
read from what it prints); the server is ``evault-server run`` on loopback.
A new reporter goes from the first screen to a folder stored in the vault
(making keys, pasting the invite link), checks in with the big button, locks
and unlocks, and finally destroys the keys with panic. Every screen passes
the axe-core accessibility audit with no serious or critical violation. The
door is tested from outside: a wrong Host (DNS rebinding), a request from
another origin, no session cookie, and the launch link used twice are all
refused. The screenshots in README.md come from this run.
"""

from __future__ import annotations

import difflib
import json
import os
import signal
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.conftest import ROOT

from .browser_env import launch
from .client_env import (
    DURESS,
    EVAULT,
    PASSPHRASE,
    Person,
    ServerProcess,
    _base_env,
    enroll,
    enroll_reporter,
    pin,
)
from .switch_env import Mailbox, quick_switches, wait_for
from .test_coercers_view import ORDINARY, REAL, Normaliser, _write

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

AXE = ROOT / ".venv" / "node" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "docs" / "screenshots"
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium, with axe-core for the audits."""
    yield from launch(AXE)


class AppProcess:
    """``evault app --no-browser`` for one client home; the link it printed."""

    def __init__(self, home: Path) -> None:
        self.env = _base_env() | {"EVAULT_HOME": str(home), "HOME": str(home.parent)}
        self.process = subprocess.Popen(
            [EVAULT, "app", "--no-browser", "--insecure-fast-kdf"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stderr is not None
        self.link = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not self.link:
            line = self.process.stderr.readline()
            if not line:
                break
            if "/open?key=" in line:
                self.link = line.strip()
        assert self.link, "evault app printed no link"
        parts = urllib.parse.urlsplit(self.link)
        self.origin = f"{parts.scheme}://{parts.netloc}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()


def _audit(page: Page, screen: str) -> None:
    """axe-core on the page as it is: no serious or critical violation."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document)")
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], f"{screen}: {json.dumps(bad)}"


def _shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"app-{name}.png"), full_page=True)


def test_a_new_reporter_goes_from_the_first_screen_to_a_folder_stored(
    browser: Browser, tmp_path: Path
) -> None:
    evidence = tmp_path / "evidence"
    (evidence / "photos").mkdir(parents=True)
    (evidence / "ledger-2026.pdf").write_bytes(b"%PDF-1.7 payments\n" * 200)
    (evidence / "photos" / "market.jpg").write_bytes(os.urandom(50_000))
    (evidence / "link-elsewhere").symlink_to("/etc/hostname")

    with ServerProcess.started(tmp_path / "server") as server:
        fragment = urllib.parse.urlencode(
            {"code": server.invite("reporter"), "log-key": server.log_key}
        )
        invite = f"{server.url}/invite#{fragment}"
        app = AppProcess(tmp_path / "laptop" / "evault")
        try:
            # bypass_csp lets the test put axe-core in the page; the app itself has none.
            context = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            cookie = _walk(page, app, invite, evidence, server)
            context.close()
            _door_from_outside(app, cookie)
        finally:
            app.stop()


def _walk(page: Page, app: AppProcess, invite: str, evidence: Path, server: ServerProcess) -> str:
    """The screens, in the order a new reporter meets them; the session cookie's value."""
    page.goto(app.link)
    assert page.url == f"{app.origin}/welcome"
    _audit(page, "welcome")
    _shot(page, "welcome")
    # A weak passphrase is refused, with the reason.
    page.fill("#name", "Rana Reporter")
    page.fill("#passphrase", "password1234")
    page.fill("#passphrase2", "password1234")
    page.click("button.primary")
    assert "passphrase too easy to guess" in page.inner_text("[role=alert]")
    page.fill("#name", "Rana Reporter")
    page.fill("#passphrase", PASSPHRASE)
    page.fill("#passphrase2", PASSPHRASE)
    page.click("button.primary")
    assert page.url == f"{app.origin}/register"
    assert "Your fingerprint is" in page.inner_text("[role=status]")
    _audit(page, "register")
    page.fill("#link", "not a link")
    page.click("button.primary")
    assert "this is not an invite link" in page.inner_text("[role=alert]")
    page.fill("#link", invite)
    page.click("button.primary")
    assert page.url == f"{app.origin}/", page.inner_text("main")
    assert "Registered with" in page.inner_text("[role=status]")
    assert "Your vault is empty" in page.inner_text("main")
    _audit(page, "vault (empty)")

    page.click("text=Add a folder or drag files")
    _audit(page, "add")
    page.click("text=Or type where they are on this computer")
    page.fill("#paths", str(evidence))
    page.click("button.primary")
    page.wait_for_selector("text=Upload finished", timeout=120_000)
    _audit(page, "upload finished")
    _shot(page, "upload")
    table = page.inner_text("main")
    assert "ledger-2026.pdf" in table
    assert "market.jpg" in table
    assert "stored" in table
    assert "link-elsewhere: a symbolic link" in table
    page.click("text=Back to your vault")
    rows = page.inner_text("table")
    assert "ledger-2026.pdf" in rows
    assert "market.jpg" in rows
    assert "signed by you, in the log" in rows
    page.fill("#q", "ledger")
    page.click("form.search button")
    assert "market.jpg" not in page.inner_text("main")

    # Armed in the app, after reading what becomes public; checked in with the button.
    page.click("nav >> text=Dead-man switch")
    page.click("text=Arm the switch")
    assert "What becomes public if you are silenced" in page.inner_text("main")
    assert "the contents of these 2 file(s)" in page.inner_text("main")
    _audit(page, "arm")
    _shot(page, "arm")
    page.fill("#remind_email", "rana@localhost")
    page.click("button.primary")
    assert "invalid e-mail address" in page.inner_text("[role=alert]")
    page.fill("#remind_email", "rana@example.org")
    page.uncheck("#reveal_name")
    page.click("button.primary")
    assert "Armed: 2 file(s) in the release set" in page.inner_text("[role=status]")
    reporter = Person(Path(app.env["EVAULT_HOME"]).parent, "rana", "reporter")
    status = reporter.json("switch", "status")
    assert status["state"] == "armed"
    assert status["policy"]["remind"] == [{"email": "rana@example.org"}]
    page.goto(f"{app.origin}/add")
    # Armed: the add page says what the release makes public, and asks.
    assert "join the release set" in page.inner_text("main")
    assert "Rana Reporter" in page.inner_text("main")
    _audit(page, "add (armed)")
    page.goto(f"{app.origin}/")
    assert "Dead-man switch: armed" in page.inner_text("main")
    page.click("button.checkin")
    assert "Checked in. Your next check-in is due by" in page.inner_text("[role=status]")
    _audit(page, "vault")
    _shot(page, "vault")

    # An editor's card pinned, the fingerprint compared aloud, a file shared with them.
    editor = enroll(server, Path(app.env["EVAULT_HOME"]).parent.parent, [("eve", "editor")])[0]
    page.click("nav >> text=People")
    page.fill("#name", "eve")
    page.fill("#card", "this is not a card")
    page.click("button.primary")
    assert "This is not a card" in page.inner_text("[role=alert]")
    page.fill("#name", "eve")
    page.fill("#card", editor.card_path.read_text())
    page.click("button.primary")
    assert page.url == f"{app.origin}/people/eve"
    groups = page.locator("ol.groups .group").all_inner_texts()
    assert " ".join(groups) == editor.fingerprint
    _audit(page, "compare fingerprints")
    _shot(page, "compare")
    page.click("text=Every group matched")
    assert "eve is verified" in page.inner_text("[role=status]")
    assert page.url == f"{app.origin}/"
    page.locator("tr", has_text="ledger-2026.pdf").locator("button", has_text="Share").click()
    assert "ledger-2026.pdf is shared with eve" in page.inner_text("[role=status]")
    assert "eve" in page.locator("tr", has_text="ledger-2026.pdf").inner_text()
    (shared,) = editor.json("inbox")["items"]
    assert shared["filename"] == "ledger-2026.pdf"
    page.click("nav >> text=Log")
    assert "The log checks out" in page.inner_text("[role=status]")
    page.click("text=Read and check the whole log")
    assert "every entry was read and hashed" in page.inner_text("[role=status]")
    _audit(page, "log")

    # An evidence package for a court, written from the vault and checked offline.
    page.click("nav >> text=Your vault")
    page.locator("tr", has_text="ledger-2026.pdf").locator("text=Evidence package").click()
    assert "the file's name, type, size, capture time" in page.inner_text("main")
    _audit(page, "export")
    page.fill("#folder", "/no/such/folder")
    page.click("button.primary")
    assert "/no/such/folder is not a folder on this computer" in page.inner_text("[role=alert]")
    packages = Path(app.env["EVAULT_HOME"]).parent / "for the court"
    packages.mkdir()
    page.fill("#folder", str(packages))
    page.click("button.primary")
    assert "Package written" in page.inner_text("h1")
    (package,) = packages.iterdir()
    assert package.name == "ledger-2026 evidence package"
    assert f'evault verify "{package.name}"' in page.inner_text("main")
    checked = reporter.ok("verify", package, "--log-key", server.log_key)
    assert b"VERDICT: consistent" in checked.stdout

    page.click("text=Lock")
    assert page.url == f"{app.origin}/unlock"
    _audit(page, "unlock")
    page.fill("#passphrase", "not the passphrase at all")
    page.click("button.primary")
    assert "does not open this keystore" in page.inner_text("[role=alert]")
    page.fill("#passphrase", PASSPHRASE)
    page.click("button.primary")
    assert page.url == f"{app.origin}/"
    (cookie,) = [c["value"] for c in page.context.cookies() if c["name"] == "evault_app"]
    assert [c["sameSite"] for c in page.context.cookies()] == ["Strict"]
    assert page.context.cookies()[0]["httpOnly"]
    _door_with_the_cookie(app, cookie)

    page.click("text=Panic")
    _audit(page, "panic")
    page.fill("#confirm", "destroy")
    page.click("button.danger")
    assert "Destroyed" in page.inner_text("h1")
    assert not (Path(app.env["EVAULT_HOME"]) / "keystore").exists()
    # The server still has the evidence.
    assert server.running
    return cookie


def _first_run(page: Page, app: AppProcess, name: str, invite: str) -> None:
    """Keys made and the account registered, as on the first screens."""
    page.goto(app.link)
    page.fill("#name", name)
    page.fill("#passphrase", PASSPHRASE)
    page.fill("#passphrase2", PASSPHRASE)
    page.click("button.primary")
    page.fill("#link", invite)
    page.click("button.primary")
    assert page.url == f"{app.origin}/", page.inner_text("main")


def _door_with_the_cookie(app: AppProcess, cookie: str) -> None:
    """Even with the session cookie, a change must come from the app's own pages."""
    http = requests.Session()
    http.trust_env = False
    http.cookies.set("evault_app", cookie)
    assert http.get(f"{app.origin}/switch", timeout=30).status_code == 200
    elsewhere = http.post(
        f"{app.origin}/checkin", headers={"Origin": "http://evil.example"}, timeout=30
    )
    assert elsewhere.status_code == 403
    assert "did not come from the Evidence Vault app" in elsewhere.text
    silent = http.post(f"{app.origin}/checkin", timeout=30)
    assert silent.status_code == 403
    cross = http.post(
        f"{app.origin}/checkin",
        headers={"Origin": app.origin, "Sec-Fetch-Site": "cross-site"},
        timeout=30,
    )
    assert cross.status_code == 403


def _door_from_outside(app: AppProcess, cookie: str) -> None:
    """Without the app's own cookie or address, nothing is answered but a refusal."""
    http = requests.Session()
    http.trust_env = False
    # The launch link works once.
    again = http.get(app.link, allow_redirects=False, timeout=30)
    assert again.status_code == 403
    # Without the session cookie: nothing.
    assert http.get(f"{app.origin}/", timeout=30).status_code == 403
    # A page elsewhere that rebinds its name to 127.0.0.1 sends its own Host.
    rebound = http.get(f"{app.origin}/", headers={"Host": "evil.example:80"}, timeout=30)
    assert rebound.status_code == 403
    assert "not the Evidence Vault app" in rebound.text
    for response in (again, rebound):
        assert "default-src 'none'" in response.headers["Content-Security-Policy"]


def test_an_editor_saves_everything_shared_with_them_checked_and_hands_in_a_share(
    browser: Browser, tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    _, smtp_port = mailbox
    env = quick_switches(smtp_port, worker=True)
    with ServerProcess.started(tmp_path / "server", env) as server:
        (reporter,) = enroll(server, tmp_path, [("omar", "reporter")])
        fragment = urllib.parse.urlencode(
            {"code": server.invite("editor"), "log-key": server.log_key}
        )
        app = AppProcess(tmp_path / "desk" / "evault")
        try:
            context = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            _first_run(page, app, "Nadia Editor", f"{server.url}/invite#{fragment}")
            assert "Nothing is shared with you yet" in page.inner_text("main")
            # The reporter pins her card, compares the fingerprint, and shares two files.
            editor = Person(tmp_path / "desk", "nadia", "editor")
            editor.card_path.write_bytes(editor.ok("card").stdout)
            reporter.ok("editors", "add", "nadia", editor.card_path)
            fingerprint = editor.json("whoami")["fingerprint"]
            reporter.ok("editors", "verify", "nadia", "--fingerprint", fingerprint)
            for name, data in (("minutes.txt", b"the minutes\n"), ("photo.jpg", b"\xff\xd8 jpeg")):
                (tmp_path / name).write_bytes(data)
                (added,) = reporter.add(tmp_path / name)
                reporter.ok("share", added["item"], "--with", "nadia")
            page.goto(f"{app.origin}/")
            assert "Shared with you" in page.inner_text("h1")
            listed = page.inner_text("table")
            assert "minutes.txt" in listed
            assert "photo.jpg" in listed
            # The reporter by the name on her card, not yet compared.
            assert "Omar (unverified)" in listed
            assert reporter.account[:8] not in listed
            _audit(page, "editor's inbox")
            _shot(page, "inbox")
            inbox = tmp_path / "inbox"
            inbox.mkdir()
            page.fill("#folder-all", str(inbox))
            page.click("text=Save all")
            assert "Saved and checked 2 file(s)" in page.inner_text("[role=status]")
            assert (inbox / "minutes.txt").read_bytes() == b"the minutes\n"
            assert (inbox / "photo.jpg").read_bytes() == b"\xff\xd8 jpeg"
            # Again: what is there already, the same, is kept.
            page.fill("#folder-all", str(inbox))
            page.click("text=Save all")
            assert "Saved and checked 0 file(s)" in page.inner_text("[role=status]")
            assert "2 already there, the same" in page.inner_text("[role=status]")
            # Pinned on the first save under a made-up name; she gives him her own.
            page.click("nav >> text=People")
            row = page.locator("tr", has_text="reporter-")
            row.locator("input[name=new]").fill("omar-desk")
            row.locator("button", has_text="Rename").click()
            assert "is now called omar-desk" in page.inner_text("[role=status]")
            _audit(page, "people")
            page.goto(f"{app.origin}/")
            assert "omar-desk (unverified)" in page.inner_text("table")

            # Her trustee tasks: the reporter named her, then went silent.
            reporter.ok(
                "switch",
                "set",
                *("--every", "2s", "--grace", "1s", "--trustee", "nadia", "--threshold", "2"),
                "--reveal",
                "name,time",
            )
            page.click("nav >> text=Trustee tasks")
            _audit(page, "trustee tasks")
            vault = reporter.json("switch", "status")["vault"]

            def releasing() -> bool:
                page.goto(f"{app.origin}/trustee")
                return "Hand in my share now" in page.inner_text("main")

            wait_for("the release to start", releasing, timeout=60)
            _shot(page, "trustee")
            page.click("text=Hand in my share now")
            assert "Share handed in" in page.inner_text("[role=status]")
            wait_for(
                "the release",
                lambda: reporter.json("switch", "status")["state"] == "released",
                timeout=60,
            )
            assert requests.get(f"{server.url}/release/{vault}", timeout=30).status_code == 200
            context.close()
        finally:
            app.stop()


def test_a_new_reporter_stores_and_shares_a_first_file_in_eight_actions(
    browser: Browser, tmp_path: Path
) -> None:
    """From `evault app` to a first file stored and shared: every click or form sent counts."""
    (tmp_path / "memo.pdf").write_bytes(b"%PDF-1.7 the memo\n")
    with ServerProcess.started(tmp_path / "server") as server:
        (editor,) = enroll(server, tmp_path, [("eve", "editor")])
        fragment = urllib.parse.urlencode(
            {"code": server.invite("reporter"), "log-key": server.log_key}
        )
        app = AppProcess(tmp_path / "laptop" / "evault")
        actions = 0

        def act(selector: str) -> None:
            nonlocal actions
            actions += 1
            page.click(selector)

        try:
            context = browser.new_context(viewport={"width": 1000, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(app.link)
            page.fill("#name", "Rana Reporter")
            page.fill("#passphrase", PASSPHRASE)
            page.fill("#passphrase2", PASSPHRASE)
            act("button.primary")  # 1: make the keys
            page.fill("#link", f"{server.url}/invite#{fragment}")
            act("button.primary")  # 2: connect
            with page.expect_file_chooser() as chooser:
                act("label[for=files]")  # 3: the computer's own file picker opens
            # The page is at the vault already: wait for the upload's page first, or the
            # wait below would end before the upload began.
            with page.expect_navigation(url=f"{app.origin}/jobs/*", timeout=120_000):
                chooser.value.set_files(str(tmp_path / "memo.pdf"))
            actions += 1  # 4: the file picked uploads at once; back to the vault by itself
            page.wait_for_url(f"{app.origin}/", timeout=120_000)
            assert "memo.pdf" in page.inner_text("table")
            act("nav >> text=People")  # 5
            page.fill("#name", "eve")
            page.fill("#card", editor.card_path.read_text())
            act("button.primary")  # 6: pin the editor's card
            act("text=Every group matched")  # 7: fingerprints compared aloud
            page.locator("tr", has_text="memo.pdf").locator("button", has_text="Share").click()
            actions += 1  # 8: share
            assert "memo.pdf is shared with eve" in page.inner_text("[role=status]")
            context.close()
        finally:
            app.stop()
        (shared,) = editor.json("inbox")["items"]
        assert shared["filename"] == "memo.pdf"
        print(f"actions from `evault app` to a first file stored and shared: {actions}")
        assert actions <= 8


def test_a_folder_picked_in_the_browser_is_stored_though_the_server_dies_midway(
    browser: Browser, tmp_path: Path
) -> None:
    """The server is killed while a picked folder uploads: the page says it reconnects, and
    once the server is back every file is stored, each once, under its own name and date."""
    dossier = tmp_path / "dossier"
    (dossier / "scans").mkdir(parents=True)
    names = [f"scans/page-{n:02}.png" for n in range(24)] + ["contract.pdf", "notes.txt"]
    for n, name in enumerate(names):
        (dossier / name).write_bytes(os.urandom(200_000 + n))
    made = 1_500_000_000
    os.utime(dossier / "contract.pdf", (made, made))
    with ServerProcess.started(tmp_path / "server") as server:
        fragment = urllib.parse.urlencode(
            {"code": server.invite("reporter"), "log-key": server.log_key}
        )
        app = AppProcess(tmp_path / "laptop" / "evault")
        spool = Path(app.env["EVAULT_HOME"]) / "picked"
        try:
            context = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            _first_run(page, app, "Rana Reporter", f"{server.url}/invite#{fragment}")
            page.goto(f"{app.origin}/add")
            # A file dragged onto the page from elsewhere, then a folder picked.
            page.evaluate(_DROP_ONE_FILE)
            page.wait_for_selector("#chosen >> text=dropped.txt")
            page.set_input_files("#folder", str(dossier))
            assert "27 file(s)" in page.inner_text("#chosen-summary")
            assert "dossier/scans/page-07.png" in page.inner_text("#chosen")
            _audit(page, "add (chosen)")
            page.click("#send")

            def stored() -> int:
                with server.db() as db:
                    return int(db.execute("SELECT count(*) FROM items").fetchone()[0])

            try:
                wait_for("a first file stored", lambda: stored() >= 1, timeout=120)
            except AssertionError:
                raise AssertionError(f"nothing stored: {page.url}: {_text(page)}") from None

            def down() -> None:
                assert stored() < len(names), "the upload ended before the server was killed"
                wait_for("the page to say it reconnects", lambda: "reconnecting" in _text(page))

            server.crash_and_restart(down)
            try:
                page.wait_for_url(f"{app.origin}/", timeout=180_000)
            except PlaywrightTimeout:
                said = f"{page.url}: {_text(page)}"
                raise AssertionError(f"the upload did not end well: {said}") from None
            vault = page.inner_text("table")
            context.close()
        finally:
            app.stop()
        names.append("dropped.txt")
        assert stored() == len(names)
        for name in names:
            assert name.rsplit("/", 1)[-1] in vault
        # The app's copies of the picked files are gone once they are stored.
        assert not spool.exists() or list(spool.iterdir()) == []
        reporter = Person(tmp_path / "laptop", "rana", "reporter")
        listed = {i["filename"]: i for i in reporter.json("ls")["items"]}
        assert sorted(listed) == sorted(n.rsplit("/", 1)[-1] for n in names)
        assert listed["contract.pdf"]["captured_at"] == "2017-07-14T02:40:00Z"
        assert listed["dropped.txt"]["captured_at"] == "2020-09-13T12:26:40Z"
        out = tmp_path / "contract.pdf"
        reporter.ok("get", listed["contract.pdf"]["id"], "-o", out)
        assert out.read_bytes() == (dossier / "contract.pdf").read_bytes()


_DROP_ONE_FILE = """() => {
  const data = new DataTransfer();
  data.items.add(new File(["dropped on the page\\n"], "dropped.txt",
                          {type: "text/plain", lastModified: 1600000000000}));
  const zone = document.getElementById("drop");
  for (const kind of ["dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(kind, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}"""
"""Drops a file on the add page as a file manager would (the browser gives the same event)."""


def _text(page: Page) -> str:
    """The page's main text, or "" while it reloads itself."""
    try:
        return page.inner_text("main")
    except Exception:  # noqa: BLE001 -- the page refreshed under the read
        return ""


_COERCER_PAGES = ["/", "/add", "/switch", "/switch/arm", "/people", "/trustee", "/log"]
"""The app's pages a coercer can open, compared between a free and a coerced reporter."""


def test_under_duress_the_app_shows_the_decoy_vault_as_a_real_one(
    browser: Browser, tmp_path: Path
) -> None:
    """Fern opens her app with her passphrase; Cora, coerced, opens hers with the duress
    passphrase, her decoy vault holding the files Fern keeps. Every page, each file's pages and a
    file saved from it are the same once what is random to each person is taken out."""
    with ServerProcess.started(tmp_path / "server") as server:
        fern = enroll_reporter(server, tmp_path, "fern", display="Dora Reporter")
        cora = enroll_reporter(server, tmp_path, "cora", display="Dora Reporter", duress=True)
        fern.add(*_write(tmp_path / "fern-files", ORDINARY))
        cora.add(*_write(tmp_path / "cora-real", REAL))
        cora.ok("decoy", "add", *_write(tmp_path / "cora-decoys", ORDINARY))
        seen: dict[str, dict[str, list[str]]] = {}
        ids: dict[str, dict[str, str]] = {}
        for person, passphrase in ((fern, PASSPHRASE), (cora, DURESS)):
            app = AppProcess(person.home)
            try:
                context = browser.new_context(viewport={"width": 1000, "height": 900})
                context.set_default_timeout(TIMEOUT_MS)
                page = context.new_page()
                page.goto(app.link)
                assert page.url == f"{app.origin}/unlock"
                page.fill("#passphrase", passphrase)
                page.click("button.primary")
                assert page.url == f"{app.origin}/", page.inner_text("main")
                page.wait_for_selector("tbody tr")
                rows = page.locator("tbody tr").all()
                ids[person.name] = {
                    row.locator("td.name").inner_text(): str(
                        row.locator("a.package").get_attribute("href")
                    ).split("/")[2]
                    for row in rows
                }
                pages = list(_COERCER_PAGES)
                for item in ids[person.name].values():
                    pages += [f"/items/{item}/share", f"/items/{item}/export"]
                seen[person.name] = {}
                for path in pages:
                    page.goto(f"{app.origin}{path}", wait_until="load")
                    shown = [page.title(), *page.inner_text("main").splitlines()]
                    if path == "/log":
                        page.click("text=Read and check the whole log")
                        shown += page.inner_text("main").splitlines()
                    seen[person.name][path] = shown
                context.close()
            finally:
                app.stop()
    assert sorted(ids["cora"]) == sorted(ORDINARY)
    vault = "\n".join(seen["cora"]["/"])
    assert "signed by you, in the log" in vault
    assert "garden.jpg" in vault
    assert "The log checks out" in "\n".join(seen["cora"]["/log"])
    assert not any(name in vault for name in REAL)

    def normalised(name: str) -> dict[str, list[str]]:
        by_name = {item: filename for filename, item in ids[name].items()}
        rename = Normaliser({name: "<WHO>", str(tmp_path): "<ROOT>"}, by_name)
        out = {}
        for path, lines in seen[name].items():
            for item, filename in by_name.items():
                path = path.replace(item, f"<{filename}>")
            # Rows come in the order of random ids when added in the same second.
            out[path] = sorted(rename.text(line) for line in lines)
        return out

    free, coerced = normalised("fern"), normalised("cora")
    assert sorted(free) == sorted(coerced)
    for path in free:
        if free[path] != coerced[path]:
            diff = difflib.unified_diff(free[path], coerced[path], "free", "coerced", lineterm="")
            pytest.fail(f"the page {path} differs:\n" + "\n".join(diff))


def test_a_trustees_alerts_set_in_the_app_are_encrypted_to_their_card(
    browser: Browser, tmp_path: Path
) -> None:
    """Arming in the app with a trustee's own address ties it to the trustee's card."""
    with ServerProcess.started(tmp_path / "server") as server:
        rita = enroll_reporter(server, tmp_path, "rita", display="Rita Reporter")
        (ed,) = enroll(server, tmp_path, [("ed", "editor")])
        pin(rita, ed)
        (tmp_path / "memo.txt").write_bytes(b"the memo\n")
        rita.add(tmp_path / "memo.txt")
        app = AppProcess(rita.home)
        try:
            context = browser.new_context(bypass_csp=True, viewport={"width": 1000, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(app.link)
            page.fill("#passphrase", PASSPHRASE)
            page.click("button.primary")
            page.goto(f"{app.origin}/switch/arm")
            _audit(page, "arm (with a trustee)")
            page.check("#trustee-1")
            page.fill("#trustee-email-1", "ed@example.org")
            page.fill("#alert_emails", "desk@example.org")
            page.click("button.primary")
            assert "Armed:" in page.inner_text("[role=status]")
            context.close()
        finally:
            app.stop()
        alerts = rita.json("switch", "status")["policy"]["alert"]
        assert alerts == [
            {
                "age": ed.identity().card().recipient,
                "email": "ed@example.org",
                "name": "Rita Reporter",
            },
            {"email": "desk@example.org"},
        ]
