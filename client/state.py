"""The client's local state: server, account, pinned keys and the last checkpoint.

``state.json`` holds only what a seized laptop may reveal anyway: ids,
hashes, public keys and the server's address. It is rewritten atomically
(mode 0600) after every change, so a crash leaves the old or the new state,
never half of one.

The state is the same whichever keystore slot a passphrase opened: it
names no card and no item of either side (a duress passphrase opens another
identity, the duress twin, with a decoy vault of its own on the server, and
nothing a coercer can read here may tell that a second side exists). Each
identity's own card is its own keys' (:meth:`vault.keys.PersonalIdentity.card`).
A ``card`` field left by an older version, the registered card, is dropped
when the state is read. ``release`` is the age recipient of the vault's
release identity while the dead-man switch is armed, so that ``evault add``
encrypts to it.

``log`` is the pinned log key and the newest checkpoint verified; after the
server rotated its log key, the keys it replaced stay as ``retired``, each
with the tree sizes it signed and the transition checkpoint that handed the
log over to its successor, so that receipts it signed still verify.

Contacts are the people whose keys this client pinned: editors a reporter
shares with, reporters whose items an editor pulls. A contact's card is
pinned when added; ``verified`` records that the person compared the
fingerprint out of band.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from vault._atomic import write_atomically
from vault._disk import refused_write
from vault.errors import ConfigError
from vault.keys import Card

__all__ = [
    "Contact",
    "LogPin",
    "RetiredKey",
    "State",
    "check_name",
    "load",
    "parse_log_pin",
    "save",
]

_VERSION = 1
_MAX_STATE = 16 * 1024 * 1024
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def check_name(name: str) -> str:
    """A contact's local name: letters, digits and ``_.@-``, at most 64.

    Raises:
        ConfigError: anything else.
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"invalid name {name!r}",
            hint="use letters, digits and . _ @ - (at most 64), starting with a letter or digit",
        )
    return name


@dataclass(frozen=True, kw_only=True)
class Contact:
    """A pinned card: the account it belongs to, and whether it was verified."""

    account: str
    card: str
    verified: bool = False

    def parsed(self) -> Card:
        return Card.from_json(self.card.encode("utf-8"))


@dataclass(frozen=True, kw_only=True)
class RetiredKey:
    """A log key the server replaced: the tree sizes it signed and its handover."""

    key: str
    first_size: int
    last_size: int
    transition: str


@dataclass(frozen=True, kw_only=True)
class LogPin:
    """The server's log key, the newest checkpoint seen and verified, the retired keys."""

    key: str
    checkpoint: str | None = None
    retired: tuple[RetiredKey, ...] = ()
    witnesses: tuple[str, ...] = ()
    """Cosigner keys of the witnesses pinned (C2SP tlog-cosignature, type 0x04)."""
    quorum: int = 1
    """How many of them must cosign the newest checkpoint, when any are pinned."""

    def to_json(self) -> dict[str, object]:
        value: dict[str, object] = {"key": self.key, "checkpoint": self.checkpoint}
        if self.witnesses:
            value["witnesses"] = list(self.witnesses)
            value["quorum"] = self.quorum
        if self.retired:
            value["retired"] = [
                {
                    "key": r.key,
                    "first_size": r.first_size,
                    "last_size": r.last_size,
                    "transition": r.transition,
                }
                for r in self.retired
            ]
        return value


@dataclass(frozen=True, kw_only=True)
class State:
    """Everything the client remembers between commands."""

    server: str | None = None
    proxy: str | None = None
    account: str | None = None
    role: str | None = None
    vault: str | None = None
    log: LogPin | None = None
    contacts: dict[str, Contact] = field(default_factory=dict)
    release: str | None = None

    def with_contact(self, name: str, contact: Contact) -> State:
        contacts = dict(self.contacts)
        contacts[check_name(name)] = contact
        return replace(self, contacts=contacts)

    def with_contact_renamed(self, old: str, new: str) -> State:
        contacts = dict(self.contacts)
        contacts[check_name(new)] = contacts.pop(old)
        return replace(self, contacts=contacts)

    def contact_for_account(self, account: str) -> tuple[str, Contact] | None:
        for name, contact in sorted(self.contacts.items()):
            if contact.account == account:
                return name, contact
        return None

    def to_json(self) -> bytes:
        value: dict[str, object] = {
            "v": _VERSION,
            "server": self.server,
            "proxy": self.proxy,
            "account": self.account,
            "role": self.role,
            "vault": self.vault,
            "release": self.release,
            "log": None if self.log is None else self.log.to_json(),
            "contacts": {
                name: {"account": c.account, "card": c.card, "verified": c.verified}
                for name, c in sorted(self.contacts.items())
            },
        }
        return json.dumps(value, indent=2, sort_keys=True).encode("utf-8") + b"\n"


