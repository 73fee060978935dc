"""``evault``: the only module of the client that prints or exits.

Offline commands for now: ``keygen``, ``encrypt`` and ``decrypt``, compatible
with the age tool, streaming stdin to stdout when no files are named.
"""

from __future__ import annotations

import datetime
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import click

from client.ui import handle_errors
from vault import __version__
from vault.errors import VaultError


def _fail(message: str, hint: str | None = None) -> None:
    click.echo(f"evault: error: {message}", err=True)
    if hint:
        click.echo(f"evault: hint: {hint}", err=True)


_COMMANDS = {
    "init": "account:init",
    "card": "account:card",
    "register": "account:register",
    "whoami": "account:whoami",
    "panic": "account:panic",
    "unlock": "session:unlock",
    "lock": "session:lock",
    "add": "items:add",
    "ls": "items:ls",
    "get": "items:get",
    "share": "items:share",
    "rm": "items:rm",
    "inbox": "items:inbox",
    "pull": "items:pull",
    "editors": "editors:editors",
    "log": "log:log",
    "witnesses": "witnesses:witnesses",
    "export": "log:export",
    "verify": "log:verify",
    "release": "log:release",
    "switch": "switch:switch",
    "checkin": "switch:checkin",
    "trustee": "trustee:trustee",
    "decoy": "decoy:decoy",
    "notice": "notice:notice",
    "app": "app:app",
}
"""The commands that talk to a server, imported only when run (``client.commands``)."""


