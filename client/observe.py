"""Checking a server's audit log without an account: anyone with the operator's published log key.

A court, a newsroom or a member of the public holding a release page or an
evidence package can check the log of the server behind it: the newest
checkpoint must be signed by the log key they were given (or by a key that
key handed over to, as registered devices follow it), and, with ``--full``,
every entry must hash to its signed root. Nothing is registered and nothing
is signed. The newest checkpoint verified is remembered per server and log
key under ``<home>/observed/`` (0600), so a later check catches a log that
was rewritten, forked or rolled back in between, as a registered device does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from client.api import Api
from client.config import Paths
from client.logcheck import LogCheck
from client.state import LogPin, parse_log_pin
from vault._atomic import write_atomically
from vault.errors import ConfigError, FormatError
from vault.note import NoteVerifier
from vault.peer_key import PeerVerifier

__all__ = ["Observer", "observe"]

_MAX_MEMORY = 1024 * 1024


def _memory_file(paths: Paths, server: str, key: str) -> Path:
    # Named by what it is about, never by anything the server chose.
    name = hashlib.sha256(f"{server}\n{key}".encode()).hexdigest()[:32]
    return paths.root / "observed" / f"{name}.json"


@dataclass
class Observer:
    """A server's log as an outsider sees it; :meth:`remember` keeps what was verified."""

    server: str
    api: Api
    log: LogCheck
    memory: Path
    key: str

    def remember(self) -> None:
        """Keep the newest verified checkpoint (and keys followed) for the next check."""
        pin = self.log.pin()
        value = {"server": self.server, "given_key": self.key, "log": pin.to_json()}
        folder = self.memory.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(
                self.memory, json.dumps(value).encode("utf-8"), overwrite=True, mode=0o600
            )
        except OSError as exc:
            raise ConfigError(
                f"cannot remember the checkpoint in {self.memory}: {exc.strerror}",
                hint="the check itself passed; without this file a later check cannot tell "
                "whether the log was rolled back in between",
            ) from None

    def close(self) -> None:
        self.api.close()


def observe(
    paths: Paths,
    server: str,
    key: str,
    *,
    proxy: str | None = None,
    witnesses: tuple[str, ...] = (),
    quorum: int = 1,
) -> Observer:
    """The log of ``server`` checked against ``key``, and what earlier checks verified.

    Raises:
        ConfigError: ``key`` is not a log key, or the remembered state is damaged.
    """
    try:
        NoteVerifier.parse(key)
    except FormatError:
        raise ConfigError(
            "that is not a log key",
            hint="give the key exactly as the operator published it (name+hash+base64)",
        ) from None
    memory = _memory_file(paths, server, key)
    pin = LogPin(key=key)
    if memory.exists():
        damaged = ConfigError(
            f"damaged record of an earlier check: {memory}",
            hint="move it away to start afresh (a later check then cannot see a rollback "
            "before today)",
        )
        try:
            data = memory.read_bytes()
            value = json.loads(data) if len(data) <= _MAX_MEMORY else None
        except (OSError, ValueError, UnicodeDecodeError):
            raise damaged from None
        if not isinstance(value, dict) or value.get("given_key") != key:
            raise damaged
        pin = parse_log_pin(value.get("log"), damaged)
    api = Api(server, proxy=proxy)
    try:
        for witness in witnesses:
            PeerVerifier.parse(witness)
    except FormatError as exc:
        raise ConfigError(
            f"that is not a witness key: {exc.message}",
            hint="give the peer key exactly as its operator published it",
        ) from None
    if witnesses and not 1 <= quorum <= len(witnesses):
        raise ConfigError(f"cannot require {quorum} cosignatures of {len(witnesses)} witnesses")
    log = LogCheck(
        api,
        pin.key,
        pin.checkpoint,
        pin.retired,
        follow_rotations=True,
        witnesses=witnesses,
        quorum=quorum,
    )
    log.key_words = "the log key given"
    return Observer(server=server, api=api, log=log, memory=memory, key=key)
