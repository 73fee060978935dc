"""Interoperability of ``vault.age`` with pyrage, the Python binding of rage.

Files go both ways for X25519 and passphrase recipients, binary and armored,
at sizes around the 64 KiB chunk boundaries.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import pyrage
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pyrage import passphrase as pyrage_passphrase
from pyrage import x25519 as pyrage_x25519

from tests.helpers import decrypt_bytes as ours_decrypt
from tests.helpers import encrypt_bytes as ours_encrypt
from vault import age

from .conftest import CHUNK, SIZES, payload

pytestmark = pytest.mark.integration

PASSPHRASE = "correct horse battery staple"  # noqa: S105 — a test value

sizes = st.integers(min_value=0, max_value=5 * CHUNK)
seeds = st.integers(min_value=0, max_value=2**32)
interop_settings = settings(max_examples=25, deadline=None)


def with_fixed_sizes(test: Callable[..., None]) -> Callable[..., None]:
    """Always try the chunk-boundary sizes, whatever hypothesis draws."""
    for size in SIZES:
        test = example(size=size, seed=size)(test)
    return test


@pytest.fixture(scope="module")
def pyrage_identity() -> pyrage_x25519.Identity:
    return pyrage_x25519.Identity.generate()


@with_fixed_sizes
@interop_settings
@given(size=sizes, seed=seeds)
def test_ours_to_pyrage_x25519(size: int, seed: int) -> None:
    identity = pyrage_x25519.Identity.generate()
    recipient = age.X25519Recipient.parse(str(identity.to_public()))
    plaintext = payload(size, seed)

    ciphertext = ours_encrypt(plaintext, [recipient])

    assert pyrage.decrypt(ciphertext, [identity]) == plaintext


@with_fixed_sizes
@interop_settings
@given(size=sizes, seed=seeds)
def test_pyrage_to_ours_x25519(size: int, seed: int) -> None:
    identity = age.X25519Identity.generate()
    recipient = pyrage_x25519.Recipient.from_str(str(identity.recipient()))
    plaintext = payload(size, seed)

    ciphertext = pyrage.encrypt(plaintext, [recipient])

    assert ours_decrypt(ciphertext, [identity]) == plaintext


@with_fixed_sizes
@interop_settings
@given(size=sizes, seed=seeds)
def test_ours_armored_to_pyrage(size: int, seed: int) -> None:
    identity = pyrage_x25519.Identity.generate()
    recipient = age.X25519Recipient.parse(str(identity.to_public()))
    plaintext = payload(size, seed)

    ciphertext = ours_encrypt(plaintext, [recipient], armor=True)

    assert ciphertext.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
    assert pyrage.decrypt(ciphertext, [identity]) == plaintext


@pytest.mark.parametrize("size", [0, CHUNK + 1])
def test_pyrage_armored_to_ours(size: int) -> None:
    identity = age.X25519Identity.generate()
    recipient = pyrage_x25519.Recipient.from_str(str(identity.recipient()))
    plaintext = payload(size, size)

    ciphertext = pyrage.encrypt(plaintext, [recipient], armored=True)

    assert ciphertext.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    assert ours_decrypt(ciphertext, [identity]) == plaintext


@with_fixed_sizes
@interop_settings
@given(size=sizes, seed=seeds)
def test_ours_passphrase_to_pyrage(size: int, seed: int) -> None:
    plaintext = payload(size, seed)

    ciphertext = ours_encrypt(plaintext, [age.ScryptRecipient(PASSPHRASE, work_factor=10)])

    assert pyrage_passphrase.decrypt(ciphertext, PASSPHRASE) == plaintext


def test_ours_passphrase_armored_to_pyrage() -> None:
    plaintext = payload(CHUNK + 1)

    ciphertext = ours_encrypt(
        plaintext, [age.ScryptRecipient(PASSPHRASE, work_factor=10)], armor=True
    )

    assert pyrage_passphrase.decrypt(ciphertext, PASSPHRASE) == plaintext


def test_pyrage_passphrase_to_ours() -> None:
    # rage picks a work factor that takes about a second on a fast machine, so
    # one multi-chunk file stands for every size; X25519 covers the rest.
    plaintext = payload(2 * CHUNK + 1)

    ciphertext = pyrage_passphrase.encrypt(plaintext, PASSPHRASE)

    assert ours_decrypt(ciphertext, [age.ScryptIdentity(PASSPHRASE)]) == plaintext
    with pytest.raises(age.NoIdentityMatchError):
        ours_decrypt(ciphertext, [age.ScryptIdentity("not the passphrase")])


def test_ours_multiple_recipients_to_pyrage() -> None:
    identities = [pyrage_x25519.Identity.generate() for _ in range(3)]
    recipients: list[age.Recipient] = [
        age.X25519Recipient.parse(str(i.to_public())) for i in identities
    ]
    plaintext = payload(CHUNK + 1)

    ciphertext = ours_encrypt(plaintext, recipients)

    for identity in identities:
        assert pyrage.decrypt(ciphertext, [identity]) == plaintext
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(ciphertext, [pyrage_x25519.Identity.generate()])


def test_pyrage_multiple_recipients_to_ours() -> None:
    identities = [age.X25519Identity.generate() for _ in range(3)]
    recipients = [pyrage_x25519.Recipient.from_str(str(i.recipient())) for i in identities]
    plaintext = payload(CHUNK + 1)

    ciphertext = pyrage.encrypt(plaintext, recipients)

    for identity in identities:
        assert ours_decrypt(ciphertext, [identity]) == plaintext
    with pytest.raises(age.NoIdentityMatchError):
        ours_decrypt(ciphertext, [age.X25519Identity.generate()])


def test_rewrapped_file_opens_in_pyrage() -> None:
    first = age.X25519Identity.generate()
    added = pyrage_x25519.Identity.generate()
    plaintext = payload(CHUNK + 1)
    original = pyrage.encrypt(plaintext, [pyrage_x25519.Recipient.from_str(str(first.recipient()))])

    out = io.BytesIO()
    age.rewrap(
        io.BytesIO(original), out, first, [age.X25519Recipient.parse(str(added.to_public()))]
    )

    assert pyrage.decrypt(out.getvalue(), [added]) == plaintext
    assert ours_decrypt(out.getvalue(), [first]) == plaintext


def test_keys_parse_both_ways(pyrage_identity: pyrage_x25519.Identity) -> None:
    ours = age.X25519Identity.parse(str(pyrage_identity))

    assert str(ours) == str(pyrage_identity)
    assert str(ours.recipient()) == str(pyrage_identity.to_public())
    generated = age.X25519Identity.generate()
    theirs = pyrage_x25519.Identity.from_str(str(generated))
    assert str(theirs.to_public()) == str(generated.recipient())
