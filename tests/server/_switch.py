"""Helpers of the dead-man switch tests: a reporter with real signed items, arming, trustees."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import threading
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from client.recipients import encrypt, new_header
from server.clock import ManualClock
from server.config import Config
from server.models import OutboxMessage
from server.worker import Worker
from tests.server._helpers import bearer, identity, invite, log_in
from tests.server._items import OCTETS, User, user
from vault import age
from vault._base64 import b64encode
from vault.age.format import Source, parse_header
from vault.age.stream import encrypt_payload
from vault.disclosure import Disclosure, Reveal
from vault.keys import PersonalIdentity
from vault.manifest import Manifest
from vault.shares import share_commitment, split_secret


class Recorder:
    """A notice sender that keeps what it was asked to send (from any thread)."""

    def __init__(self) -> None:
        self.sent: list[OutboxMessage] = []
        self._lock = threading.Lock()

    def send(self, message: OutboxMessage, *, now: int) -> None:
        with self._lock:
            self.sent.append(message)

    def events(self) -> list[tuple[str, str]]:
        return [(m.event, m.target) for m in self.sent]


def new_worker(app: Flask, config: Config, clock: ManualClock, sender: Recorder) -> Worker:
    """A worker on ``app``'s database and store, with ``clock`` and ``sender``."""
    state = app.extensions["evault"]
    return Worker(
        config=config, sessions=state.sessions, store=state.store, clock=clock, sender=sender
    )


POLICY: dict[str, Any] = {
    "interval": 7 * 86400,
    "grace": 86400,
    "reminders": [86400, 3600],
    "duress": "alert",
    "cooling_off": 72 * 3600,
    "remind": [{"email": "reporter@example.org"}],
    "alert": [{"email": "trustee@example.org"}],
    "publish": [{"email": "desk@example.org"}],
}


@dataclasses.dataclass
class Reporter:
    """A registered reporter: keys, account, vault, login headers and their items."""

    person: PersonalIdentity
    twin: PersonalIdentity
    user: User
    vault: str
    items: dict[str, bytes] = dataclasses.field(default_factory=dict)

    @property
    def headers(self) -> dict[str, str]:
        return self.user.headers


def reporter(app: Flask, config: Config, client: FlaskClient, name: str = "Ana") -> Reporter:
    """A reporter who registered the card of their duress twin, logged in."""
    person = identity(name)
    twin = person.duress_twin()
    response = client.post(
        "/api/v1/accounts",
        json={
            "invite": invite(app, config, "reporter"),
            "card": person.card().to_json().decode("utf-8"),
            "duress_card": twin.card().to_json().decode("utf-8"),
        },
    )
    assert response.status_code == 201, response.json
    account = response.json["account"]
    token = log_in(client, person, account["id"])["token"]
    who = User(id=account["id"], role="reporter", headers=bearer(token))
    return Reporter(person=person, twin=twin, user=who, vault=account["vault"])


def duress_login(client: FlaskClient, who: Reporter) -> dict[str, str]:
    """Log in with the duress twin's key: headers of a session under duress."""
    return bearer(log_in(client, who.twin, who.user.id)["token"])


def add_item(
    client: FlaskClient,
    who: Reporter,
    plaintext: bytes,
    *,
    name: str = "evidence.pdf",
    extra: list[age.Recipient] | None = None,
    release: bool = False,
    headers: dict[str, str] | None = None,
    decoy: bool = False,
    note: str = "",
    disclose: tuple[age.X25519Recipient, Reveal] | None = None,
) -> str:
    """Upload a real item with a signed manifest, encrypted to the reporter and ``extra``.

    With ``disclose`` (a release recipient and a choice), the item joins the
    release set as a client does it: its header is encrypted to the release
    recipient too, its manifest is not, and its disclosure goes with it.
    With ``decoy`` the item is one of the decoy vault's, made by the twin; given
    ``headers`` of a session under duress, the session uploads it (and with
    ``decoy`` too, the item is that session's decoy, which it keeps to itself).
    """
    owner = who.twin if decoy or headers is not None else who.person
    headers = who.headers if headers is None else headers
    recipients = [owner.card().age_recipient(), *(extra or [])]
    out = io.BytesIO()
    header_of_item, file_key = new_header(recipients, None if disclose is None else disclose[0])
    out.write(header_of_item.marshal())
    encrypt_payload(file_key, io.BytesIO(plaintext), out.write)
    data = out.getvalue()
    header = parse_header(Source(io.BytesIO(data))).marshal()
    payload = data[len(header) :]
    started = client.post(
        "/api/v1/uploads",
        json={
            "size": len(payload),
            "header": b64encode(header),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "decoy": decoy,
        },
        headers=headers,
    )
    assert started.status_code == 201, started.json
    upload = started.json["upload"]
    manifest = Manifest(
        item_id=upload["item"],
        vault_id=who.vault,
        filename=name,
        media_type="application/pdf",
        size=len(plaintext),
        plaintext_sha256=hashlib.sha256(plaintext).hexdigest(),
        payload_sha256=hashlib.sha256(payload).hexdigest(),
        captured_at=Manifest.now(),
        note=note,
        signer=owner.card().signing_key,
    ).sign(owner)
    sealed = io.BytesIO()
    age.encrypt(io.BytesIO(manifest.to_json()), sealed, recipients)
    put = client.put(
        f"/api/v1/uploads/{upload['id']}/chunks?offset=0",
        data=payload,
        content_type=OCTETS,
        headers=headers,
    )
    assert put.status_code == 200, put.json
    body: dict[str, Any] = {"manifest": b64encode(sealed.getvalue())}
    if release or disclose is not None:
        body["release"] = True
    if disclose is not None:
        disclosure = Disclosure.of(manifest.manifest, disclose[1]).sign(owner).to_json()
        body["disclosure"] = b64encode(
            encrypt(disclosure, [owner.card().age_recipient()], disclose[0])
        )
    committed = client.post(f"/api/v1/uploads/{upload['id']}/commit", json=body, headers=headers)
    assert committed.status_code == 201, committed.json
    item_id: str = committed.json["item"]["id"]
    if owner is who.person:
        who.items[item_id] = plaintext
    return item_id


