"""``evault init``, ``register``, ``whoami``, ``card`` and ``panic``."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import secrets
import shutil
from dataclasses import replace
from pathlib import Path

import click

from client import identity as identities
from client.api import Api
from client.commands._common import open_client
from client.config import Paths, home
from client.context import locked
from client.logcheck import LogCheck
from client.state import LogPin
from client.ui import confirm, err, handle_errors, json_mode, out, print_json, shown
from vault import keystore
from vault.errors import ConfigError, FormatError, ProofError, VaultError
from vault.note import NoteVerifier, verifier_fingerprint

__all__ = ["COMMANDS"]


def _log_fingerprint(key: str) -> str:
    return verifier_fingerprint(NoteVerifier.parse(key))


@click.command()
@click.option("--name", help="Your name, as your editors will see it on your card.")
@click.option(
    "--duress",
    is_flag=True,
    help="Also set a duress passphrase: it opens a decoy vault and looks like obedience.",
)
@click.option("--insecure-fast-kdf", is_flag=True, hidden=True)
@handle_errors
def init(name: str | None, duress: bool, insecure_fast_kdf: bool) -> None:
    """Create your identity and keystore on this device.

    You choose a passphrase (typed twice, checked for strength). The keystore
    file is useless without it; forget it and your keys are gone.

    With --duress you also choose a duress passphrase, to give if you are
    forced to open the vault. It opens a decoy vault that looks like yours:
    the files you put in it with `evault decoy add`, and nothing else. Under
    it, check-ins seem to work and deletions seem to happen, but your real
    items stay, your trustees are warned, and your switch goes on.
    """
    paths = home()
    if name is None:
        name = click.prompt("Your name (shown to your editors)", err=True)
    if duress and not json_mode():
        err().print(
            "You will choose two passphrases. The first opens your real vault. The second, "
            "the duress passphrase, is the one to give if someone forces you to open it: it "
            "opens a decoy vault that looks real, holding only ordinary files you choose. "
            "Under it, check-ins seem to work and deletions seem to happen, but your real "
            "files stay and your trustees are warned. Nothing on this laptop shows that a "
            "second passphrase exists."
        )
    params = keystore.Argon2Params.DEFAULT
    if insecure_fast_kdf:
        err().print("[bold red]warning:[/] weak key derivation, for tests only")
        params = keystore.Argon2Params.TESTING
    paths.ensure()
    identity = identities.create(paths.keystore, name, duress=duress, params=params)
    card = identity.card()
    if json_mode():
        print_json(
            {"name": card.name, "fingerprint": card.fingerprint(), "keystore": str(paths.keystore)}
        )
        return
    console = out()
    console.print(f"Created your keystore: {shown(paths.keystore)}")
    console.print(f"Your fingerprint:  [bold]{card.fingerprint()}[/]")
    console.print("Give your card to your editors:  evault card > my.card")
    console.print("Next: evault --server URL register --invite CODE")
    if duress:
        console.print(
            "Then, with your real passphrase, fill the decoy vault with a few ordinary files "
            "a coercer would expect to find:  evault decoy add FILE…"
        )


@click.command()
@handle_errors
def card() -> None:
    """Print your public card (to give to editors; it holds no secret)."""
    with open_client() as client:
        click.echo(client.own_card().to_json().decode("utf-8"))


def _fetch_log_key(api: Api) -> tuple[str, str]:
    answer = api.json("GET", "/log/key")
    key = answer.get("key")
    if not isinstance(key, str):
        raise ProofError("the server sent a malformed log key")
    try:
        NoteVerifier.parse(key)
    except FormatError as exc:
        raise ProofError(f"the server sent a malformed log key: {exc.message}") from None
    return key, _log_fingerprint(key)


@click.command()
@click.option("--invite", required=True, metavar="CODE", help="The invite code from the operator.")
@click.option(
    "--log-key",
    metavar="KEY",
    help="The server's log key as the operator published it (`evault-server keys show`).",
)
@handle_errors
def register(invite: str, log_key: str | None) -> None:
    """Create your account on the server and pin the server's log key."""
    with open_client() as client:
        if client.state.account:
            raise ConfigError(
                "this device is registered already",
                hint="one device, one account; use EVAULT_HOME for another identity",
            )
        api = client.api
        served, fingerprint = _fetch_log_key(api)
        if log_key is not None:
            if log_key.strip() != served:
                raise ProofError(
                    "the server's log key is not the one you were given",
                    hint="this may not be your organisation's server; do not register",
                )
        else:
            err().print(
                "[bold yellow]Trusting the server's log key on first use.[/]\n"
                f"  log key:     {shown(served)}\n"
                f"  fingerprint: [bold]{fingerprint}[/]\n"
                "Compare the fingerprint with the one your organisation published. "
                "From now on, this device refuses any other key."
            )
        identity = client.identity
        # Always sent, duress passphrase or not: a device must not tell
        # whether its keystore has a duress slot, and the server must know
        # the card that slot would open, to show it to that side as its own.
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
        if not isinstance(account, dict) or not re.fullmatch(
            r"[0-9a-f]{32}", str(account.get("id"))
        ):
            raise ProofError("the server sent a malformed account")
        if account.get("vault") is not None and not re.fullmatch(
            r"[0-9a-f]{32}", str(account.get("vault"))
        ):
            raise ProofError("the server sent a malformed account")
        check = LogCheck(api, served, None)
        entry = check.entry(answer)
        own, other = (
            base64.b64encode(hashlib.sha256(card).digest()).decode()
            for card in (identity.card().to_json(), twin)
        )
        # A reporter's two cards are logged together, in no telling order;
        # other roles have no duress side.
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
            vault=account.get("vault") if isinstance(account.get("vault"), str) else None,
            log=LogPin(key=served, checkpoint=check.checkpoint_text()),
        )
        if json_mode():
            print_json(
                {
                    "account": account["id"],
                    "role": account.get("role"),
                    "vault": account.get("vault"),
                    "log_key_fingerprint": fingerprint,
                }
            )
            return
        out().print(
            f"Registered as {shown(account.get('role'))} (account {account['id']}); "
            f"log key pinned ({fingerprint})"
        )


