"""``evault ls`` and ``evault inbox`` done by the session unlock, for speed.

A command that finds a session unlock running (:mod:`client.launch`) sends it
a ``list`` request instead of importing the client, logging in and checking
every manifest itself. The unlock process does what the command would do,
with the same functions (:func:`client.items.list_items`,
:func:`client.commands.items.write_items`) and the same checks: the server's
log first (:meth:`client.context.Client.check_log`), then every item's
manifest. What makes it fast is what it keeps between commands, in memory
only:

- its connection to the server, logged in (a new login when the token
  expires);
- the manifests it decrypted and checked (:class:`client.items.ManifestCache`),
  under the item id and vault, the SHA-256 of the encrypted manifest and the
  signing keys they were checked against: an unchanged item is not
  decrypted and checked again, a changed or new one always is.

Nothing decrypted is written anywhere; all of it ends with the process
(``evault lock``, ``evault panic``, the idle limit, its lifetime). The table
is written for the command's terminal (its width, whether it is one, its
colour settings), streamed back in frames, with any network wait said as it
happens; the command prints them and exits with the status given.

The answer frames: ``{"ok": true, "err": text}`` (a line for stderr, now),
``{"ok": true, "out": text}`` (part of stdout), and last
``{"ok": true, "done": true, "exit": n}``; or ``{"ok": false, ...}`` when the
request is malformed or something unexpected happened, and the command then
does the listing itself. So it does when it names another certificate authority
(``EVAULT_CA_FILE``) than the one this process was started with.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console

from client.api import Api
from client.commands.items import EMPTY, write_items
from client.config import Paths
from client.context import Client
from client.items import ManifestCache, list_items
from client.ui import printable
from client.waits import Wait, Watch
from vault.errors import ConfigError, VaultError
from vault.keys import PersonalIdentity
from vault.note import verifier_fingerprint

__all__ = ["ENVIRONMENT", "Lister"]

ENVIRONMENT = ("TERM", "COLORTERM", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE")
"""What of the command's environment decides how its table looks (colours)."""
_CHUNK = 32 * 1024
"""Characters of output a frame: escapes included, it stays far below the frame limit."""
_LINE_EVERY = 30.0
_MAX_TEXT = 4096


def _no_prompt(_question: str) -> str:
    raise ConfigError("internal error: the session unlock asked for a passphrase")


class Lister:
    """The session unlock's listings: one at a time, with what they keep between commands."""

    def __init__(self, paths: Paths, identity: PersonalIdentity) -> None:
        self._paths = paths
        self._identity = identity
        self._known = ManifestCache()
        self._apis: dict[tuple[str, str | None, str | None], Api] = {}
        self._lock = threading.Lock()

    def answer(self, request: dict[str, Any], send: Callable[[dict[str, Any]], None]) -> None:
        """Do the ``list`` ``request``, sending its frames with ``send``."""
        asked = _parse(request)
        if asked is None:
            send({"ok": False, "error": "bad request"})
            return
        told = _Teller(send)
        with self._lock:
            try:
                stdout, code = self._list(asked, told)
            except Exception:  # noqa: BLE001 — the command lists by itself instead
                # Whatever it was, the command lists by itself (and says what went wrong).
                send({"ok": False, "error": "failed"})
                return
        for start in range(0, len(stdout), _CHUNK):
            send({"ok": True, "out": stdout[start : start + _CHUNK]})
        send({"ok": True, "done": True, "exit": code})

    def _list(self, asked: dict[str, Any], told: _Teller) -> tuple[str, int]:
        buffer = io.StringIO()
        console = Console(
            file=buffer,
            width=asked["width"],
            force_terminal=asked["terminal"],
            highlight=False,
            soft_wrap=True,
            legacy_windows=False,
            _environ=asked["env"],
        )
        client: Client | None = None
        watched = False
        try:
            client = self._client(asked)
            client.api.watch(Watch(told.wait))
            watched = True
            rows = list(list_items(client, known=self._known))
            write_items(
                client,
                rows,
                inbox=asked["inbox"],
                empty=EMPTY[asked["inbox"]],
                console=console,
                as_json=asked["json"],
            )
            code = 0
        except VaultError as exc:
            told.error(exc.message, exc.hint)
            code = 1
        finally:
            if client is not None:
                if watched:
                    client.api.watch(None)
                try:
                    client.save()
                except VaultError as exc:
                    told.error(exc.message, exc.hint)
                    code = 1
                _tell_handovers(client, told)
        return buffer.getvalue(), code

    def _client(self, asked: dict[str, Any]) -> Client:
        """A client of this home, on the connection kept from the last listing if there is one."""
        client = Client(
            self._paths,
            server=asked["server"],
            proxy=asked["proxy"],
            identity=self._identity,
            prompt=_no_prompt,
        )
        where = (client.server, client.proxy, client.state.account)
        kept = self._apis.get(where)
        if kept is None:
            self._apis = {where: client.api}  # one home, one server: no other kept
            return client
        return Client(
            self._paths,
            server=asked["server"],
            proxy=asked["proxy"],
            identity=self._identity,
            prompt=_no_prompt,
            api=kept,
        )


