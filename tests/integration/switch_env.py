"""What the switch's end-to-end tests share: a real SMTP server, waiting, checking a release.

The SMTP server is aiosmtpd on loopback, keeping what it accepts. A release
is checked as the public would: the release page's links downloaded, and
each file decrypted with the Debian ``age`` tool and the published key.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import html
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from aiosmtpd.controller import Controller

__all__ = [
    "CONTACTS",
    "Mailbox",
    "expect_notices",
    "free_port",
    "mailbox",
    "quick_switches",
    "released_files",
    "wait_for",
]

CONTACTS = [
    *("--trustee", "tom", "--threshold", "1"),
    *("--remind-email", "ana@example.org", "--alert-email", "tom@example.org"),
    *("--publish-email", "desk@example.org"),
]
"""``switch set`` options: Tom as the trustee; Ana's reminders, Tom's alerts, the desk's notice."""

AGE = "/usr/bin/age"


def quick_switches(smtp_port: int, *, worker: bool) -> dict[str, str]:
    """Server settings for switch tests: intervals from a second, mail to the loopback server.

    ``worker``: the server's own worker thread sweeps every second (``evault-server
    run``); without it, separate worker processes do.
    """
    env = {
        "EVAULT_RUN_WORKER": "1" if worker else "0",
        "EVAULT_MIN_INTERVAL": "1",
        "EVAULT_SMTP_HOST": "127.0.0.1",
        "EVAULT_SMTP_PORT": str(smtp_port),
        "EVAULT_SMTP_SECURITY": "none",
        "EVAULT_MAIL_FROM": "vault@example.org",
    }
    if worker:
        env["EVAULT_WORKER_INTERVAL"] = "1"
    return env


T = TypeVar("T")
_NOTICE_LINK = re.compile(r"https?://\S+/notice/[A-Za-z0-9_-]{43}")
_LINK = re.compile(r'href="(/release/[0-9a-f]+(?:/[0-9]+)?/items/[0-9a-f]+\.age)"')


def wait_for(what: str, check: Callable[[], T], timeout: float = 90) -> T:
    """``check()`` once it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def expect_notices(box: Mailbox, release_url: str) -> None:
    """Ana's reminder, Tom's alert of the missed check-in, and the desk's release notice."""
    reminder = wait_for("the reminder", lambda: box.to("ana@example.org"))
    assert "check in" in box.read(reminder[0])[0].lower()
    alert = wait_for("the trustee's alert", lambda: box.to("tom@example.org"))
    assert "missed" in box.read(alert[0])[0].lower()
    notice = wait_for("the release notice", lambda: box.to("desk@example.org"))
    assert release_url in box.read(notice[0])[1]


def released_files(
    base_url: str,
    vault: str,
    directory: Path,
    names: Iterable[str],
    number: int = 1,
    unnamed: int = 0,
) -> list[bytes]:
    """The plaintexts of a release, as anyone gets them: from its page, with ``age -d``.

    The page (of the vault's release ``number``) must name every file in
    ``names`` and link one ``.age`` file for each, and for ``unnamed`` more
    whose names the reporter withheld; the key must be a plain age identity.
    """
    page_url = f"{base_url}/release/{vault}" + ("" if number == 1 else f"/{number}")
    page = requests.get(page_url, timeout=30)
    assert page.status_code == 200
    text = html.unescape(page.text)
    wanted = list(names)
    for name in wanted:
        assert name in text
    key = requests.get(f"{page_url}/key.txt", timeout=30)
    assert key.status_code == 200
    assert key.text.startswith("AGE-SECRET-KEY-1")
    key_file = directory / "release-key.txt"
    key_file.write_text(key.text)
    links = sorted(set(_LINK.findall(page.text)))
    assert len(links) == len(wanted) + unnamed
    plaintexts = []
    for link in links:
        download = requests.get(base_url + link, timeout=60)
        assert download.status_code == 200
        sealed = directory / link.rsplit("/", 1)[1]
        sealed.write_bytes(download.content)
        out = directory / (sealed.name + ".out")
        subprocess.run(
            [AGE, "-d", "-i", str(key_file), "-o", str(out), str(sealed)], check=True, timeout=60
        )
        plaintexts.append(out.read_bytes())
    return plaintexts


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Mailbox:
    """Keeps every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]

    @staticmethod
    def read(message: email.message.EmailMessage) -> tuple[str, str]:
        """A notice's title and text, as its recipient reads them: at its private link.

        The message itself says the same for every notice; only the page tells.
        """
        body = message.get_content()
        found = _NOTICE_LINK.search(body)
        assert found is not None, body
        return read_notice(found[0])


def read_notice(link: str) -> tuple[str, str]:
    """The title and text a notice's private link shows (after its button is pressed)."""
    page = requests.post(
        link,
        data=b"",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert page.status_code == 200, page.status_code
    title = re.search(r"<h1>(.*?)</h1>", page.text, re.S)
    text = re.search(r'<p class="notice-text">(.*?)</p>', page.text, re.S)
    assert title is not None, page.text
    assert text is not None, page.text
    return html.unescape(title[1]), html.unescape(text[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    """An SMTP server on a free loopback port: the mailbox and the port."""
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()
