"""The dead-man switch's policy as the reporter sets it (DESIGN.md, "Dead-man switch").

A policy says how often the reporter must check in (``interval``), how long
after a missed deadline the release waits (``grace``), when to remind the
reporter before a deadline (``reminders``, seconds before it), what a
duress check-in does (``duress``: alert the trustees, release early, or
both), how long changes that weaken the switch wait (``cooling_off``), and
whom to tell: the reporter's own reminders (``remind``), the trustees'
alerts (``alert``) and the distribution list told on release
(``publish``). Each of those is a list of e-mail addresses and signed
webhooks; a webhook's secret is made here, on the reporter's device, and
shown once, for the reporter to hand to whoever runs the receiver.

A contact given as ``NAME <ADDRESS>``, where NAME is a pinned contact (a
trustee's card), carries that card's age recipient and the display name on
the reporter's own card: the server then sends its notices encrypted to the
trustee's key, naming the reporter as the trustee knows them, and nothing
but a neutral line in the clear (SECURITY.md, "Notices").

:func:`build_policy` turns command-line options into a policy, starting
from the current one when the switch is armed; :meth:`Policy.to_json` is
the JSON of the switch API.
"""

from __future__ import annotations

import re
import secrets
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from vault.errors import ConfigError, ProofError

__all__ = [
    "CHANNELS",
    "DEFAULT_COOLING_OFF",
    "DEFAULT_GRACE",
    "DURESS_MODES",
    "MAX_REMINDERS",
    "MIN_INTERVAL",
    "Notice",
    "Policy",
    "PolicyOptions",
    "build_policy",
    "email_notice",
    "parse_contact",
    "webhook_notice",
]

