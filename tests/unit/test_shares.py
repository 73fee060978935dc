"""Release-key shares: round trips, and every way a person can get shares wrong."""

from __future__ import annotations

import dataclasses

import pytest
import shamir_mnemonic
from hypothesis import given, settings
from hypothesis import strategies as st

from vault.errors import ShareError, VaultError
from vault.shares import (
    MAX_SHARES,
    WORDLIST,
    ShareInfo,
    combine_shares,
    describe_share,
    split_secret,
)

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(100, 132))


def split(secret: bytes = SECRET, threshold: int = 3, count: int = 5) -> list[str]:
    return split_secret(secret, threshold, count, iteration_exponent=0)


def same_identifier_split(
    groups: list[tuple[int, int]],
    *,
    identifier: int = 4242,
    secret: bytes = SECRET,
    extendable: bool = True,
) -> list[str]:
    """Another split under a chosen identifier, as an extendable backup or a forger makes."""
    ems = shamir_mnemonic.EncryptedMasterSecret.from_master_secret(
        secret, b"", identifier, extendable, 0
    )
    made = shamir_mnemonic.split_ems(1, groups, ems)
    return [share.mnemonic() for group in made for share in group]


def replace_word(mnemonic: str, position: int, word: str) -> str:
    words = mnemonic.split()
    words[position] = word
    return " ".join(words)


@pytest.fixture(scope="module")
def three_of_five() -> list[str]:
    return split()


# Round trips


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_any_threshold_of_shares_recovers(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, MAX_SHARES), label="count")
    threshold = data.draw(st.integers(1, count), label="threshold")
    secret = data.draw(st.binary(min_size=32, max_size=32) | st.binary(min_size=16, max_size=16))
    shares = split_secret(secret, threshold, count, iteration_exponent=0)
    assert len(shares) == count
    assert len(set(shares)) == count

    chosen = data.draw(st.permutations(shares), label="order")
    assert combine_shares(chosen[:threshold]) == secret
    more = data.draw(st.integers(threshold, count), label="more")
    assert combine_shares(chosen[:more]) == secret
    if threshold >= 2:
        with pytest.raises(ShareError, match=f"too few shares: need {threshold}, got"):
            combine_shares(chosen[: threshold - 1])


def test_sixteen_bytes_make_twenty_words() -> None:
    shares = split(bytes(16), 2, 3)
    assert {len(share.split()) for share in shares} == {20}
    assert combine_shares(shares[1:]) == bytes(16)


def test_thirty_two_bytes_make_thirty_three_words(three_of_five: list[str]) -> None:
    assert {len(share.split()) for share in three_of_five} == {33}


def test_one_of_n_is_n_groups_and_each_share_recovers() -> None:
    shares = split(threshold=1, count=4)
    for number, share in enumerate(shares, 1):
        assert combine_shares([share]) == SECRET
        info = describe_share(share)
        assert (info.threshold, info.count, info.index) == (1, 4, number)
        assert not info.grouped
    assert combine_shares(shares) == SECRET


def test_one_of_one() -> None:
    (share,) = split(threshold=1, count=1)
    info = describe_share(share)
    assert (info.threshold, info.count, info.index) == (1, 1, 1)
    assert combine_shares([share]) == SECRET


def test_all_sixteen_shares_are_checked_and_recover() -> None:
    shares = split(threshold=16, count=16)
    assert combine_shares(shares) == SECRET


def test_default_split_uses_iteration_exponent_one() -> None:
    shares = split_secret(SECRET, 2, 2)
    assert describe_share(shares[0]).iteration_exponent == 1
    assert combine_shares(shares) == SECRET


def test_passphrase_round_trip_and_wrong_passphrase_gives_other_secret() -> None:
    shares = split_secret(SECRET, 2, 3, passphrase=b"correct horse", iteration_exponent=0)
    assert combine_shares(shares[:2], passphrase=b"correct horse") == SECRET
    # SLIP-0039 by design: no error, a different secret.
    wrong = combine_shares(shares[:2], passphrase=b"wrong")
    assert wrong != SECRET
    assert len(wrong) == 32


def test_not_extendable() -> None:
    shares = split_secret(SECRET, 2, 3, extendable=False, iteration_exponent=0)
    assert not describe_share(shares[0]).extendable
    assert combine_shares(shares[1:]) == SECRET


def test_describe_share(three_of_five: list[str]) -> None:
    infos = [describe_share(share) for share in three_of_five]
    assert len({info.identifier for info in infos}) == 1
    assert [info.index for info in infos] == [1, 2, 3, 4, 5]
    first = infos[0]
    assert first.threshold == 3
    assert first.count is None  # a k >= 2 share does not record n
    assert first.extendable
    assert first.iteration_exponent == 0
    assert first.secret_length == 32
    assert (first.group_index, first.group_threshold, first.group_count) == (0, 1, 1)
    assert not first.grouped
    assert 0 <= first.identifier < 2**15
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.threshold = 1  # type: ignore[misc]
    assert isinstance(first, ShareInfo)


