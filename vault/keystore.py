"""The keystore: the local key file, with two passphrase slots (DESIGN.md, "Keys").

One file holds a person's identity, an opaque ``bytes`` secret of at most
:data:`MAX_SECRET_SIZE` bytes that the caller serialises. A passphrase is
stretched with Argon2id into a key, and the key opens a slot sealed with
XChaCha20-Poly1305. The file always has two slots of the same size. A second
passphrase may open the other slot, whose secret the caller chooses (the
duress identity); while no second passphrase is set, that slot is random bytes.
Nothing in the file tells a used slot from an unused one.

File format, version 1 (all integers big-endian, 2169 bytes in all)::

    offset  size  field
         0     8  magic "EVAULTKS"
         8     1  version, 1
         9     4  Argon2id time cost (passes)
        13     4  Argon2id memory cost, KiB
        17     4  Argon2id parallelism (lanes)
        21    16  salt
        37  1066  slot 0: 24-byte nonce, 1026-byte ciphertext, 16-byte tag
      1103  1066  slot 1: the same

The first 37 bytes are the header. A slot's plaintext is the secret's length
(2 bytes) followed by the secret and zero bytes up to 1026 bytes, so a slot
does not reveal the length of what it holds. Its associated data is the
header followed by the slot's number (one byte): changing any header byte
(parameters, salt) fails both slots, and a slot does not open at the other
slot's place. The key is Argon2id (version 0x13) of the passphrase and the
salt with the file's parameters, 32 bytes.

Design and its trade-offs:

- **One salt, one Argon2id derivation per attempt.** The derived key is tried
  on both slots, always both, so an unlock takes the same time whichever slot
  opens, or none: a coercer timing it learns nothing. Per-slot salts would need
  two derivations per attempt to keep that property. They would make a
  guesser pay twice to try a guess on both slots, but the owner would pay
  twice per unlock too; one derivation with twice the cost gives the same
  ratio with one salt, one key and one code path. Changing one slot's
  passphrase keeps the salt and parameters and re-seals only that slot, so it
  needs no other passphrase.
- **The slot number is not a role.** When a keystore is created, its first
  secret goes to a random slot and the duress secret (if any) to the other.
  Were the real identity always in slot 0, a coercer holding the file and the
  duress passphrase would see it open slot 1 and know a real one exists. So
  :attr:`UnlockedSlot.slot` says which slot opened, never whether it is the
  duress one. Nothing in this module can tell that without telling the coercer
  too: whatever can be computed from the laptop and a passphrase, they can
  compute. The caller tells the identities apart by what is inside them, such
  as a key the server knows as the duress key.
- **The price of that.** Operations given the duress passphrase behave as they
  would in a keystore that has no other slot: :func:`set_duress` and
  :func:`remove_duress` given the duress passphrase overwrite the *other*
  slot, which is the real identity. As with a VeraCrypt outer volume, this
  cannot be refused without revealing the other slot. Keep a backup of the
  keystore somewhere safe.
- **Two copies over time tell more than one.** Each write re-seals only the
  slot whose passphrase was given. Someone holding two versions of the file
  (a backup, a synced folder, a snapshot) and the duress passphrase can see
  whether the other slot's bytes ever changed, and so that it is in use. No
  public re-randomisation helps, since the format is public; avoid keeping
  old copies where a coercer can reach them.
- **Wrong passphrase or altered file.** A slot that fails its tag looks the
  same whether the passphrase is wrong or the slot (or header) was altered, so
  both give :class:`~vault.errors.WrongPassphraseError`, which says so. A file
  that is not a keystore, is truncated or longer than a keystore, or has
  out-of-range Argon2 parameters gives :class:`~vault.errors.KeystoreCorruptError`;
  an unknown version gives :class:`~vault.errors.KeystoreError`. An unused slot
  cannot be checked at all: altering it goes unnoticed until a passphrase for
  it is set, which overwrites it.
- **Hostile parameters** are refused before Argon2 runs: time cost at most
  :data:`MAX_TIME_COST`, memory at most 4 GiB, parallelism at most
  :data:`MAX_PARALLELISM`, and time × memory at most :data:`MAX_WORK_KIB`, so a
  crafted file cannot exhaust memory or hang an unlock for long. The file is
  read only up to one byte past its fixed size.
- **Passphrases** are ``str``, NFC-normalised, then UTF-8 encoded: the same
  passphrase typed on two systems (one composing "é" as one code point, the
  other as "e" plus a combining accent) must give the same bytes. Empty ones
  are refused. Passphrases and secrets never appear in messages or reprs.
- **Memory.** Secrets are held in ``bytes``. Python cannot wipe memory: the
  passphrase, the key and the secret stay in the process until the garbage
  collector reuses the space, and may reach swap. Use an encrypted swap.
- **Writes** go through :func:`vault._atomic.write_atomically`: a 0600
  temporary file beside the keystore, fsync, rename, fsync of the directory.
  After a crash the old file or the new one is there, never a mix. The old
  bytes may remain on disk: no file system promises to erase them. Two
  programs changing one keystore at once may lose one change; the client
  should not do that.

Unlock time with the default parameters (t=3, m=256 MiB, p=2) is about 0.6 s,
with a peak of about 280 MiB of memory, on a 2-core AMD EPYC virtual machine;
the costliest file accepted (time × memory at the cap) takes about 9 s and
4 GiB there. ``bench/keystore_unlock.py`` measures both.
"""

