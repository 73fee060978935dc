"""Pinned contacts: the editors a reporter shares with, the reporters an editor reads.

A card (public keys) reaches a person out of band, from the other person;
``evault editors add`` pins it with the account that the server has for it.
Before the first share the person compares the fingerprint with its owner,
in person or over a call (``evault editors verify``). From then on, every
use of the contact asks the server for the account's current card: if the
server answers with another key, that is an error until the person
verifies again. A key change is loud, never silent (DESIGN.md, "Keys").
"""

from __future__ import annotations

import contextlib
import hmac
import re
from dataclasses import dataclass, replace
from typing import Any

from client.api import ApiError
from client.context import Client
from client.state import Contact, State, check_name
from vault._base64 import b64encode
from vault.errors import ConfigError, FormatError, ProofError
from vault.keys import Card

__all__ = [
    "KeyChangedError",
    "Pinned",
    "add_contact",
    "current_card",
    "mark_verified",
    "person_name",
    "pinned",
    "rename_contact",
    "server_card",
    "shown_person",
    "trust_on_first_use",
    "verify_contact",
]


_ACCOUNT = re.compile(r"[0-9a-f]{32}")


class KeyChangedError(ProofError):
    """The server gives another key for a pinned contact."""


@dataclass(frozen=True, kw_only=True)
class Pinned:
    """A contact by name, with the parsed card."""

    name: str
    contact: Contact
    card: Card


def _parse_account(answer: dict[str, Any]) -> tuple[str, str, Card]:
    account = answer.get("account")
    if not isinstance(account, dict):
        raise ProofError("the server sent a malformed account")
    try:
        card = Card.from_json(str(account.get("card", "")).encode("utf-8"))
    except FormatError as exc:
        raise ProofError(f"the server sent a malformed card: {exc.message}") from None
    account_id, role = str(account.get("id")), str(account.get("role"))
    if not _ACCOUNT.fullmatch(account_id) or role not in ("reporter", "editor"):
        raise ProofError("the server sent a malformed account")
    return account_id, role, card


def server_card(client: Client, account: str) -> tuple[str, Card]:
    """The role and current card the server has for ``account``."""
    _, role, card = _parse_account(client.call("GET", f"/accounts/{account}"))
    return role, card


def _same(a: Card, b: Card) -> bool:
    return hmac.compare_digest(a.to_json(), b.to_json())


def pinned(client: Client, name: str) -> Pinned:
    """The contact called ``name``.

    Raises:
        ConfigError: no such contact.
    """
    contact = client.state.contacts.get(check_name(name))
    if contact is None:
        raise ConfigError(f"no contact called {name!r}", hint="see `evault editors list`")
    return Pinned(name=name, contact=contact, card=contact.parsed())


def current_card(
    client: Client, name: str, *, require_verified: bool = True, role: str | None = None
) -> Pinned:
    """A contact whose pinned card the server still confirms.

    Raises:
        KeyChangedError: the server now has another card for the account.
        ConfigError: unknown, not verified yet while ``require_verified``, or
            not of ``role`` (if given).
    """
    entry = pinned(client, name)
    found_role, card = server_card(client, entry.contact.account)
    if not _same(card, entry.card):
        raise KeyChangedError(
            f"the server now gives a different key for {name}",
            hint=f"ask {name} in person whether they changed keys, then run "
            f"`evault editors verify {name}`; until then nothing is shared with this key",
        )
    if require_verified and not entry.contact.verified:
        raise ConfigError(
            f"{name}'s key is not verified yet",
            hint=f"compare fingerprints with {name}: `evault editors verify {name}`",
        )
    if role is not None and found_role != role:
        raise ConfigError(
            f"{name} is not an {role}" if role[0] in "aeiou" else f"{name} is not a {role}"
        )
    return entry


