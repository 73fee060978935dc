"""Release-key shares: SLIP-0039 Shamir mnemonics (DESIGN.md, "Dead-man switch").

The vault's 32-byte release secret is split k-of-n among its custodians (the server and the
trustees). Each share is a SLIP-0039 mnemonic of 33 words (20 for a 16-byte secret) that a
trustee can write on paper. The arithmetic, checksums and encryption are those of the
reference implementation, ``shamir-mnemonic``; this module checks input the way a person types
it, says what is wrong with it, and turns every library failure into a :class:`ShareError`.

Sets made by :func:`split_secret`:

- k >= 2: one SLIP-0039 group of k-of-n member shares;
- k = 1: SLIP-0039 forbids a 1-of-n group (n > 1), so the set is n groups of one share each,
  any one group recovering the secret. Each share then holds the whole (encrypted) secret.

:func:`combine_shares` accepts any valid SLIP-0039 set, including the multi-group sets of the
SLIP-0039 test vectors. More shares than needed are welcome: each extra share is checked against
the others, so a damaged, forged or foreign share is reported and never silently ignored.

What the checks can and cannot catch:

- a mistyped or swapped word: the RS1024 checksum of each share (always);
- shares of different sets, duplicates, too few shares: the share metadata;
- shares that pass their checksums but do not belong together (another split of the same
  extendable secret, or a forged share): the 32-bit digest, present when k >= 2;
- a wrong passphrase: nothing. SLIP-0039 decrypts to a different secret without error, by
  design. Callers that must be certain compare the result with a public value (for the
  release identity, its public key).

Messages and hints may contain words of a share (suggested corrections): show them to the
person who typed the share, and keep them out of logs.

A share's commitment (:func:`share_commitment`) is the SHA-256 of a fixed prefix and the share's
normalised words (:func:`normalise_share`). The reporter's client sends one per share when it
arms the switch, so that the server, which cannot open the trustees' shares, can tell a share
made at arming from a made-up one of the same set (docs/protocol.md, "Arming").
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

import shamir_mnemonic
from shamir_mnemonic.share import Share
from shamir_mnemonic.wordlist import WORDLIST as _LIBRARY_WORDLIST

from vault.errors import ShareError

__all__ = [
    "COMMITMENT_PREFIX",
    "COMMITMENT_SIZE",
    "DEFAULT_MAX_ITERATION_EXPONENT",
    "MAX_ITERATION_EXPONENT",
    "MAX_SHARES",
    "SECRET_LENGTHS",
    "WORDLIST",
    "ShareInfo",
    "combine_shares",
    "describe_share",
    "normalise_share",
    "share_commitment",
    "split_secret",
]

SECRET_LENGTHS = (16, 32)
"""Secret sizes in bytes that shares may hold; the release secret uses 32."""
MAX_SHARES = 16
"""Most shares in one set (SLIP-0039 stores a share's index in four bits)."""
MAX_ITERATION_EXPONENT = 15
DEFAULT_MAX_ITERATION_EXPONENT = 5
"""Highest cost :func:`combine_shares` accepts unless told otherwise: shares carry their own
PBKDF2 cost (10000 * 2^e rounds), and a hostile set at e = 15 would take minutes to try."""
"""Highest SLIP-0039 iteration exponent: PBKDF2 runs 10000 * 2^e iterations in total."""
WORDLIST: tuple[str, ...] = tuple(str(word) for word in _LIBRARY_WORDLIST)
"""The 1024 SLIP-0039 words in index order."""
COMMITMENT_PREFIX = b"evidence-vault share commitment v1\n"
"""What :func:`share_commitment` hashes before the words, so its hash means nothing else."""
COMMITMENT_SIZE = 32
"""Bytes of a share commitment (SHA-256)."""

_WORD_INDEX = {word: index for index, word in enumerate(WORDLIST)}
# Words per share for each secret size: 7 words of metadata and checksum, then the value.
_SECRET_LENGTH_BY_WORDS = {20: 16, 33: 32}
# A set holds at most 16 groups of 16 shares, each at a distinct position.
_MAX_INPUT_SHARES = MAX_SHARES * MAX_SHARES
_LENGTH_HINT = (
    "a share has 33 words (20 for a 16-byte secret); look for a missing, extra or split word"
)


@dataclass(frozen=True, kw_only=True, slots=True)
class ShareInfo:
    """What one share says about its set, readable without the other shares or the passphrase.

    ``threshold``, ``count`` and ``index`` describe the set as k-of-n custodians see it. For a
    multi-group set (not made by :func:`split_secret`, see ``grouped``) they describe the
    share's own group. The raw SLIP-0039 fields follow, indices counted from 0.
    """

    identifier: int
    """15-bit random number of the set; shares of one set also begin with the same two words."""
    extendable: bool
    """Set with the SLIP-0039 extendable flag: other splits of the same secret may exist."""
    iteration_exponent: int
    secret_length: int
    """Size in bytes of the secret the set holds."""
    threshold: int
    """Shares needed to recover the secret."""
    count: int | None
    """Shares in the set, or None when the share does not record it (k >= 2 sets do not)."""
    index: int
    """Number of this share in its set, from 1."""
    group_index: int
    group_threshold: int
    group_count: int
    member_index: int
    member_threshold: int

    @property
    def grouped(self) -> bool:
        """Whether the set uses SLIP-0039 groups beyond the two layouts the vault makes."""
        return not (self.group_count == 1 or _one_of_n(self.group_threshold, self.member_threshold))


@dataclass(frozen=True, slots=True)
class _Parsed:
    number: int
    mnemonic: str
    info: ShareInfo


def split_secret(
    secret: bytes,
    threshold: int,
    count: int,
    *,
    passphrase: bytes = b"",
    extendable: bool = True,
    iteration_exponent: int = 1,
) -> list[str]:
    """Split ``secret`` into ``count`` mnemonic shares, any ``threshold`` of which recover it.

    Args:
        secret: 16 or 32 bytes.
        threshold: shares needed, 1 to ``count``.
        count: shares made, 1 to 16.
        passphrase: printable ASCII; the same one is needed to combine.
        extendable: set the SLIP-0039 extendable flag, so more splits of the same secret can
            share the identifier later.
        iteration_exponent: PBKDF2 cost, 0 to 15 (10000 * 2^e iterations).

    Returns the mnemonics, one per custodian, in share order. Before returning, all of them are
    combined once and must give back ``secret``.

    Raises:
        ShareError: an argument is out of range.
        RuntimeError: the new shares failed their check (a bug, never expected).
    """
    if not isinstance(secret, bytes):
        raise ShareError("the secret must be bytes")
    if len(secret) not in SECRET_LENGTHS:
        raise ShareError(f"the secret is {len(secret)} bytes; shares hold 16 or 32 bytes")
    if not _is_int(count) or not 1 <= count <= MAX_SHARES:
        raise ShareError(f"the number of shares must be between 1 and {MAX_SHARES}")
    if not _is_int(threshold) or not 1 <= threshold <= count:
        raise ShareError(f"the threshold must be between 1 and the number of shares ({count})")
    if not isinstance(extendable, bool):
        raise ShareError("extendable must be true or false")
    if not _is_int(iteration_exponent) or not 0 <= iteration_exponent <= MAX_ITERATION_EXPONENT:
        raise ShareError(f"the iteration exponent must be between 0 and {MAX_ITERATION_EXPONENT}")
    _check_passphrase(passphrase)

    # SLIP-0039 forbids a 1-of-n group; its way to say "any one of n" is n groups of 1-of-1.
    groups = [(1, 1)] * count if threshold == 1 else [(threshold, count)]
    try:
        made = shamir_mnemonic.generate_mnemonics(
            1, groups, secret, passphrase, extendable, iteration_exponent
        )
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        raise ShareError("cannot split the secret") from exc
    mnemonics = [str(mnemonic) for group in made for mnemonic in group]

    # The shares are the only copy of the release secret: prove they give it back, each of them.
    again = combine_shares(
        mnemonics, passphrase=passphrase, max_iteration_exponent=iteration_exponent
    )
    if not hmac.compare_digest(again, secret):
        raise RuntimeError("internal error: new shares do not give back the secret")
    return mnemonics


def combine_shares(
    mnemonics: Sequence[str],
    *,
    passphrase: bytes = b"",
    max_iteration_exponent: int = DEFAULT_MAX_ITERATION_EXPONENT,
) -> bytes:
    """Recover the secret from SLIP-0039 mnemonic shares.

    Words may be in any case and separated by any whitespace; nothing else is corrected. More
    shares than needed are accepted, and every one of them must agree with the others.

    Args:
        mnemonics: one mnemonic per share.
        passphrase: the passphrase given to :func:`split_secret`. A wrong one gives a wrong
            secret without error (SLIP-0039 design); see the module documentation.
        max_iteration_exponent: shares asking for a higher PBKDF2 cost are refused before any
            key derivation runs.

    Raises:
        ShareError: a share is malformed or damaged, the shares are duplicated, too few, from
            different sets, do not fit together, or ask for too costly a derivation.
    """
    _check_passphrase(passphrase)
    if isinstance(mnemonics, str | bytes):
        raise ShareError(
            "expected a list of shares, got a single string",
            hint="pass each share as its own item",
        )
    try:
        given = list(mnemonics)
    except TypeError:
        raise ShareError("expected a list of shares") from None
    if not given:
        raise ShareError("no shares given")
    if len(given) > _MAX_INPUT_SHARES:
        raise ShareError(f"too many shares: {len(given)}, a set has at most {_MAX_INPUT_SHARES}")

    shares = [
        _Parsed(number, *_parse(mnemonic, f"share {number}"))
        for number, mnemonic in enumerate(given, 1)
    ]
    _check_one_set(shares)
    if shares[0].info.iteration_exponent > max_iteration_exponent:
        raise ShareError(
            f"the shares ask for iteration exponent {shares[0].info.iteration_exponent}, "
            f"more than the {max_iteration_exponent} accepted",
            hint="shares made by evault use a low exponent; these were made elsewhere",
        )
    groups = _groups(shares)
    ciphertext = _recover_checked(shares[0].info, groups)
    first = shares[0].info
    try:
        secret = shamir_mnemonic.decrypt(
            ciphertext, passphrase, first.iteration_exponent, first.identifier, first.extendable
        )
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        raise ShareError("the shares do not hold a valid secret") from exc
    return bytes(secret)


def describe_share(mnemonic: str) -> ShareInfo:
    """Read the metadata of one share, so that a custodian can check it before submitting it.

    The share's words and checksum are verified; whether it fits the other shares of its set is
    only known when they are combined.

    Raises:
        ShareError: the share is malformed or damaged.
    """
    return _parse(mnemonic, "the share")[1]


def normalise_share(mnemonic: str) -> str:
    """A share as typed, in the one form it is stored, compared and committed to.

    Its words, those in ASCII lower-cased, separated by single spaces. Only ASCII is
    lower-cased: ``str.lower()`` maps some other letters (the Kelvin sign) onto ASCII ones, and
    only case and spacing variations are accepted. The words are not checked here;
    :func:`describe_share` checks them.
    """
    return " ".join(_words(mnemonic))


def share_commitment(mnemonic: str) -> bytes:
    """The commitment to one share: SHA-256 of :data:`COMMITMENT_PREFIX` and its normalised words.

    The same share typed in another case or spacing has the same commitment.

    Raises:
        ShareError: the share is malformed or damaged.
    """
    normalised = _parse(mnemonic, "the share")[0]
    return hashlib.sha256(COMMITMENT_PREFIX + normalised.encode("ascii")).digest()


def _words(mnemonic: str) -> list[str]:
    return [word.lower() if word.isascii() else word for word in mnemonic.split()]


def _parse(mnemonic: object, where: str) -> tuple[str, ShareInfo]:
    """Normalise and decode one share; ``where`` names it in messages."""
    if not isinstance(mnemonic, str):
        raise ShareError(f"{where} is not text")
    words = _words(mnemonic)
    if not words:
        raise ShareError(f"{where} is empty")
    for position, word in enumerate(words):
        if word not in _WORD_INDEX:
            raise ShareError(
                f"word {position + 1} of {where} is not in the SLIP-39 word list",
                hint=_suggest(word),
            )
    if len(words) not in _SECRET_LENGTH_BY_WORDS:
        raise ShareError(f"{where} has {len(words)} words, not 33 or 20", hint=_LENGTH_HINT)
    normalised = " ".join(words)

    try:
        share = Share.from_mnemonic(normalised)
    except (shamir_mnemonic.MnemonicError, ValueError) as exc:
        raise _decode_error(str(exc), where) from exc

    group_index = int(share.group_index)
    group_threshold = int(share.group_threshold)
    group_count = int(share.group_count)
    member_index = int(share.index)
    member_threshold = int(share.member_threshold)
    secret_length = len(share.value)
    if secret_length != _SECRET_LENGTH_BY_WORDS[len(words)]:
        raise ShareError(f"{where} is damaged: invalid padding")
    if group_index >= group_count:
        raise ShareError(f"{where} is invalid: it names group {group_index + 1} of {group_count}")

    if _one_of_n(group_threshold, member_threshold):
        threshold, count, index = 1, group_count, group_index + 1
    else:
        threshold, index = member_threshold, member_index + 1
        count = None
    info = ShareInfo(
        identifier=int(share.identifier),
        extendable=bool(share.extendable),
        iteration_exponent=int(share.iteration_exponent),
        secret_length=secret_length,
        threshold=threshold,
        count=count,
        index=index,
        group_index=group_index,
        group_threshold=group_threshold,
        group_count=group_count,
        member_index=member_index,
        member_threshold=member_threshold,
    )
    return normalised, info


def _decode_error(detail: str, where: str) -> ShareError:
    # The library tells these apart only in its messages; anything else is still an error.
    if "checksum" in detail:
        return ShareError(
            f"{where} has a typo or is damaged",
            hint="its checksum does not match: compare each word and their order with the paper",
        )
    if "padding" in detail:
        return ShareError(f"{where} is damaged: invalid padding")
    if "threshold" in detail:
        return ShareError(f"{where} is invalid: it needs more groups than its set has")
    return ShareError(f"{where} is not a valid SLIP-39 share")


def _suggest(word: str) -> str | None:
    """Up to three list words close to ``word``, as a hint, or None."""
    lowered = word.lower()
    # The first four letters identify every SLIP-0039 word.
    close = [w for w in WORDLIST if len(lowered) >= 4 and w.startswith(lowered[:4])]
    close += [w for w in difflib.get_close_matches(lowered, WORDLIST, n=3) if w not in close]
    if not close:
        return None
    return "did you mean " + " or ".join(close[:3]) + "?"


def _check_one_set(shares: list[_Parsed]) -> None:
    """Refuse duplicates and shares from different sets."""
    seen: dict[str, int] = {}
    for share in shares:
        if share.mnemonic in seen:
            raise ShareError(
                f"share {share.number} is the same as share {seen[share.mnemonic]}",
                hint="leave out the repeated share",
            )
        seen[share.mnemonic] = share.number

    first = shares[0]
    for share in shares[1:]:
        pair = f"shares {first.number} and {share.number}"
        if share.info.identifier != first.info.identifier:
            raise ShareError(
                f"{pair} are from different sets",
                hint="every share of a set begins with the same two words",
            )
        for field, label in (
            ("extendable", "extendable flags"),
            ("iteration_exponent", "iteration exponents"),
            ("group_threshold", "group thresholds"),
            ("group_count", "group counts"),
            ("secret_length", "secret lengths"),
        ):
            mine, theirs = getattr(first.info, field), getattr(share.info, field)
            if mine != theirs:
                raise ShareError(
                    f"{pair} do not belong together: "
                    f"different {label} ({_show(mine)} and {_show(theirs)})"
                )


def _groups(shares: list[_Parsed]) -> dict[int, list[_Parsed]]:
    """Sort shares into their groups, refusing mismatches, repeats and too few."""
    groups: dict[int, list[_Parsed]] = {}
    for share in shares:
        members = groups.setdefault(share.info.group_index, [])
        for other in members:
            pair = f"shares {other.number} and {share.number}"
            if other.info.member_threshold != share.info.member_threshold:
                raise ShareError(
                    f"{pair} do not belong together: different thresholds "
                    f"({other.info.member_threshold} and {share.info.member_threshold})"
                )
            if other.info.member_index == share.info.member_index:
                raise ShareError(
                    f"{pair} both claim to be {_position(share.info)} but differ",
                    hint="one of them is damaged, forged or from another split of the secret",
                )
        members.append(share)

    first = shares[0].info
    complete = [g for g in groups.values() if len(g) >= g[0].info.member_threshold]
    if len(complete) < first.group_threshold:
        if first.group_count == 1:
            raise ShareError(
                f"too few shares: need {first.threshold}, got {len(shares)}",
                hint=f"any {first.threshold} different shares of the set recover the secret",
            )
        found = [
            f"group {index + 1}: {len(g)} of {g[0].info.member_threshold} shares"
            for index, g in sorted(groups.items())
        ]
        if missing := first.group_count - len(groups):
            found.append(f"none from the other {missing}")
        raise ShareError(
            f"too few shares: need {first.group_threshold} complete groups, got {len(complete)}",
            hint="; ".join(found),
        )
    for index, members in groups.items():
        if len(members) < members[0].info.member_threshold:
            raise ShareError(
                f"{_numbers(members)} cannot be checked: group {index + 1} has "
                f"{len(members)} of the {members[0].info.member_threshold} shares it needs",
                hint="leave out the incomplete group or add its missing shares",
            )
    return groups


def _recover_checked(first: ShareInfo, groups: dict[int, list[_Parsed]]) -> bytes:
    """The encrypted master secret, after checking that every share agrees with it.

    SLIP-0039 combines exactly the threshold. A base selection is combined first; then each
    group outside it, and each share beyond its group's threshold, takes the place of one
    member of the base in turn. k - 1 shares and the secret fix the polynomial, so an equal
    result proves the new share lies on it.
    """
    selected = list(groups.items())[: first.group_threshold]
    base = {index: members[: members[0].info.member_threshold] for index, members in selected}
    reference = _recover(base)
    if reference is None:
        raise ShareError(
            f"{_numbers([s for members in base.values() for s in members])} do not combine: "
            "one of them is damaged, forged or from another split of the secret",
            hint="each share passed its own checksum; try a different choice of shares",
        )

    for index, members in groups.items():
        needed = members[0].info.member_threshold
        trial = dict(base)
        if index not in trial:
            trial.popitem()
            trial[index] = members[:needed]
            _check_same(reference, trial, members[:needed])
        for extra in members[needed:]:
            trial[index] = [*members[: needed - 1], extra]
            _check_same(reference, trial, [extra])
    return reference


def _check_same(reference: bytes, trial: dict[int, list[_Parsed]], new: list[_Parsed]) -> None:
    result = _recover(trial)
    if result is None or not hmac.compare_digest(result, reference):
        verb = "does" if len(new) == 1 else "do"
        # Which side is wrong is unknown: the reference shares may be the bad ones.
        raise ShareError(
            f"{_numbers(new)} {verb} not match the other shares",
            hint="one side is damaged, forged or from another split of the secret; "
            "check the result against the release key before trusting it",
        )


def _recover(groups: dict[int, list[_Parsed]]) -> bytes | None:
    """Combine exactly one threshold of shares; None when the digest does not verify."""
    mnemonics = [share.mnemonic for members in groups.values() for share in members]
    try:
        ems = shamir_mnemonic.recover_ems(shamir_mnemonic.decode_mnemonics(mnemonics))
    except (shamir_mnemonic.MnemonicError, ValueError):
        return None
    return bytes(ems.ciphertext)


def _position(info: ShareInfo) -> str:
    if info.grouped:
        return f"member {info.member_index + 1} of group {info.group_index + 1}"
    return f"share {info.index} of the set"


def _numbers(shares: Sequence[_Parsed]) -> str:
    """``share 3``, ``shares 1 and 4``, ``shares 1, 2 and 5``."""
    numbers = [str(share.number) for share in shares]
    if len(numbers) == 1:
        return f"share {numbers[0]}"
    return f"shares {', '.join(numbers[:-1])} and {numbers[-1]}"


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _one_of_n(group_threshold: int, member_threshold: int) -> bool:
    # Any single share of such a set recovers the secret: one group needed, one share in it.
    return group_threshold == 1 and member_threshold == 1


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_passphrase(passphrase: object) -> None:
    if not isinstance(passphrase, bytes):
        raise ShareError("the passphrase must be bytes")
    if not all(32 <= byte <= 126 for byte in passphrase):
        raise ShareError("the passphrase must be printable ASCII (SLIP-0039)")