class _LazyGroup(click.Group):
    """Imports a command's module only when that command runs: start-up and memory stay small."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        module = importlib.import_module(f"client.commands.{module_name}")
        command: click.Command = getattr(module, attribute)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="evault")
@click.option("--debug", is_flag=True, help="Show tracebacks for unexpected errors.")
@click.option(
    "--server",
    metavar="URL",
    envvar="EVAULT_SERVER",
    help="The vault server (remembered at registration) [EVAULT_SERVER].",
)
@click.option(
    "--proxy",
    metavar="socks5h://HOST:PORT",
    envvar="EVAULT_PROXY",
    help="Reach the server through this SOCKS proxy, e.g. Tor's socks5h://127.0.0.1:9050.",
)
@click.option("--json", "json_output", is_flag=True, help="Print results as JSON, for scripts.")
def main(debug: bool, server: str | None, proxy: str | None, json_output: bool) -> None:
    """Evidence Vault: keep evidence encrypted on your device and safe on a server.

    Files are encrypted in the age v1 format before they leave this device,
    so anyone who holds a key can always decrypt them with the standard `age`
    tool too. Every change is recorded in the server's audit log, which this
    client checks.

    Shell completion: eval "$(_EVAULT_COMPLETE=bash_source evault)" (or
    zsh_source, fish_source).
    """


_SECRET_MARK = "AGE-SECRET-KEY-"  # noqa: S105 — a prefix to look for, not a secret


def _refuse_secret_as_path(path: str) -> None:
    """A secret key pasted where a file name belongs must never be echoed back."""
    if _SECRET_MARK in path.upper():
        raise VaultError(
            "that looks like a secret key, not a file name",
            hint="save the key in a file (mode 0600) and pass the file; "
            "keys typed on the command line end up in the shell history",
        )


def _open_input(path: str | None) -> BinaryIO:
    from client.files import open_input

    if path is None or path == "-":
        return open_input(None)
    _refuse_secret_as_path(path)
    return open_input(Path(path))


def _read_key_file(path: str) -> bytes:
    _refuse_secret_as_path(path)
    try:
        with Path(path).open("rb") as f:
            return f.read(1024 * 1024 + 1)
    except FileNotFoundError:
        raise VaultError(f"no such file: {path}") from None


def _run_to_output(
    output: str | None, mode: int, force: bool, job: Callable[[BinaryIO], None]
) -> None:
    from client.files import atomic_output, open_device

    if output is None or output == "-":
        out = sys.stdout.buffer
        job(out)
        out.flush()
        return
    path = Path(output)
    if path.exists() and not path.is_symlink() and path.is_char_device():
        # /dev/null and the like: there is nothing to replace.
        with open_device(path) as device:
            job(device)
        return
    with atomic_output(path, mode=mode, overwrite=force) as out:
        job(out)


@main.command()
@click.option(
    "--pq",
    "kind",
    flag_value="pq",
    default=True,
    help="Post-quantum hybrid ML-KEM-768 + X25519 (default).",
)
@click.option(
    "--x25519",
    "kind",
    flag_value="x25519",
    help="Classic X25519, for tools without post-quantum support.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the identity to FILE (mode 0600, never overwritten).",
)
@handle_errors
def keygen(kind: str, output: str | None) -> None:
    """Generate a new identity (secret key) and print its recipient.

    The recipient (public key) is what others encrypt to; the identity file
    must stay secret.
    """
    from vault.age import HybridIdentity, X25519Identity

    identity = HybridIdentity.generate() if kind == "pq" else X25519Identity.generate()
    recipient = str(identity.recipient())
    created = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    text = f"# created: {created.replace('+00:00', 'Z')}\n# public key: {recipient}\n{identity}\n"
    if output is None or output == "-":
        if not sys.stdout.isatty():
            click.echo(f"Public key: {recipient}", err=True)
            _warn_if_readable_by_others(sys.stdout.fileno())
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from client.files import atomic_output

    with atomic_output(Path(output), mode=0o600) as out:
        out.write(text.encode("ascii"))
    click.echo(f"Public key: {recipient}", err=True)


def _warn_if_readable_by_others(fd: int) -> None:
    import stat

    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
        click.echo(
            "evault: warning: the secret key went to a file others can read; "
            "chmod 600 it, or use -o FILE next time",
            err=True,
        )


def _prompt_passphrase(confirm: bool) -> str:
    """Ask on the terminal, never on stdin, which may carry the data."""
    import getpass
    import io

    try:
        raw = open("/dev/tty", "r+b", buffering=0)  # noqa: SIM115 — closed below
    except OSError:
        raise VaultError(
            "a passphrase can only be typed on a terminal",
            hint="run the command in a terminal, or use -r/-i with key files",
        ) from None
    with io.TextIOWrapper(raw, encoding="utf-8", write_through=True) as tty:
        first = getpass.getpass("Enter passphrase: ", stream=tty)
        if confirm and getpass.getpass("Confirm passphrase: ", stream=tty) != first:
            raise VaultError("passphrases did not match")
    if not first:
        raise VaultError("empty passphrase")
    return first


@main.command()
@click.option(
    "-r",
    "--recipient",
    "recipients",
    multiple=True,
    metavar="RECIPIENT",
    help="Encrypt to an age1pq1… or age1… public key (repeatable).",
)
@click.option(
    "-R",
    "--recipients-file",
    "recipient_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Encrypt to the recipients listed in FILE (repeatable).",
)
@click.option(
    "-p", "--passphrase", is_flag=True, help="Encrypt with a passphrase typed on the terminal."
)
@click.option("-a", "--armor", is_flag=True, help="Write PEM-armored text instead of binary.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write to FILE (atomically) instead of stdout.",
)
@click.option("-f", "--force", is_flag=True, help="Replace the output file if it exists.")
@click.argument("input_path", metavar="[IN]", required=False)
@handle_errors
def encrypt(
    recipients: Sequence[str],
    recipient_files: Sequence[str],
    passphrase: bool,
    armor: bool,
    output: str | None,
    force: bool,
    input_path: str | None,
) -> None:
    """Encrypt IN (or stdin) to one or more recipients, as an age v1 file."""
    from client.files import default_mode
    from vault import age

    parsed: list[age.Recipient] = [age.parse_recipient(r) for r in recipients]
    for path in recipient_files:
        parsed += age.parse_recipient_file(_read_key_file(path))
    if passphrase and parsed:
        raise VaultError("-p cannot be combined with recipients")
    if not parsed and not passphrase:
        raise VaultError("no recipients", hint="give -r RECIPIENT, -R FILE or -p")
    if (output is None or output == "-") and not armor and sys.stdout.isatty():
        raise VaultError(
            "refusing to write binary ciphertext to a terminal",
            hint="use -o FILE, or -a for armored text",
        )
    if passphrase:
        parsed = [age.ScryptRecipient(_prompt_passphrase(confirm=True))]
    with _open_input(input_path) as src:
        _run_to_output(
            output, default_mode(), force, lambda dst: age.encrypt(src, dst, parsed, armor=armor)
        )


class _PromptedPassphrase:
    """An identity that asks for a passphrase only if the file is passphrase-encrypted."""

    def unwrap(self, stanzas: Sequence[Any]) -> bytes | None:
        from vault import age
        from vault.age import scrypt

        for stanza in stanzas:
            if stanza.type == scrypt.STANZA_TYPE:
                # A malformed or too costly stanza is refused before asking.
                scrypt.check_stanza(stanza, stanzas)
                return age.ScryptIdentity(_prompt_passphrase(confirm=False)).unwrap(stanzas)
        return None


@main.command()
@click.option(
    "-i",
    "--identity",
    "identity_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="Decrypt with the identities in FILE (repeatable).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write to FILE (atomically, mode 0600) instead of stdout.",
)
@click.option("-f", "--force", is_flag=True, help="Replace the output file if it exists.")
@click.argument("input_path", metavar="[IN]", required=False)
@handle_errors
def decrypt(
    identity_files: Sequence[str], output: str | None, force: bool, input_path: str | None
) -> None:
    """Decrypt IN (or stdin), binary or armored.

    With -o, the output appears only if the whole file decrypted and
    authenticated. On stdout, plaintext is written as it authenticates, and
    a damaged file stops with an error at the first bad chunk.
    """
    from vault import age

    identities: list[Any] = []
    for path in identity_files:
        identities += age.parse_identity_file(_read_key_file(path))
    # Asks only if the file turns out to be passphrase-encrypted.
    identities.append(_PromptedPassphrase())
    with _open_input(input_path) as src:
        _run_to_output(output, 0o600, force, lambda dst: age.decrypt(src, dst, identities))


def _terminate(signum: int, _frame: object) -> None:
    # Unwind like Ctrl-C, so that no half-written output survives.
    raise KeyboardInterrupt


def run() -> None:
    """Console entry point: click's usage errors in the same ``evault: error:`` form."""
    import signal

    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _terminate)
    try:
        main.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("evault: interrupted", err=True)
        sys.exit(130)
    except click.UsageError as exc:
        _fail(exc.format_message(), "see `evault --help` or `evault COMMAND --help`")
        sys.exit(2)
    except click.ClickException as exc:
        _fail(exc.format_message())
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    run()
