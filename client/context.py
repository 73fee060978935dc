"""One command's view of the client: its files, state, server and identity.

:class:`Client` opens what a command needs only when it first needs it:
the keystore is unlocked (one passphrase prompt, or none while a session
unlock runs: :mod:`client.agent`) the first time the identity is used, the
login happens the first time an authenticated call is made, and the log's
checkpoint is remembered when the command ends well.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from client import identity as identities
from client import state as state_file
from client.api import Api, check_server_url
from client.config import Paths
from client.logcheck import LogCheck
from client.state import LogPin, State
from client.waits import Wait, Watch
from vault.errors import ConfigError
from vault.keys import Card, PersonalIdentity
from vault.log_keys import Handover

if TYPE_CHECKING:
    from client.agent import AgentIdentity

__all__ = ["Client", "locked"]


class Client:
    """Paths, state, API, identity and log check of one command."""

    def __init__(
        self,
        paths: Paths,
        *,
        server: str | None = None,
        proxy: str | None = None,
        prompt: identities.Prompter = identities.tty_prompter,
        identity: PersonalIdentity | None = None,
        api: Api | None = None,
    ) -> None:
        """``identity``, if given, is the one already unlocked (the local app keeps it).

        ``api``, if given, is a connection to this device's server kept from
        an earlier command (by the session unlock), logged in if it was.
        """
        self.paths = paths
        if any((paths.root / name).is_dir() for name in ("receipts", "pending")):
            from client.account import forget_legacy

            forget_legacy(paths)
        self.state: State = state_file.load(paths.state)
        self._saved = self.state
        self._server = server
        self._proxy = proxy
        self.prompt = prompt
        self._api: Api | None = api
        self._identity: PersonalIdentity | None = identity
        self._session: AgentIdentity | None = None
        self._log: LogCheck | None = None
        self._logged_in = api is not None and api.logged_in
        self._log_checked = False
        self.on_wait: Callable[[Wait], None] | None = None
        """Told of long network waits (the CLI says them); set before the first call."""

    # -- lazily opened parts --------------------------------------------

    @property
    def server(self) -> str:
        if (
            self._server
            and self.state.server
            and check_server_url(self._server) != self.state.server
        ):
            raise ConfigError(
                f"this device is registered with {self.state.server}, not {self._server}",
                hint="one device, one server: leave out --server, or use another EVAULT_HOME",
            )
        server = self._server or self.state.server
        if not server:
            raise ConfigError(
                "no server configured", hint="give --server URL, or run `evault register`"
            )
        return server

    @property
    def proxy(self) -> str | None:
        return self._proxy or self.state.proxy

    @property
    def api(self) -> Api:
        if self._api is None:
            watch = None if self.on_wait is None else Watch(self.on_wait)
            self._api = Api(self.server, proxy=self.proxy, watch=watch)
        return self._api

    @property
    def identity(self) -> PersonalIdentity:
        """The unlocked identity: the session unlock's if one runs, else the passphrase is asked."""
        if self._identity is None:
            from client import agent

            held = agent.identity(self.paths) if self.paths.keystore.exists() else None
            if held is not None:
                self._session = held
                self._identity = held
            else:
                self._identity = identities.unlock(self.paths.keystore, prompt=self.prompt)
        return self._identity

    def card(self) -> Card:
        """The card of the identity that was unlocked (the one that signs and decrypts)."""
        return self.identity.card()

    def own_card(self) -> Card:
        """This side's registered card: the unlocked identity's.

        The server registered the real identity's card and its duress twin's;
        a session under duress is shown the twin's as the account's card, so
        whichever side a passphrase opened, what is shown, encrypted to and
        checked is that side's own card.
        """
        return self.card()

    def decoy_identity(self) -> PersonalIdentity:
        """The identity of this side's decoys: the unlocked identity's duress twin.

        The real side's decoys are the decoy vault a duress passphrase opens;
        the same rule on the duress side gives it decoys of its own, which
        nobody else ever sees.
        """
        return self.identity.duress_twin()

    def own_identities(self) -> list[PersonalIdentity]:
        """The identities that open this side's items: its own, and its decoys'."""
        return [self.identity, self.decoy_identity()]

    def own_signing_keys(self) -> frozenset[bytes]:
        """The keys whose signatures on this side's manifests are its own, and its decoys'."""
        return frozenset(identity.card().signing_key for identity in self.own_identities())

    @property
    def account(self) -> str:
        if not self.state.account:
            raise ConfigError(
                "this device is not registered", hint="run `evault register --invite CODE`"
            )
        return self.state.account

    @property
    def vault(self) -> str:
        if not self.state.vault:
            raise ConfigError("this account has no vault", hint="only reporters have a vault")
        return self.state.vault

    @property
    def log(self) -> LogCheck:
        if self._log is None:
            if self.state.log is None:
                raise ConfigError("no log key pinned", hint="run `evault register` first")
            pin = self.state.log
            self._log = LogCheck(
                self.api,
                pin.key,
                pin.checkpoint,
                pin.retired,
                follow_rotations=True,
                witnesses=pin.witnesses,
                quorum=pin.quorum,
            )
        return self._log

    def check_log(self) -> None:
        """Check the server's log before reading from it, as writes and ``log verify`` do.

        One request for the latest signed checkpoint: its signature, then its
        consistency with the newest checkpoint this device verified (a
        consistency proof when the log grew; nothing more when it did not
        change), so that a read never trusts a rewritten, forked or rolled-back
        log. Once per command (until :meth:`save`): a command that reads many
        items checks the log once. The checkpoint is remembered when the
        command ends.

        Raises:
            ConfigError: no keystore, or this device is not registered.
            SignatureError, ProofError, RewrittenLogError: see
                :meth:`client.logcheck.LogCheck.refresh`.
        """
        if self._log_checked:
            return
        self.authed()  # a device without keystore or registration says so first, as before
        self.log.refresh()
        self._log_checked = True

    def origin(self) -> str:
        return self.log.verifier.name

    @property
    def logged_in(self) -> bool:
        """Whether this client is logged in already (a kept connection may be)."""
        return self._logged_in

    def authed(self) -> Api:
        """The API, logged in as this device's account."""
        if not self._logged_in:
            self.api.login(self.identity, self.account, self.origin())
            self._logged_in = True
        return self.api

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """An authenticated JSON call."""
        return self.authed().json(method, path, **kwargs)

    # -- saving ------------------------------------------------------------

    def _take_log_pin(self) -> None:
        """Copy the log check's newest checkpoint and pinned keys into the state."""
        if self._log is not None and self.state.log is not None:
            pin = self._log.pin()
            if pin.checkpoint is not None and pin != self.state.log:
                self.state = replace(self.state, log=pin)

    def log_handovers(self) -> list[Handover]:
        """The log key handovers this command followed and pinned."""
        return [] if self._log is None else list(self._log.followed)

    def save(self) -> None:
        """Remember the newest verified checkpoint, pinned keys and any state change.

        The next read (of a client that lives on, as the local app's) checks the log again.
        """
        self._log_checked = False
        self._take_log_pin()
        if self.state == self._saved:
            return
        self.paths.ensure()
        # Another command may have saved meanwhile: merge under a lock rather
        # than overwrite its pins or a newer checkpoint.
        with locked(self.paths.root / ".lock"):
            if self._saved.account and not self.paths.keystore.exists():
                return  # `evault panic` ran meanwhile: recreate nothing
            disk = state_file.load(self.paths.state)
            theirs = None if disk.log is None else disk.log.checkpoint
            ours = {None if p is None else p.checkpoint for p in (self._saved.log, self.state.log)}
            if self._log is not None and theirs is not None and theirs not in ours:
                # Another command saw another checkpoint: both must be one log.
                self._log.advance(theirs.encode("utf-8"))
                self._take_log_pin()  # that may have followed a key handover
            merged = _merge(self._saved, self.state, disk)
            state_file.save(self.paths.state, merged)
        self.state = self._saved = merged

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
        if self._session is not None:
            self._session.close()


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created 0600): one writer of the home at a time."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _checkpoint_size(pin: LogPin | None) -> int:
    if pin is None or pin.checkpoint is None:
        return -1
    try:
        return int(pin.checkpoint.split("\n", 2)[1])
    except (IndexError, ValueError):
        return -1


