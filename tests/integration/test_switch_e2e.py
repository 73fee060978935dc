"""The dead-man switch end to end, with real programs and real time.

A real ``evault-server run`` (with its worker), the real ``evault`` command for
a reporter and a trustee, a real SMTP server on loopback (aiosmtpd) and a
webhook receiver that checks signatures. The reporter arms a short interval,
checks in once, adds one more file, then stops: the reminder, the trustee's
alert and the release notice arrive by mail, the webhook is told, and the
released files, downloaded from the public release page's links, decrypt with
the Debian ``age`` tool and the published key to the original bytes.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from server.notify import verify_webhook
from vault import canonical

from .client_env import (
    EVAULT,
    Exchange,
    Proxy,
    ServerProcess,
    _base_env,
    _run,
    assert_ok,
    assert_refused,
    enroll,
    payload,
    pin,
)
from .switch_env import (
    CONTACTS,
    Mailbox,
    expect_notices,
    quick_switches,
    released_files,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


SECRET_FIELD = re.compile(r"secret: (\S+)")


class Hooks:
    """Deliveries a webhook receiver got: raw body and signature header."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, str, str]] = []
        self.lock = threading.Lock()


@pytest.fixture
def hooks() -> Iterator[tuple[Hooks, str]]:
    box = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with box.lock:
                box.received.append(
                    (
                        body,
                        self.headers.get("Evault-Signature", ""),
                        self.headers.get("Evault-Delivery", ""),
                    )
                )
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box, f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
        server.server_close()