def _opt_str(value: object, what: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ConfigError(f"damaged state file: {what} is not text")


def _retired(value: object, damaged: ConfigError) -> tuple[RetiredKey, ...]:
    if not isinstance(value, list):
        raise damaged
    retired = []
    for raw in value:
        if not (
            isinstance(raw, dict)
            and set(raw) == {"key", "first_size", "last_size", "transition"}
            and isinstance(raw["key"], str)
            and isinstance(raw["transition"], str)
            and type(raw["first_size"]) is int
            and type(raw["last_size"]) is int
            and 0 <= raw["first_size"] <= raw["last_size"]
        ):
            raise damaged
        retired.append(
            RetiredKey(
                key=raw["key"],
                first_size=raw["first_size"],
                last_size=raw["last_size"],
                transition=raw["transition"],
            )
        )
    return tuple(retired)


def parse_log_pin(value: object, damaged: ConfigError) -> LogPin:
    """A :class:`LogPin` from :meth:`LogPin.to_json`; raises ``damaged`` when it is not one."""
    if not isinstance(value, dict) or not isinstance(value.get("key"), str):
        raise damaged
    return LogPin(
        key=value["key"],
        checkpoint=_opt_str(value.get("checkpoint"), "log"),
        retired=_retired(value.get("retired", []), damaged),
        witnesses=_witnesses(value.get("witnesses", []), damaged),
        quorum=_quorum(value.get("quorum", 1), damaged),
    )


def _witnesses(value: object, damaged: ConfigError) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise damaged
    return tuple(value)


def _quorum(value: object, damaged: ConfigError) -> int:
    if type(value) is not int or not 1 <= value <= 100:
        raise damaged
    return value


def _parse(data: bytes, path: Path) -> State:
    damaged = ConfigError(
        f"damaged state file: {path}",
        hint="restore it from a backup, or move it away and run `evault register` again",
    )
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise damaged from None
    if not isinstance(value, dict) or value.get("v") != _VERSION:
        raise damaged
    log_value = value.get("log")
    log = None if log_value is None else parse_log_pin(log_value, damaged)
    contacts: dict[str, Contact] = {}
    raw_contacts = value.get("contacts") or {}
    if not isinstance(raw_contacts, dict):
        raise damaged
    for name, raw in raw_contacts.items():
        if not (
            isinstance(raw, dict)
            and isinstance(raw.get("account"), str)
            and isinstance(raw.get("card"), str)
            and isinstance(raw.get("verified"), bool)
        ):
            raise damaged
        contacts[check_name(name)] = Contact(
            account=raw["account"], card=raw["card"], verified=raw["verified"]
        )
    return State(
        server=_opt_str(value.get("server"), "server"),
        proxy=_opt_str(value.get("proxy"), "proxy"),
        account=_opt_str(value.get("account"), "account"),
        role=_opt_str(value.get("role"), "role"),
        vault=_opt_str(value.get("vault"), "vault"),
        log=log,
        contacts=contacts,
        release=_opt_str(value.get("release"), "release"),
    )


def load(path: Path) -> State:
    """The state in ``path``; an empty state if there is none yet.

    Raises:
        ConfigError: the file is damaged or unreadable.
    """
    try:
        with path.open("rb") as f:
            data = f.read(_MAX_STATE + 1)
    except FileNotFoundError:
        return State()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    if len(data) > _MAX_STATE:
        raise ConfigError(f"damaged state file: {path} is too large")
    return _parse(data, path)


def save(path: Path, state: State) -> None:
    """Replace the state file atomically (mode 0600)."""
    data = state.to_json()
    try:
        write_atomically(path, data, overwrite=True, mode=0o600)
    except OSError as exc:
        refused = refused_write(path, exc, needed=len(data))
        if refused is not None:
            raise ConfigError(refused[0], hint=refused[1]) from None
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
