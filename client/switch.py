"""The dead-man switch from the reporter's device: arm, change, check in, read its state.

DESIGN.md, "Dead-man switch". Arming happens here, on the reporter's
device, because only it can open the items:

1. a fresh release identity is made (X25519, its 32-byte secret);
2. the secret is split k-of-n into SLIP-39 shares (:mod:`vault.shares`),
   one per custodian: position 0 is the server, then each trustee, and
   each share is sealed as a small age file that only its custodian opens
   (the server's custodian key, the trustee's pinned card), sent with its
   commitment, so that at release the server takes only these shares and
   no made-up share of the same set;
3. every item of the reporter gets the release recipient added to its
   header, and a disclosure: what the reporter chose to make public of its
   manifest (:mod:`client.disclosure`), never the manifest itself;
4. the policy, the recipient, the sealed shares and the item ids go to the
   server, whose log entry must record exactly that release set.

The release secret is never written anywhere and is dropped once the shares
are sealed: from then on only k custodians together can rebuild it.

A check-in is a statement signed with the identity's key
(:class:`vault.protocol.CheckinStatement`); it needs no login, so over Tor
it is one request. A duress passphrase opens an identity whose key the
server also knows: its check-ins, deletions and changes look the same here
and on the server's answers, and nothing in this module tells them apart.
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import re
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from typing import Any

from client import contacts
from client import items as item_service
from client.api import ApiError
from client.audit import read_log
from client.changes import PendingChange, expect_change, parse_change
from client.context import Client
from client.disclosure import seal_disclosure
from client.durations import parse_time
from client.items import Rewrapped
from client.logcheck import LoggedEntry
from client.policy import CHANNELS, Policy
from vault import age, canonical
from vault._base64 import b64encode
from vault.disclosure import DEFAULT_REVEAL, Reveal
from vault.errors import ConfigError, ProofError, VaultError
from vault.manifest import Manifest
from vault.protocol import CHECKIN_CONTEXT, CHECKIN_NONCE_SIZE, CheckinStatement
from vault.shares import MAX_SHARES, share_commitment, split_secret

__all__ = [
    "ARMED_STATES",
    "Armed",
    "Checkin",
    "Custodian",
    "PolicyChange",
    "Status",
    "all_shares_needed",
    "arm",
    "change_policy",
    "check_handle",
    "checkin",
    "custodians",
    "default_threshold",
    "disarm",
    "fetch_status",
    "read_status",
    "release_page",
    "release_recipient",
    "seal_shares",
    "set_phrases",
]

ARMED_STATES = ("armed", "overdue", "releasing")
"""States in which the vault has a release set that new items may join."""
STATES = ("disarmed", "armed", "overdue", "releasing", "released")
SERVER = "server"
_HANDLE = re.compile(r"[a-z0-9][a-z0-9-]{2,63}")
_ACCOUNT = re.compile(r"[0-9a-f]{32}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RELEASE_KEY_SIZE = 32
STAGE_BATCH = 50
"""Most items staged per request."""
STAGE_BYTES = 384 * 1024
"""Most bytes of headers and disclosures staged per request: base64 keeps the request well
below the server's 1 MiB body limit, however many editors' stanzas a header holds."""


def check_handle(handle: str) -> str:
    """A web check-in handle: 3 to 64 of ``a-z 0-9 -``, not beginning with ``-``.

    Raises:
        ConfigError: anything else.
    """
    if not _HANDLE.fullmatch(handle):
        raise ConfigError(
            f"invalid handle {handle!r}",
            hint="use 3 to 64 lower-case letters, digits and -, not beginning with -",
        )
    return handle


# -- custodians and shares ------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Custodian:
    """Who holds one share: ``server`` or a trustee's account id, and whom it is sealed to."""

    custodian: str
    name: str
    recipient: age.Recipient


def custodians(client: Client, trustees: Sequence[str]) -> list[Custodian]:
    """The server's custodian, then each trustee, in share order.

    Each trustee must be a pinned, verified contact whose card the server
    still confirms and whose account is an editor's.

    Raises:
        ConfigError: an unknown, unverified or repeated trustee, or not an editor.
        KeyChangedError: the server gives another key for a trustee.
    """
    if len(set(trustees)) != len(trustees):
        raise ConfigError("a trustee is named twice")
    if 1 + len(trustees) > MAX_SHARES:
        raise ConfigError(f"at most {MAX_SHARES - 1} trustees (the server holds a share too)")
    found = []
    for name in trustees:
        pinned = contacts.current_card(client, name, role="editor")
        found.append(
            Custodian(
                custodian=pinned.contact.account,
                name=name,
                recipient=pinned.card.age_recipient(),
            )
        )
    answer = client.call("GET", "/switch/custodian")
    text = answer.get("recipient")
    try:
        recipient = age.parse_recipient(str(text))
    except VaultError:
        raise ProofError("the server sent a malformed custodian recipient") from None
    return [Custodian(custodian=SERVER, name="the server", recipient=recipient), *found]


