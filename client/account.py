"""This device's account: registering with a server, and destroying everything local.

The rules live here once, for the ``evault`` commands and the local app:
registration pins the server's log key (the one the operator published, or
trusted on first use and shown), sends the card and, always, the duress
twin's card (a device must not tell whether its keystore has a duress slot),
and checks that the log records exactly that registration. ``destroy``
overwrites and removes the keystore, the state and whatever an older version
kept beside them.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shutil
import urllib.parse
from dataclasses import dataclass, replace
from pathlib import Path

from client.api import Api
from client.config import Paths
from client.context import Client
from client.logcheck import LogCheck
from client.state import LogPin
from vault.errors import ConfigError, FormatError, ProofError
from vault.note import NoteVerifier, verifier_fingerprint
from vault.peer_key import PeerVerifier

__all__ = [
    "Invite",
    "Registered",
    "check_unregistered",
    "destroy",
    "fetch_log_key",
    "forget_legacy",
    "log_fingerprint",
    "parse_invite_link",
    "register",
]

_ID = "0123456789abcdef"


def log_fingerprint(key: str) -> str:
    """The fingerprint of a log key (a C2SP note verifier key), as people compare it."""
    return verifier_fingerprint(NoteVerifier.parse(key))


@dataclass(frozen=True, kw_only=True)
class Invite:
    """What an operator's invite link carries: the server, the one-time code, the log key."""

    server: str
    code: str
    log_key: str


def parse_invite_link(link: str) -> Invite:
    """Read an invite link, ``https://SERVER/invite#code=CODE&log-key=KEY``.

    The code and key are in the fragment, which a browser never sends to the
    server, so opening the link by mistake leaks nothing to its logs.

    Raises:
        ConfigError: not such a link.
    """
    bad = ConfigError(
        "this is not an invite link",
        hint="paste the whole link your organisation sent: it starts with https:// and "
        "contains #code=",
    )
    parsed = urllib.parse.urlsplit(link.strip())
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        raise bad
    if not parsed.path.rstrip("/").endswith("/invite"):
        raise bad
    fields = urllib.parse.parse_qs(parsed.fragment, strict_parsing=False)
    code, key = fields.get("code"), fields.get("log-key")
    if not code or not key or len(code) != 1 or len(key) != 1:
        raise bad
    try:
        NoteVerifier.parse(key[0])
    except FormatError:
        raise bad from None
    base = parsed.path.rstrip("/")[: -len("/invite")]
    return Invite(server=f"{parsed.scheme}://{parsed.netloc}{base}", code=code[0], log_key=key[0])


@dataclass(frozen=True, kw_only=True)
class Registered:
    """A registration: the account, its role and vault, the pinned log key's fingerprint."""

    account: str
    role: str
    vault: str | None
    log_key: str
    log_key_fingerprint: str
    trusted_on_first_use: bool


def fetch_log_key(api: Api) -> str:
    """The log key the server says is its own, parsed strictly.

    Raises:
        ProofError: a malformed answer.
    """
    answer = api.json("GET", "/log/key")
    key = answer.get("key")
    if not isinstance(key, str):
        raise ProofError("the server sent a malformed log key")
    try:
        NoteVerifier.parse(key)
    except FormatError as exc:
        raise ProofError(f"the server sent a malformed log key: {exc.message}") from None
    return key


def _is_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 32 and all(c in _ID for c in value)


def check_unregistered(client: Client) -> None:
    """Refuse a device that has an account already.

    Raises:
        ConfigError: it has one.
    """
    if client.state.account:
        raise ConfigError(
            "this device is registered already",
            hint="one device, one account; use EVAULT_HOME for another identity",
        )


