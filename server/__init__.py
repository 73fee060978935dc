"""The Evidence Vault server (stores ciphertext, keeps the audit log).

Its packages (Flask's database and storage companions, gunicorn) come with
the ``server`` extra (``pip install 'evidence-vault[server]'``); a laptop
installs the client alone. ``create_app`` and ``Config`` are imported on
first use, so that ``evault-server`` can say what is missing instead of
failing on an import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.app import create_app
    from server.config import Config

__all__ = ["Config", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from server.app import create_app

        return create_app
    if name == "Config":
        from server.config import Config

        return Config
    raise AttributeError(f"module 'server' has no attribute {name!r}")
