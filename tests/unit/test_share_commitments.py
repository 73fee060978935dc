"""Share commitments (vault.shares.share_commitment): one per share, blind to case and spacing."""

from __future__ import annotations

import hashlib

import pytest

from vault.errors import ShareError
from vault.shares import (
    COMMITMENT_PREFIX,
    COMMITMENT_SIZE,
    WORDLIST,
    normalise_share,
    share_commitment,
    split_secret,
)

SECRET = bytes(range(32))


@pytest.fixture(scope="module")
def shares() -> list[str]:
    return split_secret(SECRET, 2, 3, iteration_exponent=0)


def test_the_commitment_is_sha256_of_the_prefix_and_the_words(shares: list[str]) -> None:
    assert COMMITMENT_PREFIX == b"evidence-vault share commitment v1\n"
    for share in shares:
        commitment = share_commitment(share)
        assert len(commitment) == COMMITMENT_SIZE
        assert commitment == hashlib.sha256(COMMITMENT_PREFIX + share.encode("ascii")).digest()
    assert len({share_commitment(share) for share in shares}) == len(shares)


def test_case_and_spacing_do_not_change_the_commitment(shares: list[str]) -> None:
    typed = "  " + "\t".join(word.upper() for word in shares[0].split()) + "\r\n"
    assert normalise_share(typed) == shares[0]
    assert share_commitment(typed) == share_commitment(shares[0])


def test_only_a_well_formed_share_has_a_commitment(shares: list[str]) -> None:
    words = shares[0].split()
    # Two neighbouring words swapped (two different ones: a share may repeat a word).
    i = next(i for i in range(5, len(words) - 1) if words[i] != words[i + 1])
    swapped = " ".join([*words[:i], words[i + 1], words[i], *words[i + 2 :]])
    kelvin = next(word for word in WORDLIST if word.startswith("k"))
    for bad in (swapped, " ".join(words[:-1]), "", "\N{KELVIN SIGN}" + kelvin[1:] + " x"):
        with pytest.raises(ShareError):
            share_commitment(bad)