@click.command()
@handle_errors
def whoami() -> None:
    """Show this device's identity, account, server and pinned log key."""
    with open_client() as client:
        # The registered card, whichever keystore slot the passphrase opened.
        card_ = client.own_card()
        state = client.state
        info = {
            "name": card_.name,
            "fingerprint": card_.fingerprint(),
            "account": state.account,
            "role": state.role,
            "vault": state.vault,
            "server": state.server,
            "proxy": state.proxy,
            "log_key_fingerprint": None if state.log is None else _log_fingerprint(state.log.key),
        }
        if json_mode():
            print_json(info)
            return
        console = out()
        for key, value in info.items():
            console.print(f"{key + ':':21}{shown(value if value is not None else '-')}")


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


@click.command()
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (for scripts).")
@handle_errors
def panic(yes: bool) -> None:
    """Destroy this device's keystore and local state now.

    The evidence on the server is untouched, and so is the switch: without
    check-ins it still releases. Overwriting happens before deletion, but on
    SSDs and journaling or copy-on-write file systems old copies of the
    keystore may survive in blocks the system no longer shows; only full-disk
    encryption with a powered-off machine fully protects those.
    """
    paths = home()
    if not paths.root.exists():
        raise VaultError("there is nothing to destroy on this device")
    confirm(f"Destroy the keystore and all local state in {paths.root}?", yes=yes)
    with locked(paths.root / ".lock"):
        destroyed = _destroy(paths)
    if json_mode():
        print_json({"destroyed": destroyed, "directory": str(paths.root)})
        return
    out().print(
        "Destroyed the keystore and the local state. The server still holds your encrypted "
        "items and its log.\nOn SSDs copies may survive in the drive's spare blocks: "
        "rely on full-disk encryption and switch the machine off."
    )


def _destroy(paths: Paths) -> list[str]:
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


COMMANDS = [init, card, register, whoami, panic]
