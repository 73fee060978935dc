"""``evault-server``: the operator's command."""

from __future__ import annotations

import click

from vault import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name="evault-server")
def main() -> None:
    """Evidence Vault server: stores only ciphertext and keeps a verifiable audit log.

    The operator commands (init, db, invite, keys, run, worker) arrive with
    the server; this version provides none yet.
    """
