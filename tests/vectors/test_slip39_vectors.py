"""The official SLIP-0039 test vectors, each its own case (see vectors/slip39/FORMAT.md).

A valid set must give exactly its master secret, and the BIP-32 master key derived from it;
an invalid set must raise ShareError, never another exception.
"""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from tests.conftest import VECTORS_DIR
from vault.errors import ShareError
from vault.shares import WORDLIST, combine_shares, describe_share

SLIP39 = VECTORS_DIR / "slip39"
PASSPHRASE = b"TREZOR"
VECTORS: list[tuple[str, list[str], str, str]] = [
    (description, mnemonics, secret, xprv)
    for description, mnemonics, secret, xprv in json.loads(
        (SLIP39 / "vectors.json").read_text(encoding="utf-8")
    )
]
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58check(payload: bytes) -> str:
    data = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, digit = divmod(number, 58)
        digits = _BASE58[digit] + digits
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + digits


def bip32_master_xprv(seed: bytes) -> str:
    """BIP-32 master extended private key of ``seed``, serialized for mainnet."""
    digest = hmac.new(b"Bitcoin seed", seed, hashlib.sha512).digest()
    key, chain_code = digest[:32], digest[32:]
    version, depth, fingerprint, child = bytes.fromhex("0488ADE4"), b"\0", bytes(4), bytes(4)
    return base58check(version + depth + fingerprint + child + chain_code + b"\0" + key)


def test_vector_count() -> None:
    assert len(VECTORS) == 45
    assert sum(1 for vector in VECTORS if vector[2]) == 15


@pytest.mark.parametrize(
    ("description", "mnemonics", "secret", "xprv"),
    VECTORS,
    ids=[vector[0].split(".", 1)[0] for vector in VECTORS],
)
def test_vector(description: str, mnemonics: list[str], secret: str, xprv: str) -> None:
    if secret:
        result = combine_shares(mnemonics, passphrase=PASSPHRASE)
        assert result.hex() == secret, description
        assert bip32_master_xprv(result) == xprv, description
    else:
        with pytest.raises(ShareError) as caught:
            combine_shares(mnemonics, passphrase=PASSPHRASE)
        # A message a person can act on, not the library's.
        message = str(caught.value)
        assert message
        assert message == message.lower()
        assert "mnemonic" not in message


@pytest.mark.parametrize(
    "mnemonics",
    [vector[1] for vector in VECTORS if vector[2]],
    ids=[vector[0].split(".", 1)[0] for vector in VECTORS if vector[2]],
)
def test_valid_shares_describe_one_set(mnemonics: list[str]) -> None:
    infos = [describe_share(mnemonic) for mnemonic in mnemonics]
    assert len({(info.identifier, info.iteration_exponent) for info in infos}) == 1
    assert {info.secret_length for info in infos} <= {16, 32}


def test_wordlist_matches_slip39() -> None:
    words = (SLIP39 / "wordlist.txt").read_text(encoding="utf-8").split("\n")
    if words[-1] == "":
        words.pop()
    assert tuple(words) == WORDLIST
    assert len(WORDLIST) == 1024
