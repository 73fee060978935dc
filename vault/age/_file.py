"""Whole-file operations: encrypt, decrypt and re-wrap an age v1 file."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import BinaryIO

from vault.age import hybrid, scrypt, x25519
from vault.age._crypto import FILE_KEY_SIZE
from vault.age._interface import Identity, Recipient
from vault.age.armor import ArmorReader, ArmorWriter, is_armored
from vault.age.format import Header, Source, Stanza, parse_header
from vault.age.stream import NONCE_SIZE, decrypt_payload, encrypt_payload, write_all
from vault.errors import EncryptError, HeaderError, HMACError, NoIdentityMatchError

_COPY_SIZE = 1024 * 1024
_ARMOR_PEEK = 1024


def _check_labels(recipients: Sequence[Recipient], existing: Iterable[frozenset[str]] = ()) -> None:
    label_sets = {r.labels() for r in recipients} | set(existing)
    if len(label_sets) > 1:
        raise EncryptError(
            "incompatible recipients: cannot mix post-quantum, classic and passphrase recipients",
            hint="a file is only as strong as its weakest recipient; "
            "a passphrase must be the only recipient",
        )


# Recipient types of the age ecosystem by strength, so that re-wrapping cannot
# add a post-quantum recipient beside a classic one or the reverse. Unknown
# types (grease, unknown plugins) say nothing and are left out.
_POST_QUANTUM_TYPES = frozenset({hybrid.STANZA_TYPE, "mlkem768p256tag"})
_CLASSIC_TYPES = frozenset({x25519.STANZA_TYPE, "p256tag", "ssh-ed25519", "ssh-rsa", "piv-p256"})


def _stanza_labels(stanzas: Sequence[Stanza]) -> set[frozenset[str]]:
    """The labels of the known recipient types present in a header."""
    labels: set[frozenset[str]] = set()
    for stanza in stanzas:
        if stanza.type in _POST_QUANTUM_TYPES:
            labels.add(frozenset({"postquantum"}))
        elif stanza.type in _CLASSIC_TYPES:
            labels.add(frozenset())
        elif stanza.type == scrypt.STANZA_TYPE:
            raise EncryptError("cannot add recipients to a file encrypted with a passphrase")
    return labels


def new_header(recipients: Sequence[Recipient]) -> tuple[Header, bytes]:
    """A header for a new file to ``recipients``, and its fresh file key.

    For callers that stream the payload themselves
    (:func:`vault.age.stream.encrypt_payload`), such as an upload that must
    be able to produce the same payload again to resume.

    Raises:
        EncryptError: no recipients, or recipients that cannot share a file.
    """
    if not recipients:
        raise EncryptError("no recipients given")
    _check_labels(recipients)
    file_key = os.urandom(FILE_KEY_SIZE)
    stanzas = [stanza for r in recipients for stanza in r.wrap(file_key)]
    return Header.seal(stanzas, file_key), file_key


def encrypt(
    src: BinaryIO, dst: BinaryIO, recipients: Sequence[Recipient], *, armor: bool = False
) -> None:
    """Encrypt everything ``src`` holds to ``recipients``, writing an age file to ``dst``.

    Neither file is closed. With ``armor``, the output is PEM-armored text.

    Raises:
        EncryptError: no recipients, or recipients that cannot share a file.
    """
    header, file_key = new_header(recipients)
    out: BinaryIO | ArmorWriter = ArmorWriter(dst) if armor else dst
    write_all(out.write, memoryview(header.marshal()))
    encrypt_payload(file_key, Source(src), out.write)
    if isinstance(out, ArmorWriter):
        out.close()


def _open_source(src: BinaryIO, armored: bool | None) -> tuple[Source, bool]:
    source = Source(src)
    if armored is None:
        armored = is_armored(source.peek(_ARMOR_PEEK))
    if armored:
        return Source(ArmorReader(source)), True  # type: ignore[arg-type]
    return source, False


def unwrap_file_key(header: Header, identities: Sequence[Identity]) -> bytes:
    """Unwrap and check the file key of ``header`` with the first identity that can.

    Raises:
        HeaderError: a stanza is malformed or breaks a rule of the format.
        NoIdentityMatchError: no identity unwraps any stanza.
        HMACError: the header MAC does not verify.
    """
    stanzas = header.stanzas
    if len(stanzas) != 1 and any(s.type == scrypt.STANZA_TYPE for s in stanzas):
        raise HeaderError("invalid header: an scrypt stanza must be the only stanza")
    for identity in identities:
        file_key = identity.unwrap(stanzas)
        if file_key is None:
            continue
        if len(file_key) != FILE_KEY_SIZE:
            raise HeaderError("invalid header: wrapped file key has the wrong length")
        if not header.verify_mac(file_key):
            raise HMACError("invalid header: MAC does not verify", hint="the file was altered")
        return file_key
    if len(stanzas) == 1 and stanzas[0].type == scrypt.STANZA_TYPE:
        raise NoIdentityMatchError(
            "incorrect passphrase", hint="the file is encrypted with a passphrase"
        )
    raise NoIdentityMatchError(
        "no identity matched any of the file's recipients",
        hint="was the file encrypted to you? check the identity file or passphrase",
    )


def _read_nonce(source: Source) -> bytes:
    nonce = source.read(NONCE_SIZE)
    if len(nonce) != NONCE_SIZE:
        raise HeaderError("truncated file: missing payload nonce")
    return nonce


def decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    identities: Sequence[Identity],
    *,
    armored: bool | None = None,
) -> None:
    """Decrypt the age file in ``src`` with the first identity that fits, into ``dst``.

    Armor is detected unless ``armored`` says otherwise. Plaintext is written
    chunk by chunk as it authenticates.

    Raises:
        ArmorError, HeaderError, NoIdentityMatchError, HMACError, PayloadError:
            all of them :class:`vault.errors.DecryptError`.
    """
    source, _ = _open_source(src, armored)
    header = parse_header(source)
    nonce = _read_nonce(source)
    file_key = unwrap_file_key(header, identities)
    decrypt_payload(file_key, nonce, source, dst.write)


def rewrap_header(
    header: Header, identity: Identity, add_recipients: Sequence[Recipient]
) -> Header:
    """The same header with stanzas for ``add_recipients`` added and a new MAC.

    Raises:
        DecryptError: ``identity`` cannot open the header.
        EncryptError: the new recipients cannot share the file with the old ones.
    """
    if not add_recipients:
        raise EncryptError("no recipients to add")
    _check_labels(add_recipients, _stanza_labels(header.stanzas))
    file_key = unwrap_file_key(header, [identity])
    stanzas = list(header.stanzas)
    stanzas += [stanza for r in add_recipients for stanza in r.wrap(file_key)]
    return Header.seal(stanzas, file_key)


def rewrap(
    src: BinaryIO, dst: BinaryIO, identity: Identity, add_recipients: Sequence[Recipient]
) -> None:
    """Copy the age file ``src`` to ``dst`` with more recipients; the payload is untouched.

    The payload is copied byte for byte, not decrypted, so its integrity is
    checked only when the file is decrypted. An armored file stays armored.
    """
    source, armored = _open_source(src, None)
    header = parse_header(source)
    nonce = _read_nonce(source)
    new_header = rewrap_header(header, identity, add_recipients)
    out: BinaryIO | ArmorWriter = ArmorWriter(dst) if armored else dst
    write_all(out.write, memoryview(new_header.marshal() + nonce))
    while data := source.read(_COPY_SIZE):
        write_all(out.write, memoryview(data))
    if isinstance(out, ArmorWriter):
        out.close()