def seal_shares(
    secret: bytes, threshold: int, holders: Sequence[Custodian]
) -> list[dict[str, str]]:
    """Split ``secret`` k-of-n and seal each mnemonic to its custodian, in order.

    Each share goes with its commitment (:func:`vault.shares.share_commitment`,
    base64), which the server keeps to recognise the share at release.

    Raises:
        ConfigError: a threshold out of 1..n.
    """
    if not 1 <= threshold <= len(holders):
        raise ConfigError(
            f"the threshold must be between 1 and {len(holders)} "
            "(the server and the trustees each hold one share)"
        )
    mnemonics = split_secret(secret, threshold, len(holders))
    sealed = []
    for holder, mnemonic in zip(holders, mnemonics, strict=True):
        out = io.BytesIO()
        age.encrypt(io.BytesIO(mnemonic.encode("ascii")), out, [holder.recipient])
        sealed.append(
            {
                "custodian": holder.custodian,
                "age": b64encode(out.getvalue()),
                "commitment": b64encode(share_commitment(mnemonic)),
            }
        )
    return sealed


# -- status -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Status:
    """``GET /switch``: the vault's switch as the server has it."""

    state: str
    vault: str | None = None
    policy: Policy | None = None
    threshold: int | None = None
    custodians: tuple[tuple[int, str], ...] = ()
    release_recipient: str | None = None
    commitment_count: int | None = None
    release_items: tuple[str, ...] = ()
    armed_at: datetime.datetime | None = None
    last_checkin: datetime.datetime | None = None
    deadline: datetime.datetime | None = None
    release_at: datetime.datetime | None = None
    handle: str | None = None
    pending: tuple[PendingChange, ...] = ()
    releases: tuple[tuple[int, datetime.datetime | None], ...] = ()
    """The vault's published releases, oldest first: number and time."""

    @property
    def armed(self) -> bool:
        return self.state in ARMED_STATES


