"""Every kind of notice, read as a real mail server and a real webhook receiver get it.

A reporter, Ana, arms her switch with a trustee, Tom, whose alerts are
encrypted to his card, a webhook whose notices are encrypted to a
post-quantum key, and addresses without a key. The switch then goes
through every event that sends a notice: a reminder, failed web check-ins,
a change waiting for cooling-off, a missed deadline, a check-in after it, a
duress check-in, a release waiting for shares and the release. The worker
sends them all through aiosmtpd and an HTTP receiver on loopback.

Each raw message is read: its subject, body and headers say nothing of
duress, releases, check-ins, vaults or who is involved, and every notice
has the same words and size whatever it announces. The attachment opens
with the real ``age`` tool and Tom's identity, the webhook's with the
client's code, and both name Ana by the name on her card; the link opens
its page with its token, and the page refuses a wrong or expired one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from client.notices import open_notice
from server.clock import ManualClock
from server.config import Config
from server.keyfile import load_key_file
from server.models import NoticeLink, OutboxMessage
from server.notify import ATTACHMENT, KEYED_BODY, LINK_BODY, PAD_TO, SUBJECT, verify_webhook
from server.services import notice_links
from server.services import switch as switch_service
from server.worker import Worker
from tests.server._switch import POLICY, add_item, arm, reporter, trustee
from vault import age

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

HOOK_SECRET = "whsec-notice-privacy-0123456789"  # noqa: S105 — the test receiver's
PHRASE = "the right phrase, long enough"
DURESS_PHRASE = "the other phrase, for duress"
KINDS = {
    "switch.reminder",
    "switch.phrase_failures",
    "change.requested",
    "switch.overdue",
    "switch.recovered",
    "switch.duress",
    "switch.releasing",
    "switch.released",
}


@pytest.fixture
def config(config: Config) -> Config:
    """Room for a policy that names a post-quantum key (the default allows a mebibyte)."""
    return dataclasses.replace(config, max_content_length=64 * 1024)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC))


class Mailbox:
    """Keeps every message exactly as the mail server received it."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.raw.append(bytes(envelope.content))
        return "250 OK"


@dataclasses.dataclass
class Hook:
    headers: dict[str, str]
    body: bytes


class Receiver:
    """A loopback webhook receiver checking signatures at the test clock's time."""

    def __init__(self, clock: ManualClock) -> None:
        self.received: list[Hook] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                verify_webhook(
                    HOOK_SECRET.encode(),
                    self.headers.get("Evault-Signature", ""),
                    body,
                    now=int(clock.now().timestamp()),
                )
                receiver.received.append(Hook(dict(self.headers.items()), body))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture
def mailbox(socket_enabled: None) -> Iterator[tuple[Mailbox, int]]:
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


@pytest.fixture
def receiver(clock: ManualClock, socket_enabled: None) -> Iterator[Receiver]:
    receiver = Receiver(clock)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=10)


@dataclasses.dataclass
class Story:
    """What the switch went through, and the people and keys in it."""

    vault: str
    account: str
    trustee: str
    tom: age.Identity
    hook_key: age.HybridIdentity
    sessions: Any


def _worker(app: Flask, config: Config, clock: ManualClock, port: int) -> Worker:
    state = app.extensions["evault"]
    wired = dataclasses.replace(
        config,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        webhook_allow_private=True,
    )
    return Worker(config=wired, sessions=state.sessions, store=state.store, clock=clock)