def test_armed_missed_released_and_decrypted_with_age(
    tmp_path: Path, mailbox: tuple[Mailbox, int], hooks: tuple[Hooks, str]
) -> None:
    box, smtp_port = mailbox
    hook_box, hook_url = hooks
    env = quick_switches(smtp_port, worker=True) | {"EVAULT_WEBHOOK_ALLOW_PRIVATE": "1"}
    with ServerProcess.started(tmp_path / "server", env) as server:
        ana, tom = enroll(server, tmp_path, [("ana", "reporter"), ("tom", "editor")])
        pin(ana, tom)
        originals = {
            "ledger.pdf": payload(300_000, seed=1),
            "call-log.csv": b"time,caller,callee\n" + payload(5_000, seed=2),
        }
        for name, data in originals.items():
            (tmp_path / name).write_bytes(data)
        ana.add(*(tmp_path / name for name in originals))
        armed = ana.run(
            "switch",
            "set",
            "--every",
            "14s",
            "--grace",
            "3s",
            "--remind-before",
            "7s",
            *CONTACTS,
            "--publish-webhook",
            hook_url,
        )
        assert armed.returncode == 0, str(armed)
        secret = SECRET_FIELD.search(armed.out)
        assert secret is not None, armed.out
        ana.ok("checkin")
        late = tmp_path / "after-arming.txt"
        late.write_bytes(b"added after arming: in the release set by default\n")
        originals[late.name] = late.read_bytes()
        ana.add(late)
        vault = ana.json("switch", "status")["vault"]

        expect_notices(box, f"{server.url}/release/{vault}")

        delivered = wait_for(
            "the release webhook",
            lambda: [h for h in hook_box.received if b'"switch.released"' in h[0]],
        )
        body, signature, delivery = delivered[0]
        verify_webhook(secret[1].encode(), signature, body, now=int(time.time()))
        event = canonical.loads(body)
        assert isinstance(event, dict)
        assert event["vault"] == vault
        assert event["delivery"] == delivery

        recovered = released_files(server.url, vault, tmp_path, originals)
        assert sorted(recovered) == sorted(originals.values())

        # The log says so too: the client verifies it end to end.
        verified = ana.run("log", "verify", "--full")
        assert verified.returncode == 0, str(verified)
        status = json.loads(ana.ok("--json", "switch", "status").stdout)
        assert status["state"] == "released"

        # And anyone can, with the command the release page gives, without an account.
        page = html.unescape(requests.get(f"{server.url}/release/{vault}", timeout=30).text)
        found = re.search(r"evault log verify --full --server (\S+) --log-key KEY</pre>", page)
        assert found is not None
        assert found[1] == server.url
        # The key to use is the operator's, published elsewhere; the page's own is shown apart.
        shown_key = re.search(r'id="server-log-key">([^<]+)</code>', page)
        assert shown_key is not None
        assert shown_key[1] == server.log_key
        stranger = _base_env() | {"EVAULT_HOME": str(tmp_path / "stranger"), "HOME": str(tmp_path)}
        argv = [EVAULT, "log", "verify", "--full", "--server", found[1]]
        argv += ["--log-key", server.log_key]
        checked = assert_ok(_run(argv, stranger))
        assert "entries hash to its root. OK" in checked.out

        # The whole page, checked by the same stranger: files decrypted, the reporter's card.
        saved = tmp_path / "checked"
        argv = [EVAULT, "--json", "release", "check", f"{server.url}/release/{vault}"]
        argv += ["--log-key", server.log_key, "--card", str(ana.card_path), "-o", str(saved)]
        report = json.loads(assert_ok(_run(argv, stranger)).stdout)
        assert report["card_checked"] is True
        assert report["vault"] == vault
        assert len(report["files"]) == len(originals)
        assert sorted(p.read_bytes() for p in saved.iterdir()) == sorted(originals.values())
        # Run again later, as the page suggests: the files saved before are kept, none twice.
        again = json.loads(assert_ok(_run(argv, stranger)).stdout)
        assert [f["saved"] for f in again["files"]] == [f["saved"] for f in report["files"]]
        assert len(list(saved.iterdir())) == len(originals)
        # Someone else's card did not arm it.
        argv[-4:] = ["--card", str(tom.card_path), "-o", str(tmp_path / "again")]
        assert "did not register" in assert_refused(_run(argv, stranger))

        # A page that changed what it says after the release, or a file: caught.
        line = Proxy(server.url)
        try:

            def rename(exchange: Exchange) -> None:
                if exchange.path.endswith("/release.json"):
                    exchange.response = exchange.response.replace(b"ledger.pdf", b"ledger.PDF")

            def flip(exchange: Exchange) -> None:
                if exchange.path.endswith(".age"):
                    body = bytearray(exchange.response)
                    body[-1] ^= 1
                    exchange.response = bytes(body)

            for tamper, said in ((rename, "not the one the server logged"), (flip, "payload")):
                line.after = tamper
                forged = [EVAULT, "release", "check", f"{line.url}/release/{vault}"]
                forged += ["--log-key", server.log_key, "-o", str(tmp_path / tamper.__name__)]
                assert said in assert_refused(_run(forged, stranger))
                assert not any((tmp_path / tamper.__name__).iterdir())
        finally:
            line.close()