def register(
    client: Client, invite: str, log_key: str | None, witnesses: tuple[str, ...] = ()
) -> Registered:
    """Create the account on the server and pin its log key; the state remembers both.

    Raises:
        ConfigError: this device is registered already.
        ProofError: the server's log key is not ``log_key``, or the server
            answered or logged something else than this registration.
    """
    check_unregistered(client)
    try:
        pinned = tuple(str(PeerVerifier.parse(w.strip())) for w in witnesses)
    except FormatError as exc:
        raise ConfigError(f"that is not a witness key: {exc.message}") from None
    api = client.api
    served = fetch_log_key(api)
    if log_key is not None and log_key.strip() != served:
        raise ProofError(
            "the server's log key is not the one you were given",
            hint="this may not be your organisation's server; do not register",
        )
    identity = client.identity
    # Always sent, duress passphrase or not: a device must not tell whether its
    # keystore has a duress slot, and the server must know the card that slot
    # would open, to show it to that side as its own.
    twin = identity.duress_twin().card().to_json()
    answer = api.json(
        "POST",
        "/accounts",
        json={
            "invite": invite,
            "card": identity.card().to_json().decode("utf-8"),
            "duress_card": twin.decode("utf-8"),
        },
    )
    account = answer.get("account")
    if not isinstance(account, dict) or not _is_id(account.get("id")):
        raise ProofError("the server sent a malformed account")
    vault = account.get("vault")
    if vault is not None and not _is_id(vault):
        raise ProofError("the server sent a malformed account")
    check = LogCheck(api, served, None)
    entry = check.entry(answer)
    own, other = (
        base64.b64encode(hashlib.sha256(card).digest()).decode()
        for card in (identity.card().to_json(), twin)
    )
    # A reporter's two cards are logged together, in no telling order; other
    # roles have no duress side.
    logged_cards = (
        {"cards_sha256": sorted([own, other])}
        if account.get("role") == "reporter"
        else {"card_sha256": own}
    )
    if (
        entry.event.get("type") != "account.registered"
        or entry.event.get("account") != account.get("id")
        or any(entry.event.get(k) != v for k, v in logged_cards.items())
    ):
        raise ProofError("the server logged another registration than yours")
    client.state = replace(
        client.state,
        server=client.server,
        proxy=client.proxy,
        account=str(account["id"]),
        role=str(account.get("role")),
        vault=vault if isinstance(vault, str) else None,
        log=LogPin(key=served, checkpoint=check.checkpoint_text(), witnesses=pinned),
    )
    return Registered(
        account=str(account["id"]),
        role=str(account.get("role")),
        vault=vault if isinstance(vault, str) else None,
        log_key=served,
        log_key_fingerprint=log_fingerprint(served),
        trusted_on_first_use=log_key is None,
    )


def _shred(path: Path) -> None:
    """Overwrite a file with random bytes, then unlink it."""
    try:
        size = path.stat().st_size
        with path.open("r+b", buffering=0) as f:
            f.write(secrets.token_bytes(size))
            os.fsync(f.fileno())
    except OSError:
        pass
    path.unlink(missing_ok=True)


LEGACY = ("receipts", "pending")
"""Folders older versions kept beside the keystore, naming items of one side."""


def forget_legacy(paths: Paths) -> None:
    """Overwrite and remove what an older version kept beside the keystore.

    Receipts and pending-upload records named the items of the side that
    wrote them; this version keeps neither on the laptop, and a coercer with
    the other passphrase must not find them.
    """
    for name in LEGACY:
        folder = paths.root / name
        if folder.is_dir() and not folder.is_symlink():
            for file in sorted(folder.rglob("*")):
                if file.is_file() and not file.is_symlink():
                    _shred(file)
            shutil.rmtree(folder, ignore_errors=True)


def destroy(paths: Paths) -> list[str]:
    """Overwrite and delete the keystore, the state and everything else in the client's folder.

    A session unlock running for ``paths`` is ended first. Returns what was
    destroyed ("keystore", "state"). The caller holds the
    folder's lock (:func:`client.context.locked`).
    """
    from client import agent

    # The session unlock first: it holds the identity in memory.
    agent.stop(paths)
    destroyed = []
    if paths.keystore.exists():
        _shred(paths.keystore)
        destroyed.append("keystore")
    if paths.state.exists():
        _shred(paths.state)
        destroyed.append("state")
    # Everything else the client keeps here, hidden temporary files included.
    for file in sorted(paths.root.rglob("*")):
        if file.is_file() and not file.is_symlink():
            _shred(file)
    # Folders an older version kept (receipts/, pending/), emptied above.
    for directory in sorted(paths.root.iterdir()):
        if directory.is_dir() and not directory.is_symlink():
            shutil.rmtree(directory, ignore_errors=True)
    return destroyed