def _live_through_every_notice(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    worker: Worker,
    receiver: Receiver,
) -> Story:
    tom, tom_keys = trustee(app, config, client, "Tom")
    hook_key = age.HybridIdentity.generate()
    who = reporter(app, config, client, "Ana")
    release = age.X25519Identity.generate()
    add_item(client, who, b"the ledger " * 100, name="ledger.pdf", extra=[release.recipient()])
    spare = add_item(client, who, b"a draft", name="draft.txt")
    policy = {
        **POLICY,
        "reminders": [86400],
        "remind": [{"email": "box1@example.org"}],
        "alert": [
            # Tom: encrypted to his card, naming Ana as her card does.
            {"email": "box2@example.org", "age": tom_keys.card().recipient, "name": "Ana"},
            {
                "webhook": receiver.url,
                "secret": HOOK_SECRET,
                "age": str(hook_key.recipient()),
                "name": "Ana",
            },
            # No key: a link; no name, or one that is not her card's: unverified.
            {"email": "box3@example.org"},
            {"email": "box4@example.org", "name": "Anna K."},
        ],
        "publish": [{"email": "box5@example.org"}],
    }
    arming, answer = arm(
        client,
        who,
        policy=policy,
        release=release,
        trustees=[(tom.id, tom_keys.card().age_recipient())],
        threshold=2,
        release_items=[i for i in who.items if i != spare],
        handle="ana-desk",
        phrase=PHRASE,
        duress_phrase=DURESS_PHRASE,
    )
    assert answer.status_code == 201, answer.json
    sessions = app.extensions["evault"].sessions
    signer = load_key_file(config.key_file).log_signer

    def web_checkin(phrase: str) -> bool:
        with sessions() as session:
            try:
                switch_service.checkin_with_phrase(
                    session, handle="ana-desk", phrase=phrase, now=clock.now(), signer=signer
                )
            except switch_service.CheckinRefusedError:
                session.commit()
                return False
            session.commit()
            return True

    # A reminder, a day before the deadline.
    clock.advance(dt.timedelta(days=6, seconds=1))
    worker.sweep()
    # Someone guesses the web phrase.
    for _ in range(3):
        assert not web_checkin("a wrong guess, long enough")
    # A deletion waits for cooling-off; the trustees are told.
    asked = client.delete(f"/api/v1/items/{spare}", headers=who.headers)
    assert asked.status_code == 202, asked.json
    # The deadline passes, then Ana checks in again.
    clock.advance(dt.timedelta(days=1))
    worker.sweep()
    assert web_checkin(PHRASE)
    # A check-in under duress.
    assert web_checkin(DURESS_PHRASE)
    # No more check-ins: the release waits for Tom's share, then is published.
    clock.advance(dt.timedelta(days=9))
    worker.sweep()
    handed = client.post(
        f"/api/v1/trustee/vaults/{who.vault}/shares",
        json={"mnemonic": arming.mnemonics[1]},
        headers=tom.headers,
    )
    assert handed.status_code == 200, handed.json
    worker.sweep()
    assert client.get("/api/v1/switch", headers=who.headers).json["state"] == "released"
    return Story(
        vault=who.vault,
        account=who.user.id,
        trustee=tom.id,
        tom=tom_keys.age_identity,
        hook_key=hook_key,
        sessions=sessions,
    )


def _forbidden(story: Story) -> re.Pattern[str]:
    """Words no clear subject, body or header may hold: what happened, and who."""
    words = [
        r"duress",
        r"releas\w*",
        r"check[- ]?ins?",
        r"checked",
        r"missed",
        r"overdue",
        r"vaults?",
        r"reporters?",
        r"trustees?",
        r"alerts?",
        r"remind\w*",
        r"shares?",
        r"deadline",
        r"delet\w*",
        r"phrase",
        r"Ana",
        r"Anna",
        r"Tom",
        r"ana-desk",
        re.escape(story.vault),
        re.escape(story.vault[:8]),
        re.escape(story.account),
        re.escape(story.account[:8]),
        re.escape(story.trustee),
        re.escape(story.trustee[:8]),
    ]
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


def _event_of(story: Story, delivery: str) -> str:
    with story.sessions() as session:
        message = session.get(OutboxMessage, delivery)
        assert message is not None
        return message.event


def _show(client: FlaskClient, token: str) -> Any:
    """Press the page's button: an empty form, as a browser posts it."""
    return client.post(
        f"/notice/{token}", data=b"", content_type="application/x-www-form-urlencoded"
    )


