"""vault.keystore: two equal slots, one derivation per attempt, atomic 0600 writes."""

from __future__ import annotations

import errno
import itertools
import os
import stat
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from argon2.exceptions import HashingError
from argon2.low_level import hash_secret_raw
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from nacl.bindings import (
    crypto_aead_xchacha20poly1305_ietf_decrypt,
    crypto_aead_xchacha20poly1305_ietf_encrypt,
)

from vault import keystore
from vault.errors import KeystoreCorruptError, KeystoreError, WrongPassphraseError
from vault.keystore import (
    FILE_SIZE,
    MAX_SECRET_SIZE,
    Argon2Params,
    UnlockedSlot,
    change_passphrase,
    create_keystore,
    read_params,
    remove_duress,
    set_duress,
    unlock,
)

FAST = Argon2Params.TESTING
HEADER_SIZE = 37
SLOT_SIZE = (FILE_SIZE - HEADER_SIZE) // 2
REAL = "correct horse battery staple ünïcödé"
DURESS = "tell them everything 🐎"
REAL_SECRET = b"real identity " + bytes(range(256))
DURESS_SECRET = b"duress identity"

passphrases = st.text(alphabet=st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)
secrets_ = st.binary(max_size=MAX_SECRET_SIZE)
file_settings = settings(
    deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow]
)


def slot_bytes(data: bytes, index: int) -> bytes:
    start = HEADER_SIZE + index * SLOT_SIZE
    return data[start : start + SLOT_SIZE]


def new_path(factory: pytest.TempPathFactory) -> Path:
    return factory.mktemp("ks") / "keystore"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keystore"


@pytest.fixture
def two_slots(path: Path) -> Path:
    create_keystore(path, REAL, REAL_SECRET, params=FAST, duress=(DURESS, DURESS_SECRET))
    return path


@pytest.fixture
def one_slot(path: Path) -> Path:
    create_keystore(path, REAL, REAL_SECRET, params=FAST)
    return path


