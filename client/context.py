"""One command's view of the client: its files, state, server and identity.

:class:`Client` opens what a command needs only when it first needs it:
the keystore is unlocked (one passphrase prompt) the first time the
identity is used, the login happens the first time an authenticated call is
made, and the log's checkpoint is remembered when the command ends well.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from client import identity as identities
from client import state as state_file
from client.api import Api
from client.config import Paths
from client.logcheck import LogCheck
from client.state import State
from vault.errors import ConfigError
from vault.keys import Card, PersonalIdentity

__all__ = ["Client"]


class Client:
    """Paths, state, API, identity and log check of one command."""

    def __init__(
        self,
        paths: Paths,
        *,
        server: str | None = None,
        proxy: str | None = None,
        prompt: identities.Prompter = identities.tty_prompter,
    ) -> None:
        self.paths = paths
        self.state: State = state_file.load(paths.state)
        self._saved = self.state
        self._server = server
        self._proxy = proxy
        self.prompt = prompt
        self._api: Api | None = None
        self._identity: PersonalIdentity | None = None
        self._log: LogCheck | None = None
        self._logged_in = False

    # -- lazily opened parts --------------------------------------------

    @property
    def server(self) -> str:
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
            self._api = Api(self.server, proxy=self.proxy)
        return self._api

    @property
    def identity(self) -> PersonalIdentity:
        if self._identity is None:
            self._identity = identities.unlock(self.paths.keystore, prompt=self.prompt)
        return self._identity

    def card(self) -> Card:
        return self.identity.card()

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
            self._log = LogCheck(self.api, self.state.log.key, self.state.log.checkpoint)
        return self._log

    def origin(self) -> str:
        return self.log.verifier.name

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

    def save(self) -> None:
        """Remember the newest verified checkpoint and any state change."""
        if self._log is not None and self.state.log is not None:
            text = self._log.checkpoint_text()
            if text is not None and text != self.state.log.checkpoint:
                self.state = replace(self.state, log=replace(self.state.log, checkpoint=text))
        if self.state == self._saved:
            return
        self.paths.ensure()
        state_file.save(self.paths.state, self.state)
        self._saved = self.state

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