def test_a_released_vault_is_armed_again_and_released_again(
    tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    """After a release, `switch set` arms again: a fresh key, a fresh release set, a new page.

    The first release's page stays byte for byte what it was, and what it
    links still decrypts with its key; the second release holds only what
    the first did not publish.
    """
    box, smtp_port = mailbox
    with ServerProcess.started(
        tmp_path / "server", quick_switches(smtp_port, worker=True)
    ) as server:
        (ana,) = enroll(server, tmp_path, [("ana", "reporter")])
        first = tmp_path / "first.txt"
        first.write_bytes(b"the first file\n")
        ana.add(first)
        quick = ["--every", "3s", "--grace", "1s", "--publish-email", "desk@example.org"]
        first_key = ana.json("switch", "set", *quick)["release_recipient"]
        vault = ana.json("switch", "status")["vault"]
        wait_for("the first release", lambda: ana.json("switch", "status")["state"] == "released")
        page = f"{server.url}/release/{vault}"
        first_page = requests.get(page, timeout=30).content
        (tmp_path / "one").mkdir()
        assert released_files(server.url, vault, tmp_path / "one", ["first.txt"]) == [
            first.read_bytes()
        ]

        # What the reporter is told now leads somewhere true.
        status = ana.ok("switch", "status").out
        assert "release 1, " in status
        assert page in status
        assert "`evault switch set --every 24h` arms it again" in status
        refused = ana.fails("checkin")
        assert "`evault switch status`" in refused

        second = tmp_path / "second.txt"
        second.write_bytes(b"the second file\n")
        (added,) = ana.add(second)
        assert added["release"] is False  # released: no release set until armed again
        armed = ana.json("switch", "set", *quick)
        assert armed["release_items"] == [added["item"]]  # the first file stays published
        assert armed["release_recipient"] != first_key  # a fresh release key
        wait_for(
            "the second release",
            lambda: len(ana.json("switch", "status")["releases"]) == 2,
        )
        releases = ana.json("switch", "status")["releases"]
        assert [r["page"] for r in releases] == [page, f"{page}/2"]
        (tmp_path / "two").mkdir()
        recovered = released_files(server.url, vault, tmp_path / "two", ["second.txt"], number=2)
        assert recovered == [second.read_bytes()]
        assert "first.txt" not in requests.get(f"{page}/2", timeout=30).text
        # The first release is as it was, and still decrypts with its own key.
        assert requests.get(page, timeout=30).content == first_page
        (tmp_path / "again").mkdir()
        assert released_files(server.url, vault, tmp_path / "again", ["first.txt"]) == [
            first.read_bytes()
        ]
        notices = wait_for(
            "two release notices",
            lambda: box.to("desk@example.org") if len(box.to("desk@example.org")) >= 2 else [],
        )
        assert f"{page}/2 " in notices[-1].get_content()
        verified = ana.run("log", "verify", "--full")
        assert verified.returncode == 0, str(verified)
        # Anyone checks the second release on its own page, as the first.
        stranger = _base_env() | {"EVAULT_HOME": str(tmp_path / "stranger"), "HOME": str(tmp_path)}
        for address, name in ((page, "first.txt"), (f"{page}/2", "second.txt")):
            argv = [EVAULT, "--json", "release", "check", address, "--log-key", server.log_key]
            (checked,) = json.loads(assert_ok(_run(argv, stranger)).stdout)["files"]
            assert checked["name"] == name


def test_a_release_without_a_committed_file_is_caught(
    tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    """A server that drops a committed file behind the log's back: `release check` refuses."""
    _box, smtp_port = mailbox
    with ServerProcess.started(
        tmp_path / "server", quick_switches(smtp_port, worker=True)
    ) as server:
        (ana,) = enroll(server, tmp_path, [("ana", "reporter")])
        files = []
        for name in ("kept.txt", "dropped.txt"):
            (tmp_path / name).write_bytes(f"the file {name}\n".encode())
            files.append(tmp_path / name)
        added = {Path(a["file"]).name: a["item"] for a in ana.add(*files)}
        quick = ["--every", "6s", "--grace", "1s", "--publish-email", "desk@example.org"]
        ana.json("switch", "set", *quick)
        with server.db() as db:
            db.execute("DELETE FROM items WHERE id = ?", (added["dropped.txt"],))
        vault = ana.json("switch", "status")["vault"]
        wait_for("the release", lambda: ana.json("switch", "status")["state"] == "released")
        stranger = _base_env() | {"EVAULT_HOME": str(tmp_path / "stranger"), "HOME": str(tmp_path)}
        argv = [EVAULT, "release", "check", f"{server.url}/release/{vault}"]
        refused = assert_refused(_run([*argv, "--log-key", server.log_key], stranger))
        assert "committed at arming" in refused
        assert "no deletion" in refused


NOTE = "from the ministry, source K"


def _log_text(base_url: str) -> str:
    """Every entry of the public log, as anyone can read it."""
    size = int(requests.get(f"{base_url}/api/v1/log/checkpoint", timeout=30).text.split("\n")[1])
    pages = []
    for start in range(0, size, 256):
        answer = requests.get(
            f"{base_url}/api/v1/log/entries",
            params={"start": start, "end": min(size, start + 256)},
            timeout=30,
        )
        assert answer.status_code == 200
        pages.append(answer.text)
    return "".join(pages)


def test_a_note_is_never_published_unless_chosen(
    tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    """`add --note` without opting in: not on the release page, in the public log or a package.

    The released files still decrypt with `age -d` and the published key. A
    package made for someone else leaves the note out unless asked.
    """
    _, smtp_port = mailbox
    with ServerProcess.started(
        tmp_path / "server", quick_switches(smtp_port, worker=True)
    ) as server:
        ana, ed = enroll(server, tmp_path, [("ana", "reporter"), ("ed", "editor")])
        pin(ana, ed)
        files = {
            "ministry.txt": b"the ministry's memo\n",
            "call-with-K.wav": b"a call\n",
            "diary.txt": b"the diary\n",
        }
        for name, data in files.items():
            (tmp_path / name).write_bytes(data)
        (memo,) = ana.json("add", "--note", NOTE, tmp_path / "ministry.txt")["added"]
        armed = ana.json(
            "switch", "set", "--every", "5s", "--grace", "1s",
            "--publish-email", "desk@example.org",
        )  # fmt: skip
        assert armed["reveal"] == {memo["item"]: "name,time"}
        (call,) = ana.json("add", "--note", NOTE, "--reveal", "none", tmp_path / "call-with-K.wav")[
            "added"
        ]
        assert call["reveal"] == "none"
        (diary,) = ana.json(
            "add", "--note", "may be published", "--reveal", "name,note", tmp_path / "diary.txt"
        )["added"]
        assert diary["reveal"] == "name,note"
        vault = ana.json("switch", "status")["vault"]
        wait_for("the release", lambda: ana.json("switch", "status")["state"] == "released")

        page = html.unescape(requests.get(f"{server.url}/release/{vault}", timeout=30).text)
        assert NOTE not in page
        assert "ministry.txt" in page
        assert "call-with-K" not in page
        assert "may be published" in page
        assert NOTE not in _log_text(server.url)
        assert "call-with-K" not in _log_text(server.url)
        recovered = released_files(
            server.url, vault, tmp_path, ["ministry.txt", "diary.txt"], unnamed=1
        )
        assert sorted(recovered) == sorted(files.values())

        # A package for someone else leaves the note out, and says so; asked, it holds it.
        package = tmp_path / "for-the-court"
        exported = ana.run("export", memo["item"], "-o", package)
        assert exported.returncode == 0, str(exported)
        assert "not the note." in exported.err
        for path in package.rglob("*"):
            if path.is_file():
                assert NOTE.encode() not in path.read_bytes(), path
        readme = (package / "README.txt").read_text()
        assert "not the reporter's note: it was left out of this package" in readme
        verdict = ana.ok("verify", package).out
        assert "not the reporter's note: it was left out of this package" in verdict
        kept = tmp_path / "for-myself"
        ana.ok("export", memo["item"], "-o", kept, "--with-note")
        assert NOTE.encode() in (kept / "manifest.json").read_bytes()
        # An editor holds the manifest, and only the reporter can sign without the note.
        ana.ok("share", memo["item"], "--with", "ed")
        refused = ed.fails("export", memo["item"], "-o", tmp_path / "by-ed")
        assert "only the reporter can make a package that leaves it out" in refused
        assert "--with-note" in refused
        assert not (tmp_path / "by-ed").exists()
        ed.ok("export", memo["item"], "-o", tmp_path / "by-ed", "--with-note")