def _int(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ProofError(f"the server sent a malformed switch ({what})")
    return value


def parse_status(answer: dict[str, Any]) -> Status:
    """Read ``GET /switch``.

    Raises:
        ProofError: malformed.
    """
    state = answer.get("state")
    if state not in STATES:
        raise ProofError("the server sent a malformed switch (state)")
    if set(answer) == {"state"}:
        return Status(state=str(state))
    custodian_list = answer.get("custodians", [])
    if not isinstance(custodian_list, list):
        raise ProofError("the server sent a malformed switch (custodians)")
    holders = []
    for raw in custodian_list:
        if not isinstance(raw, dict) or not (
            raw.get("custodian") == SERVER or _ACCOUNT.fullmatch(str(raw.get("custodian")))
        ):
            raise ProofError("the server sent a malformed switch (custodians)")
        holders.append((_int(raw.get("position"), "custodians"), str(raw["custodian"])))
    items = answer.get("release_items", [])
    if not isinstance(items, list) or not all(_ACCOUNT.fullmatch(str(i)) for i in items):
        raise ProofError("the server sent a malformed switch (release items)")
    commitment = answer.get("commitment")
    count = None
    if isinstance(commitment, dict):
        count = _int(commitment.get("count"), "commitment")
    pending = answer.get("pending", [])
    if not isinstance(pending, list):
        raise ProofError("the server sent a malformed switch (pending)")
    handle = answer.get("handle")
    recipient = answer.get("release_recipient")
    threshold = answer.get("threshold")
    published = answer.get("releases", [])
    if not isinstance(published, list) or not all(isinstance(r, dict) for r in published):
        raise ProofError("the server sent a malformed switch (releases)")
    releases = tuple(
        (_int(r.get("number"), "releases"), parse_time(r.get("published_at"))) for r in published
    )
    return Status(
        state=str(state),
        vault=str(answer.get("vault")),
        policy=Policy.from_json(answer.get("policy")),
        threshold=None if threshold is None else _int(threshold, "threshold"),
        custodians=tuple(sorted(holders)),
        release_recipient=recipient if isinstance(recipient, str) else None,
        commitment_count=count,
        release_items=tuple(str(i) for i in items),
        armed_at=parse_time(answer.get("armed_at")),
        last_checkin=parse_time(answer.get("last_checkin")),
        deadline=parse_time(answer.get("deadline")),
        release_at=parse_time(answer.get("release_at")),
        handle=handle if isinstance(handle, str) else None,
        pending=tuple(parse_change(p) for p in pending),
        releases=releases,
    )


def read_status(client: Client) -> Status:
    """The switch as the server has it, and nothing noted on this device.

    Raises:
        ProofError: malformed.
    """
    return parse_status(client.call("GET", "/switch"))


def fetch_status(client: Client) -> Status:
    """The switch as the server has it; the local note of the release recipient follows it.

    Raises:
        ProofError: malformed, or a release recipient the log does not record.
    """
    status = parse_status(client.call("GET", "/switch"))
    if status.armed and status.release_recipient is not None:
        if client.state.release != status.release_recipient:
            release_recipient(client, status)
    elif status.state in ("disarmed", "released") and client.state.release is not None:
        client.state = replace(client.state, release=None)
    return status


def release_recipient(client: Client, status: Status | None = None) -> age.X25519Recipient | None:
    """The vault's release recipient while the switch is armed, or None.

    This device's note of it is used when there is one. Otherwise the
    server's answer is believed only if the log's newest ``switch.armed``
    entry of this vault names the same recipient: a server that named its
    own would otherwise get every new item encrypted to a key it holds.

    Raises:
        ProofError: the log does not record the recipient the server names.
    """
    if client.state.release is not None and status is None:
        return _parse_release(client.state.release)
    if status is None:
        status = parse_status(client.call("GET", "/switch"))
    if not status.armed or status.release_recipient is None:
        return None
    vault = client.vault
    _, events = read_log(
        client, keep=lambda ev: ev.get("type") == "switch.armed" and ev.get("vault") == vault
    )
    if not events or events[-1].event.get("recipient") != status.release_recipient:
        raise ProofError(
            "the server names a release key that its log does not record for this vault",
            hint="do not trust this server; nothing was added to the release set",
        )
    client.state = replace(client.state, release=status.release_recipient)
    return _parse_release(status.release_recipient)


def _parse_release(text: str) -> age.X25519Recipient:
    damaged = ConfigError(
        "the release key noted in state.json is damaged",
        hint="`evault switch status` notes it again, from the server's answer checked against "
        "its log",
    )
    try:
        recipient = age.parse_recipient(text)
    except VaultError:
        raise damaged from None
    if not isinstance(recipient, age.X25519Recipient):
        raise damaged
    return recipient


# -- arming -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Armed:
    """An armed switch: its deadline, release recipient, release set and log entry."""

    deadline: datetime.datetime | None
    recipient: str
    items: tuple[str, ...]
    holders: tuple[Custodian, ...]
    threshold: int
    entry: LoggedEntry
    reveals: tuple[Reveal, ...] = ()
    """What the release may publish of each item, in the order of ``items``."""


def policy_sha256(policy: Policy) -> str:
    """The hash the log records of a policy: SHA-256 (hex) of its canonical JSON without secrets.

    Webhook secrets are left out: the log is public, and a webhook sent
    without its secret (unchanged) is the same policy.
    """
    value = policy.to_json()
    for name in ("remind", "alert", "publish"):
        contacts = value.get(name)
        if isinstance(contacts, list):
            value[name] = [
                {k: v for k, v in c.items() if k != "secret"} if isinstance(c, dict) else c
                for c in contacts
            ]
    return hashlib.sha256(canonical.dumps(value)).hexdigest()


def own_items(client: Client, *, decoys: bool = False) -> list[str]:
    """The ids of this account's items (or decoys) that no release published yet, as listed.

    A published item is public already, with the key of the release that
    published it: it joins no new release set, and its header stays as
    released.
    """
    metas = item_service.item_metas(client, limit=1000, decoys=decoys)
    return [
        str(meta["id"])
        for meta in metas
        if meta.get("owner") == client.account and meta.get("released_in") is None
    ]


def release_page(client: Client, vault: str, number: int) -> str:
    """The address of a vault's release ``number``: the first at ``/release/VAULT``."""
    page = f"{client.server}/release/{vault}"
    return page if number == 1 else f"{page}/{number}"


def default_threshold(trustees: Sequence[str]) -> int:
    """Shares needed when the reporter names none: with trustees, no single custodian alone.

    With trustees two shares are needed (a trustee and the server, or two
    trustees), so that neither the server nor any one trustee can release;
    without, the server's share alone.
    """
    return 2 if trustees else 1


def all_shares_needed(trustees: Sequence[str], threshold: int) -> bool:
    """Whether every custodian's share is needed: one trustee lost, and nothing is released."""
    return bool(trustees) and threshold == len(trustees) + 1


Narrate = Callable[[str], None]
Choose = Callable[[Sequence[Manifest]], Sequence[Reveal]]
"""Given the manifests of the items to arm, what the release may publish of each."""


def _send_arm(
    client: Client, body: dict[str, Any], *, changed: str, path: str = "/switch/arm"
) -> dict[str, Any]:
    """``POST /switch/arm`` (or ``path``); a refusal says what it left changed (``changed``).

    Raises:
        ConfigError: the server refused (400, or 409 when the switch was armed
            meanwhile by another command or device).
    """
    try:
        return client.call("POST", path, json=body)
    except ApiError as exc:
        if exc.status == 409:
            raise ConfigError(
                f"the switch was armed meanwhile, by another command or device; {changed}",
                hint="`evault switch status` shows it; `evault switch set` with only the "
                "options to change then changes its policy",
            ) from None
        if exc.status == 400:
            reason = exc.message.removeprefix("the server refused: ")
            raise ConfigError(
                f"the server refused to arm the switch: {reason}",
                hint=f"{changed}; correct that and run `evault switch set` again",
            ) from None
        raise


def _send_stage(
    client: Client, recipient: str, batch: Sequence[tuple[Rewrapped, bytes]]
) -> dict[str, Any]:
    """``POST /switch/arm/items``: items re-wrapped for ``recipient``; nothing changes yet.

    Raises:
        ConfigError: the server refused (an item changed meanwhile, or the
            switch was armed meanwhile); nothing was changed.
    """
    body = {
        "release_recipient": recipient,
        "items": [
            {"item": r.item, "header": b64encode(r.header), "disclosure": b64encode(disclosure)}
            for r, disclosure in batch
        ],
    }
    return _send_arm(client, body, changed="nothing was changed", path="/switch/arm/items")


def _batches(
    rewrapped: Sequence[tuple[Rewrapped, bytes]],
) -> list[list[tuple[Rewrapped, bytes]]]:
    """The items in staging requests of at most :data:`STAGE_BATCH` items and about
    :data:`STAGE_BYTES` bytes (an item larger than that goes alone)."""
    batches: list[list[tuple[Rewrapped, bytes]]] = []
    size = 0
    for pair in rewrapped:
        weight = len(pair[0].header) + len(pair[1])
        if not batches or len(batches[-1]) >= STAGE_BATCH or size + weight > STAGE_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(pair)
        size += weight
    return batches


def _check_rewrapped(
    client: Client, listed: object, rewrapped: Sequence[tuple[Rewrapped, bytes]], *, before: int
) -> None:
    """Each item's ``item.shared`` entry in the arm's answer: one per item, as sent, kept.

    Raises:
        ProofError: an item missing, one too many, or an entry that is not what was sent.
    """
    if not isinstance(listed, list) or len(listed) != len(rewrapped):
        raise ProofError(
            "the server did not log the re-wrapped items it armed", hint="do not trust this server"
        )
    for found, (sent, disclosure) in zip(listed, rewrapped, strict=True):
        if not isinstance(found, dict) or found.get("item") != sent.item:
            raise ProofError(
                "the server did not log the re-wrapped items it armed",
                hint="do not trust this server",
            )
        entry = client.log.entry(found)
        entry.expect(sent.expected_entry(client.account, list(sent.editors), disclosure))
        if entry.index >= before:
            raise ProofError("the server logged an item's re-wrap after arming")


def arm(
    client: Client,
    policy: Policy,
    *,
    trustees: Sequence[str],
    threshold: int,
    handle: str | None = None,
    phrase: str | None = None,
    duress_phrase: str | None = None,
    narrate: Narrate = lambda _: None,
    choose: Choose = lambda manifests: [DEFAULT_REVEAL] * len(manifests),
    chosen_items: Collection[str] = (),
) -> Armed:
    """Arm the switch: release identity, shares, release set, policy (see the module).

    Before any item is touched, the whole request goes to the server as a
    dry run (``"dry_run": true``), which runs the real arm's own checks: a
    policy, trustee, threshold or state the server refuses is refused while
    nothing has changed, here or there. ``choose`` then gets the manifests of
    the items and says, for each, what the release may make public; the
    items re-wrapped for the release recipient, each with its disclosure,
    are staged (``POST /switch/arm/items``), which changes nothing either,
    and the arm applies them with the switch in one transaction: arming
    happens whole, or not at all. ``chosen_items`` are items ``choose`` has a
    choice for: each must be among those armed, checked before anything else.

    Raises:
        ConfigError: bad trustees or threshold; a chosen item not armed; the
            server refused.
        ProofError: the server logged another release set or policy.
    """
    holders = custodians(client, trustees)
    secret = os.urandom(_RELEASE_KEY_SIZE)
    recipient = age.X25519Identity(secret).recipient()
    shares = seal_shares(secret, threshold, holders)
    # The only whole copy of the release secret: gone from here on.
    del secret
    ids = own_items(client)
    strays = sorted(set(chosen_items) - set(ids))
    if strays:
        raise ConfigError(
            f"--reveal-item names {strays[0]}, which is not among the items being armed",
            hint="`evault ls` lists your items; those a release published join no new one",
        )
    body: dict[str, Any] = {
        "policy": policy.to_json(),
        "release_recipient": str(recipient),
        "threshold": threshold,
        "shares": shares,
        "release_items": ids,
    }
    if handle is not None:
        body["handle"] = check_handle(handle)
    if phrase is not None:
        body["phrase"] = phrase
    if duress_phrase is not None:
        body["duress_phrase"] = duress_phrase
    checked = _send_arm(client, {**body, "dry_run": True}, changed="nothing was changed")
    if checked != {"dry_run": True}:
        raise ProofError(
            "the server did not answer the dry run of arming as one",
            hint="do not trust this server; no item was changed",
        )
    wrapped = [item_service.with_release_recipient(client, item, recipient) for item in ids]
    reveals = list(choose([r.manifest for r in wrapped]))
    if len(reveals) != len(wrapped):
        raise AssertionError("internal error: a choice of what to publish per item")
    rewrapped = [
        (r, seal_disclosure(client, r.manifest, reveal, recipient))
        for r, reveal in zip(wrapped, reveals, strict=True)
    ]
    narrate(
        f"Adding the release key to {len(ids)} item(s) and sealing {len(holders)} share(s) "
        f"({threshold} needed to release)"
    )
    for batch in _batches(rewrapped):
        staged = _send_stage(client, str(recipient), batch)
        if staged != {"staged": len(batch)}:
            raise ProofError(
                "the server did not stage the items sent", hint="do not trust this server"
            )
    answer = _send_arm(client, body, changed="nothing was changed")
    commitment = {"count": len(ids), "sha256": sorted(r.manifest.payload_sha256 for r in wrapped)}
    entry = client.log.entry(answer)
    entry.expect(
        {
            "type": "switch.armed",
            "vault": client.vault,
            "account": client.account,
            "recipient": str(recipient),
            "threshold": threshold,
            "shares": len(holders),
            "commitment": commitment,
            "policy_sha256": policy_sha256(policy),
        }
    )
    if answer.get("commitment") != commitment:
        raise ProofError(
            "the server's release set is not the items sent", hint="do not trust this server"
        )
    _check_rewrapped(client, answer.get("items"), rewrapped, before=entry.index)
    client.state = replace(client.state, release=str(recipient))
    # The decoys get the release key in their headers too, once the arm is done, so that
    # they look like the real items to whoever opens the decoy vault; never released.
    for item in own_items(client, decoys=True):
        item_service.release_recipient_on_decoy(client, item, recipient)
    return Armed(
        deadline=parse_time(answer.get("deadline")),
        recipient=str(recipient),
        items=tuple(ids),
        holders=tuple(holders),
        threshold=threshold,
        entry=entry,
        reveals=tuple(reveals),
    )


# -- changes --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PolicyChange:
    """A policy change: applied now, or pending until its cooling-off ends."""

    applied: bool
    change: PendingChange | None
    entry: LoggedEntry


def change_policy(client: Client, policy: Policy) -> PolicyChange:
    """Send a new policy; a weaker one waits out the cooling-off delay.

    Raises:
        ProofError: the server logged something else.
    """
    try:
        _, answer = client.authed().answer(
            "POST", "/switch/policy", json={"policy": policy.to_json()}, ok=(200, 202)
        )
    except ApiError as exc:
        if exc.status == 409:
            raise _not_armed("its policy was not changed") from None
        kept = [
            f"--{channel}-webhook"
            for channel in CHANNELS
            for notice in getattr(policy, channel)
            if notice.webhook is not None and notice.secret is None
        ]
        if exc.status == 400 and kept:
            raise ConfigError(
                exc.message,
                hint="the server does not show webhook secrets, so they cannot be sent back "
                f"unchanged: give that list again ({', '.join(sorted(set(kept)))} URL …); "
                "its webhooks get new secrets",
            ) from None
        raise
    entry = client.log.entry(answer)
    status = answer.get("status")
    if status == "pending":
        change = parse_change(answer.get("change"))
        expect_change(client, entry, change, kind="policy")
        return PolicyChange(applied=False, change=change, entry=entry)
    if status != "applied":
        raise ProofError("the server sent a malformed answer to a policy change")
    entry.expect(
        {"type": "switch.policy", "vault": client.vault, "policy_sha256": policy_sha256(policy)}
    )
    return PolicyChange(applied=True, change=None, entry=entry)


def _not_armed(what: str) -> ConfigError:
    return ConfigError(
        f"the switch is not armed: {what}",
        hint="`evault switch status` shows its state; `evault switch set --every 24h` arms it",
    )


def disarm(client: Client) -> tuple[PendingChange, LoggedEntry]:
    """Ask to disarm; it takes effect after the cooling-off delay unless trustees cancel it.

    Raises:
        ConfigError: the switch is not armed.
    """
    try:
        _, answer = client.authed().answer("POST", "/switch/disarm", json={}, ok=(200, 202))
    except ApiError as exc:
        if exc.status == 409:
            raise _not_armed("there is nothing to disarm") from None
        raise
    entry = client.log.entry(answer)
    change = parse_change(answer.get("change"))
    expect_change(client, entry, change, kind="disarm")
    return change, entry


def set_phrases(client: Client, handle: str, phrase: str, duress_phrase: str | None) -> str:
    """Set the web check-in handle and phrases (hashed with Argon2id by the server)."""
    body = {"handle": check_handle(handle), "phrase": phrase}
    if duress_phrase is not None:
        body["duress_phrase"] = duress_phrase
    try:
        answer = client.call("POST", "/switch/phrase", json=body)
    except ApiError as exc:
        if exc.status == 409:
            raise ConfigError(
                "the switch is not armed: the web check-in is for an armed switch",
                hint="arm it with the handle: `evault switch set --every 24h --handle NAME`",
            ) from None
        raise
    if answer.get("handle") != handle:
        raise ProofError("the server set another handle than the one sent")
    return handle


# -- check-in ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Checkin:
    """An accepted check-in: the new deadline and the log entry."""

    deadline: datetime.datetime | None
    entry: LoggedEntry


def checkin_statement(client: Client, now: float | None = None) -> CheckinStatement:
    """A fresh statement for this vault and the pinned log's origin."""
    return CheckinStatement(
        origin=client.origin(),
        vault=client.vault,
        time=int(time.time() if now is None else now),
        nonce=os.urandom(CHECKIN_NONCE_SIZE),
    )


def checkin(client: Client) -> Checkin:
    """Sign and send a check-in (no login: one request).

    Raises:
        ApiError: refused (a clock more than five minutes off, a switch not armed).
        ProofError: the server logged something else.
    """
    statement = checkin_statement(client)
    message = statement.message()
    signature = client.identity.sign(CHECKIN_CONTEXT, message)
    try:
        answer = client.api.json(
            "POST",
            "/switch/checkin",
            json={"statement": message.decode("utf-8"), "signature": b64encode(signature)},
        )
    except ApiError as exc:
        if exc.status == 403:
            raise ApiError(
                "the server did not accept the check-in",
                status=403,
                code=exc.code,
                hint="is the switch armed (`evault switch status`)? is this device's clock "
                "right (within five minutes)?",
            ) from None
        raise
    entry = client.log.entry(answer)
    entry.expect({"type": "switch.checkin", "vault": client.vault})
    return Checkin(deadline=parse_time(answer.get("deadline")), entry=entry)