def _merge(base: State, mine: State, theirs: State) -> State:
    """``theirs`` (on disk now) with the changes this command made since ``base``.

    Contacts this command added, changed or renamed win; others on disk stay. Of two
    checkpoints of the same log, the larger is kept: each was verified by
    the command that saved it.
    """
    merged = theirs
    for name in ("server", "proxy", "account", "role", "vault", "release"):
        if getattr(mine, name) != getattr(base, name):
            merged = replace(merged, **{name: getattr(mine, name)})
    contacts = dict(merged.contacts)
    for name, contact in mine.contacts.items():
        if base.contacts.get(name) != contact:
            contacts[name] = contact
    for name in base.contacts.keys() - mine.contacts.keys():
        # Renamed by this command: gone, unless another command changed it meanwhile.
        if contacts.get(name) == base.contacts[name]:
            del contacts[name]
    merged = replace(merged, contacts=contacts)
    if mine.log is not None and (merged.log is None or _newer_pin(mine.log, merged.log)):
        merged = replace(merged, log=mine.log)
    if mine.log is not None and merged.log is not None:
        # The witnesses this command pinned or removed win, whichever checkpoint is kept.
        pinned = (mine.log.witnesses, mine.log.quorum)
        if base.log is None or pinned != (base.log.witnesses, base.log.quorum):
            log = replace(merged.log, witnesses=pinned[0], quorum=pinned[1])
            merged = replace(merged, log=log)
    return merged


def _newer_pin(mine: LogPin, theirs: LogPin) -> bool:
    """Whether ``mine`` should replace ``theirs``: it followed more key handovers,
    pins another key, or holds a larger checkpoint of the same key."""
    if len(mine.retired) != len(theirs.retired):
        return len(mine.retired) > len(theirs.retired)
    return mine.key != theirs.key or _checkpoint_size(mine) > _checkpoint_size(theirs)
