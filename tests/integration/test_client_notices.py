"""A trustee's notice from ``evault switch set`` to ``evault notice open``, on real processes.

Rita arms her switch naming her trustee Ed as ``ed <address>``: her client
puts Ed's card key and the name on her own card on that contact. A check-in
under her duress passphrase makes the server's worker send Ed an alert
through a real SMTP server on loopback. The message says nothing in the
clear; Ed opens the attached ``notice.age`` with ``evault notice open`` and
reads that Rita, by the name he verified, checked in under duress.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from server.notify import ATTACHMENT, KEYED_BODY, SUBJECT

from .client_env import Person, ServerProcess, enroll, enroll_reporter, pin

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]


class Mailbox:
    """Keeps every message as the mail server received it, with its recipients."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.content)))
        return "250 OK"

    def wait_for(self, address: str, timeout: float = 60) -> bytes:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for to, raw in self.received:
                if address in to:
                    return raw
            time.sleep(0.2)
        raise AssertionError(f"no message for {address} within {timeout}s")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def server(
    mailbox: tuple[Mailbox, int], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    env = {
        "EVAULT_SMTP_HOST": "127.0.0.1",
        "EVAULT_SMTP_PORT": str(mailbox[1]),
        "EVAULT_SMTP_SECURITY": "none",
        "EVAULT_RUN_WORKER": "1",
        "EVAULT_WORKER_INTERVAL": "1",
    }
    with ServerProcess.started(tmp_path_factory.mktemp("server"), env) as started:
        yield started


def test_a_trustee_opens_a_duress_alert_that_said_nothing_on_the_way(
    server: ServerProcess, mailbox: tuple[Mailbox, int], tmp_path: Path
) -> None:
    box, _ = mailbox
    root = tmp_path / "people"
    rita = enroll_reporter(server, root, "rita", display="Rita Reporter", duress=True)
    (ed,) = enroll(server, root, [("ed", "editor")])
    pin(rita, ed)
    armed = rita.json(
        "switch",
        "set",
        "--every",
        "1d",
        "--trustee",
        "ed",
        "--threshold",
        "2",
        "--remind-email",
        "box1@example.org",
        "--alert-email",
        "ed <box2@example.org>",
    )
    assert armed["state"] == "armed"
    # The contact carries Ed's card key and the name on Rita's card, nothing local.
    (alert,) = rita.json("switch", "status")["policy"]["alert"]
    assert alert == {
        "age": ed.identity().card().recipient,
        "email": "box2@example.org",
        "name": "Rita Reporter",
    }
    assert "ed <box2@example.org>" in rita.ok("switch", "status").out

    coerced: Person = rita.coerced()
    assert coerced.json("checkin")["status"] == "ok"
    raw = box.wait_for("box2@example.org")
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    assert parsed["Subject"] == SUBJECT
    text, attached = list(parsed.iter_parts())
    assert text.get_content().replace("\r\n", "\n") == KEYED_BODY
    assert attached.get_filename() == ATTACHMENT
    encoded = attached.get_payload()
    assert isinstance(encoded, str)
    clear = raw.decode("ascii").replace(encoded.strip(), "")
    vault = rita.state()["vault"]
    for word in ("duress", "Rita", "Reporter", vault, vault[:8], r"\bvault\b", "check-in"):
        assert re.search(word, clear, re.IGNORECASE) is None, word

    notice = tmp_path / "notice.age"
    notice.write_bytes(attached.get_content())
    opened = ed.json("notice", "open", notice)
    assert opened["title"] == "Evidence Vault: a check-in under duress"
    assert opened["text"].startswith("Rita Reporter checked in with their duress")
    assert "unverified" not in opened["text"]
    assert "Rita Reporter checked in" in ed.ok("notice", "open", notice).out
    # Anyone else's key opens nothing, and says so plainly.
    assert "no identity" in rita.fails("notice", "open", notice).lower()
    # The reporter's own address heard nothing of it.
    assert all("box1@example.org" not in to for to, _ in box.received)
