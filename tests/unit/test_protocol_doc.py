"""docs/protocol.md: its examples are what the code produces, its tables what the code does."""

from __future__ import annotations

import hashlib
import inspect
import re
from pathlib import Path

import nacl.signing
import pytest

from vault import age, canonical, keystore, merkle
from vault.disclosure import Disclosure, Reveal, SignedDisclosure
from vault.keys import CONTEXTS, Card, PersonalIdentity
from vault.manifest import Manifest, SignedManifest
from vault.note import (
    Checkpoint,
    NoteSigner,
    Receipt,
    sign_checkpoint,
    verifier_fingerprint,
    verify_receipt,
)
from vault.protocol import CheckinStatement, LoginChallenge
from vault.shares import combine_shares, describe_share, split_secret

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")

# The fixed keys the examples were made with.
IDENTITY = PersonalIdentity(
    name="Ana", age_identity=age.X25519Identity(b"\x02" * 32), signing_seed=b"\x01" * 32
)
LOG_SIGNER = NoteSigner.from_seed("vault.example/log", b"\x04" * 32)
ORIGIN = "vault.example/log"
VAULT = "9c" * 16


def example(name: str) -> str:
    """The fenced block right after ``<!-- example:NAME -->``, without its final newline."""
    match = re.search(
        rf"<!-- example:{re.escape(name)} -->\n```\n(.*?)\n```\n", DOC, flags=re.DOTALL
    )
    assert match is not None, f"no example {name!r} in docs/protocol.md"
    return match.group(1)


def section(start: str, end: str) -> str:
    return DOC[DOC.index(start) : DOC.index(end)]


def test_canonical_json_example() -> None:
    value = {"b": 1, "a": ["é", "\n", "\x00", '"\\'], "c": None, "d": True}
    data = example("canonical").encode("utf-8")
    assert canonical.dumps(value) == data
    assert canonical.loads(data) == value


def test_card_and_fingerprint_examples() -> None:
    card = IDENTITY.card()
    assert example("card").encode("utf-8") == card.to_json()
    assert Card.from_json(example("card").encode("utf-8")) == card
    assert example("fingerprint") == card.fingerprint()


def test_fingerprint_recipe_as_documented() -> None:
    card = IDENTITY.card()
    raw = age.X25519Identity(b"\x02" * 32).recipient().public_key
    data = b"evidence-vault fingerprint v1\x00" + b"\x01" + len(raw).to_bytes(4, "big")
    data += raw + card.signing_key
    digest = data
    for _ in range(5200):
        digest = hashlib.sha512(digest + data).digest()
    groups = [f"{int.from_bytes(digest[i * 5 : i * 5 + 5], 'big') % 100000:05d}" for i in range(12)]
    assert " ".join(groups) == card.fingerprint()


def test_signature_context_prefixes() -> None:
    rows = re.findall(r"^\| `([a-z]+)` \| `([0-9a-f]+)` \|", section("## 3.", "## 4."), re.M)
    assert {context for context, _ in rows} == CONTEXTS
    verify_key = nacl.signing.VerifyKey(IDENTITY.card().signing_key)
    message = b"any message"
    for context, prefix in rows:
        assert bytes.fromhex(prefix) == b"evidence-vault/" + context.encode() + b"\x00"
        signature = IDENTITY.sign(context, message)
        verify_key.verify(bytes.fromhex(prefix) + message, signature)


def test_keystore_offsets_table() -> None:
    rows = re.findall(r"^\| (\d+) \| (\d+) \| ", section("## 4.", "## 5."), re.M)
    offset = 0
    for start, size in rows:
        assert int(start) == offset
        offset += int(size)
    assert offset == keystore.FILE_SIZE == 2169
    assert keystore.MAGIC == b"EVAULTKS"
    documented = keystore.Argon2Params(time_cost=3, memory_kib=262144, parallelism=2)
    assert documented == keystore.Argon2Params.DEFAULT


def test_manifest_example() -> None:
    manifest = Manifest(
        item_id="ab" * 16,
        vault_id=VAULT,
        filename="photo.jpg",
        media_type="image/jpeg",
        size=3,
        plaintext_sha256=hashlib.sha256(b"abc").hexdigest(),
        payload_sha256="00" * 32,
        captured_at="2026-11-27T12:00:00Z",
        note="",
        signer=IDENTITY.card().signing_key,
    )
    data = example("manifest").encode("utf-8")
    assert manifest.sign(IDENTITY).to_json() == data
    signed = SignedManifest.parse(data)
    assert (
        signed.verify(
            signer=IDENTITY.card().signing_key,
            plaintext_sha256=manifest.plaintext_sha256,
            payload_sha256=manifest.payload_sha256,
            item_id=manifest.item_id,
            vault_id=VAULT,
        )
        == manifest
    )
    # The signed bytes are the stored form without "signature".
    value = canonical.loads(data)
    del value["signature"]
    assert canonical.dumps(value) == manifest.signed_bytes()