def test_describe_share_rejects_a_typo(three_of_five: list[str]) -> None:
    word = "academic" if three_of_five[0].split()[10] != "academic" else "acid"
    with pytest.raises(ShareError, match=r"^the share has a typo or is damaged$"):
        describe_share(replace_word(three_of_five[0], 10, word))
    with pytest.raises(ShareError, match=r"^word 2 of the share is not in the SLIP-39 word list$"):
        describe_share(replace_word(three_of_five[0], 1, "bitcoin"))


def test_multi_group_set() -> None:
    groups = shamir_mnemonic.generate_mnemonics(2, [(2, 3), (2, 3), (1, 1)], SECRET, b"", True, 0)
    first, second, third = groups
    assert combine_shares([*first[:2], *third]) == SECRET
    # More complete groups than needed: each one is checked.
    assert combine_shares([*first, *second, *third]) == SECRET
    info = describe_share(first[0])
    assert info.grouped
    assert (info.group_threshold, info.group_count, info.threshold) == (2, 3, 2)
    with pytest.raises(ShareError, match="cannot be checked: group 2 has 1 of the 2") as caught:
        combine_shares([*first[:2], *third, second[0]])
    assert "share 4" in str(caught.value)
    with pytest.raises(ShareError, match="need 2 complete groups, got 1") as caught:
        combine_shares([*first[:2], second[0]])
    assert (
        caught.value.hint == "group 1: 2 of 2 shares; group 2: 1 of 2 shares; none from the other 1"
    )


# Normalisation


def test_case_and_whitespace_are_normalised(three_of_five: list[str]) -> None:
    typed = []
    for number, share in enumerate(three_of_five[:3]):
        words = share.split()
        if number == 0:
            typed.append("  " + "\t".join(word.upper() for word in words) + "\n")
        elif number == 1:
            typed.append("\n".join(word.capitalize() for word in words))
        else:
            typed.append("   ".join(words) + "\r\n")
    assert combine_shares(typed) == SECRET
    assert describe_share(typed[0]) == describe_share(three_of_five[0])


def test_duplicate_after_normalisation(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match=r"^share 3 is the same as share 1$"):
        combine_shares([three_of_five[0], three_of_five[1], three_of_five[0].upper()])


def test_lookalike_letters_are_not_accepted(three_of_five: list[str]) -> None:
    words = three_of_five[0].split()
    position = next(i for i, word in enumerate(words) if "a" in word)
    cyrillic = words[position].replace("a", "\N{CYRILLIC SMALL LETTER A}")
    with pytest.raises(ShareError, match=rf"^word {position + 1} of share 1 is not in the"):
        combine_shares([replace_word(three_of_five[0], position, cyrillic), *three_of_five[1:3]])


def test_kelvin_sign_is_not_a_k() -> None:
    # str.lower() maps the Kelvin sign to an ASCII "k".
    word = next(word for word in WORDLIST if word.startswith("k"))
    lookalike = "\N{KELVIN SIGN}" + word[1:]
    assert lookalike.lower() == word
    with pytest.raises(ShareError, match=r"^word 1 of the share is not in the SLIP-39 word list$"):
        describe_share(" ".join([lookalike] * 33))


# Mistakes in one share


def test_unknown_word_says_where_and_suggests(three_of_five: list[str]) -> None:
    share = three_of_five[1]
    original = share.split()[4]
    misspelt = original[:4] + "zz"
    with pytest.raises(ShareError) as caught:
        combine_shares([three_of_five[0], replace_word(share, 4, misspelt), three_of_five[2]])
    assert str(caught.value) == "word 5 of share 2 is not in the SLIP-39 word list"
    assert caught.value.hint is not None
    assert original in caught.value.hint


def test_suggestion_for_a_dropped_letter() -> None:
    with pytest.raises(ShareError) as caught:
        describe_share("academic acdemic" + " academic" * 31)
    assert caught.value.hint is not None
    assert "academic" in caught.value.hint


def test_no_suggestion_for_garbage() -> None:
    with pytest.raises(ShareError, match="word 1 of") as caught:
        describe_share("xq" + " academic" * 32)
    assert caught.value.hint is None


def test_wrong_list_word_is_a_typo(three_of_five: list[str]) -> None:
    share = three_of_five[1]
    words = share.split()
    other = next(word for word in WORDLIST if word != words[9])
    with pytest.raises(ShareError, match=r"^share 2 has a typo or is damaged$") as caught:
        combine_shares([three_of_five[0], replace_word(share, 9, other), three_of_five[2]])
    assert caught.value.hint is not None


