"""Database migrations through Alembic's API, with a configuration built in code.

Operators never need an ``alembic.ini``: ``evault-server db upgrade`` and
``db downgrade`` call :func:`upgrade` and :func:`downgrade` with the
database URL of the server's configuration. The scripts live in the
``migrations`` package beside ``server``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from alembic.util import CommandError

import migrations
from vault.errors import ConfigError

__all__ = ["alembic_config", "downgrade", "head", "revisions", "upgrade"]

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent


def alembic_config(database_url: str) -> AlembicConfig:
    """An Alembic configuration for ``database_url`` and the project's scripts."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    # Percent signs in a URL (escaped passwords) would be read as interpolation.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def revisions() -> list[str]:
    """Every revision, from the first to the head."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def head() -> str:
    """The newest revision."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    current = script.get_current_head()
    if current is None:
        raise RuntimeError("internal error: no migrations")
    return current


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database up to ``revision``.

    Raises:
        ConfigError: an unknown revision.
    """
    try:
        command.upgrade(alembic_config(database_url), revision)
    except CommandError as exc:
        raise ConfigError(f"cannot upgrade the database: {exc}") from None


def downgrade(database_url: str, revision: str = "-1") -> None:
    """Migrate the database down to ``revision`` (default: one step back).

    Raises:
        ConfigError: an unknown revision.
    """
    try:
        command.downgrade(alembic_config(database_url), revision)
    except CommandError as exc:
        raise ConfigError(f"cannot downgrade the database: {exc}") from None