def add_contact(client: Client, name: str, card: Card) -> Pinned:
    """Pin ``card`` under ``name`` with the account the server has for it (unverified).

    Raises:
        ConfigError: the name is taken, or the same card is pinned already.
        ApiError: the server has no account with this card.
    """
    check_name(name)
    if name in client.state.contacts:
        raise ConfigError(f"a contact called {name!r} exists already", hint="choose another name")
    try:
        answer = client.call(
            "GET", "/accounts", params={"signing_key": b64encode(card.signing_key)}
        )
    except ApiError as exc:
        if exc.status == 404:
            raise ConfigError(
                "the server has no account with this card",
                hint="has its owner registered with this server yet?",
            ) from None
        raise
    account, _, server = _parse_account(answer)
    if not _same(server, card):
        raise KeyChangedError(
            "the server's account for this signing key has another card",
            hint="ask the person for their current card",
        )
    existing = client.state.contact_for_account(account)
    if existing is not None:
        raise ConfigError(f"this card is pinned already as {existing[0]!r}")
    contact = Contact(account=account, card=card.to_json().decode("utf-8"), verified=False)
    client.state = client.state.with_contact(name, contact)
    return Pinned(name=name, contact=contact, card=card)


def verify_contact(client: Client, name: str) -> tuple[Pinned, Card, bool]:
    """The pinned contact, the server's current card, and whether it changed."""
    entry = pinned(client, name)
    _, card = server_card(client, entry.contact.account)
    return entry, card, not _same(card, entry.card)


def mark_verified(client: Client, name: str, card: Card) -> None:
    """Pin ``card`` for ``name`` as verified (after the person compared fingerprints)."""
    entry = pinned(client, name)
    contact = replace(entry.contact, card=card.to_json().decode("utf-8"), verified=True)
    client.state = client.state.with_contact(name, contact)


def trust_on_first_use(client: Client, account: str) -> tuple[Pinned, bool]:
    """The pinned contact for ``account``, pinning the server's card if there is none.

    Returns the contact and whether it was pinned just now (to be shown loudly).

    Raises:
        KeyChangedError: a pinned card that the server no longer confirms.
    """
    found = client.state.contact_for_account(account)
    role, card = server_card(client, account)
    if found is not None:
        name, contact = found
        entry = Pinned(name=name, contact=contact, card=contact.parsed())
        if not _same(card, entry.card):
            raise KeyChangedError(
                f"the server now gives a different key for {name}",
                hint=f"ask {name} in person whether they changed keys, then run "
                f"`evault editors verify {name}`",
            )
        return entry, False
    base = f"{role}-{account[:8]}"
    name = base
    n = 2
    while name in client.state.contacts:
        name = f"{base}-{n}"
        n += 1
    contact = Contact(account=account, card=card.to_json().decode("utf-8"), verified=False)
    client.state = client.state.with_contact(name, contact)
    return Pinned(name=name, contact=contact, card=card), True


def rename_contact(client: Client, old: str, new: str) -> Pinned:
    """Call the contact ``old`` by ``new`` from now on; the card and its verification stay.

    Raises:
        ConfigError: no contact ``old``, an invalid name, or ``new`` is taken.
    """
    entry = pinned(client, old)
    check_name(new)
    if new == old:
        raise ConfigError(f"the contact is called {old!r} already")
    if new in client.state.contacts:
        raise ConfigError(f"a contact called {new!r} exists already", hint="choose another name")
    client.state = client.state.with_contact_renamed(old, new)
    return Pinned(name=new, contact=entry.contact, card=entry.card)


def _made_on_first_use(name: str, account: str) -> bool:
    """Whether ``name`` is the one :func:`trust_on_first_use` made up, not one a person chose."""
    pattern = rf"(?:reporter|editor)-{re.escape(account[:8])}(?:-[0-9]+)?"
    return re.fullmatch(pattern, name) is not None


def person_name(state: State, account: str) -> str | None:
    """How a person is shown: the name given here, else the name on the pinned card.

    ``(unverified)`` follows while the card was not compared with its owner.
    None when no card of ``account`` is pinned.
    """
    found = state.contact_for_account(account)
    if found is None:
        return None
    name, contact = found
    if _made_on_first_use(name, account):
        # A damaged card keeps the name it was pinned under.
        with contextlib.suppress(FormatError):
            name = contact.parsed().name
    return name if contact.verified else f"{name} (unverified)"


def shown_person(client: Client, account: str) -> str:
    """:func:`person_name`, else the name on the card the server has (unverified).

    Only when the server gives no card either is the account's start shown.
    """
    named = person_name(client.state, account)
    if named is not None:
        return named
    try:
        _, card = server_card(client, account)
    except (ApiError, ProofError):
        return f"account {account[:8]} (unverified)"
    return f"{card.name} (unverified)"
