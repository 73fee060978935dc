"""Creating and unlocking the person's keystore; asking for passphrases.

Passphrases are typed on the terminal (``/dev/tty``), never read from
stdin, which may carry data. A script or a demo may put one in
``EVAULT_PASSPHRASE`` (and ``EVAULT_DURESS_PASSPHRASE`` for ``init``);
anything in the environment can be read by other programs of the same user,
so a person should not.

New passphrases are checked for strength with zxcvbn: a seized laptop's
keystore is attacked offline, and only the passphrase stands between it and
the evidence.
"""

from __future__ import annotations

import getpass
import io
import os
from collections.abc import Callable
from pathlib import Path

from vault import keystore
from vault.errors import ConfigError, FormatError, KeystoreError, VaultError
from vault.keys import PersonalIdentity

__all__ = [
    "MIN_SCORE",
    "Prompter",
    "check_strength",
    "create",
    "tty_prompter",
    "unlock",
]

MIN_SCORE = 3
"""Smallest zxcvbn score (0–4) accepted for a new passphrase."""
_MIN_LENGTH = 12

Prompter = Callable[[str], str]
"""Asks a question on the terminal without echo and returns the answer."""


def tty_prompter(question: str) -> str:
    """Ask on the terminal, never on stdin."""
    try:
        raw = open("/dev/tty", "r+b", buffering=0)  # noqa: SIM115 — closed below
    except OSError:
        raise ConfigError(
            "a passphrase can only be typed on a terminal",
            hint="run the command in a terminal (scripts may set EVAULT_PASSPHRASE)",
        ) from None
    with io.TextIOWrapper(raw, encoding="utf-8", write_through=True) as tty:
        return getpass.getpass(question, stream=tty)


def check_strength(passphrase: str, *, name: str = "") -> None:
    """Refuse a passphrase an offline guesser would find.

    Raises:
        ConfigError: too short or too guessable, with zxcvbn's advice as hint.
    """
    from zxcvbn import zxcvbn

    if len(passphrase) < _MIN_LENGTH:
        raise ConfigError(
            f"passphrase too short: use at least {_MIN_LENGTH} characters",
            hint="five or six random words are strong and easy to remember",
        )
    result = zxcvbn(passphrase[:100], user_inputs=[name] if name else [])
    if int(result["score"]) < MIN_SCORE:
        feedback = result.get("feedback") or {}
        advice = [str(feedback.get("warning") or "")] + [
            str(s) for s in feedback.get("suggestions", [])
        ]
        text = "; ".join(a.rstrip(".").lower() for a in advice if a)
        raise ConfigError(
            "passphrase too easy to guess",
            hint=text or "five or six random words are strong and easy to remember",
        )


def _new_passphrase(prompt: Prompter, env: str, what: str, name: str) -> str:
    scripted = os.environ.get(env)
    if scripted:
        check_strength(scripted, name=name)
        return scripted
    first = prompt(f"New {what}: ")
    check_strength(first, name=name)
    if prompt(f"Repeat the {what}: ") != first:
        raise ConfigError(f"the two {what}s did not match; nothing was created")
    return first


def create(
    path: Path,
    name: str,
    *,
    prompt: Prompter = tty_prompter,
    duress: bool = False,
    params: keystore.Argon2Params = keystore.Argon2Params.DEFAULT,
) -> PersonalIdentity:
    """Generate an identity and seal it in a new keystore at ``path``.

    With ``duress``, a second passphrase opens the other slot, which holds
    the identity's duress twin (:meth:`PersonalIdentity.duress_twin`): the
    server knows its public key from the registration and treats a login or
    check-in signed with it as made under duress.

    Raises:
        KeystoreError: ``path`` exists; ConfigError: a weak or mistyped passphrase.
    """
    if path.exists() or path.is_symlink():
        raise KeystoreError(
            f"a keystore already exists at {path}",
            hint="this device is set up already; `evault panic` destroys it first",
        )
    passphrase = _new_passphrase(prompt, "EVAULT_PASSPHRASE", "passphrase", name)
    identity = PersonalIdentity.generate(name)
    second: tuple[str, bytes] | None = None
    if duress:
        duress_passphrase = _new_passphrase(
            prompt, "EVAULT_DURESS_PASSPHRASE", "duress passphrase", name
        )
        if duress_passphrase == passphrase:
            raise ConfigError("the duress passphrase must differ from the real one")
        second = (duress_passphrase, identity.duress_twin().to_bytes())
    keystore.create_keystore(path, passphrase, identity.to_bytes(), params=params, duress=second)
    return identity


def unlock(path: Path, *, prompt: Prompter = tty_prompter) -> PersonalIdentity:
    """Ask for the passphrase and open the keystore.

    Raises:
        ConfigError: no keystore yet.
        WrongPassphraseError: no slot opens.
    """
    if not path.exists():
        raise ConfigError("no keystore on this device", hint="run `evault init` first")
    passphrase = os.environ.get("EVAULT_PASSPHRASE") or prompt("Passphrase: ")
    slot = keystore.unlock(path, passphrase)
    try:
        return PersonalIdentity.from_bytes(slot.secret)
    except FormatError:
        raise VaultError("the keystore holds something that is not an identity") from None
