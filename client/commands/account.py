"""``evault init``, ``register``, ``whoami``, ``card`` and ``panic``."""

from __future__ import annotations

import click

from client import account as accounts
from client import identity as identities
from client.commands._common import open_client
from client.config import home
from client.context import locked
from client.ui import confirm, err, handle_errors, json_mode, out, print_json, shown
from vault import keystore
from vault.errors import VaultError

__all__ = ["COMMANDS"]


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


@click.command()
@click.option("--invite", required=True, metavar="CODE", help="The invite code from the operator.")
@click.option(
    "--log-key",
    metavar="KEY",
    help="The server's log key as the operator published it (`evault-server keys show`).",
)
@click.option(
    "--witness",
    "witnesses",
    metavar="KEY",
    multiple=True,
    help="A witness's cosigner key to pin (see `evault witnesses`); repeat for several.",
)
@handle_errors
def register(invite: str, log_key: str | None, witnesses: tuple[str, ...]) -> None:
    """Create your account on the server and pin the server's log key."""
    with open_client() as client:
        accounts.check_unregistered(client)
        if log_key is None:
            served = accounts.fetch_log_key(client.api)
            err().print(
                "[bold yellow]Trusting the server's log key on first use.[/]\n"
                f"  log key:     {shown(served)}\n"
                f"  fingerprint: [bold]{accounts.log_fingerprint(served)}[/]\n"
                "Compare the fingerprint with the one your organisation published. "
                "From now on, this device refuses any other key."
            )
        done = accounts.register(client, invite, log_key, witnesses)
        if json_mode():
            print_json(
                {
                    "account": done.account,
                    "role": done.role,
                    "vault": done.vault,
                    "log_key_fingerprint": done.log_key_fingerprint,
                }
            )
            return
        out().print(
            f"Registered as {shown(done.role)} (account {done.account}); "
            f"log key pinned ({done.log_key_fingerprint})"
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
            "log_key_fingerprint": None
            if state.log is None
            else accounts.log_fingerprint(state.log.key),
        }
        if json_mode():
            print_json(info)
            return
        console = out()
        for key, value in info.items():
            console.print(f"{key + ':':21}{shown(value if value is not None else '-')}")


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
        destroyed = accounts.destroy(paths)
    if json_mode():
        print_json({"destroyed": destroyed, "directory": str(paths.root)})
        return
    out().print(
        "Destroyed the keystore and the local state. The server still holds your encrypted "
        "items and its log.\nOn SSDs copies may survive in the drive's spare blocks: "
        "rely on full-disk encryption and switch the machine off."
    )


COMMANDS = [init, card, register, whoami, panic]