def test_swapped_words_are_a_typo(three_of_five: list[str]) -> None:
    words = three_of_five[2].split()
    position = next(i for i in range(5, 30) if words[i] != words[i + 1])
    words[position], words[position + 1] = words[position + 1], words[position]
    with pytest.raises(ShareError, match=r"^share 3 has a typo or is damaged$"):
        combine_shares([*three_of_five[:2], " ".join(words)])


@pytest.mark.parametrize(
    ("keep", "message"),
    [
        (slice(0, 32), "share 1 has 32 words, not 33 or 20"),
        (slice(1, 33), "share 1 has 32 words, not 33 or 20"),
        (slice(0, 5), "share 1 has 5 words, not 33 or 20"),
        (slice(0, 20), "share 1 has a typo or is damaged"),
    ],
)
def test_truncated_share(three_of_five: list[str], keep: slice, message: str) -> None:
    truncated = " ".join(three_of_five[0].split()[keep])
    with pytest.raises(ShareError, match=rf"^{message}$"):
        combine_shares([truncated, *three_of_five[1:3]])


def test_missing_middle_word_and_extra_word(three_of_five: list[str]) -> None:
    words = three_of_five[0].split()
    with pytest.raises(ShareError, match=r"^share 1 has 32 words") as caught:
        combine_shares([" ".join(words[:10] + words[11:]), *three_of_five[1:3]])
    assert caught.value.hint is not None
    assert "missing" in caught.value.hint
    with pytest.raises(ShareError, match=r"^share 1 has 34 words"):
        combine_shares([" ".join([*words, words[0]]), *three_of_five[1:3]])


# Mistakes in the set


def test_no_shares() -> None:
    with pytest.raises(ShareError, match=r"^no shares given$"):
        combine_shares([])


def test_a_single_string_instead_of_a_list(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match="single string"):
        combine_shares(three_of_five[0])


@pytest.mark.parametrize("item", ["", "   \n\t"])
def test_empty_share(three_of_five: list[str], item: str) -> None:
    with pytest.raises(ShareError, match=r"^share 2 is empty$"):
        combine_shares([three_of_five[0], item, three_of_five[1]])


def test_not_a_list() -> None:
    with pytest.raises(ShareError, match=r"^expected a list of shares$"):
        combine_shares(None)  # type: ignore[arg-type]


def test_share_that_is_not_text(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match=r"^share 2 is not text$"):
        combine_shares([three_of_five[0], three_of_five[1].encode(), three_of_five[2]])  # type: ignore[list-item]


def test_duplicate_share(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match=r"^share 3 is the same as share 2$") as caught:
        combine_shares([three_of_five[0], three_of_five[1], three_of_five[1]])
    assert caught.value.hint == "leave out the repeated share"


def test_too_few(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match=r"^too few shares: need 3, got 2$"):
        combine_shares(three_of_five[3:])


def test_different_sets(three_of_five: list[str]) -> None:
    identifier = describe_share(three_of_five[0]).identifier
    other = same_identifier_split([(3, 5)], identifier=(identifier + 1) % 2**15)
    with pytest.raises(ShareError, match=r"^shares 1 and 3 are from different sets$") as caught:
        combine_shares([three_of_five[0], three_of_five[1], other[2]])
    assert caught.value.hint is not None


def test_same_identifier_other_split_does_not_combine() -> None:
    first = same_identifier_split([(2, 3)])
    second = same_identifier_split([(2, 3)])
    assert first != second
    assert combine_shares(first[:2]) == SECRET == combine_shares(second[1:])
    with pytest.raises(ShareError, match=r"^shares 1 and 2 do not combine"):
        combine_shares([first[0], second[1]])


def test_extra_share_from_another_split_is_reported() -> None:
    first = same_identifier_split([(2, 3)])
    second = same_identifier_split([(2, 3)])
    with pytest.raises(ShareError, match=r"^share 3 does not match the other shares$"):
        combine_shares([first[0], first[1], second[2]])


def test_forged_extra_share_in_one_of_n() -> None:
    # Threshold 1 has no digest: only the comparison with the other share catches this.
    honest = same_identifier_split([(1, 1)] * 3)
    forged = same_identifier_split([(1, 1)] * 3, secret=OTHER_SECRET)
    assert combine_shares([forged[1]]) == OTHER_SECRET
    with pytest.raises(ShareError, match=r"^share 2 does not match the other shares$"):
        combine_shares([honest[0], forged[1]])


