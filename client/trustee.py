"""Holding a release share as a trustee (DESIGN.md, "Dead-man switch", "Release").

An editor a reporter names as trustee holds one SLIP-39 share of the
vault's release secret, sealed on the server as an age file that only the
trustee's identity opens. The trustee can read it (to write the 33 words on
paper, in case this device is lost), hand it in when the vault is
releasing (from this device, or typed from paper), and vote to cancel a
change waiting out its cooling-off delay (a deletion, a disarm, a weaker
policy) if the reporter may have been forced.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import io
import re
from dataclasses import dataclass
from typing import Any

from client.api import ApiError
from client.audit import read_log
from client.changes import PendingChange, parse_change
from client.context import Client
from client.durations import parse_time
from vault import age
from vault.errors import ConfigError, DecryptError, ProofError, ShareError
from vault.shares import describe_share

__all__ = [
    "Share",
    "TrusteeVault",
    "cancel_change",
    "check_vault_id",
    "list_vaults",
    "my_share",
    "normalise_words",
    "submit_share",
]

_ID = re.compile(r"[0-9a-f]{32}")
_MAX_SHARE_FILE = 64 * 1024


def check_vault_id(text: str, what: str = "vault") -> str:
    """A vault or change id (32 lower-case hex digits).

    Raises:
        ConfigError: anything else.
    """
    if not _ID.fullmatch(text):
        raise ConfigError(
            f"invalid {what} id {text!r}", hint="ids are 32 hex digits; see `evault trustee list`"
        )
    return text


@dataclass(frozen=True, kw_only=True)
class TrusteeVault:
    """A vault this account holds a share of."""

    vault: str
    owner: str
    state: str
    position: int
    threshold: int
    shares: int
    deadline: datetime.datetime | None
    pending: tuple[PendingChange, ...]


def _int(value: object) -> int:
    if type(value) is not int or value < 0:
        raise ProofError("the server sent a malformed vault list")
    return value


def _parse_vault(raw: object) -> TrusteeVault:
    if not isinstance(raw, dict):
        raise ProofError("the server sent a malformed vault list")
    vault, owner, pending = raw.get("vault"), raw.get("owner"), raw.get("pending", [])
    if not (
        isinstance(vault, str)
        and _ID.fullmatch(vault)
        and isinstance(owner, str)
        and _ID.fullmatch(owner)
        and isinstance(raw.get("state"), str)
        and isinstance(pending, list)
    ):
        raise ProofError("the server sent a malformed vault list")
    return TrusteeVault(
        vault=vault,
        owner=owner,
        state=str(raw["state"]),
        position=_int(raw.get("position")),
        threshold=_int(raw.get("threshold")),
        shares=_int(raw.get("shares")),
        deadline=parse_time(raw.get("deadline")),
        pending=tuple(parse_change(p) for p in pending),
    )


def list_vaults(client: Client) -> list[TrusteeVault]:
    """The vaults this account is a custodian of."""
    answer = client.call("GET", "/trustee/vaults")
    vaults = answer.get("vaults")
    if not isinstance(vaults, list):
        raise ProofError("the server sent a malformed vault list")
    return [_parse_vault(v) for v in vaults]


def normalise_words(text: str) -> str:
    """A share as typed: words lower-cased, single spaces."""
    return " ".join(text.lower().split())


@dataclass(frozen=True, kw_only=True)
class Share:
    """This trustee's share of a vault: its position and its words."""

    vault: str
    position: int
    mnemonic: str

    @property
    def words(self) -> list[str]:
        return self.mnemonic.split()


