"""Age headers for items of the release set: the release recipient beside the others.

:mod:`vault.age` refuses to put a classic X25519 recipient in a file beside
post-quantum ones, because a file is only as strong as its weakest
recipient. The vault's release recipient is X25519 (DESIGN.md, "Keys"; the
switch API's ``release_recipient``: its 32-byte secret is what the SLIP-39
shares hold and what the server turns back into an identity at release),
while cards are post-quantum by default. So an item of the release set
carries one classic stanza, the release recipient's, beside post-quantum
ones, and its confidentiality against a future quantum computer is that
of X25519 until the release makes it public anyway. This module builds and
re-wraps such headers with the public pieces of :mod:`vault.age`; anything
else still goes through :mod:`vault.age` and its checks.

Decryption is unaffected: the age tool, and :func:`vault.age.decrypt`,
open a file with any one of its stanzas.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from vault import age
from vault.age.format import Header, Source, parse_header
from vault.age.stream import NONCE_SIZE, encrypt_payload
from vault.errors import EncryptError

__all__ = ["encrypt", "new_header", "rewrap", "rewrap_header"]

_SCRYPT = "scrypt"


def new_header(
    recipients: Sequence[age.Recipient], release: age.X25519Recipient | None = None
) -> tuple[Header, bytes]:
    """A header to ``recipients`` (and ``release``, if given) and its fresh file key.

    Raises:
        EncryptError: no recipients, or ``recipients`` that cannot share a file.
    """
    if release is None:
        return age.new_header(recipients)
    header, file_key = age.new_header(recipients)
    return Header.seal([*header.stanzas, *release.wrap(file_key)], file_key), file_key


def encrypt(
    data: bytes,
    recipients: Sequence[age.Recipient],
    release: age.X25519Recipient | None = None,
) -> bytes:
    """A small binary age file of ``data`` (a manifest) for ``recipients`` and ``release``."""
    header, file_key = new_header(recipients, release)
    out = io.BytesIO()
    out.write(header.marshal())
    encrypt_payload(file_key, io.BytesIO(data), out.write)
    return out.getvalue()


def rewrap_header(
    header: Header, identities: Sequence[age.Identity], add: Sequence[age.Recipient]
) -> Header:
    """``header`` with stanzas for ``add`` appended and a new MAC; one of ``identities`` opens it.

    Like :func:`vault.age.rewrap_header`, except that post-quantum and
    classic recipients may meet (an editor added to a release-set item, or
    the release recipient added to an item). A passphrase-encrypted file
    still takes no one else.

    Raises:
        DecryptError: none of ``identities`` opens the header.
        EncryptError: nothing to add, or a passphrase-encrypted file.
    """
    if not add:
        raise EncryptError("no recipients to add")
    if any(stanza.type == _SCRYPT for stanza in header.stanzas):
        raise EncryptError("cannot add recipients to a file encrypted with a passphrase")
    file_key = age.unwrap_file_key(header, identities)
    stanzas = [*header.stanzas, *(stanza for r in add for stanza in r.wrap(file_key))]
    return Header.seal(stanzas, file_key)


def rewrap(data: bytes, identities: Sequence[age.Identity], add: Sequence[age.Recipient]) -> bytes:
    """The binary age file ``data`` with stanzas for ``add``; the payload is copied as is.

    Raises:
        FormatError: not a binary age file.
        DecryptError, EncryptError: as :func:`rewrap_header`.
    """
    source = Source(io.BytesIO(data))
    header = parse_header(source)
    rest = source.read(len(data))
    if len(rest) < NONCE_SIZE:
        raise EncryptError("truncated file: missing payload nonce")
    return rewrap_header(header, identities, add).marshal() + rest