def _age_decrypt(identity: age.Identity, armored: bytes, tmp_path: Path) -> str:
    """The real age tool's reading of a notice file."""
    key = tmp_path / "identity.txt"
    key.write_text(f"{identity}\n")
    key.chmod(0o600)
    tool = shutil.which("age")
    assert tool is not None, "the age tool is needed (apt install age)"
    done = subprocess.run(
        [tool, "-d", "-i", str(key)], input=armored, capture_output=True, check=True, timeout=30
    )
    return done.stdout.decode("utf-8")


@pytest.mark.usefixtures("light_phrase_hashing")
def test_every_notice_gives_nothing_away_and_its_recipient_reads_it(
    app: Flask,
    config: Config,
    client: FlaskClient,
    clock: ManualClock,
    mailbox: tuple[Mailbox, int],
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    box, port = mailbox
    worker = _worker(app, config, clock, port)
    story = _live_through_every_notice(app, config, client, clock, worker, receiver)
    worker.deliver()
    forbidden = _forbidden(story)
    seen: dict[str, set[str]] = {}
    attachments: list[bytes] = []
    links: dict[str, str] = {}
    link_bodies: set[int] = set()
    for raw in box.raw:
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        to = str(parsed["To"])
        event = _event_of(story, str(parsed["X-Evault-Delivery"]))
        seen.setdefault(event, set()).add(to)
        assert parsed["Subject"] == SUBJECT
        clear = raw.decode("ascii")
        if to == "box2@example.org":
            text, attached = list(parsed.iter_parts())
            assert text.get_content().replace("\r\n", "\n") == KEYED_BODY
            assert attached.get_filename() == ATTACHMENT
            armored = attached.get_content()
            assert armored.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
            attachments.append(armored)
            # What the mail server reads, but for the ciphertext's own base64.
            encoded = attached.get_payload()
            assert isinstance(encoded, str)
            clear = clear.replace(encoded.strip(), "")
            details = _age_decrypt(story.tom, armored, tmp_path)
            assert len(details.encode()) % PAD_TO == 0
            title, _, text_of = details.rstrip(" ").partition("\n\n")
            assert title.startswith("Evidence Vault: ")
            if event != "switch.reminder":
                assert "Ana" in text_of
                assert "unverified" not in text_of
                assert story.vault[:8] not in text_of.replace(story.vault, "")
        else:
            assert not parsed.is_multipart()
            body = parsed.get_content().replace("\r\n", "\n")
            found = re.search(r"/notice/([A-Za-z0-9_-]{43})\n", body)
            assert found is not None, body
            link = f"{config.base_url}/notice/{found[1]}"
            assert body == LINK_BODY.format(days=notice_links.LINK_LIFETIME.days, link=link)
            links[f"{event} {to}"] = found[1]
            link_bodies.add(len(body))
        assert forbidden.search(clear) is None, (event, to, forbidden.search(clear))

    # Every kind went out, each to the right people, and the reporter's own
    # address heard nothing of the duress or of what it set off.
    assert set(seen) == KINDS
    alerts = {"box2@example.org", "box3@example.org", "box4@example.org"}
    assert seen["switch.reminder"] == {"box1@example.org"}
    assert seen["switch.duress"] == alerts
    assert seen["switch.released"] == alerts | {"box5@example.org"}
    assert seen["switch.overdue"] == alerts | {"box1@example.org"}
    assert not any(
        "box1@example.org" in seen[k] for k in KINDS - {"switch.reminder", "switch.overdue"}
    )
    # One size class: every link body and every attachment alike, whatever the kind.
    assert len(link_bodies) == 1
    assert len({len(a) for a in attachments}) == 1

    # The webhook: nothing but the delivery, the time and the armored details.
    hooks = receiver.received
    assert {_event_of(story, json.loads(h.body)["delivery"]) for h in hooks} == KINDS - {
        "switch.reminder"
    }
    for hook in hooks:
        document = json.loads(hook.body)
        assert set(document) == {"age", "delivery", "time"}
        assert forbidden.search(json.dumps(dict(hook.headers))) is None
        opened = open_notice(document["age"].encode(), [story.hook_key])
        assert opened.document is not None
        assert opened.document["reporter"] == {"name": "Ana", "verified": True}
        assert opened.document["vault"] == story.vault
        assert opened.text.startswith("Ana ") or "for Ana on" in opened.text
    assert len({len(h.body) for h in hooks}) == 1

    # The links: a page with a button, the notice on a POST, nothing for a wrong token.
    duress_link = links["switch.duress box3@example.org"]
    page = client.get(f"/notice/{duress_link}")
    assert page.status_code == 200
    assert "Show the notice" in page.text
    assert "duress" not in page.text.lower()
    shown = _show(client, duress_link)
    assert shown.status_code == 200
    assert "duress" in shown.text
    assert f"The reporter of vault {story.vault[:8]} (name unverified)" in shown.text
    named = _show(client, links["switch.duress box4@example.org"])
    assert "Anna K. (unverified: not the name on their card)" in named.text
    released = _show(client, links["switch.released box5@example.org"])
    assert f"/release/{story.vault}" in released.text
    wrong = secrets.token_urlsafe(32)
    for token in (wrong, duress_link[:-1] + ("A" if duress_link[-1] != "A" else "B"), "short"):
        assert client.get(f"/notice/{token}").status_code == 404
        assert _show(client, token).status_code == 404
    # Only the hash of a token is kept.
    with story.sessions() as session:
        stored = set(session.scalars(select(NoticeLink.token_hash)))
    assert hashlib.sha256(duress_link.encode()).hexdigest() in stored
    assert duress_link not in stored
    # Past its time the link shows nothing, and the worker forgets it.
    clock.advance(notice_links.LINK_LIFETIME)
    assert client.get(f"/notice/{duress_link}").status_code == 404
    assert _show(client, duress_link).status_code == 404
    worker.sweep()
    with story.sessions() as session:
        assert hashlib.sha256(duress_link.encode()).hexdigest() not in set(
            session.scalars(select(NoticeLink.token_hash))
        )


def test_a_contact_carries_a_checked_key_and_name() -> None:
    key = age.X25519Identity.generate()
    contact = {"email": "box2@example.org", "age": f" {key.recipient()} ", "name": " Ana "}
    parsed = switch_service.Policy.parse({**POLICY, "alert": [contact]})
    assert dict(parsed.alert[0]) == {
        "age": str(key.recipient()),
        "email": "box2@example.org",
        "name": "Ana",
    }
    # The key and name are public: they stay in what the reporter is shown.
    assert parsed.public_json()["alert"] == [dict(parsed.alert[0])]
    # Another key on the same address is another contact: the change cools off.
    other = {**contact, "age": str(age.X25519Identity.generate().recipient())}
    assert parsed.weakened_by(switch_service.Policy.parse({**POLICY, "alert": [other]}))
    for bad, message in (
        ({"age": "age1notakey"}, "invalid age recipient"),
        ({"age": 7}, "invalid age recipient"),
        ({"name": "Ana\u202e"}, "control or formatting"),
        ({"name": ""}, "1 to 128"),
        ({"name": ["Ana"]}, "must be text"),
        ({"nickname": "Ana"}, "a contact is"),
    ):
        with pytest.raises(switch_service.PolicyError, match=message):
            switch_service.Policy.parse({**POLICY, "alert": [{"email": "b@example.org", **bad}]})


def test_how_a_notice_names_the_reporter() -> None:
    vault = "9c41" + "0" * 28

    def named(contact: dict[str, str]) -> tuple[str, str | None, bool]:
        return switch_service.reporter_named(contact, card_name="Ana", vault_id=vault)

    assert named({"email": "a@example.org", "name": "Ana"}) == ("Ana", "Ana", True)
    assert named({"email": "a@example.org", "name": "Anna"}) == (
        "Anna (unverified: not the name on their card)",
        "Anna",
        False,
    )
    assert named({"email": "a@example.org"}) == (
        "the reporter of vault 9c410000 (name unverified)",
        None,
        False,
    )
