"""Interoperability with the reference ``age`` tool, run as a subprocess.

Files made by ``vault.age`` and by ``evault`` open in ``age``, files made by
``age`` open in both, identity files are shared, and a re-wrapped file keeps
its payload byte for byte. Passphrases are typed on a pseudo-terminal,
because ``age`` reads them only from a terminal.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest

from tests.helpers import decrypt_bytes as ours_decrypt
from tests.helpers import encrypt_bytes as ours_encrypt
from vault import age

from .conftest import (
    CHUNK,
    EVAULT,
    SIZES,
    KeyPair,
    assert_ok,
    payload,
    payload_after_header,
    run_evault,
    run_on_terminal,
    run_tool,
)

pytestmark = pytest.mark.integration

PASSPHRASE = "correct horse battery staple"  # noqa: S105 — a test value
ARMOR = [pytest.param(False, id="binary"), pytest.param(True, id="armor")]


def age_decrypt(age_bin: str, ciphertext: bytes, identity_file: Path) -> bytes:
    return assert_ok(run_tool(age_bin, "-d", "-i", identity_file, input=ciphertext)).stdout


def age_encrypt(age_bin: str, plaintext: bytes, recipient: str, *, armor: bool = False) -> bytes:
    args = [age_bin, "-r", recipient] + (["-a"] if armor else [])
    return assert_ok(run_tool(*args, input=plaintext)).stdout


def unarmor(armored: bytes) -> bytes:
    """The binary age file inside PEM armor, decoded independently of vault.age."""
    lines = armored.strip().splitlines()
    assert lines[0] == b"-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-1] == b"-----END AGE ENCRYPTED FILE-----"
    return base64.b64decode(b"".join(lines[1:-1]), validate=True)


@pytest.mark.parametrize("armor", ARMOR)
@pytest.mark.parametrize("size", SIZES)
def test_api_to_age(age_bin: str, x25519_key: KeyPair, size: int, armor: bool) -> None:
    plaintext = payload(size, size)
    ciphertext = ours_encrypt(
        plaintext, [age.X25519Recipient.parse(x25519_key.recipient)], armor=armor
    )

    assert age_decrypt(age_bin, ciphertext, x25519_key.identity_file) == plaintext


@pytest.mark.parametrize("armor", ARMOR)
@pytest.mark.parametrize("size", SIZES)
def test_age_to_api(age_bin: str, x25519_key: KeyPair, size: int, armor: bool) -> None:
    plaintext = payload(size, size)
    ciphertext = age_encrypt(age_bin, plaintext, x25519_key.recipient, armor=armor)

    assert ciphertext.startswith(b"-----BEGIN" if armor else b"age-encryption.org/v1\n")
    assert ours_decrypt(ciphertext, [x25519_key.identity]) == plaintext


@pytest.mark.parametrize("armor", ARMOR)
@pytest.mark.parametrize("size", [0, CHUNK, 3 * CHUNK + 5])
def test_evault_to_age(
    age_bin: str, x25519_key: KeyPair, tmp_path: Path, size: int, armor: bool
) -> None:
    plaintext = payload(size, size)
    (tmp_path / "in").write_bytes(plaintext)
    args: list[str | Path] = ["encrypt", "-r", x25519_key.recipient, *(["-a"] if armor else [])]
    assert_ok(run_evault(*args, "-o", tmp_path / "out.age", tmp_path / "in"))

    # age 1.1.1 creates no -o file for an empty plaintext, so read its stdout.
    decrypted = run_tool(age_bin, "-d", "-i", x25519_key.identity_file, tmp_path / "out.age")
    assert assert_ok(decrypted).stdout == plaintext


@pytest.mark.parametrize("armor", ARMOR)
def test_evault_stdout_to_age(age_bin: str, x25519_key: KeyPair, armor: bool) -> None:
    plaintext = payload(CHUNK + 1)
    args = ["encrypt", "-r", x25519_key.recipient, *(["-a"] if armor else [])]
    ciphertext = assert_ok(run_evault(*args, input=plaintext)).stdout

    assert age_decrypt(age_bin, ciphertext, x25519_key.identity_file) == plaintext


@pytest.mark.parametrize("armor", ARMOR)
@pytest.mark.parametrize("size", [0, 1, CHUNK + 1, 3 * CHUNK + 5])
def test_age_to_evault(
    age_bin: str, x25519_key: KeyPair, tmp_path: Path, size: int, armor: bool
) -> None:
    plaintext = payload(size, size)
    encrypted = tmp_path / "in.age"
    encrypted.write_bytes(age_encrypt(age_bin, plaintext, x25519_key.recipient, armor=armor))

    assert_ok(
        run_evault("decrypt", "-i", x25519_key.identity_file, "-o", tmp_path / "out", encrypted)
    )
    assert (tmp_path / "out").read_bytes() == plaintext
    streamed = assert_ok(
        run_evault("decrypt", "-i", x25519_key.identity_file, input=encrypted.read_bytes())
    )
    assert streamed.stdout == plaintext


def test_age_keygen_identity_file_read_by_evault(
    age_bin: str, age_keygen_bin: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.txt"
    assert_ok(run_tool(age_keygen_bin, "-o", key_file))
    recipient = assert_ok(run_tool(age_keygen_bin, "-y", key_file)).stdout.decode().strip()
    plaintext = payload(CHUNK + 1)
    ciphertext = age_encrypt(age_bin, plaintext, recipient)

    result = assert_ok(run_evault("decrypt", "-i", key_file, input=ciphertext))

    assert result.stdout == plaintext
    # And evault encrypts to the recipient age-keygen printed.
    ours = assert_ok(run_evault("encrypt", "-r", recipient, input=plaintext)).stdout
    assert age_decrypt(age_bin, ours, key_file) == plaintext


def test_evault_keygen_identity_file_read_by_age(
    age_bin: str, age_keygen_bin: str, tmp_path: Path
) -> None:
    key_file = tmp_path / "key.txt"
    keygen = assert_ok(run_evault("keygen", "--x25519", "-o", key_file))
    recipient = keygen.stderr.decode().removeprefix("Public key: ").strip()
    assert recipient.startswith("age1")
    # age-keygen -y reads the file and derives the same recipient.
    assert assert_ok(run_tool(age_keygen_bin, "-y", key_file)).stdout.decode().strip() == recipient
    plaintext = payload(CHUNK + 1)

    ciphertext = assert_ok(run_evault("encrypt", "-r", recipient, input=plaintext)).stdout
    assert age_decrypt(age_bin, ciphertext, key_file) == plaintext
    theirs = age_encrypt(age_bin, plaintext, recipient, armor=True)
    assert assert_ok(run_evault("decrypt", "-i", key_file, input=theirs)).stdout == plaintext


def test_multiple_recipients_to_age(
    age_bin: str, x25519_key: KeyPair, other_x25519_key: KeyPair
) -> None:
    plaintext = payload(CHUNK)
    recipients: list[age.Recipient] = [
        age.X25519Recipient.parse(x25519_key.recipient),
        age.X25519Recipient.parse(other_x25519_key.recipient),
    ]
    ciphertext = ours_encrypt(plaintext, recipients)

    assert age_decrypt(age_bin, ciphertext, x25519_key.identity_file) == plaintext
    assert age_decrypt(age_bin, ciphertext, other_x25519_key.identity_file) == plaintext


def test_age_multiple_recipients_to_ours(
    age_bin: str, x25519_key: KeyPair, other_x25519_key: KeyPair, tmp_path: Path
) -> None:
    plaintext = payload(CHUNK + 1)
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"# two\n{x25519_key.recipient}\n\n{other_x25519_key.recipient}\n")
    ciphertext = assert_ok(run_tool(age_bin, "-R", recipients_file, input=plaintext)).stdout

    assert ours_decrypt(ciphertext, [x25519_key.identity]) == plaintext
    assert ours_decrypt(ciphertext, [other_x25519_key.identity]) == plaintext


def test_evault_recipients_file_to_age(
    age_bin: str, x25519_key: KeyPair, other_x25519_key: KeyPair, tmp_path: Path
) -> None:
    # The same recipients file serves both tools.
    recipients_file = tmp_path / "recipients.txt"
    recipients_file.write_text(f"# two\n{x25519_key.recipient}\n\n{other_x25519_key.recipient}\n")
    plaintext = payload(3)

    ciphertext = assert_ok(run_evault("encrypt", "-R", recipients_file, input=plaintext)).stdout

    assert age_decrypt(age_bin, ciphertext, other_x25519_key.identity_file) == plaintext


def test_age_rejects_wrong_identity_for_our_file(
    age_bin: str, x25519_key: KeyPair, other_x25519_key: KeyPair
) -> None:
    ciphertext = ours_encrypt(b"secret", [age.X25519Recipient.parse(x25519_key.recipient)])

    result = run_tool(age_bin, "-d", "-i", other_x25519_key.identity_file, input=ciphertext)

    assert result.returncode != 0
    assert result.stdout == b""


@pytest.mark.parametrize("armor", ARMOR)
def test_rewrap_keeps_payload_and_opens_in_age(
    age_bin: str, x25519_key: KeyPair, other_x25519_key: KeyPair, armor: bool
) -> None:
    plaintext = payload(3 * CHUNK + 5)
    original = age_encrypt(age_bin, plaintext, x25519_key.recipient, armor=armor)

    out = io.BytesIO()
    age.rewrap(
        io.BytesIO(original),
        out,
        x25519_key.identity,
        [age.X25519Recipient.parse(other_x25519_key.recipient)],
    )
    rewrapped = out.getvalue()

    assert age_decrypt(age_bin, rewrapped, other_x25519_key.identity_file) == plaintext
    assert age_decrypt(age_bin, rewrapped, x25519_key.identity_file) == plaintext
    if armor:
        assert rewrapped.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----\n")
        original = unarmor(original)
        rewrapped = unarmor(rewrapped)
    assert payload_after_header(rewrapped) == payload_after_header(original)
    assert rewrapped.count(b"\n-> X25519 ") == 2


# Passphrases, typed on a pseudo-terminal.


@pytest.mark.parametrize("armor", ARMOR)
def test_age_passphrase_to_ours(age_bin: str, tmp_path: Path, armor: bool) -> None:
    plaintext = payload(CHUNK + 1)
    (tmp_path / "in").write_bytes(plaintext)
    encrypted = tmp_path / "in.age"

    run = run_on_terminal(
        [age_bin, "-p", *(["-a"] if armor else []), "-o", encrypted, tmp_path / "in"],
        [("Enter passphrase", PASSPHRASE), ("Confirm passphrase", PASSPHRASE)],
    )

    assert run.returncode == 0, run
    ciphertext = encrypted.read_bytes()
    assert b"-> scrypt " in (unarmor(ciphertext) if armor else ciphertext)
    assert ours_decrypt(ciphertext, [age.ScryptIdentity(PASSPHRASE)]) == plaintext


@pytest.mark.parametrize("size", [0, 1, CHUNK, 3 * CHUNK + 5])
def test_ours_passphrase_to_age(age_bin: str, tmp_path: Path, size: int) -> None:
    plaintext = payload(size, size)
    encrypted = tmp_path / "in.age"
    encrypted.write_bytes(
        ours_encrypt(plaintext, [age.ScryptRecipient(PASSPHRASE, work_factor=10)])
    )

    run = run_on_terminal([age_bin, "-d", encrypted], [("Enter passphrase", PASSPHRASE)])

    assert run.returncode == 0, run
    assert run.stdout == plaintext


def test_age_refuses_wrong_passphrase_for_our_file(age_bin: str, tmp_path: Path) -> None:
    encrypted = tmp_path / "in.age"
    encrypted.write_bytes(
        ours_encrypt(b"secret", [age.ScryptRecipient(PASSPHRASE, work_factor=10)])
    )

    run = run_on_terminal(
        [age_bin, "-d", "-o", tmp_path / "out", encrypted], [("Enter passphrase", "wrong")]
    )

    assert run.returncode != 0
    assert not (tmp_path / "out").exists() or (tmp_path / "out").read_bytes() == b""


def test_evault_passphrase_to_age(age_bin: str, tmp_path: Path) -> None:
    plaintext = payload(CHUNK + 1)
    (tmp_path / "in").write_bytes(plaintext)
    encrypted = tmp_path / "in.age"

    run = run_on_terminal(
        [EVAULT, "encrypt", "-p", "-o", encrypted, tmp_path / "in"],
        [("Enter passphrase", PASSPHRASE), ("Confirm passphrase", PASSPHRASE)],
    )
    assert run.returncode == 0, run

    out = tmp_path / "out"
    run = run_on_terminal([age_bin, "-d", "-o", out, encrypted], [("Enter passphrase", PASSPHRASE)])
    assert run.returncode == 0, run
    assert out.read_bytes() == plaintext


def test_age_passphrase_to_evault(age_bin: str, tmp_path: Path) -> None:
    plaintext = payload(CHUNK + 1)
    (tmp_path / "in").write_bytes(plaintext)
    encrypted = tmp_path / "in.age"
    run = run_on_terminal(
        [age_bin, "-p", "-o", encrypted, tmp_path / "in"],
        [("Enter passphrase", PASSPHRASE), ("Confirm passphrase", PASSPHRASE)],
    )
    assert run.returncode == 0, run

    out = tmp_path / "out"
    run = run_on_terminal(
        [EVAULT, "decrypt", "-o", out, encrypted], [("Enter passphrase", PASSPHRASE)]
    )

    assert run.returncode == 0, run
    assert out.read_bytes() == plaintext