def my_share(client: Client, vault: str) -> Share:
    """Fetch and open this trustee's share of ``vault``.

    Raises:
        ConfigError: not a custodian of that vault.
        DecryptError: the sealed share does not open with this identity.
        ShareError: what it holds is not a share.
    """
    check_vault_id(vault)
    try:
        answer = client.call("GET", f"/trustee/vaults/{vault}/share")
    except ApiError as exc:
        if exc.status == 404:
            raise ConfigError(
                f"you hold no share of vault {vault}", hint="see `evault trustee list`"
            ) from None
        raise
    position = answer.get("position")
    try:
        sealed = base64.b64decode(str(answer.get("age")), validate=True)
    except (binascii.Error, ValueError):
        raise ProofError("the server sent a malformed share") from None
    if type(position) is not int or len(sealed) > _MAX_SHARE_FILE:
        raise ProofError("the server sent a malformed share")
    out = io.BytesIO()
    try:
        age.decrypt(io.BytesIO(sealed), out, [client.identity.age_identity])
    except DecryptError as exc:
        raise DecryptError(
            f"cannot open your share of vault {vault}: {exc.message}",
            hint="it was sealed to the card the reporter pinned for you; is this that keystore?",
        ) from None
    try:
        mnemonic = normalise_words(out.getvalue().decode("ascii"))
    except UnicodeDecodeError:
        raise ShareError("the sealed share does not hold share words") from None
    describe_share(mnemonic)
    return Share(vault=vault, position=position, mnemonic=mnemonic)


@dataclass(frozen=True)
class ReleaseEvidence:
    """What the audit log says about a vault's release: checked before a share leaves."""

    releasing_entry: int
    last_checkin_entry: int | None
    last_checkin_time: int | None


def release_evidence(client: Client, vault: str) -> ReleaseEvidence:
    """The log's proof that ``vault`` is releasing: a ``switch.releasing`` after its last arming.

    The whole log is read and re-hashed to a checkpoint consistent with the
    last one seen, so a server cannot claim a release that it has not logged
    for everyone to see — and so a trustee's share is never handed to a
    server that only says the reporter went silent.

    Raises:
        ConfigError: the log records no release of the vault's current arming.
        ProofError, RewrittenLogError: the log does not check out.
    """
    check_vault_id(vault)

    def about(event: dict[str, Any]) -> bool:
        return event.get("vault") == vault and event.get("type") in (
            "switch.armed",
            "switch.releasing",
            "switch.checkin",
        )

    _, events = read_log(client, keep=about)
    releasing: int | None = None
    checkin: tuple[int, int | None] | None = None
    for found in events:
        kind = found.event.get("type")
        if kind == "switch.armed":
            releasing, checkin = None, None
        elif kind == "switch.releasing":
            releasing = found.index
        elif kind == "switch.checkin":
            time = found.event.get("time")
            checkin = (found.index, time if type(time) is int else None)
    if releasing is None:
        raise ConfigError(
            f"the audit log records no release of vault {vault}; your share stays with you",
            hint="shares are handed in only once the log shows the release has started",
        )
    return ReleaseEvidence(
        releasing_entry=releasing,
        last_checkin_entry=None if checkin is None else checkin[0],
        last_checkin_time=None if checkin is None else checkin[1],
    )


def submit_share(client: Client, vault: str, mnemonic: str) -> dict[str, Any]:
    """Hand a share in for a releasing vault; the answer says how many the server has.

    Raises:
        ShareError: the words are not a valid share (checked here first).
        ConfigError: the vault is not releasing, or the server refused the share.
    """
    check_vault_id(vault)
    mnemonic = normalise_words(mnemonic)
    describe_share(mnemonic)
    try:
        answer = client.call("POST", f"/trustee/vaults/{vault}/shares", json={"mnemonic": mnemonic})
    except ApiError as exc:
        if exc.status == 409:
            raise ConfigError(
                f"vault {vault} is not releasing: shares are taken only during a release",
                hint="keep your share; `evault trustee list` shows the vault's state",
            ) from None
        if exc.status == 400:
            raise ConfigError(exc.message, hint="check the words against your paper copy") from None
        raise
    for key in ("have", "need"):
        if type(answer.get(key)) is not int:
            raise ProofError("the server sent a malformed answer to a share")
    return answer


def cancel_change(client: Client, vault: str, change: str) -> dict[str, Any]:
    """Vote to cancel a pending change of ``vault``.

    Raises:
        ConfigError: no such pending change of a vault this account holds a share of.
    """
    check_vault_id(vault)
    check_vault_id(change, "change")
    try:
        answer = client.call("POST", f"/trustee/vaults/{vault}/changes/{change}/cancel", json={})
    except ApiError as exc:
        if exc.status in (404, 409):
            raise ConfigError(
                f"no pending change {change} of vault {vault} to cancel",
                hint="see `evault trustee list`",
            ) from None
        raise
    if answer.get("state") not in ("pending", "cancelled"):
        raise ProofError("the server sent a malformed answer to a cancel vote")
    return answer
