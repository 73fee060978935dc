"""``evault-server``'s entry point: a clear message when the server's packages are missing."""

from __future__ import annotations

import sys

_SERVER_PACKAGES = frozenset(
    {
        "sqlalchemy",
        "alembic",
        "psycopg",
        "boto3",
        "botocore",
        "gunicorn",
        "http_message_signatures",
        "http_sf",
    }
)


def main() -> None:
    """Run ``server.cli.main``, or say how to install what it needs."""
    try:
        from server.cli import main as run
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in _SERVER_PACKAGES:
            raise
        print(
            f"evault-server: error: the server's packages are not installed ({missing})\n"
            "evault-server: hint: pip install 'evidence-vault[server]'",
            file=sys.stderr,
        )
        sys.exit(1)
    run()