class Counter:
    """Counts the calls to a function while still calling it."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.function(*args, **kwargs)


@pytest.fixture
def kdf_calls(monkeypatch: pytest.MonkeyPatch) -> Counter:
    counter = Counter(hash_secret_raw)
    monkeypatch.setattr(keystore, "hash_secret_raw", counter)
    return counter


@pytest.fixture
def no_kdf(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> bytes:
        pytest.fail("argon2 ran although the input should have been refused first")

    monkeypatch.setattr(keystore, "hash_secret_raw", refuse)


def assert_discreet(exc: BaseException, *words: str | bytes) -> None:
    """Neither the message, the hint nor the repr of an error shows a passphrase or secret."""
    texts = [str(exc), repr(exc), str(getattr(exc, "hint", "") or "")]
    for word in words:
        shown = word if isinstance(word, str) else word.decode("latin-1")
        for text in texts:
            assert shown not in text


# Round trips


def test_layout(one_slot: Path) -> None:
    data = one_slot.read_bytes()
    assert FILE_SIZE == 37 + 2 * (24 + 2 + MAX_SECRET_SIZE + 16) == 2169
    assert len(data) == FILE_SIZE
    assert data[:8] == b"EVAULTKS"
    assert data[8] == 1
    assert struct.unpack_from(">III", data, 9) == (1, 8, 1)


@file_settings
@given(phrase=passphrases, secret=secrets_)
@example(phrase="пароль 密码 🔑", secret=b"")
@example(phrase="x", secret=bytes(MAX_SECRET_SIZE))
def test_round_trip(tmp_path_factory: pytest.TempPathFactory, phrase: str, secret: bytes) -> None:
    path = new_path(tmp_path_factory)
    create_keystore(path, phrase, secret, params=FAST)
    opened = unlock(path, phrase)
    assert opened.secret == secret
    assert opened.slot in (0, 1)
    assert path.stat().st_size == FILE_SIZE
    assert read_params(path) == FAST


@file_settings
@given(first=passphrases, second=passphrases, real=secrets_, duress=secrets_)
def test_round_trip_both_slots(
    tmp_path_factory: pytest.TempPathFactory, first: str, second: str, real: bytes, duress: bytes
) -> None:
    assume(unicodedata.normalize("NFC", first) != unicodedata.normalize("NFC", second))
    path = new_path(tmp_path_factory)
    create_keystore(path, first, real, params=FAST, duress=(second, duress))
    opened_real = unlock(path, first)
    opened_duress = unlock(path, second)
    assert opened_real.secret == real
    assert opened_duress.secret == duress
    assert {opened_real.slot, opened_duress.slot} == {0, 1}
    assert path.stat().st_size == FILE_SIZE


def test_passphrases_are_nfc_normalised(path: Path) -> None:
    composed = "caf\u00e9 na\u00efve"
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed
    create_keystore(path, composed, b"s", params=FAST)
    assert unlock(path, decomposed).secret == b"s"


def test_secret_of_the_largest_size_and_empty(tmp_path: Path) -> None:
    for name, secret in (("big", bytes([7]) * MAX_SECRET_SIZE), ("empty", b"")):
        create_keystore(tmp_path / name, REAL, secret, params=FAST)
        assert unlock(tmp_path / name, REAL).secret == secret


def test_read_params_gives_what_was_written(path: Path) -> None:
    params = Argon2Params(time_cost=2, memory_kib=64, parallelism=2)
    create_keystore(path, REAL, b"s", params=params)
    assert read_params(path) == params
    assert unlock(path, REAL).secret == b"s"


@pytest.mark.slow
def test_default_parameters(path: Path) -> None:
    create_keystore(path, REAL, REAL_SECRET)
    assert read_params(path) == Argon2Params.DEFAULT == Argon2Params()
    assert Argon2Params.DEFAULT.memory_kib == 256 * 1024
    assert Argon2Params.DEFAULT.time_cost == 3
    assert unlock(path, REAL).secret == REAL_SECRET
    with pytest.raises(WrongPassphraseError):
        unlock(path, DURESS)


# Slots: sizes, randomness, placement


def test_size_is_the_same_with_and_without_duress(tmp_path: Path) -> None:
    create_keystore(tmp_path / "one", REAL, REAL_SECRET, params=FAST)
    create_keystore(
        tmp_path / "two", REAL, REAL_SECRET, params=FAST, duress=(DURESS, DURESS_SECRET)
    )
    one, two = (tmp_path / "one").read_bytes(), (tmp_path / "two").read_bytes()
    assert len(one) == len(two) == FILE_SIZE
    # Same header fields apart from the salt.
    assert one[:21] == two[:21]


def test_an_unused_slot_looks_random(tmp_path: Path) -> None:
    unused = []
    for name in ("a", "b"):
        path = tmp_path / name
        create_keystore(path, REAL, REAL_SECRET, params=FAST)
        used = unlock(path, REAL).slot
        data = path.read_bytes()
        unused.append(slot_bytes(data, 1 - used))
        # Random bytes do not compress; neither does a sealed slot.
        for index in (0, 1):
            assert len(slot_bytes(data, index)) == SLOT_SIZE
            assert len(zlib.compress(slot_bytes(data, index), 9)) >= SLOT_SIZE
    assert unused[0] != unused[1]
    assert len(set(unused[0])) > 200  # about 252 of 256 byte values in 1066 random bytes


def test_sealed_slots_differ_for_identical_input(tmp_path: Path) -> None:
    files = []
    for name in ("a", "b"):
        create_keystore(tmp_path / name, REAL, REAL_SECRET, params=FAST)
        files.append((tmp_path / name).read_bytes())
    assert files[0][21:37] != files[1][21:37]  # salt
    assert slot_bytes(files[0], 0) != slot_bytes(files[1], 0)
    assert slot_bytes(files[0], 1) != slot_bytes(files[1], 1)


def test_the_real_secret_goes_to_a_random_slot(tmp_path: Path) -> None:
    # A fixed slot would tell a coercer holding the duress passphrase that it is one.
    seen = set()
    for number in range(40):
        path = tmp_path / str(number)
        create_keystore(path, REAL, b"s", params=FAST)
        seen.add(unlock(path, REAL).slot)
    assert seen == {0, 1}  # fails with probability 2**-39


def test_one_derivation_and_both_slots_tried_whatever_opens(
    two_slots: Path, kdf_calls: Counter, monkeypatch: pytest.MonkeyPatch
) -> None:
    decrypt = Counter(crypto_aead_xchacha20poly1305_ietf_decrypt)
    monkeypatch.setattr(keystore, "crypto_aead_xchacha20poly1305_ietf_decrypt", decrypt)
    outcomes: list[int | None] = []
    for passphrase in (REAL, DURESS, "wrong"):
        kdf_calls.calls.clear()
        decrypt.calls.clear()
        try:
            outcomes.append(unlock(two_slots, passphrase).slot)
        except WrongPassphraseError:
            outcomes.append(None)
        assert len(kdf_calls.calls) == 1
        assert len(decrypt.calls) == 2
    assert set(outcomes[:2]) == {0, 1}
    assert outcomes[2] is None


# Changing passphrases and the duress slot


@pytest.mark.parametrize(
    ("old", "other", "secret", "other_secret"),
    [
        (REAL, DURESS, REAL_SECRET, DURESS_SECRET),
        (DURESS, REAL, DURESS_SECRET, REAL_SECRET),
    ],
)
def test_change_passphrase_of_either_slot_alone(
    two_slots: Path, old: str, other: str, secret: bytes, other_secret: bytes, kdf_calls: Counter
) -> None:
    before = two_slots.read_bytes()
    slot = unlock(two_slots, old).slot
    kdf_calls.calls.clear()
    change_passphrase(two_slots, old, "a brand new passphrase")
    # The other slot's passphrase was never derived: only old and new.
    assert len(kdf_calls.calls) == 2
    after = two_slots.read_bytes()
    assert after[:HEADER_SIZE] == before[:HEADER_SIZE]  # salt and parameters kept
    assert slot_bytes(after, 1 - slot) == slot_bytes(before, 1 - slot)
    assert slot_bytes(after, slot) != slot_bytes(before, slot)
    opened = unlock(two_slots, "a brand new passphrase")
    assert (opened.slot, opened.secret) == (slot, secret)
    assert unlock(two_slots, other).secret == other_secret
    with pytest.raises(WrongPassphraseError):
        unlock(two_slots, old)


def test_change_passphrase_keeps_an_unused_slot(one_slot: Path) -> None:
    before = one_slot.read_bytes()
    slot = unlock(one_slot, REAL).slot
    change_passphrase(one_slot, REAL, "new")
    assert slot_bytes(one_slot.read_bytes(), 1 - slot) == slot_bytes(before, 1 - slot)
    assert unlock(one_slot, "new").secret == REAL_SECRET


def test_change_passphrase_refusals(two_slots: Path) -> None:
    before = two_slots.read_bytes()
    with pytest.raises(WrongPassphraseError) as wrong:
        change_passphrase(two_slots, "not it", "new")
    assert_discreet(wrong.value, "not it", "new")
    with pytest.raises(KeystoreError, match="same as the old one"):
        change_passphrase(two_slots, REAL, unicodedata.normalize("NFD", REAL))
    with pytest.raises(KeystoreError, match="already opens the keystore's other slot") as taken:
        change_passphrase(two_slots, REAL, DURESS)
    assert_discreet(taken.value, REAL, DURESS)
    with pytest.raises(KeystoreError, match="empty new passphrase"):
        change_passphrase(two_slots, REAL, "")
    assert two_slots.read_bytes() == before


def test_set_duress_on_a_one_slot_keystore(one_slot: Path, kdf_calls: Counter) -> None:
    before = one_slot.read_bytes()
    real_slot = unlock(one_slot, REAL).slot
    kdf_calls.calls.clear()
    set_duress(one_slot, REAL, DURESS, DURESS_SECRET)
    assert len(kdf_calls.calls) == 2
    after = one_slot.read_bytes()
    assert len(after) == FILE_SIZE
    assert after[:HEADER_SIZE] == before[:HEADER_SIZE]
    assert slot_bytes(after, real_slot) == slot_bytes(before, real_slot)
    assert unlock(one_slot, REAL).secret == REAL_SECRET
    opened = unlock(one_slot, DURESS)
    assert (opened.slot, opened.secret) == (1 - real_slot, DURESS_SECRET)


def test_set_duress_replaces_the_previous_duress_slot(two_slots: Path) -> None:
    set_duress(two_slots, REAL, "another duress", b"other")
    assert unlock(two_slots, "another duress").secret == b"other"
    assert unlock(two_slots, REAL).secret == REAL_SECRET
    with pytest.raises(WrongPassphraseError):
        unlock(two_slots, DURESS)


def test_set_duress_needs_the_real_passphrase(one_slot: Path) -> None:
    before = one_slot.read_bytes()
    with pytest.raises(WrongPassphraseError) as caught:
        set_duress(one_slot, "not the real one", DURESS, DURESS_SECRET)
    assert_discreet(caught.value, "not the real one", DURESS, DURESS_SECRET)
    assert one_slot.read_bytes() == before


@pytest.mark.parametrize("duress", [REAL, unicodedata.normalize("NFD", REAL)])
def test_set_duress_refuses_the_real_passphrase(one_slot: Path, duress: str, no_kdf: None) -> None:
    before = one_slot.read_bytes()
    with pytest.raises(KeystoreError, match="duress passphrase is the same") as caught:
        set_duress(one_slot, REAL, duress, DURESS_SECRET)
    assert_discreet(caught.value, REAL, DURESS_SECRET)
    assert one_slot.read_bytes() == before


def test_set_duress_given_the_duress_passphrase_acts_as_on_a_one_slot_keystore(
    two_slots: Path,
) -> None:
    # Refusing would reveal the other slot; the documented price is losing it.
    set_duress(two_slots, DURESS, "third", b"third")
    assert unlock(two_slots, DURESS).secret == DURESS_SECRET
    assert unlock(two_slots, "third").secret == b"third"
    with pytest.raises(WrongPassphraseError):
        unlock(two_slots, REAL)


def test_remove_duress(two_slots: Path) -> None:
    before = two_slots.read_bytes()
    real_slot = unlock(two_slots, REAL).slot
    remove_duress(two_slots, REAL)
    after = two_slots.read_bytes()
    assert len(after) == FILE_SIZE
    assert slot_bytes(after, real_slot) == slot_bytes(before, real_slot)
    assert slot_bytes(after, 1 - real_slot) != slot_bytes(before, 1 - real_slot)
    assert unlock(two_slots, REAL).secret == REAL_SECRET
    with pytest.raises(WrongPassphraseError):
        unlock(two_slots, DURESS)


@pytest.mark.parametrize("duress", [REAL, unicodedata.normalize("NFD", REAL)])
def test_create_refuses_equal_passphrases(path: Path, duress: str, no_kdf: None) -> None:
    with pytest.raises(KeystoreError, match="duress passphrase is the same"):
        create_keystore(path, REAL, REAL_SECRET, params=FAST, duress=(duress, DURESS_SECRET))
    assert not path.exists()


# Refused input


@pytest.mark.parametrize(
    "call",
    [
        lambda p: create_keystore(p.parent / "new", "", b"s", params=FAST),
        lambda p: create_keystore(p.parent / "new", "x", b"s", params=FAST, duress=("", b"d")),
        lambda p: unlock(p, ""),
        lambda p: change_passphrase(p, "", "new"),
        lambda p: set_duress(p, REAL, "", b"d"),
        lambda p: set_duress(p, "", DURESS, b"d"),
        lambda p: remove_duress(p, ""),
    ],
)
def test_empty_passphrases_are_refused(
    one_slot: Path, call: Callable[[Path], None], no_kdf: None
) -> None:
    before = one_slot.read_bytes()
    with pytest.raises(KeystoreError, match="empty"):
        call(one_slot)
    assert one_slot.read_bytes() == before
    assert os.listdir(one_slot.parent) == [one_slot.name]


def test_unpaired_surrogates_are_refused_without_leaking(one_slot: Path) -> None:
    with pytest.raises(KeystoreError, match="not valid text") as caught:
        unlock(one_slot, "secret\ud800word")
    assert caught.value.__context__ is None
    assert caught.value.__cause__ is None


def test_secrets_larger_than_a_slot_are_refused(path: Path, one_slot: Path) -> None:
    too_big = bytes(MAX_SECRET_SIZE + 1)
    with pytest.raises(KeystoreError, match="secret too large"):
        create_keystore(path.parent / "new", REAL, too_big, params=FAST)
    with pytest.raises(KeystoreError, match="secret too large"):
        create_keystore(path.parent / "new", REAL, b"", params=FAST, duress=(DURESS, too_big))
    with pytest.raises(KeystoreError, match="secret too large"):
        set_duress(one_slot, REAL, DURESS, too_big)
    assert not (path.parent / "new").exists()


def test_create_never_overwrites(one_slot: Path, no_kdf: None) -> None:
    before = one_slot.read_bytes()
    with pytest.raises(KeystoreError, match="already exists"):
        create_keystore(one_slot, DURESS, b"other", params=FAST)
    assert one_slot.read_bytes() == before


def test_symbolic_links_are_not_replaced(one_slot: Path) -> None:
    link = one_slot.parent / "link"
    link.symlink_to(one_slot)
    assert unlock(link, REAL).secret == REAL_SECRET
    with pytest.raises(KeystoreError, match="symbolic link"):
        change_passphrase(link, REAL, "new")
    assert link.is_symlink()
    assert unlock(one_slot, REAL).secret == REAL_SECRET


@pytest.mark.parametrize(
    "values",
    [
        {"time_cost": 0},
        {"time_cost": keystore.MAX_TIME_COST + 1},
        {"memory_kib": 7, "parallelism": 1},
        {"memory_kib": 15, "parallelism": 2},
        {"memory_kib": keystore.MAX_MEMORY_KIB + 1},
        {"parallelism": 0},
        {"parallelism": keystore.MAX_PARALLELISM + 1},
        {"time_cost": 3, "memory_kib": keystore.MAX_MEMORY_KIB},
        {"time_cost": True},
    ],
)
def test_argon2_params_bounds(values: dict[str, int]) -> None:
    with pytest.raises(KeystoreError, match="unusable argon2 parameters"):
        Argon2Params(**values)


def test_argon2_params_accepts_the_bounds() -> None:
    Argon2Params(time_cost=2, memory_kib=keystore.MAX_MEMORY_KIB, parallelism=16)
    Argon2Params(time_cost=keystore.MAX_TIME_COST, memory_kib=8, parallelism=1)


def test_argon2_failure_is_a_keystore_error(
    one_slot: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(**kwargs: Any) -> bytes:
        raise HashingError("Memory allocation error")

    monkeypatch.setattr(keystore, "hash_secret_raw", fail)
    with pytest.raises(KeystoreError, match="argon2 failed") as caught:
        unlock(one_slot, REAL)
    assert caught.value.hint is not None
    assert "MiB" in caught.value.hint


# Damaged, hostile and foreign files


def test_wrong_passphrase(two_slots: Path) -> None:
    with pytest.raises(WrongPassphraseError) as caught:
        unlock(two_slots, "guess")
    message = str(caught.value)
    assert "wrong passphrase, or the file was altered" in message
    assert str(two_slots) in message
    assert caught.value.hint is not None
    assert "backup" in caught.value.hint
    assert_discreet(caught.value, "guess", REAL, DURESS, REAL_SECRET, DURESS_SECRET)


def test_missing_file(path: Path) -> None:
    with pytest.raises(KeystoreError, match="no keystore at") as caught:
        unlock(path, REAL)
    assert type(caught.value) is KeystoreError


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(KeystoreError, match="cannot read keystore"):
        unlock(tmp_path, REAL)


@pytest.mark.parametrize("length", [0, 1, 4, 8, 9, 20, HEADER_SIZE, HEADER_SIZE + 1, FILE_SIZE - 1])
def test_truncated_files(one_slot: Path, length: int, no_kdf: None) -> None:
    one_slot.write_bytes(one_slot.read_bytes()[:length])
    with pytest.raises(KeystoreCorruptError, match=r"truncated|empty") as caught:
        unlock(one_slot, REAL)
    assert caught.value.hint is not None
    with pytest.raises(KeystoreCorruptError):
        read_params(one_slot)


def test_longer_file(one_slot: Path, no_kdf: None) -> None:
    one_slot.write_bytes(one_slot.read_bytes() + b"\0")
    with pytest.raises(KeystoreCorruptError, match="longer than a keystore"):
        unlock(one_slot, REAL)


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(FILE_SIZE),
        b"\x89PNG\r\n\x1a\n" + bytes(FILE_SIZE),
        b"AGE-SECRET-KEY-1QQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ\n",
        b"X",
    ],
)
def test_not_a_keystore(path: Path, content: bytes, no_kdf: None) -> None:
    path.write_bytes(content)
    with pytest.raises(KeystoreCorruptError, match="not an evault keystore") as caught:
        unlock(path, REAL)
    assert caught.value.hint is not None


def test_magic_prefix_is_truncated(path: Path, no_kdf: None) -> None:
    path.write_bytes(b"EVAU")
    with pytest.raises(KeystoreCorruptError, match="truncated"):
        unlock(path, REAL)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_unknown_version(one_slot: Path, version: int, no_kdf: None) -> None:
    data = bytearray(one_slot.read_bytes())
    data[8] = version
    one_slot.write_bytes(bytes(data[:100]))  # another version may have another size
    with pytest.raises(KeystoreError, match=f"format version {version}") as caught:
        unlock(one_slot, REAL)
    assert type(caught.value) is KeystoreError
    assert caught.value.hint is not None
    assert "upgrade evault" in caught.value.hint


@pytest.mark.parametrize(
    ("time_cost", "memory_kib", "parallelism"),
    [
        (3, 2**32 - 1, 2),
        (3, keystore.MAX_MEMORY_KIB + 1, 2),
        (2**32 - 1, 8, 1),
        (keystore.MAX_TIME_COST + 1, 8, 1),
        (0, 8, 1),
        (1, 8, 0),
        (1, 8 * 2**20, 2**32 - 1),
        (1, 8, 2),
        (3, keystore.MAX_MEMORY_KIB, 1),
    ],
)
def test_hostile_parameters_are_refused_before_argon2(
    one_slot: Path, time_cost: int, memory_kib: int, parallelism: int, no_kdf: None
) -> None:
    data = bytearray(one_slot.read_bytes())
    struct.pack_into(">III", data, 9, time_cost, memory_kib, parallelism)
    one_slot.write_bytes(bytes(data))
    with pytest.raises(KeystoreCorruptError, match="refusing its argon2 parameters"):
        unlock(one_slot, REAL)
    with pytest.raises(KeystoreCorruptError):
        read_params(one_slot)


def test_swapped_slots_do_not_open(two_slots: Path) -> None:
    data = two_slots.read_bytes()
    swapped = data[:HEADER_SIZE] + slot_bytes(data, 1) + slot_bytes(data, 0)
    two_slots.write_bytes(swapped)
    for passphrase in (REAL, DURESS):
        with pytest.raises(WrongPassphraseError):
            unlock(two_slots, passphrase)


def flips(data: bytes, positions: Iterable[int], *, every_bit: bool) -> Iterator[tuple[int, bytes]]:
    """``data`` with one bit flipped: every bit of each position, or one (rotating) per byte."""
    for position in positions:
        for bit in range(8) if every_bit else [position % 8]:
            changed = bytearray(data)
            changed[position] ^= 1 << bit
            yield position, bytes(changed)


def test_every_flipped_bit_outside_the_parameters_is_caught(two_slots: Path) -> None:
    data = two_slots.read_bytes()
    real_slot = unlock(two_slots, REAL).slot
    owner = {real_slot: REAL, 1 - real_slot: DURESS}
    expected = {REAL: REAL_SECRET, DURESS: DURESS_SECRET}
    header = flips(data, [*range(0, 9), *range(21, HEADER_SIZE)], every_bit=True)
    slots = flips(data, range(HEADER_SIZE, FILE_SIZE), every_bit=False)
    for position, changed in itertools.chain(header, slots):
        two_slots.write_bytes(changed)
        for passphrase in (REAL, DURESS):
            where = (position, passphrase == REAL)
            if position < 8:
                with pytest.raises(KeystoreCorruptError, match="not an evault keystore"):
                    unlock(two_slots, passphrase)
            elif position == 8:
                with pytest.raises(KeystoreError, match="format version"):
                    unlock(two_slots, passphrase)
            elif position < HEADER_SIZE:
                with pytest.raises(WrongPassphraseError):
                    unlock(two_slots, passphrase)
            else:
                slot = (position - HEADER_SIZE) // SLOT_SIZE
                if owner[slot] == passphrase:
                    with pytest.raises(WrongPassphraseError):
                        unlock(two_slots, passphrase)
                else:
                    # The other slot still opens, with its own secret intact.
                    assert unlock(two_slots, passphrase).secret == expected[passphrase], where


def test_every_flipped_bit_in_the_parameters_is_caught(
    two_slots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A flipped bit can ask for up to 2 GiB; a stand-in KDF records what Argon2
    # would have been asked to do, and must only be asked within the bounds.
    asked: list[tuple[int, int, int]] = []

    def recording(**kwargs: Any) -> bytes:
        params = (kwargs["time_cost"], kwargs["memory_cost"], kwargs["parallelism"])
        asked.append(params)
        assert keystore._params_problem(*params) is None
        if params != (FAST.time_cost, FAST.memory_kib, FAST.parallelism):
            return b"\0" * 32  # any key but the right one
        return hash_secret_raw(**kwargs)

    monkeypatch.setattr(keystore, "hash_secret_raw", recording)
    data = two_slots.read_bytes()
    for _, changed in flips(data, range(9, 21), every_bit=True):
        two_slots.write_bytes(changed)
        for passphrase in (REAL, DURESS):
            with pytest.raises((WrongPassphraseError, KeystoreCorruptError)):
                unlock(two_slots, passphrase)
    assert asked  # some flips stay in bounds and are refused by the tag


def test_both_slots_opening_is_corrupt(path: Path) -> None:
    # Not something this module writes: a file crafted with the same key twice.
    salt = bytes(16)
    header = struct.pack(">8sBIII16s", b"EVAULTKS", 1, 1, 8, 1, salt)
    key = keystore._derive_key(REAL.encode(), salt, FAST)
    slots = [keystore._seal(key, header, index, b"s") for index in (0, 1)]
    path.write_bytes(header + b"".join(slots))
    with pytest.raises(KeystoreCorruptError, match="both slots open"):
        unlock(path, REAL)


def test_malformed_padding_is_corrupt(path: Path) -> None:
    salt = bytes(16)
    header = struct.pack(">8sBIII16s", b"EVAULTKS", 1, 1, 8, 1, salt)
    key = keystore._derive_key(REAL.encode(), salt, FAST)
    nonce = bytes(24)
    bad = struct.pack(">H", 3) + b"abc" + b"x" + bytes(MAX_SECRET_SIZE - 4)
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(bad, header + b"\0", nonce, key)
    path.write_bytes(header + nonce + sealed + os.urandom(SLOT_SIZE))
    with pytest.raises(KeystoreCorruptError, match="malformed"):
        unlock(path, REAL)


def test_secret_is_not_in_the_repr() -> None:
    opened = UnlockedSlot(slot=0, secret=b"TOPSECRET")
    assert "TOPSECRET" not in repr(opened)
    assert "slot=0" in repr(opened)


# Files: mode and crash safety


def test_created_and_rewritten_with_mode_0600(path: Path) -> None:
    umask = os.umask(0)
    try:
        create_keystore(path, REAL, REAL_SECRET, params=FAST)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        changes: list[Callable[[], None]] = [
            lambda: change_passphrase(path, REAL, "second"),
            lambda: set_duress(path, "second", DURESS, DURESS_SECRET),
            lambda: remove_duress(path, "second"),
        ]
        for change in changes:
            path.chmod(0o644)
            change()
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        os.umask(umask)
    assert os.listdir(path.parent) == [path.name]


def _failing(exc: BaseException) -> Callable[..., Any]:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail


REWRITES: list[Callable[[Path], None]] = [
    lambda p: change_passphrase(p, REAL, "new"),
    lambda p: set_duress(p, REAL, "new duress", b"new"),
    lambda p: remove_duress(p, REAL),
]


@pytest.mark.parametrize("rewrite", REWRITES)
@pytest.mark.parametrize("broken", ["replace", "fsync", "fchmod"])
def test_a_failed_rewrite_keeps_the_old_file(
    two_slots: Path, monkeypatch: pytest.MonkeyPatch, broken: str, rewrite: Callable[[Path], None]
) -> None:
    before = two_slots.read_bytes()
    monkeypatch.setattr(os, broken, _failing(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(KeystoreError, match="cannot write keystore"):
        rewrite(two_slots)
    monkeypatch.undo()
    assert two_slots.read_bytes() == before
    assert unlock(two_slots, REAL).secret == REAL_SECRET
    assert unlock(two_slots, DURESS).secret == DURESS_SECRET
    assert os.listdir(two_slots.parent) == [two_slots.name]


def test_an_interrupted_rewrite_keeps_the_old_file(
    two_slots: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = two_slots.read_bytes()
    monkeypatch.setattr(os, "fsync", _failing(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        change_passphrase(two_slots, REAL, "new")
    monkeypatch.undo()
    assert two_slots.read_bytes() == before
    assert os.listdir(two_slots.parent) == [two_slots.name]


@pytest.mark.parametrize("broken", ["link", "fsync"])
def test_a_failed_create_leaves_nothing(
    path: Path, monkeypatch: pytest.MonkeyPatch, broken: str
) -> None:
    monkeypatch.setattr(os, broken, _failing(OSError(errno.EIO, "Input/output error")))
    with pytest.raises(KeystoreError, match="cannot write keystore"):
        create_keystore(path, REAL, REAL_SECRET, params=FAST)
    monkeypatch.undo()
    assert os.listdir(path.parent) == []


def test_create_without_hard_links(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FAT and exFAT (USB sticks) have no hard links.
    monkeypatch.setattr(os, "link", _failing(OSError(errno.EPERM, "Operation not permitted")))
    create_keystore(path, REAL, REAL_SECRET, params=FAST)
    monkeypatch.undo()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert unlock(path, REAL).secret == REAL_SECRET
    assert os.listdir(path.parent) == [path.name]
