"""``evault unlock`` and ``evault lock``: one passphrase for a while (:mod:`client.agent`)."""

from __future__ import annotations

import datetime

import click

from client import agent
from client import identity as identities
from client.config import home
from client.durations import format_duration, parse_duration
from client.ui import handle_errors, json_mode, out, print_json
from vault.errors import ConfigError

__all__ = ["lock", "unlock"]


def _duration(text: str, what: str) -> int:
    seconds = parse_duration(text, what=what)
    if not 1 <= seconds <= agent.MAX_LIFETIME:
        raise ConfigError(
            f"{what} must be between 1s and {format_duration(agent.MAX_LIFETIME)}: {text}"
        )
    return seconds


def _until(moment: datetime.datetime) -> str:
    """``14:32`` today, ``tomorrow 09:10``: the laptop's own clock and time zone."""
    local = moment.astimezone()
    today = datetime.datetime.now().astimezone().date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if local.date() == today + datetime.timedelta(days=1):
        return local.strftime("tomorrow %H:%M")
    return local.strftime("%Y-%m-%d %H:%M")


def _report(status: agent.Status, *, already: bool) -> None:
    if json_mode():
        print_json(
            {
                "unlocked": True,
                "until": status.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "idle_seconds": status.idle,
            }
        )
        return
    first = "Already unlocked" if already else "Unlocked"
    out().print(
        f"{first} until {_until(status.until)} (or {format_duration(status.idle)} after "
        "the last use); `evault lock` locks now"
    )


@click.command()
@click.option(
    "--idle",
    default="15m",
    show_default=True,
    envvar="EVAULT_UNLOCK_IDLE",
    metavar="DURATION",
    help="Lock again after this long without use (90s, 15m, 1h) [EVAULT_UNLOCK_IDLE].",
)
@click.option(
    "--for",
    "lifetime",
    default="8h",
    show_default=True,
    envvar="EVAULT_UNLOCK_FOR",
    metavar="DURATION",
    help="Lock again after this long in any case, 24h at most [EVAULT_UNLOCK_FOR].",
)
@handle_errors
def unlock(idle: str, lifetime: str) -> None:
    """Type your passphrase once, for the next commands.

    Commands run after this one (ls, add, get, share, checkin…) do not ask
    for your passphrase until you have not used evault for 15 minutes, or
    8 hours have passed, whichever comes first. `evault lock` locks at once,
    and so does `evault panic`. Until then, anyone at this computer, as you,
    can use your vault without the passphrase: lock before you leave it.
    """
    idle_seconds = _duration(idle, "--idle")
    lifetime_seconds = _duration(lifetime, "--for")
    paths = home()
    if not agent.available():
        raise ConfigError(
            "the session unlock is not available on this system",
            hint="each command asks for your passphrase",
        )
    if not paths.keystore.exists():
        raise ConfigError("no keystore on this device", hint="run `evault init` first")
    running = agent.status(paths)
    if running is not None:
        _report(running, already=True)
        return
    unlocked = identities.unlock(paths.keystore)
    status = agent.start(paths, unlocked, idle=idle_seconds, lifetime=lifetime_seconds)
    _report(status, already=False)


@click.command()
@handle_errors
def lock() -> None:
    """Lock now: the next command asks for your passphrase again."""
    stopped = agent.stop(home())
    if json_mode():
        print_json({"locked": True, "was_unlocked": stopped})
        return
    if stopped:
        out().print("Locked: the next command asks for your passphrase")
    else:
        out().print("Nothing was unlocked: each command asks for your passphrase")