@dataclasses.dataclass
class Arming:
    """A release identity and the shares made of it, as a client would make them."""

    identity: age.X25519Identity
    mnemonics: list[str]
    shares: list[dict[str, str]]


def make_shares(
    release: age.X25519Identity, custodians: list[tuple[str, age.Recipient]], threshold: int
) -> Arming:
    mnemonics = split_secret(_secret(release), threshold, len(custodians))
    return seal_shares(release, custodians, mnemonics)


def seal_shares(
    release: age.X25519Identity, custodians: list[tuple[str, age.Recipient]], mnemonics: list[str]
) -> Arming:
    """Each share sealed to its custodian, with its commitment, as the arm request carries it."""
    shares = []
    for (custodian, recipient), mnemonic in zip(custodians, mnemonics, strict=True):
        out = io.BytesIO()
        age.encrypt(io.BytesIO(mnemonic.encode("utf-8")), out, [recipient])
        shares.append(
            {
                "custodian": custodian,
                "age": b64encode(out.getvalue()),
                "commitment": b64encode(share_commitment(mnemonic)),
            }
        )
    return Arming(identity=release, mnemonics=mnemonics, shares=shares)


def _secret(identity: age.X25519Identity) -> bytes:
    secret: bytes = identity._secret
    return secret


def custodian_recipient(client: FlaskClient, who: Reporter) -> age.Recipient:
    answer = client.get("/api/v1/switch/custodian", headers=who.headers)
    assert answer.status_code == 200, answer.json
    return age.parse_recipient(answer.json["recipient"])


def arm(
    client: FlaskClient,
    who: Reporter,
    *,
    policy: dict[str, Any] | None = None,
    trustees: list[tuple[str, age.Recipient]] = (),  # type: ignore[assignment]
    threshold: int = 1,
    release_items: list[str] | None = None,
    release: age.X25519Identity | None = None,
    **extra: Any,
) -> tuple[Arming, Any]:
    """Arm ``who``'s vault; return the shares made and the answer."""
    release = release or age.X25519Identity.generate()
    custodians = [("server", custodian_recipient(client, who)), *trustees]
    arming = make_shares(release, custodians, threshold)
    answer = client.post(
        "/api/v1/switch/arm",
        json={
            "policy": policy or POLICY,
            "release_recipient": str(release.recipient()),
            "threshold": threshold,
            "shares": arming.shares,
            "release_items": list(who.items) if release_items is None else release_items,
            **extra,
        },
        headers=who.headers,
    )
    return arming, answer


def trustee(
    app: Flask, config: Config, client: FlaskClient, name: str = "Tom"
) -> tuple[User, PersonalIdentity]:
    """A logged-in editor and their keys, to hold a share."""
    person = identity(name)
    response = client.post(
        "/api/v1/accounts",
        json={"invite": invite(app, config, "editor"), "card": person.card().to_json().decode()},
    )
    assert response.status_code == 201, response.json
    account_id = response.json["account"]["id"]
    token = log_in(client, person, account_id)["token"]
    return User(id=account_id, role="editor", headers=bearer(token)), person


__all__ = [
    "POLICY",
    "Arming",
    "Recorder",
    "Reporter",
    "add_item",
    "arm",
    "custodian_recipient",
    "duress_login",
    "make_shares",
    "new_worker",
    "reporter",
    "seal_shares",
    "trustee",
    "user",
]