DURESS_MODES = ("alert", "release", "both")
CHANNELS = ("remind", "alert", "publish")
MIN_INTERVAL = 1
MAX_REMINDERS = 8
DEFAULT_COOLING_OFF = 72 * 3600
DEFAULT_GRACE = 24 * 3600
_MAX_CONTACTS = 32
_MIN_SECRET = 16
_EMAIL = re.compile(r"[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
_NAMED = re.compile(r"\s*([^<>\s]+)\s*<\s*([^<>\s]+)\s*>\s*")
_EXTRAS = frozenset({"age", "name"})


@dataclass(frozen=True, kw_only=True)
class Notice:
    """Where a notice goes: an e-mail address, or a webhook URL with its signing secret.

    ``age`` is the recipient the server encrypts the notice's details to,
    ``name`` how they name the reporter; ``contact`` is the pinned contact
    they come from, resolved on this device (:func:`parse_contact`) and never
    sent.
    """

    email: str | None = None
    webhook: str | None = None
    secret: str | None = None
    age: str | None = None
    name: str | None = None
    contact: str | None = None

    def __post_init__(self) -> None:
        if (self.email is None) == (self.webhook is None):
            raise ConfigError("a contact is an e-mail address or a webhook, not both")
        if self.email is not None and self.secret is not None:
            raise ConfigError("an e-mail contact takes no secret")

    def to_json(self) -> dict[str, str]:
        value: dict[str, str]
        if self.email is not None:
            value = {"email": self.email}
        elif self.webhook is None:
            raise RuntimeError("internal error: a contact without an address")
        elif self.secret is None:
            # The server shows webhooks without their secrets; one sent back
            # so keeps the secret it has.
            value = {"webhook": self.webhook}
        else:
            value = {"webhook": self.webhook, "secret": self.secret}
        if self.age is not None:
            value["age"] = self.age
        if self.name is not None:
            value["name"] = self.name
        return value

    def address(self) -> str:
        """Where the notice goes, whatever else the contact carries."""
        return self.email if self.email is not None else f"webhook {self.webhook}"

    def shown(self) -> str:
        if self.contact is not None:
            return f"{self.contact} <{self.address()}>"
        if self.age is not None:
            return f"{self.address()} (encrypted)"
        return self.address()


def parse_contact(text: str, kind: str) -> Notice:
    """A contact from the command line: ``ADDRESS``, or ``CONTACT <ADDRESS>``.

    ``kind`` is ``email`` or ``webhook``. With a pinned CONTACT the notice is
    encrypted to its card (see :func:`client.commands.switch`).

    Raises:
        ConfigError: a malformed address or contact name.
    """
    contact = None
    named = _NAMED.fullmatch(text)
    if named is not None:
        contact, text = named.group(1), named.group(2)
    notice = email_notice(text) if kind == "email" else webhook_notice(text)
    return notice if contact is None else replace(notice, contact=contact)


def email_notice(text: str) -> Notice:
    """An e-mail contact, checked for the obvious typos.

    Raises:
        ConfigError: not an address.
    """
    if not _EMAIL.fullmatch(text) or "." not in text.rsplit("@", 1)[1]:
        raise ConfigError(f"invalid e-mail address {text!r}")
    return Notice(email=text)


def webhook_notice(url: str, secret: str | None = None) -> Notice:
    """A webhook contact; ``secret`` is None until :func:`build_policy` gives it one.

    Raises:
        ConfigError: not an http(s) URL with a host, or a URL with credentials.
    """
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ConfigError(f"invalid webhook URL {url!r}", hint="use https://host/path")
    if parsed.username or parsed.password or parsed.fragment:
        raise ConfigError("a webhook URL may not carry a user, a password or a fragment")
    if len(url) > 2000:
        raise ConfigError("the webhook URL is too long")
    return Notice(webhook=url, secret=secret)


def _seconds(value: object, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ProofError(f"the server sent a malformed policy ({what})")
    return value


def _extras(raw: dict[str, Any], what: str) -> dict[str, str]:
    extras = {key: raw[key] for key in _EXTRAS if key in raw}
    if not all(isinstance(value, str) for value in extras.values()):
        raise ProofError(f"the server sent a malformed policy ({what})")
    return extras


def _notices(value: object, what: str) -> tuple[Notice, ...]:
    if not isinstance(value, list):
        raise ProofError(f"the server sent a malformed policy ({what})")
    found = []
    for raw in value:
        keys = set(raw) - _EXTRAS if isinstance(raw, dict) else None
        if keys == {"email"} and isinstance(raw["email"], str):
            found.append(Notice(email=raw["email"], **_extras(raw, what)))
        elif (
            keys in ({"webhook"}, {"webhook", "secret"})
            and isinstance(raw["webhook"], str)
            and isinstance(raw.get("secret", ""), str)
        ):
            found.append(
                Notice(webhook=raw["webhook"], secret=raw.get("secret"), **_extras(raw, what))
            )
        else:
            raise ProofError(f"the server sent a malformed policy ({what})")
    return tuple(found)


@dataclass(frozen=True, kw_only=True)
class Policy:
    """A switch policy; times in seconds. Checked when made."""

    interval: int
    grace: int
    reminders: tuple[int, ...]
    duress: str
    cooling_off: int
    remind: tuple[Notice, ...] = ()
    alert: tuple[Notice, ...] = ()
    publish: tuple[Notice, ...] = ()

    def __post_init__(self) -> None:
        # The shortest interval is the server's to set (an hour unless its
        # operator lowered it for a demonstration): it says so if too short.
        if self.interval < MIN_INTERVAL:
            raise ConfigError(f"the check-in interval must be at least {MIN_INTERVAL}s")
        if self.grace < 0 or self.cooling_off < 0:
            raise ConfigError("grace and cooling-off cannot be negative")
        if len(self.reminders) > MAX_REMINDERS:
            raise ConfigError(f"at most {MAX_REMINDERS} reminders")
        for before in self.reminders:
            if not 0 < before < self.interval:
                raise ConfigError(
                    "a reminder must come before the deadline and after the last check-in",
                    hint="--remind-before must be shorter than --every",
                )
        object.__setattr__(self, "reminders", tuple(sorted(set(self.reminders), reverse=True)))
        if self.duress not in DURESS_MODES:
            raise ConfigError(f"--duress must be one of {', '.join(DURESS_MODES)}")
        for channel in CHANNELS:
            notices = getattr(self, channel)
            if len(notices) > _MAX_CONTACTS:
                raise ConfigError(f"at most {_MAX_CONTACTS} contacts for {channel}")
            for notice in notices:
                if notice.secret is not None and len(notice.secret) < _MIN_SECRET:
                    raise ConfigError("a webhook secret must have at least 16 characters")

    def to_json(self) -> dict[str, Any]:
        """The policy JSON of the switch API."""
        return {
            "interval": self.interval,
            "grace": self.grace,
            "reminders": list(self.reminders),
            "duress": self.duress,
            "cooling_off": self.cooling_off,
            "remind": [n.to_json() for n in self.remind],
            "alert": [n.to_json() for n in self.alert],
            "publish": [n.to_json() for n in self.publish],
        }

    @classmethod
    def from_json(cls, value: object) -> Policy:
        """The policy as the server returns it.

        Raises:
            ProofError: malformed.
        """
        if not isinstance(value, dict):
            raise ProofError("the server sent a malformed policy")
        reminders = value.get("reminders", [])
        if not isinstance(reminders, list):
            raise ProofError("the server sent a malformed policy (reminders)")
        try:
            return cls(
                interval=_seconds(value.get("interval"), "interval"),
                grace=_seconds(value.get("grace"), "grace"),
                reminders=tuple(_seconds(r, "reminders") for r in reminders),
                duress=str(value.get("duress")),
                cooling_off=_seconds(value.get("cooling_off", DEFAULT_COOLING_OFF), "cooling_off"),
                remind=_notices(value.get("remind", []), "remind"),
                alert=_notices(value.get("alert", []), "alert"),
                publish=_notices(value.get("publish", []), "publish"),
            )
        except ConfigError as exc:
            raise ProofError(f"the server sent a malformed policy: {exc.message}") from None


@dataclass(frozen=True, kw_only=True)
class PolicyOptions:
    """What the command line set; None (or an empty tuple for lists) leaves a value as it is."""

    every: int | None = None
    grace: int | None = None
    remind_before: tuple[int, ...] = ()
    duress: str | None = None
    cooling_off: int | None = None
    remind: tuple[Notice, ...] = ()
    alert: tuple[Notice, ...] = ()
    publish: tuple[Notice, ...] = ()


def _with_secrets(
    given: Sequence[Notice], current: Sequence[Notice], made: list[tuple[str, Notice]], channel: str
) -> tuple[Notice, ...]:
    """``given`` with webhook secrets: a known one is kept, any other webhook gets a new one.

    The server lists webhooks without their secrets, so a webhook given
    again usually gets a new secret, to be handed to its receiver again.
    """
    known = {n.webhook: n for n in current if n.webhook is not None and n.secret is not None}
    out: list[Notice] = []
    for notice in given:
        if notice.webhook is not None and notice.secret is None:
            if notice.webhook in known:
                notice = replace(notice, secret=known[notice.webhook].secret)
            else:
                notice = replace(notice, secret=secrets.token_urlsafe(32))
                made.append((channel, notice))
                known[str(notice.webhook)] = notice
        if all(n.address() != notice.address() for n in out):
            out.append(notice)
    return tuple(out)


def build_policy(
    options: PolicyOptions, current: Policy | None
) -> tuple[Policy, list[tuple[str, Notice]]]:
    """The policy the options ask for, and the webhooks that got a new secret (by channel).

    Without ``current`` (arming), ``--every`` is required and the rest has
    defaults: grace 24h, no reminders, duress ``alert``, cooling-off 72h.
    With ``current``, each option given replaces that part of it; contacts
    given for a channel replace that channel's list. A webhook of a list
    that is not given is sent back as the server showed it, without its
    secret (see :meth:`Notice.to_json`).

    Raises:
        ConfigError: ``--every`` missing when arming, or a value out of range.
    """
    if current is None:
        if options.every is None:
            raise ConfigError(
                "arming the switch needs a check-in interval",
                hint="give --every, e.g. --every 24h",
            )
        current = Policy(
            interval=options.every,
            grace=DEFAULT_GRACE,
            reminders=(),
            duress="alert",
            cooling_off=DEFAULT_COOLING_OFF,
        )
    made: list[tuple[str, Notice]] = []
    lists = {
        channel: _with_secrets(given, getattr(current, channel), made, channel)
        if given
        else getattr(current, channel)
        for channel, given in (
            ("remind", options.remind),
            ("alert", options.alert),
            ("publish", options.publish),
        )
    }
    policy = Policy(
        interval=current.interval if options.every is None else options.every,
        grace=current.grace if options.grace is None else options.grace,
        reminders=options.remind_before or current.reminders,
        duress=options.duress or current.duress,
        cooling_off=current.cooling_off if options.cooling_off is None else options.cooling_off,
        **lists,
    )
    return policy, made