def test_disclosure_example() -> None:
    manifest = Manifest(
        item_id="ab" * 16,
        vault_id=VAULT,
        filename="photo.jpg",
        media_type="image/jpeg",
        size=3,
        plaintext_sha256=hashlib.sha256(b"abc").hexdigest(),
        payload_sha256="00" * 32,
        captured_at="2026-11-27T12:00:00Z",
        note="from the ministry, source K",
        signer=IDENTITY.card().signing_key,
    )
    reveal = Reveal(name=True, time=False, note=False)
    data = example("disclosure").encode("utf-8")
    assert Disclosure.of(manifest, reveal).sign(IDENTITY).to_json() == data
    signed = SignedDisclosure.parse(data)
    assert signed.disclosure.reveal == reveal
    assert b"ministry" not in data
    signed.verify(
        signer=IDENTITY.card().signing_key,
        payload_sha256=manifest.payload_sha256,
        item_id=manifest.item_id,
        vault_id=VAULT,
        plaintext_sha256=manifest.plaintext_sha256,
        size=3,
    )
    value = canonical.loads(data)
    del value["signature"]
    assert canonical.dumps(value) == signed.disclosure.signed_bytes()
    # The table names exactly its fields.
    rows = re.findall(r"^\| (`[^|]+) \|", section("### 6.1", "## 7."), re.M)
    named = {name for row in rows for name in re.findall(r"`([a-z0-9_]+)`", row)}
    assert named == set(value) | {"signature"}


def test_login_example() -> None:
    challenge = LoginChallenge(origin=ORIGIN, account="0f" * 16, nonce=b"\x01" * 32)
    assert example("login").encode("utf-8") == challenge.message()


def test_checkin_example() -> None:
    statement = CheckinStatement(origin=ORIGIN, vault=VAULT, time=1900000000, nonce=b"\x03" * 16)
    data = example("checkin").encode("utf-8")
    assert data == statement.message()
    assert CheckinStatement.parse(data) == statement


def _leaves() -> list[bytes]:
    return [
        canonical.dumps({"type": "switch.checkin", "vault": VAULT, "time": 1900000000 + i})
        for i in range(3)
    ]


def test_leaf_example() -> None:
    assert example("leaf").encode("utf-8") == _leaves()[1]


def test_verifier_key_example() -> None:
    key, fingerprint = example("vkey").split("\n")
    assert key == str(LOG_SIGNER.verifier())
    assert fingerprint == verifier_fingerprint(LOG_SIGNER.verifier())
    assert key.split("+")[1] == f"{LOG_SIGNER.key_id:08x}"
    digest = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + LOG_SIGNER.public_key).digest()
    assert LOG_SIGNER.key_id == int.from_bytes(digest[:4], "big")


def test_receipt_example() -> None:
    leaves = _leaves()
    store = merkle.MemoryHashStore([merkle.leaf_hash(leaf) for leaf in leaves])
    note = sign_checkpoint(
        Checkpoint(origin=ORIGIN, size=3, root_hash=merkle.root(store, 3)), LOG_SIGNER
    )
    receipt = Receipt(index=1, proof=tuple(merkle.inclusion_proof(store, 1, 3)), checkpoint=note)
    data = (example("receipt") + "\n").encode("utf-8")
    assert receipt.marshal() == data
    checkpoint = verify_receipt(data, leaves[1], LOG_SIGNER.verifier())
    assert checkpoint.size == 3


def _server_sources() -> str:
    return "\n".join(
        path.read_text(encoding="utf-8") for path in sorted((ROOT / "server").rglob("*.py"))
    )


def test_event_table_lists_every_event_the_server_appends() -> None:
    appended = set(re.findall(r'"type":\s*"([a-z_]+\.[a-z_]+)"', _server_sources()))
    table = section("<!-- events -->", "<!-- /events -->")
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", table, re.M))
    assert appended
    assert documented == appended


def test_webhook_events_are_the_notices_the_server_sends() -> None:
    sent = set(re.findall(r'event="([a-z_]+\.[a-z_]+)"', _server_sources()))
    listed = section("## 11.", "## 12.")
    listed = listed[listed.index("with `event` one of") : listed.index("Delivery is")]
    assert set(re.findall(r"`([a-z_]+\.[a-z_]+)`", listed)) == sent


def test_release_share_parameters() -> None:
    defaults = inspect.signature(split_secret).parameters
    assert defaults["extendable"].default is True
    assert defaults["iteration_exponent"].default == 1
    assert defaults["passphrase"].default == b""
    # The client splits with the defaults.
    source = (ROOT / "client" / "switch.py").read_text(encoding="utf-8")
    assert "split_secret(secret, threshold, len(holders))" in source
    secret = bytes(range(32))
    one = split_secret(secret, 1, 3)
    info = describe_share(one[0])
    assert (info.group_count, info.group_threshold, info.member_threshold) == (3, 1, 1)
    assert info.extendable
    assert info.iteration_exponent == 1
    assert len(one[0].split(" ")) == 33
    two = split_secret(secret, 2, 3)
    info = describe_share(two[0])
    assert (info.group_count, info.group_threshold, info.member_threshold) == (1, 1, 2)
    assert combine_shares(two[1:]) == secret


@pytest.mark.parametrize("needle", ["age1pq1", "ML-KEM-768", "X25519"])
def test_recipient_kinds_are_named(needle: str) -> None:
    assert needle in DOC