from __future__ import annotations

import hmac
import os
import secrets
import struct
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Final

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)
from nacl.exceptions import CryptoError

from vault._atomic import write_atomically
from vault._disk import refused_write
from vault.errors import KeystoreCorruptError, KeystoreError, WrongPassphraseError

__all__ = [
    "FILE_SIZE",
    "MAX_MEMORY_KIB",
    "MAX_PARALLELISM",
    "MAX_SECRET_SIZE",
    "MAX_TIME_COST",
    "MAX_WORK_KIB",
    "Argon2Params",
    "UnlockedSlot",
    "change_passphrase",
    "create_keystore",
    "read_params",
    "remove_duress",
    "set_duress",
    "unlock",
]

MAGIC: Final = b"EVAULTKS"
VERSION: Final = 1
MAX_SECRET_SIZE: Final = 1024
"""Largest secret a slot holds; every slot is padded to this size."""
MAX_TIME_COST: Final = 32
"""Highest Argon2 time cost accepted, when writing and when reading a file."""
MAX_MEMORY_KIB: Final = 4 * 1024 * 1024
"""Highest Argon2 memory cost accepted: 4 GiB."""
MAX_PARALLELISM: Final = 16
"""Highest Argon2 parallelism accepted."""
MAX_WORK_KIB: Final = 8 * 1024 * 1024
"""Highest time cost × memory cost (KiB) accepted: bounds how long one unlock can take."""

_ARGON2_VERSION: Final = 0x13
_SALT_SIZE: Final = 16
_KEY_SIZE: Final = 32
_NONCE_SIZE: Final = 24
_TAG_SIZE: Final = 16
_LENGTH = struct.Struct(">H")
_PADDED_SIZE: Final = _LENGTH.size + MAX_SECRET_SIZE
_HEADER = struct.Struct(">8sBIII16s")
_HEADER_SIZE: Final = _HEADER.size
_SLOT_SIZE: Final = _NONCE_SIZE + _PADDED_SIZE + _TAG_SIZE
_SLOTS: Final = 2
FILE_SIZE: Final = _HEADER_SIZE + _SLOTS * _SLOT_SIZE
"""Size of every keystore file, whether one or two slots are in use."""

_RESTORE = "restore the keystore from a backup"

StrPath = str | os.PathLike[str]