class _Teller:
    """Lines for the command's stderr, sent as they come (from the watch thread too)."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._told_at: float | None = None

    def line(self, text: str) -> None:
        with self._lock, contextlib.suppress(Exception):
            # A command that is gone hears nothing; the listing's end finds it out.
            self._send({"ok": True, "err": text[:_MAX_TEXT] + "\n"})

    def error(self, message: str, hint: str | None) -> None:
        self.line(f"evault: error: {printable(message)}")
        if hint:
            self.line(f"evault: hint: {printable(hint)}")

    def wait(self, wait: Wait) -> None:
        """As :func:`client.ui.tell_wait` says a wait without a progress bar."""
        now = time.monotonic()
        if wait.over:
            if self._told_at is not None:
                self.line(f"evault: {wait.line()}")
            self._told_at = None
            return
        if self._told_at is None or now - self._told_at >= _LINE_EVERY:
            self._told_at = now
            self.line(f"evault: {wait.line()} (Ctrl-C stops)")


def _tell_handovers(client: Client, told: _Teller) -> None:
    """As :func:`client.commands._common.open_client` tells a new log key."""
    handovers = client.log_handovers()
    if handovers:
        last = handovers[-1]
        told.line(
            f"evault: the server's log key changed at log entry {last.index}; pinned the new key "
            f"(fingerprint {verifier_fingerprint(last.new)}), vouched for by the key you had "
            "pinned"
        )


def _parse(request: dict[str, Any]) -> dict[str, Any] | None:
    """The list request's fields, checked, or None if it is malformed."""
    expected = {"op", "inbox", "json", "width", "terminal", "env", "server", "proxy", "ca_file"}
    if set(request) != expected:
        return None
    flags = [request[name] for name in ("inbox", "json", "terminal")]
    width, env = request["width"], request["env"]
    if not all(type(flag) is bool for flag in flags) or type(width) is not int:
        return None
    if not 10 <= width <= 10_000 or not isinstance(env, dict):
        return None
    if not all(k in ENVIRONMENT and isinstance(v, str) and len(v) < 256 for k, v in env.items()):
        return None
    for name in ("server", "proxy", "ca_file"):
        if request[name] is not None and not isinstance(request[name], str):
            return None
    if request["ca_file"] != (os.environ.get("EVAULT_CA_FILE") or None):
        return None  # another certificate authority than this process trusts: the command lists
    return {
        "inbox": request["inbox"],
        "json": request["json"],
        "terminal": request["terminal"],
        "width": width,
        "env": dict(env),
        "server": request["server"],
        "proxy": request["proxy"],
    }