def test_same_index_different_share() -> None:
    first = same_identifier_split([(2, 3)])
    second = same_identifier_split([(2, 3)])
    with pytest.raises(ShareError, match=r"^shares 1 and 2 both claim to be share 1 of the set"):
        combine_shares([first[0], second[0]])


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ({"groups": [(3, 3)]}, "different thresholds \\(2 and 3\\)"),
        ({"groups": [(2, 3)], "extendable": False}, "different extendable flags \\(yes and no\\)"),
        ({"groups": [(2, 3)], "secret": bytes(16)}, "different secret lengths \\(32 and 16\\)"),
        ({"groups": [(2, 3), (2, 3)]}, "different group counts \\(1 and 2\\)"),
    ],
)
def test_mixed_parameters(other: dict[str, object], message: str) -> None:
    first = same_identifier_split([(2, 3)])
    second = same_identifier_split(**other)  # type: ignore[arg-type]
    with pytest.raises(ShareError, match=rf"^shares 1 and 2 do not belong together: {message}$"):
        combine_shares([first[0], second[1]])


def test_too_many_shares(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match=r"^too many shares"):
        combine_shares(three_of_five * 52)


# Splitting


@pytest.mark.parametrize(
    ("secret", "threshold", "count", "options", "message"),
    [
        (b"", 2, 3, {}, "the secret is 0 bytes"),
        (bytes(15), 2, 3, {}, "the secret is 15 bytes"),
        (bytes(24), 2, 3, {}, "the secret is 24 bytes"),
        (bytes(64), 2, 3, {}, "the secret is 64 bytes"),
        ("x" * 32, 2, 3, {}, "the secret must be bytes"),
        (SECRET, 0, 3, {}, "the threshold must be between 1 and the number of shares \\(3\\)"),
        (SECRET, 4, 3, {}, "the threshold must be between 1"),
        (SECRET, 2, 17, {}, "the number of shares must be between 1 and 16"),
        (SECRET, 0, 0, {}, "the number of shares must be between 1 and 16"),
        (SECRET, True, 3, {}, "the threshold must be"),
        (SECRET, 2, 3.0, {}, "the number of shares must be"),
        (SECRET, 2, 3, {"iteration_exponent": 16}, "the iteration exponent"),
        (SECRET, 2, 3, {"iteration_exponent": -1}, "the iteration exponent"),
        (SECRET, 2, 3, {"passphrase": "text"}, "the passphrase must be bytes"),
        (SECRET, 2, 3, {"passphrase": "é".encode()}, "the passphrase must be printable ASCII"),
        (SECRET, 2, 3, {"passphrase": b"tab\there"}, "the passphrase must be printable ASCII"),
        (SECRET, 2, 3, {"extendable": 1}, "extendable must be true or false"),
    ],
)
def test_split_refuses(
    secret: bytes, threshold: int, count: int, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ShareError, match=rf"^{message}"):
        split_secret(secret, threshold, count, **options)  # type: ignore[arg-type]


def test_combine_refuses_a_non_ascii_passphrase(three_of_five: list[str]) -> None:
    with pytest.raises(ShareError, match="printable ASCII"):
        combine_shares(three_of_five[:3], passphrase="ü".encode())


def test_errors_are_vault_errors() -> None:
    assert issubclass(ShareError, VaultError)


# Hostile and damaged input: ShareError, or the right secret, never anything else


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=60), max_size=4))
def test_arbitrary_text_is_a_share_error(items: list[str]) -> None:
    with pytest.raises(ShareError):
        combine_shares(items)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from(WORDLIST), min_size=20, max_size=33), min_size=n, max_size=n
        )
    )
)
def test_random_words_are_a_share_error(shares: list[list[str]]) -> None:
    # A random 20- or 33-word list has a valid checksum with probability 2^-30.
    with pytest.raises(ShareError):
        combine_shares([" ".join(words) for words in shares])


ONE_OF_ONE = split(threshold=1, count=1)
TWO_OF_THREE = split(threshold=2, count=3)


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from([ONE_OF_ONE, TWO_OF_THREE[:2], TWO_OF_THREE]),
    st.data(),
)
def test_damaged_words_never_give_a_wrong_secret(shares: list[str], data: st.DataObject) -> None:
    """Up to three wrong words: RS1024 detects them all, with or without a digest."""
    damaged = [share.split() for share in shares]
    for _ in range(data.draw(st.integers(1, 3), label="errors")):
        which = data.draw(st.integers(0, len(damaged) - 1), label="share")
        position = data.draw(st.integers(0, len(damaged[which]) - 1), label="position")
        damaged[which][position] = data.draw(st.sampled_from(WORDLIST), label="word")
    try:
        result = combine_shares([" ".join(words) for words in damaged])
    except ShareError:
        return
    assert result == SECRET


def test_costly_shares_are_refused_before_any_derivation() -> None:
    import time

    mnemonics = split_secret(bytes(32), 2, 3, iteration_exponent=6)
    start = time.monotonic()
    with pytest.raises(ShareError, match="iteration exponent 6"):
        combine_shares(mnemonics[:2])
    assert time.monotonic() - start < 0.1
    assert combine_shares(mnemonics[:2], max_iteration_exponent=6) == bytes(32)