def _params_problem(time_cost: int, memory_kib: int, parallelism: int) -> str | None:
    """What is wrong with these Argon2 parameters, or ``None``."""
    for name, value in (
        ("time cost", time_cost),
        ("memory cost", memory_kib),
        ("parallelism", parallelism),
    ):
        if not isinstance(value, int) or isinstance(value, bool):
            return f"{name} is not an integer"
    if not 1 <= parallelism <= MAX_PARALLELISM:
        return f"parallelism {parallelism} is not between 1 and {MAX_PARALLELISM}"
    if not 1 <= time_cost <= MAX_TIME_COST:
        return f"time cost {time_cost} is not between 1 and {MAX_TIME_COST}"
    if memory_kib < 8 * parallelism:
        return f"memory cost {memory_kib} KiB is below 8 KiB per lane"
    if memory_kib > MAX_MEMORY_KIB:
        return f"memory cost {memory_kib} KiB is above {MAX_MEMORY_KIB} KiB (4 GiB)"
    if time_cost * memory_kib > MAX_WORK_KIB:
        return f"time cost × memory cost is above {MAX_WORK_KIB} KiB"
    return None


@dataclass(frozen=True, kw_only=True)
class Argon2Params:
    """Argon2id cost parameters, stored in the keystore's header.

    ``DEFAULT`` (3 passes over 256 MiB, 2 lanes) is for real keystores;
    ``TESTING`` is cheap and weak, for tests only.

    Raises:
        KeystoreError: a value outside the bounds this module accepts.
    """

    time_cost: int = 3
    memory_kib: int = 256 * 1024
    parallelism: int = 2

    DEFAULT: ClassVar[Argon2Params]
    TESTING: ClassVar[Argon2Params]

    def __post_init__(self) -> None:
        problem = _params_problem(self.time_cost, self.memory_kib, self.parallelism)
        if problem is not None:
            raise KeystoreError(f"unusable argon2 parameters: {problem}")


Argon2Params.DEFAULT = Argon2Params()
Argon2Params.TESTING = Argon2Params(time_cost=1, memory_kib=8, parallelism=1)


@dataclass(frozen=True, kw_only=True, eq=False)
class UnlockedSlot:
    """The slot a passphrase opened and the secret it holds.

    ``slot`` is 0 or 1. It is not a role: the real identity may be in either
    slot (see the module documentation). ``secret`` is left out of the repr.
    """

    slot: int
    secret: bytes = field(repr=False)


@dataclass(frozen=True)
class _Keystore:
    header: bytes
    params: Argon2Params
    salt: bytes
    slots: tuple[bytes, bytes]


def _passphrase_bytes(passphrase: str, what: str = "passphrase") -> bytes:
    if not isinstance(passphrase, str):
        raise TypeError(f"the {what} must be a str")
    normalized = unicodedata.normalize("NFC", passphrase)
    if not normalized:
        raise KeystoreError(f"empty {what}", hint="choose a passphrase of several words")
    try:
        data: bytes | None = normalized.encode("utf-8")
    except UnicodeEncodeError:
        # Raised outside the handler so that no exception holding the
        # passphrase is chained to ours.
        data = None
    if data is None:
        raise KeystoreError(f"the {what} is not valid text: it has unpaired surrogates")
    return data


def _check_secret(secret: bytes) -> None:
    if not isinstance(secret, bytes):
        raise TypeError("the secret must be bytes")
    if len(secret) > MAX_SECRET_SIZE:
        raise KeystoreError(
            f"secret too large for a keystore slot: {len(secret)} bytes, at most {MAX_SECRET_SIZE}"
        )


def _refuse_same(first: bytes, second: bytes) -> None:
    if hmac.compare_digest(first, second):
        raise KeystoreError(
            "the duress passphrase is the same as the real one",
            hint="choose a different duress passphrase",
        )


def _derive_key(passphrase: bytes, salt: bytes, params: Argon2Params) -> bytes:
    try:
        return hash_secret_raw(
            secret=passphrase,
            salt=salt,
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=_KEY_SIZE,
            type=Type.ID,
            version=_ARGON2_VERSION,
        )
    except (HashingError, MemoryError):
        need = max(1, params.memory_kib // 1024)
        raise KeystoreError(
            "cannot derive the keystore key: argon2 failed, most likely for lack of memory",
            hint=f"unlocking this keystore needs about {need} MiB of free memory",
        ) from None


def _associated_data(header: bytes, index: int) -> bytes:
    return header + bytes([index])


def _seal(key: bytes, header: bytes, index: int, secret: bytes) -> bytes:
    padded = _LENGTH.pack(len(secret)) + secret + bytes(MAX_SECRET_SIZE - len(secret))
    nonce = secrets.token_bytes(_NONCE_SIZE)
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(
        padded, _associated_data(header, index), nonce, key
    )
    slot = nonce + sealed
    if len(slot) != _SLOT_SIZE:
        raise RuntimeError("internal error: slot of the wrong size")
    return slot


def _try_open(key: bytes, header: bytes, index: int, slot: bytes) -> bytes | None:
    """The padded plaintext of a slot, or ``None`` if the key does not open it."""
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(
            slot[_NONCE_SIZE:], _associated_data(header, index), slot[:_NONCE_SIZE], key
        )
    except CryptoError:
        return None


def _unpad(padded: bytes, path: Path) -> bytes:
    # Only a writer with the key can produce a slot that opens, so a bad
    # length or padding here means a bug, or a file written by another program.
    (length,) = _LENGTH.unpack_from(padded)
    end = _LENGTH.size + length
    if len(padded) != _PADDED_SIZE or length > MAX_SECRET_SIZE or any(padded[end:]):
        raise KeystoreCorruptError(f"keystore {path}: the slot's content is malformed")
    return padded[_LENGTH.size : end]


def _parse(data: bytes, path: Path) -> _Keystore:
    """Check everything that can be checked without a passphrase, in that order."""
    if not data:
        raise KeystoreCorruptError(f"keystore {path} is empty", hint=_RESTORE)
    if data[: len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise KeystoreCorruptError(f"keystore {path} is truncated", hint=_RESTORE)
        raise KeystoreCorruptError(
            f"{path} is not an evault keystore",
            hint=f"check the file name; if it is your keystore, it is damaged: {_RESTORE}",
        )
    if len(data) == len(MAGIC):
        raise KeystoreCorruptError(f"keystore {path} is truncated", hint=_RESTORE)
    version = data[len(MAGIC)]
    if version != VERSION:
        # Checked before the size: another version may have another size.
        raise KeystoreError(
            f"keystore {path} has format version {version}, which this evault cannot read",
            hint="upgrade evault; if no newer evault ever wrote this file, "
            f"it was altered: {_RESTORE}",
        )
    if len(data) < FILE_SIZE:
        raise KeystoreCorruptError(
            f"keystore {path} is truncated: {len(data)} bytes instead of {FILE_SIZE}",
            hint=_RESTORE,
        )
    if len(data) > FILE_SIZE:
        raise KeystoreCorruptError(
            f"keystore {path} is longer than a keystore ({FILE_SIZE} bytes)", hint=_RESTORE
        )
    _, _, time_cost, memory_kib, parallelism, salt = _HEADER.unpack_from(data)
    # Refused before Argon2 ever runs: a crafted file must not exhaust memory or hang.
    problem = _params_problem(time_cost, memory_kib, parallelism)
    if problem is not None:
        raise KeystoreCorruptError(
            f"keystore {path}: refusing its argon2 parameters: {problem}",
            hint=f"the file was altered or written by another program: {_RESTORE}",
        )
    params = Argon2Params(time_cost=time_cost, memory_kib=memory_kib, parallelism=parallelism)
    first = _HEADER_SIZE
    second = first + _SLOT_SIZE
    return _Keystore(
        header=data[:_HEADER_SIZE],
        params=params,
        salt=salt,
        slots=(data[first:second], data[second:]),
    )


def _read(path: Path) -> _Keystore:
    try:
        with path.open("rb") as f:
            # One byte more than a keystore, to notice a longer file without
            # reading a huge one into memory.
            data = f.read(FILE_SIZE + 1)
    except FileNotFoundError:
        raise KeystoreError(
            f"no keystore at {path}", hint="check the path, or create a keystore first"
        ) from None
    except OSError as exc:
        raise KeystoreError(f"cannot read keystore {path}: {exc.strerror}") from None
    return _parse(data, path)


def _write(path: Path, header: bytes, slots: list[bytes], *, overwrite: bool) -> None:
    data = header + b"".join(slots)
    if len(data) != FILE_SIZE:
        raise RuntimeError("internal error: keystore of the wrong size")
    try:
        write_atomically(path, data, overwrite=overwrite)
    except FileExistsError:
        raise KeystoreError(
            f"{path} already exists",
            hint="choose another file name; never overwrite a keystore you may still need",
        ) from None
    except OSError as exc:
        refused = refused_write(path, exc, needed=FILE_SIZE)
        if refused is not None:
            raise KeystoreError(refused[0], hint=refused[1]) from None
        raise KeystoreError(f"cannot write keystore {path}: {exc.strerror}") from None


def _open(keystore: _Keystore, passphrase: bytes, path: Path) -> tuple[int, bytes]:
    """The slot the passphrase opens, and its secret.

    Raises:
        WrongPassphraseError: no slot opens.
        KeystoreCorruptError: both slots open, or the opened slot is malformed.
    """
    key = _derive_key(passphrase, keystore.salt, keystore.params)
    # Both slots, always: the time taken must not depend on which one opens.
    opened = [
        _try_open(key, keystore.header, index, slot) for index, slot in enumerate(keystore.slots)
    ]
    found = [(index, padded) for index, padded in enumerate(opened) if padded is not None]
    if not found:
        raise WrongPassphraseError(
            f"cannot unlock {path}: wrong passphrase, or the file was altered",
            hint="check the passphrase and the keyboard layout, then try again; "
            f"if the passphrase is right, {_RESTORE}",
        )
    if len(found) > 1:
        raise KeystoreCorruptError(
            f"keystore {path}: both slots open with one passphrase", hint=_RESTORE
        )
    index, padded = found[0]
    return index, _unpad(padded, path)


def create_keystore(
    path: StrPath,
    passphrase: str,
    secret: bytes,
    *,
    params: Argon2Params = Argon2Params.DEFAULT,
    duress: tuple[str, bytes] | None = None,
) -> None:
    """Write a new keystore holding ``secret`` under ``passphrase``.

    ``secret`` goes to a random slot. With ``duress=(passphrase, secret)`` the
    other slot holds that secret under that passphrase; without it, the other
    slot is random bytes. The file is created with mode 0600 and is never
    written over.

    Raises:
        KeystoreError: ``path`` exists or cannot be written, a passphrase is
            empty, both passphrases are the same, or a secret is larger than
            :data:`MAX_SECRET_SIZE`.
    """
    target = Path(path)
    real = _passphrase_bytes(passphrase)
    _check_secret(secret)
    sealed_duress: tuple[bytes, bytes] | None = None
    if duress is not None:
        duress_passphrase, duress_secret = duress
        sealed_duress = (_passphrase_bytes(duress_passphrase, "duress passphrase"), duress_secret)
        _check_secret(duress_secret)
        _refuse_same(real, sealed_duress[0])
    if os.path.lexists(target):
        # Checked now to fail before a slow derivation; checked again when writing.
        raise KeystoreError(
            f"{target} already exists",
            hint="choose another file name; never overwrite a keystore you may still need",
        )
    salt = secrets.token_bytes(_SALT_SIZE)
    header = _HEADER.pack(
        MAGIC, VERSION, params.time_cost, params.memory_kib, params.parallelism, salt
    )
    index = secrets.randbelow(_SLOTS)
    slots = [secrets.token_bytes(_SLOT_SIZE) for _ in range(_SLOTS)]
    slots[index] = _seal(_derive_key(real, salt, params), header, index, secret)
    if sealed_duress is not None:
        other = 1 - index
        key = _derive_key(sealed_duress[0], salt, params)
        slots[other] = _seal(key, header, other, sealed_duress[1])
    _write(target, header, slots, overwrite=False)


def unlock(path: StrPath, passphrase: str) -> UnlockedSlot:
    """Open the slot that ``passphrase`` opens.

    One Argon2id derivation, then both slots are tried, so the time taken does
    not depend on the outcome.

    Raises:
        WrongPassphraseError: no slot opens: the passphrase is wrong, or the
            file was altered (the two cannot be told apart).
        KeystoreCorruptError: the file is not a keystore, is truncated or too
            long, or has out-of-range Argon2 parameters.
        KeystoreError: the file is missing or unreadable, its version is
            unknown, or the passphrase is empty.
    """
    target = Path(path)
    data = _passphrase_bytes(passphrase)
    index, secret = _open(_read(target), data, target)
    return UnlockedSlot(slot=index, secret=secret)


def change_passphrase(path: StrPath, old: str, new: str) -> None:
    """Re-seal the slot that ``old`` opens under ``new``.

    The salt, the parameters and the other slot are kept byte for byte, so the
    other slot's passphrase is not needed.

    Raises:
        WrongPassphraseError: ``old`` opens no slot.
        KeystoreError: ``new`` is empty, equal to ``old``, or already opens
            the other slot; the file cannot be read or written; or as
            :func:`unlock`.
    """
    target = Path(path)
    old_bytes = _passphrase_bytes(old, "old passphrase")
    new_bytes = _passphrase_bytes(new, "new passphrase")
    if hmac.compare_digest(old_bytes, new_bytes):
        raise KeystoreError("the new passphrase is the same as the old one")
    keystore = _read(target)
    index, secret = _open(keystore, old_bytes, target)
    key = _derive_key(new_bytes, keystore.salt, keystore.params)
    other = 1 - index
    # Only someone who knows the other slot's passphrase can get this error.
    if _try_open(key, keystore.header, other, keystore.slots[other]) is not None:
        raise KeystoreError(
            "the new passphrase already opens the keystore's other slot",
            hint="choose a passphrase used nowhere else",
        )
    slots = list(keystore.slots)
    slots[index] = _seal(key, keystore.header, index, secret)
    _write(target, keystore.header, slots, overwrite=True)


def set_duress(
    path: StrPath, real_passphrase: str, duress_passphrase: str, duress_secret: bytes
) -> None:
    """Seal ``duress_secret`` under ``duress_passphrase`` in the slot that
    ``real_passphrase`` does not open, replacing whatever that slot held.

    ``real_passphrase`` must open a slot first. Given the duress passphrase
    instead, this overwrites the real identity: it must act exactly as it
    would on a keystore without a second slot (see the module documentation).

    Raises:
        WrongPassphraseError: ``real_passphrase`` opens no slot.
        KeystoreError: a passphrase is empty, both are the same, the secret is
            too large, the file cannot be read or written; or as :func:`unlock`.
    """
    target = Path(path)
    real = _passphrase_bytes(real_passphrase)
    duress = _passphrase_bytes(duress_passphrase, "duress passphrase")
    _check_secret(duress_secret)
    _refuse_same(real, duress)
    keystore = _read(target)
    index, _ = _open(keystore, real, target)
    other = 1 - index
    slots = list(keystore.slots)
    key = _derive_key(duress, keystore.salt, keystore.params)
    slots[other] = _seal(key, keystore.header, other, duress_secret)
    _write(target, keystore.header, slots, overwrite=True)


def remove_duress(path: StrPath, passphrase: str) -> None:
    """Fill the slot that ``passphrase`` does not open with random bytes.

    Given the duress passphrase, this erases the real identity, for the same
    reason as :func:`set_duress`.

    Raises:
        WrongPassphraseError: ``passphrase`` opens no slot.
        KeystoreError: as :func:`unlock`, or the file cannot be written.
    """
    target = Path(path)
    data = _passphrase_bytes(passphrase)
    keystore = _read(target)
    index, _ = _open(keystore, data, target)
    slots = list(keystore.slots)
    slots[1 - index] = secrets.token_bytes(_SLOT_SIZE)
    _write(target, keystore.header, slots, overwrite=True)


def read_params(path: StrPath) -> Argon2Params:
    """The Argon2id parameters of a keystore, read without a passphrase.

    Raises:
        KeystoreCorruptError: as :func:`unlock`.
        KeystoreError: the file is missing or unreadable, or its version is unknown.
    """
    return _read(Path(path)).params
