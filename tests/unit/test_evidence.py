"""vault.evidence: evidence packages written from real objects, verified, then tampered with.

Each tampered package is what an attacker could hand over: where a change
would only trip the package.json hashes, the attacker updates package.json
too, so the test shows that a signature or a proof catches it.
"""

from __future__ import annotations

import base64
import dataclasses
import errno
import hashlib
import io
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.helpers import encrypt_bytes
from vault import age, canonical, evidence, merkle
from vault.age.format import Source, parse_header
from vault.age.stream import CHUNK_SIZE, payload_size
from vault.disclosure import Disclosure, Reveal, SignedDisclosure
from vault.errors import (
    ConfigError,
    FormatError,
    ProofError,
    SignatureError,
    VaultError,
)
from vault.evidence import PackageReport, verify_package, write_package
from vault.keys import Card, PersonalIdentity
from vault.manifest import Manifest, SignedManifest
from vault.note import Checkpoint, NoteSigner, Receipt, sign_checkpoint

REPORTER = PersonalIdentity.generate("Reporter", post_quantum=False)
OTHER = PersonalIdentity.generate("Someone Else", post_quantum=False)
EDITOR = age.X25519Identity.generate()
LOG = NoteSigner.from_seed("log.example/vault", hashlib.sha256(b"log key").digest())
# Same name, another key: its signatures look like the log's.
ROGUE = NoteSigner.from_seed("log.example/vault", hashlib.sha256(b"rogue key").digest())
ITEM_ID = "7f3c9a0b2d4e4f6a8b1c3d5e7f9a0b1c"
OTHER_ITEM_ID = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
VAULT_ID = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"
ACCOUNT = "1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"
# Mallory: another reporter of the same server, with her own account and vault.
OTHER_ACCOUNT = "9f8e7d6c5b4a39281706f5e4d3c2b1a0"
OTHER_VAULT_ID = "a0b1c2d3e4f5061728394a5b6c7d8e9f"
T0 = 1_790_000_000
PLAINTEXT = os.urandom(100_000)  # two STREAM chunks
FILENAME = "harbour memo.pdf"

Entry = tuple[int, bytes, bytes]


def _split(blob: bytes) -> tuple[bytes, bytes]:
    header = parse_header(Source(io.BytesIO(blob))).marshal()
    return header, blob[len(header) :]


def _hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Log:
    """A real Merkle log in memory, signed like the server's."""

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.leaves: list[bytes] = []
        self.store = merkle.MemoryHashStore()
        for leaf in leaves:
            self.add(leaf)

    def add(self, leaf: bytes) -> int:
        self.leaves.append(leaf)
        self.store.append(merkle.leaf_hash(leaf))
        return len(self.leaves) - 1

    def append(self, event: dict[str, object]) -> int:
        return self.add(canonical.dumps({**event, "time": T0 + 60 * len(self.leaves)}))

    def receipt(self, index: int, size: int | None = None, *, signer: NoteSigner = LOG) -> bytes:
        size = len(self.leaves) if size is None else size
        checkpoint = Checkpoint(origin=LOG.name, size=size, root_hash=merkle.root(self.store, size))
        return Receipt(
            index=index,
            proof=tuple(merkle.inclusion_proof(self.store, index, size)),
            checkpoint=sign_checkpoint(checkpoint, signer),
        ).marshal()

    def entry(self, index: int, size: int | None = None) -> Entry:
        return index, self.leaves[index], self.receipt(index, size)


def _upload_event(item_id: str, blob: bytes, **changes: object) -> dict[str, object]:
    header, payload = _split(blob)
    event: dict[str, object] = {
        "type": "item.uploaded",
        "item": item_id,
        "account": ACCOUNT,
        "vault": VAULT_ID,
        "sha256": _hex(payload),
        "size": len(payload),
        "header_sha256": _hex(header),
        "header_size": len(header),
    }
    event.update(changes)
    return event


def _card_sha256(card: Card) -> str:
    return base64.b64encode(hashlib.sha256(card.to_json()).digest()).decode("ascii")


def _registered_event(card: Card | None = None, **changes: object) -> dict[str, object]:
    """The server's account.registered event of the reporter (accounts._create)."""
    event: dict[str, object] = {
        "type": "account.registered",
        "account": ACCOUNT,
        "role": "reporter",
        "card_sha256": _card_sha256(card or REPORTER.card()),
        "vault": VAULT_ID,
        "invite": 7,
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v is not None}


def _manifest(blob: bytes = b"", plaintext: bytes = PLAINTEXT, **changes: object) -> Manifest:
    fields: dict[str, object] = {
        "item_id": ITEM_ID,
        "vault_id": VAULT_ID,
        "filename": FILENAME,
        "media_type": "application/pdf",
        "size": len(plaintext),
        "plaintext_sha256": _hex(plaintext),
        "payload_sha256": _hex(_split(blob or ITEM)[1]),
        "captured_at": "2026-11-27T06:00:00Z",
        "note": "from the harbour office",
        "signer": REPORTER.card().signing_key,
    }
    fields.update(changes)
    return Manifest(**fields)


ITEM = encrypt_bytes(PLAINTEXT, [REPORTER.card().age_recipient()])
HEADER, PAYLOAD = _split(ITEM)
SHARED_HEADER = age.rewrap_header(
    parse_header(Source(io.BytesIO(ITEM))), REPORTER.age_identity, [EDITOR.recipient()]
).marshal()
SHARED_ITEM = SHARED_HEADER + PAYLOAD
OTHER_ITEM = encrypt_bytes(b"another memo", [REPORTER.card().age_recipient()])
SIGNED = _manifest().sign(REPORTER)

# The log: unrelated events, the reporter's and Mallory's registrations, the
# item's upload, another item, a share, a download.
LOG_ = Log()
for n in range(2):
    LOG_.append({"type": "account.created", "account": f"acc{n}"})
REGISTERED = LOG_.append(_registered_event())
MALLORY_REGISTERED = LOG_.append(
    _registered_event(OTHER.card(), account=OTHER_ACCOUNT, vault=OTHER_VAULT_ID)
)
UPLOAD = LOG_.append(_upload_event(ITEM_ID, ITEM))
UPLOAD_RECEIPT = LOG_.receipt(UPLOAD)  # as the server returns it, at append time
LOG_.append({"type": "checkin", "vault": VAULT_ID})
OTHER_UPLOAD = LOG_.append(_upload_event(OTHER_ITEM_ID, OTHER_ITEM))
SHARE = LOG_.append(
    {
        "type": "item.shared",
        "item": ITEM_ID,
        "account": ACCOUNT,
        "header_sha256": _hex(SHARED_HEADER),
        "header_size": len(SHARED_HEADER),
        "editors": ["ed1"],
    }
)
DOWNLOAD = LOG_.append({"type": "item.downloaded", "item": ITEM_ID, "account": "ed1"})
for n in range(4):
    LOG_.append({"type": "checkin", "vault": f"v{n}"})
ENTRIES: list[Entry] = [
    (UPLOAD, LOG_.leaves[UPLOAD], UPLOAD_RECEIPT),
    LOG_.entry(SHARE),
    LOG_.entry(DOWNLOAD),
    LOG_.entry(REGISTERED),
]


def make(
    where: Path,
    *,
    item: bytes = ITEM,
    manifest: SignedManifest | SignedDisclosure = SIGNED,
    card: Card | None = None,
    entries: Sequence[Entry] = ENTRIES,
    log_key: str | None = None,
) -> Path:
    directory = where / "package"
    write_package(
        directory,
        item=io.BytesIO(item),
        manifest=manifest,
        card=card or REPORTER.card(),
        log_key=log_key or str(LOG.verifier()),
        entries=entries,
    )
    return directory


@pytest.fixture
def package(tmp_path: Path) -> Path:
    return make(tmp_path)


def rehash(directory: Path, **changes: object) -> None:
    """Rewrite package.json to match the files present, as an attacker would."""
    index = canonical.loads((directory / "package.json").read_bytes())
    files = {}
    for path in sorted(directory.rglob("*")):
        name = path.relative_to(directory).as_posix()
        if path.is_file() and name != "package.json":
            files[name] = _hex(path.read_bytes())
    index["files"] = files
    index.update(changes)
    (directory / "package.json").write_bytes(canonical.dumps(index))


def leftovers(where: Path) -> list[str]:
    return sorted(p.name for p in where.iterdir())


# good packages -----------------------------------------------------------------


def test_layout_modes_and_index(package: Path) -> None:
    names = sorted(p.relative_to(package).as_posix() for p in package.rglob("*"))
    entries = [
        f"entries/{i}.{ext}"
        for i in (REGISTERED, UPLOAD, SHARE, DOWNLOAD)
        for ext in ("json", "proof")
    ]
    assert names == sorted(
        [
            "README.txt",
            "entries",
            *entries,
            "item.age",
            "log.key",
            "manifest.json",
            "package.json",
            "reporter.card",
        ]
    )
    assert (package / "item.age").read_bytes() == ITEM
    assert (package / "manifest.json").read_bytes() == SIGNED.to_json()
    assert (package / "reporter.card").read_bytes() == REPORTER.card().to_json()
    # Those bytes are the ones whose hash the registration logged.
    card_hash = base64.b64encode(hashlib.sha256((package / "reporter.card").read_bytes()).digest())
    assert canonical.loads((package / f"entries/{REGISTERED}.json").read_bytes())[
        "card_sha256"
    ] == card_hash.decode("ascii")
    assert (package / "log.key").read_text() == str(LOG.verifier()) + "\n"
    assert (package / f"entries/{SHARE}.json").read_bytes() == LOG_.leaves[SHARE]
    assert (package / f"entries/{UPLOAD}.proof").read_bytes() == UPLOAD_RECEIPT
    index = canonical.loads((package / "package.json").read_bytes())
    assert set(index) == {"v", "item", "vault", "files"}
    assert (index["v"], index["item"], index["vault"]) == (1, ITEM_ID, VAULT_ID)
    assert set(index["files"]) == set(names) - {"entries", "package.json"}
    for name, digest in index["files"].items():
        assert _hex((package / name).read_bytes()) == digest
    for path in [package, *package.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path
    assert leftovers(package.parent) == ["package"]


def test_verifies_without_trust_or_keys(package: Path) -> None:
    report = verify_package(package)
    assert isinstance(report, PackageReport)
    assert report == dataclasses.replace(
        report,
        item_id=ITEM_ID,
        vault_id=VAULT_ID,
        filename=FILENAME,
        media_type="application/pdf",
        plaintext_size=len(PLAINTEXT),
        captured_at="2026-11-27T06:00:00Z",
        payload_sha256=_hex(PAYLOAD),
        plaintext_sha256=_hex(PLAINTEXT),
        plaintext_checked=False,
        reporter_fingerprint=REPORTER.card().fingerprint(),
        reporter_account=ACCOUNT,
        account_index=REGISTERED,
        log_origin="log.example/vault",
        upload_index=UPLOAD,
        upload_time=T0 + 60 * UPLOAD,
        checkpoint_size=len(LOG_.leaves),
    )
    assert [name for name, _ in report.checks] == [
        "files",
        "reporter card",
        "manifest",
        "payload",
        "log key",
        f"entry {REGISTERED}",
        f"entry {UPLOAD}",
        f"entry {SHARE}",
        f"entry {DOWNLOAD}",
        "upload",
        "header",
        "reporter account",
    ]
    unchecked = dict(report.not_checked)
    assert set(unchecked) == {"reporter identity", "log identity", "plaintext"}
    assert report.reporter_fingerprint in unchecked["reporter identity"]
    assert report.log_key_fingerprint in unchecked["log identity"]
    assert "age -d -i KEY item.age | sha256sum" in unchecked["plaintext"]
    assert "item.uploaded" in dict(report.checks)["header"]
    assert dict(report.checks)["reporter account"] == (
        f"entries/{REGISTERED}.json records that the key in reporter.card registered "
        f"the account {ACCOUNT}, a reporter, that uploaded the item"
    )


def test_log_key_fingerprint_is_the_servers(package: Path) -> None:
    from server.keyfile import fingerprint

    assert verify_package(package).log_key_fingerprint == fingerprint(LOG.verifier())


def test_verifies_with_trusted_keys_and_identity(package: Path) -> None:
    report = verify_package(
        package,
        trusted_log_key=str(LOG.verifier()),
        trusted_card=REPORTER.card(),
        identities=[OTHER.age_identity, REPORTER.age_identity],
    )
    assert report.plaintext_checked
    assert "plaintext" in dict(report.checks)
    assert report.not_checked == ()
    # A card with the same keys under another display name is the same person.
    renamed = dataclasses.replace(REPORTER.card(), name="R.")
    assert verify_package(package, trusted_card=renamed).item_id == ITEM_ID


def test_identity_that_is_no_recipient_leaves_the_plaintext_unchecked(package: Path) -> None:
    report = verify_package(package, identities=[OTHER.age_identity])
    assert not report.plaintext_checked
    assert "none of the keys given opens item.age" in dict(report.not_checked)["plaintext"]


def test_shared_header_verifies(tmp_path: Path) -> None:
    package = make(tmp_path, item=SHARED_ITEM)
    report = verify_package(package, identities=[EDITOR])
    assert report.plaintext_checked
    assert f"entries/{SHARE}.json (item.shared)" in dict(report.checks)["header"]


def test_receipts_of_any_later_tree_size_verify(tmp_path: Path) -> None:
    entries = [
        LOG_.entry(REGISTERED, UPLOAD),
        LOG_.entry(UPLOAD, UPLOAD + 2),
        LOG_.entry(SHARE, SHARE + 1),
    ]
    report = verify_package(make(tmp_path, entries=entries))
    assert report.checkpoint_size == SHARE + 1


def test_empty_plaintext(tmp_path: Path) -> None:
    blob = encrypt_bytes(b"", [REPORTER.card().age_recipient()])
    log = Log()
    registered = log.append(_registered_event())
    index = log.append(_upload_event(ITEM_ID, blob))
    signed = _manifest(blob, plaintext=b"").sign(REPORTER)
    entries = [log.entry(registered), log.entry(index)]
    package = make(tmp_path, item=blob, manifest=signed, entries=entries)
    report = verify_package(package, identities=[REPORTER.age_identity])
    assert (report.plaintext_size, report.plaintext_checked) == (0, True)


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE])
def test_payload_size_is_ages(size: int) -> None:
    blob = encrypt_bytes(bytes(size), [EDITOR.recipient()])
    assert payload_size(size) == len(_split(blob)[1])


def test_readme_names_the_item_and_fingerprints(package: Path) -> None:
    readme = (package / "README.txt").read_text("utf-8")
    report = verify_package(package)
    assert f'"{FILENAME}"' in readme
    assert report.reporter_fingerprint in readme
    assert report.log_key_fingerprint in readme
    for text in (ITEM_ID, VAULT_ID, _hex(PLAINTEXT), _hex(PAYLOAD), "sha256sum", "age -d -i KEY"):
        assert text in readme
    # The commands it gives work with standard tools.
    tail = re.search(r"tail -c \+(\d+) item.age \| sha256sum\n\s+must print ([0-9a-f]{64})", readme)
    head = re.search(r"head -c (\d+) item.age \| sha256sum", readme)
    assert tail is not None
    assert head is not None
    assert tail.group(2) == _hex(PAYLOAD)
    item = (package / "item.age").read_bytes()
    assert _hex(item[int(tail.group(1)) - 1 :]) == _hex(PAYLOAD)
    assert item[: int(head.group(1))] == HEADER
    log_key = (package / "log.key").read_bytes().replace(b"\n", b"")
    assert _hex(log_key)[:32] == report.log_key_fingerprint.replace(" ", "")


@pytest.mark.skipif(shutil.which("tail") is None, reason="no tail command")
def test_readme_tail_command_runs(package: Path) -> None:
    readme = (package / "README.txt").read_text("utf-8")
    match = re.search(r"tail -c (\+\d+) item.age", readme)
    assert match is not None
    out = subprocess.run(
        ["tail", "-c", match.group(1), "item.age"], cwd=package, capture_output=True, check=True
    )
    assert _hex(out.stdout) == _hex(PAYLOAD)


def test_hostile_filename_is_escaped_in_readme_and_raw_in_report(tmp_path: Path) -> None:
    name = "invoice\u202efdp.exe\x1b[2J"
    signed = _manifest(filename=name).sign(REPORTER)
    package = make(tmp_path, manifest=signed)
    readme = (package / "README.txt").read_text("utf-8")
    assert "\u202e" not in readme
    assert "\x1b" not in readme
    assert '"invoice\\u202efdp.exe\\u001b[2J"' in readme
    assert verify_package(package).filename == name


# tampered packages -------------------------------------------------------------


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def test_flipped_payload_byte(package: Path) -> None:
    _flip(package / "item.age", len(HEADER) + 100)
    with pytest.raises(ProofError, match=r"item\.age was altered: its SHA-256") as caught:
        verify_package(package)
    assert caught.value.hint
    rehash(package)
    with pytest.raises(
        ProofError, match=r"item.age does not match manifest.json: the payload hash"
    ):
        verify_package(package)


def test_swapped_item(package: Path) -> None:
    (package / "item.age").write_bytes(OTHER_ITEM)
    rehash(package)
    with pytest.raises(
        ProofError, match=r"item.age does not match manifest.json: the payload hash"
    ):
        verify_package(package)


def test_manifest_resigned_by_another_key(package: Path) -> None:
    forged = _manifest(signer=OTHER.card().signing_key).sign(OTHER)
    (package / "manifest.json").write_bytes(forged.to_json())
    rehash(package)
    with pytest.raises(SignatureError, match=r"manifest.json is not signed by the reporter"):
        verify_package(package)


def test_card_and_manifest_both_replaced(package: Path) -> None:
    forged = _manifest(signer=OTHER.card().signing_key).sign(OTHER)
    (package / "manifest.json").write_bytes(forged.to_json())
    (package / "reporter.card").write_bytes(OTHER.card().to_json())
    rehash(package)
    # Signed and carded consistently, but the log registered another card
    # for the account that uploaded the item.
    with pytest.raises(ProofError, match=r"reporter.card is not the card that the account"):
        verify_package(package)
    with pytest.raises(SignatureError, match=r"reporter.card is not the trusted card") as caught:
        verify_package(package, trusted_card=REPORTER.card())
    assert OTHER.card().fingerprint() in (caught.value.hint or "")


def test_changed_filename(package: Path) -> None:
    changed = dataclasses.replace(SIGNED.manifest, filename="other.pdf")
    forged = SignedManifest(manifest=changed, signature=SIGNED.signature)
    (package / "manifest.json").write_bytes(forged.to_json())
    rehash(package)
    with pytest.raises(SignatureError, match=r"manifest.json is not signed by the reporter"):
        verify_package(package)


def test_manifest_for_another_item(package: Path) -> None:
    rehash(package, item=OTHER_ITEM_ID)
    with pytest.raises(ProofError, match=r"manifest.json does not describe the item"):
        verify_package(package)


def test_entry_for_another_item(package: Path) -> None:
    index, leaf, receipt = LOG_.entry(OTHER_UPLOAD)
    (package / f"entries/{index}.json").write_bytes(leaf)
    (package / f"entries/{index}.proof").write_bytes(receipt)
    rehash(package)
    with pytest.raises(ProofError, match=rf"entries/{index}.json is a log event about another"):
        verify_package(package)


def test_upload_entry_replaced_by_another_items(package: Path) -> None:
    for ext in ("json", "proof"):
        (package / f"entries/{UPLOAD}.{ext}").unlink()
    index, leaf, receipt = LOG_.entry(OTHER_UPLOAD)
    (package / f"entries/{index}.json").write_bytes(
        leaf.replace(OTHER_ITEM_ID.encode(), ITEM_ID.encode())
    )
    (package / f"entries/{index}.proof").write_bytes(receipt)
    rehash(package)
    with pytest.raises(ProofError, match=rf"entries/{index}.json is not in the log at index"):
        verify_package(package)


def test_wrong_inclusion_proof(package: Path) -> None:
    path = package / f"entries/{DOWNLOAD}.proof"
    receipt = Receipt.parse(path.read_bytes())
    bad = dataclasses.replace(receipt, proof=(bytes(32), *receipt.proof[1:]))
    path.write_bytes(bad.marshal())
    rehash(package)
    with pytest.raises(
        ProofError, match=rf"entries/{DOWNLOAD}.json is not in the log at index {DOWNLOAD}"
    ):
        verify_package(package)


def test_receipt_of_another_entry(package: Path) -> None:
    (package / f"entries/{DOWNLOAD}.proof").write_bytes(LOG_.receipt(SHARE))
    rehash(package)
    with pytest.raises(ProofError, match=rf"entries/{DOWNLOAD}.proof is the receipt of another"):
        verify_package(package)


def test_checkpoint_signed_by_another_key(package: Path) -> None:
    (package / f"entries/{SHARE}.proof").write_bytes(LOG_.receipt(SHARE, signer=ROGUE))
    rehash(package)
    with pytest.raises(
        SignatureError, match=rf"entries/{SHARE}.proof: the checkpoint is not signed"
    ):
        verify_package(package)


def test_log_key_replaced_with_the_rogue_one(package: Path) -> None:
    (package / "log.key").write_text(str(ROGUE.verifier()) + "\n")
    rehash(package)
    with pytest.raises(SignatureError, match=r"the checkpoint is not signed by the key in log.key"):
        verify_package(package)


def test_trusted_log_key_mismatch(package: Path) -> None:
    with pytest.raises(SignatureError, match=r"log.key is not the trusted log key") as caught:
        verify_package(package, trusted_log_key=str(ROGUE.verifier()))
    assert "compare fingerprints" in (caught.value.hint or "")
    with pytest.raises(FormatError, match=r"the trusted log key is not a log verifier key"):
        verify_package(package, trusted_log_key="nonsense")


def test_forked_log(package: Path) -> None:
    # A second history: the same first entries, then a different last one.
    size = len(LOG_.leaves)
    fork = Log(LOG_.leaves[: size - 1])
    fork.add(b"a different last entry")
    (package / f"entries/{DOWNLOAD}.proof").write_bytes(fork.receipt(DOWNLOAD, size))
    rehash(package)
    with pytest.raises(ProofError, match=f"the log forked: two checkpoints of {size} entries"):
        verify_package(package)


def test_header_not_logged(package: Path) -> None:
    header = age.rewrap_header(
        parse_header(Source(io.BytesIO(ITEM))),
        REPORTER.age_identity,
        [OTHER.card().age_recipient()],
    ).marshal()
    (package / "item.age").write_bytes(header + PAYLOAD)
    rehash(package)
    with pytest.raises(ProofError, match=r"the header of item.age is not one the log recorded"):
        verify_package(package)


def test_plaintext_mismatch_needs_a_key(tmp_path: Path) -> None:
    signed = _manifest(plaintext_sha256=_hex(b"something else")).sign(REPORTER)
    package = make(tmp_path, manifest=signed)
    assert not verify_package(package).plaintext_checked
    with pytest.raises(ProofError, match=r"item.age does not match manifest.json: the plaintext"):
        verify_package(package, identities=[REPORTER.age_identity])


def test_signed_size_that_the_payload_cannot_hold(package: Path) -> None:
    forged = _manifest(size=len(PLAINTEXT) + 1).sign(REPORTER)
    (package / "manifest.json").write_bytes(forged.to_json())
    rehash(package)
    with pytest.raises(ProofError, match=r"cannot hold the 100001 bytes of plaintext signed"):
        verify_package(package)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sha256": _hex(b"x")}, "its payload sha256 differs from the one in entries/1.json"),
        ({"size": 7}, "its payload size differs"),
        ({"vault": "another"}, "entries/1.json records an upload to another vault"),
        ({"time": "yesterday"}, "entries/1.json has no valid time"),
    ],
)
def test_upload_entry_that_does_not_match(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    log = Log()
    registered = log.append(_registered_event())
    leaf = canonical.dumps({**_upload_event(ITEM_ID, ITEM), "time": T0, **changes})
    index = log.add(leaf)
    with pytest.raises(VaultError, match=message):
        make(tmp_path, entries=[log.entry(registered), log.entry(index)])
    assert leftovers(tmp_path) == []


def test_two_uploads(tmp_path: Path) -> None:
    log = Log()
    first = log.append(_upload_event(ITEM_ID, ITEM))
    second = log.append(_upload_event(ITEM_ID, ITEM))
    with pytest.raises(
        ProofError, match=r"more than one upload entry for this item: entries 0 and 1"
    ):
        make(tmp_path, entries=[log.entry(first), log.entry(second)])


def test_no_upload_entry(package: Path) -> None:
    for ext in ("json", "proof"):
        (package / f"entries/{UPLOAD}.{ext}").unlink()
    rehash(package)
    with pytest.raises(ProofError, match=r"no upload entry"):
        verify_package(package)


# the signer is bound to the upload -------------------------------------------------
#
# Alice's ciphertext, its upload entry and its receipts are public once the
# item is released or shared. Mallory signs a manifest of her own for the
# same item, vault and payload, puts her card in the package, and hands it
# to a court that trusts the real log key and - tricked or not - her card.

MALLORY_MANIFEST = _manifest(signer=OTHER.card().signing_key).sign(OTHER)


def _drop(package: Path, index: int) -> None:
    for ext in ("json", "proof"):
        (package / f"entries/{index}.{ext}").unlink()


def _put(package: Path, entry: Entry) -> None:
    index, leaf, receipt = entry
    (package / f"entries/{index}.json").write_bytes(leaf)
    (package / f"entries/{index}.proof").write_bytes(receipt)


def _mallorys(package: Path, account_entry: Entry | None) -> None:
    """Make ``package`` Mallory's: her manifest and card, the given account entry."""
    (package / "manifest.json").write_bytes(MALLORY_MANIFEST.to_json())
    (package / "reporter.card").write_bytes(OTHER.card().to_json())
    _drop(package, REGISTERED)
    if account_entry is not None:
        _put(package, account_entry)
    rehash(package)


@pytest.mark.parametrize(
    ("account_entry", "message"),
    [
        (
            LOG_.entry(MALLORY_REGISTERED),
            rf"entries/{MALLORY_REGISTERED}.json registers another account than the one "
            rf"that uploaded the item \(entries/{UPLOAD}.json\)",
        ),
        (None, r"no account entry: no log entry records the registration of the account"),
        (
            LOG_.entry(REGISTERED),
            r"reporter.card is not the card that the account which uploaded the item "
            rf"registered: its SHA-256 is not the card_sha256 of entries/{REGISTERED}.json",
        ),
    ],
    ids=["her own account entry", "no account entry", "alice's account entry"],
)
def test_someone_elses_signature_on_a_logged_upload_is_refused(
    package: Path, account_entry: Entry | None, message: str
) -> None:
    _mallorys(package, account_entry)
    # Even trusting the real log and Mallory's card: the log says Alice uploaded.
    with pytest.raises(ProofError, match=message) as caught:
        verify_package(
            package,
            trusted_log_key=str(LOG.verifier()),
            trusted_card=OTHER.card(),
            identities=[REPORTER.age_identity],
        )
    assert caught.value.hint


def test_someone_elses_package_cannot_be_written(tmp_path: Path) -> None:
    with pytest.raises(ProofError, match=r"would not verify: reporter.card is not the card"):
        make(tmp_path, manifest=MALLORY_MANIFEST, card=OTHER.card())
    entries = [*ENTRIES[:3], LOG_.entry(MALLORY_REGISTERED)]
    with pytest.raises(ProofError, match=r"would not verify: .* registers another account"):
        make(tmp_path, manifest=MALLORY_MANIFEST, card=OTHER.card(), entries=entries)
    assert leftovers(tmp_path) == []


def _with_account_event(tmp_path: Path, event: dict[str, object]) -> Path:
    """A good package whose account entry a forger swapped for ``event``, logged too."""
    log = Log()
    good = log.append(_registered_event())
    forged = log.append(event)
    upload = log.append(_upload_event(ITEM_ID, ITEM))
    package = make(tmp_path, entries=[log.entry(good), log.entry(upload)])
    _drop(package, good)
    _put(package, log.entry(forged))
    rehash(package)
    return package


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"account": OTHER_ACCOUNT}, r"entries/1.json registers another account than the one"),
        ({"vault": OTHER_VAULT_ID}, r"entries/1.json registers an account with another vault"),
        ({"role": "editor"}, r"registers the uploading account with the role editor, not"),
        ({"role": None}, r"with the role invalid, not reporter"),
        ({"role": "Reporter\n"}, r"with the role invalid, not reporter"),
        ({"card_sha256": _card_sha256(OTHER.card())}, r"reporter.card is not the card that"),
        # The hash in another encoding is not the logged one.
        ({"card_sha256": _hex(REPORTER.card().to_json())}, r"reporter.card is not the card"),
        ({"card_sha256": None}, r"reporter.card is not the card that"),
        ({"account": 5}, r"entries/1.json names no valid account"),
    ],
)
def test_account_entry_that_does_not_match(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    package = _with_account_event(tmp_path, _registered_event(**changes))
    with pytest.raises(VaultError, match=message):
        verify_package(package, trusted_log_key=str(LOG.verifier()))


def test_account_entry_without_a_vault_verifies(tmp_path: Path) -> None:
    package = _with_account_event(tmp_path, _registered_event(vault=None))
    assert verify_package(package).reporter_account == ACCOUNT


def test_card_with_a_trailing_newline_is_not_the_registered_one(package: Path) -> None:
    (package / "reporter.card").write_bytes(REPORTER.card().to_json() + b"\n")
    rehash(package)
    with pytest.raises(VaultError, match=r"reporter.card"):
        verify_package(package)


def test_two_account_entries(package: Path) -> None:
    _put(package, LOG_.entry(MALLORY_REGISTERED))
    rehash(package)
    with pytest.raises(
        ProofError,
        match=rf"more than one account entry: entries {REGISTERED} and {MALLORY_REGISTERED}",
    ):
        verify_package(package)


def test_upload_entry_without_an_account(tmp_path: Path) -> None:
    log = Log()
    registered = log.append(_registered_event())
    event = _upload_event(ITEM_ID, ITEM)
    del event["account"]
    upload = log.append(event)
    with pytest.raises(FormatError, match=r"entries/1.json names no valid uploading account"):
        make(tmp_path, entries=[log.entry(registered), log.entry(upload)])


def test_readme_tells_how_to_check_the_card_against_the_log(package: Path) -> None:
    readme = (package / "README.txt").read_text("utf-8")
    assert f"Reporter account:    {ACCOUNT} (registered in log entry {REGISTERED})" in readme
    assert f"entries/{REGISTERED}.json is the\n   registration of the account" in readme
    assert "openssl dgst -sha256 -binary reporter.card | base64" in readme
    listed = rf"entries/{REGISTERED}\.json +log entry {REGISTERED}: account\.registered"
    assert re.search(listed, readme)


@pytest.mark.skipif(
    shutil.which("openssl") is None or shutil.which("base64") is None,
    reason="no openssl or base64 command",
)
def test_readme_card_command_runs(package: Path) -> None:
    # openssl dgst -sha256 -binary reporter.card | base64
    digest = subprocess.run(
        ["openssl", "dgst", "-sha256", "-binary", "reporter.card"],
        cwd=package,
        capture_output=True,
        check=True,
    )
    out = subprocess.run(["base64"], input=digest.stdout, capture_output=True, check=True)
    logged = canonical.loads((package / f"entries/{REGISTERED}.json").read_bytes())
    assert out.stdout.decode("ascii").strip() == logged["card_sha256"]


# item.age is read once --------------------------------------------------------------


class _Shifty(io.BytesIO):
    """item.age on a hostile device: other bytes once it has been read through."""

    def __init__(self, first: bytes, later: bytes) -> None:
        super().__init__(first)
        self._later = later

    def seek(self, offset: int, whence: int = 0) -> int:
        if self.tell() > 0:
            self.truncate(0)
            super().seek(0)
            self.write(self._later)
        return super().seek(offset, whence)


def test_item_is_read_once_so_a_second_read_cannot_earn_a_plaintext_check(
    package: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The logged ciphertext opens only for the reporter. The same plaintext,
    # encrypted to the court's key, must not pass for it.
    later = encrypt_bytes(PLAINTEXT, [EDITOR.recipient()])
    real_open = evidence._open
    opened: list[str] = []

    def hostile_open(root: Path, name: str) -> BinaryIO:
        if name != "item.age":
            return real_open(root, name)
        opened.append(name)
        return _Shifty(ITEM if len(opened) == 1 else later, later)

    monkeypatch.setattr(evidence, "_open", hostile_open)
    report = verify_package(package, identities=[EDITOR])
    assert opened == ["item.age"]
    assert not report.plaintext_checked
    assert "none of the keys given opens item.age" in dict(report.not_checked)["plaintext"]
    opened.clear()
    assert verify_package(package, identities=[REPORTER.age_identity]).plaintext_checked
    assert opened == ["item.age"]


def test_a_payload_that_fails_to_decrypt_is_still_hashed_first(package: Path) -> None:
    # Decryption stops at the damaged chunk; the hash of the whole file,
    # read on to the end, names the real problem.
    _flip(package / "item.age", len(HEADER) + 100)
    with pytest.raises(ProofError, match=r"item\.age was altered: its SHA-256"):
        verify_package(package, identities=[REPORTER.age_identity])


def test_a_logged_payload_that_does_not_decrypt(tmp_path: Path) -> None:
    # Signed and logged as it is, yet damaged: only decryption tells.
    damaged = bytearray(ITEM)
    damaged[len(HEADER) + 100] ^= 1
    blob = bytes(damaged)
    log = Log()
    registered = log.append(_registered_event())
    upload = log.append(_upload_event(ITEM_ID, blob))
    signed = _manifest(blob).sign(REPORTER)
    package = make(
        tmp_path, item=blob, manifest=signed, entries=[log.entry(registered), log.entry(upload)]
    )
    assert not verify_package(package).plaintext_checked
    with pytest.raises(ProofError, match=r"item.age does not decrypt with the given key"):
        verify_package(package, identities=[REPORTER.age_identity])


# layout ------------------------------------------------------------------------


def test_extra_unknown_file(package: Path) -> None:
    (package / "notes.txt").write_text("trust me")
    with pytest.raises(FormatError, match=r"unexpected file in the package: 'notes.txt' is not"):
        verify_package(package)
    rehash(package)
    with pytest.raises(
        FormatError, match=r"lists a path that is not part of a package: 'notes.txt'"
    ):
        verify_package(package)


def test_unexpected_directory(package: Path) -> None:
    (package / "entries" / "more").mkdir()
    with pytest.raises(FormatError, match=r"unexpected directory in the package: 'entries/more'"):
        verify_package(package)


def test_symlink(package: Path, tmp_path: Path) -> None:
    outside = tmp_path / "card-copy"
    shutil.move(package / "reporter.card", outside)
    (package / "reporter.card").symlink_to(outside)
    with pytest.raises(FormatError, match=r"the package holds a symbolic link: 'reporter.card'"):
        verify_package(package)


def test_symlinked_entries_directory(package: Path, tmp_path: Path) -> None:
    shutil.move(package / "entries", tmp_path / "elsewhere")
    (package / "entries").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FormatError, match=r"symbolic link: 'entries'"):
        verify_package(package)


def test_special_file(package: Path) -> None:
    os.mkfifo(package / "entries" / "9.json")
    with pytest.raises(FormatError, match=r"the package holds a special file: 'entries/9.json'"):
        verify_package(package)


def test_missing_file(package: Path) -> None:
    (package / f"entries/{SHARE}.proof").unlink()
    with pytest.raises(
        FormatError, match=rf"incomplete package: 'entries/{SHARE}.proof' is missing"
    ):
        verify_package(package)


def test_unpaired_entry(package: Path) -> None:
    (package / f"entries/{SHARE}.proof").unlink()
    rehash(package)
    with pytest.raises(FormatError, match=rf"entries/{SHARE}.proof is not listed"):
        verify_package(package)


@pytest.mark.parametrize(
    "path", ["../x", "/etc/passwd", "entries/../item.age", "entries/01.json", "./item.age", ""]
)
def test_index_lists_a_path_outside_the_format(package: Path, path: str) -> None:
    index = canonical.loads((package / "package.json").read_bytes())
    index["files"][path] = "0" * 64
    (package / "package.json").write_bytes(canonical.dumps(index))
    with pytest.raises(FormatError, match=r"lists a path that is not part of a package"):
        verify_package(package)


def _index_value(package: Path) -> dict[str, object]:
    value = canonical.loads((package / "package.json").read_bytes())
    assert isinstance(value, dict)
    return value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'{"v": 1}', "malformed package.json: invalid JSON: not in canonical form"),
        (b"[]", "malformed package.json: not an object"),
        (b'{"files":{},"item":"a","v":4,"vault":"b"}', "unsupported evidence package version"),
        (b'{"files":{},"item":"a","v":1,"vault":"b","x":0}', "unexpected or missing fields"),
        (b'{"files":{},"item":"a/b","v":1,"vault":"b"}', "invalid item id"),
        (b'{"files":[],"item":"a","v":1,"vault":"b"}', "files must be an object"),
        (b'{"files":{"log.key":"AB"},"item":"a","v":1,"vault":"b"}', "is not hex SHA-256"),
        (b'{"files":{},"item":"a","v":1,"vault":"b"}', "does not list README.txt"),
    ],
)
def test_malformed_index(package: Path, data: bytes, message: str) -> None:
    (package / "package.json").write_bytes(data)
    with pytest.raises(FormatError, match=message):
        verify_package(package)


def test_oversized_file(package: Path) -> None:
    (package / "manifest.json").write_bytes(b" " * (64 * 1024 + 1))
    rehash(package)
    with pytest.raises(FormatError, match=r"manifest.json is too large"):
        verify_package(package)


def test_not_a_package(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match=r"not a directory"):
        verify_package(tmp_path / "nothing")
    with pytest.raises(FormatError, match=r"package.json is missing"):
        verify_package(tmp_path)


def test_item_that_is_not_age(package: Path) -> None:
    (package / "item.age").write_bytes(b"hello")
    rehash(package)
    with pytest.raises(FormatError, match=r"item.age is not a binary age v1 file"):
        verify_package(package)


# writing -----------------------------------------------------------------------


def test_refuses_a_non_empty_directory_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "package"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"is not empty"):
        make(tmp_path)
    assert leftovers(tmp_path) == ["package"]
    assert leftovers(target) == ["keep.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match=r"exists and is not a directory"):
        write_package(
            tmp_path / "file",
            item=io.BytesIO(ITEM),
            manifest=SIGNED,
            card=REPORTER.card(),
            log_key=str(LOG.verifier()),
            entries=ENTRIES,
        )
    assert leftovers(tmp_path) == ["file", "package"]


def test_a_full_disk_is_said_with_the_room_left_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes) -> str:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(evidence, "_write", full)
    with pytest.raises(
        ConfigError,
        match=rf"^no room left in {re.escape(str(tmp_path))} for "
        r"package \([\d.]+ [KMGT]?i?B free\)$",
    ):
        make(tmp_path)
    assert leftovers(tmp_path) == []


def test_writes_into_an_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "package").mkdir()
    verify_package(make(tmp_path))
    assert leftovers(tmp_path) == ["package"]


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {"card": OTHER.card()},
            SignatureError,
            "would not verify: manifest.json is not signed by the reporter",
        ),
        ({"log_key": str(ROGUE.verifier())}, SignatureError, "checkpoint is not signed"),
        ({"log_key": "nonsense"}, FormatError, "the log key is not a log verifier key"),
        ({"item": OTHER_ITEM}, ProofError, "the payload hash does not match"),
        ({"item": b"not age"}, FormatError, "not a binary age v1 file"),
        ({"entries": ENTRIES[1:]}, ProofError, "no upload entry"),
        ({"entries": [*ENTRIES, LOG_.entry(OTHER_UPLOAD)]}, ProofError, "about another item"),
        ({"entries": [*ENTRIES, ENTRIES[0]]}, FormatError, "repeated log entry index"),
        (
            {
                "entries": [
                    ENTRIES[0],
                    LOG_.entry(REGISTERED),
                    (DOWNLOAD, LOG_.leaves[DOWNLOAD], LOG_.receipt(SHARE)),
                ]
            },
            ProofError,
            "receipt of another entry",
        ),
        ({"entries": ENTRIES[:3]}, ProofError, "no account entry"),
        (
            {"entries": [*ENTRIES, LOG_.entry(MALLORY_REGISTERED)]},
            ProofError,
            rf"more than one account entry: entries {REGISTERED} and {MALLORY_REGISTERED}",
        ),
    ],
)
def test_bad_inputs_leave_nothing(
    tmp_path: Path, changes: dict[str, object], error: type[VaultError], message: str
) -> None:
    with pytest.raises(error, match=message):
        make(tmp_path, **changes)
    assert leftovers(tmp_path) == []


class _PipeReader(io.RawIOBase):
    """A stream that cannot seek, like a download in progress."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._data.read(min(len(buffer), 4096))
        buffer[: len(data)] = data
        return len(data)


def test_item_is_streamed_from_a_pipe(tmp_path: Path) -> None:
    directory = tmp_path / "package"
    write_package(
        directory,
        item=io.BufferedReader(_PipeReader(ITEM)),
        manifest=SIGNED,
        card=REPORTER.card(),
        log_key=str(LOG.verifier()),
        entries=ENTRIES,
    )
    assert (directory / "item.age").read_bytes() == ITEM


# version 3: a disclosure instead of the manifest --------------------------------------


def _disclosed(reveal: Reveal, identity: PersonalIdentity = REPORTER) -> SignedDisclosure:
    return Disclosure.of(_manifest(signer=identity.card().signing_key), reveal).sign(identity)


def test_a_package_for_someone_else_leaves_the_note_out_and_says_what_it_reveals(
    tmp_path: Path,
) -> None:
    """A disclosure without the note: version 3, disclosure.json, and the note nowhere."""
    note = _manifest().note.encode()
    disclosed = make(tmp_path, manifest=_disclosed(Reveal(name=True, time=True, note=False)))
    names = {p.relative_to(disclosed).as_posix() for p in disclosed.rglob("*") if p.is_file()}
    assert "disclosure.json" in names
    assert "manifest.json" not in names
    assert canonical.loads((disclosed / "package.json").read_bytes())["v"] == 3
    for path in disclosed.rglob("*"):
        if path.is_file():
            assert note not in path.read_bytes(), path
    report = verify_package(
        disclosed,
        trusted_log_key=str(LOG.verifier()),
        trusted_card=REPORTER.card(),
        identities=[REPORTER.age_identity],
    )
    assert report.filename == FILENAME
    assert report.note is None
    assert report.plaintext_checked
    assert "not the reporter's note: it was left out of this package" in report.reveals
    readme = (disclosed / "README.txt").read_text()
    assert "WHAT THIS PACKAGE REVEALS" in readme
    assert "not the reporter's note: it was left out of this package" in readme
    assert '"evidence-vault/disclosure"' in readme
    assert "the account ids of the 1 editor(s) it was shared with" in readme

    # The manifest's own package says it holds the note.
    (tmp_path / "full").mkdir()
    full = make(tmp_path / "full")
    report = verify_package(full, trusted_log_key=str(LOG.verifier()))
    assert report.note == "from the harbour office"
    assert 'the reporter\'s note "from the harbour office"' in report.reveals
    assert canonical.loads((full / "package.json").read_bytes())["v"] == 1


def test_a_disclosure_may_withhold_the_name_and_time_too(tmp_path: Path) -> None:
    disclosed = make(tmp_path, manifest=_disclosed(Reveal(name=False, time=False, note=False)))
    report = verify_package(disclosed, trusted_log_key=str(LOG.verifier()))
    assert (report.filename, report.captured_at, report.note) == (None, None, None)
    assert FILENAME.encode() not in (disclosed / "README.txt").read_bytes()
    assert "Original filename:   withheld by the reporter" in (disclosed / "README.txt").read_text()


def test_a_version_3_package_is_checked_like_the_others(tmp_path: Path) -> None:
    disclosed = make(tmp_path, manifest=_disclosed(Reveal(name=True, time=True, note=False)))

    def refused(change: Callable[[Path], None], message: str) -> None:
        copy = tmp_path / f"copy-{len(list(tmp_path.iterdir()))}"
        shutil.copytree(disclosed, copy)
        change(copy)
        rehash(copy)
        with pytest.raises(VaultError, match=message):
            verify_package(copy, trusted_log_key=str(LOG.verifier()), trusted_card=REPORTER.card())

    # Signed by someone else, or with the note "turned on" afterwards.
    refused(
        lambda d: (d / "disclosure.json").write_bytes(
            _disclosed(Reveal(name=True, time=True, note=False), OTHER).to_json()
        ),
        "disclosure.json is not signed by the reporter",
    )

    def add_note(d: Path) -> None:
        value = canonical.loads((d / "disclosure.json").read_bytes())
        value["note"] = "invented"
        (d / "disclosure.json").write_bytes(canonical.dumps(value))

    refused(add_note, "disclosure.json is not signed by the reporter")
    # A manifest.json slipped in, or the disclosure swapped for it.
    refused(
        lambda d: (d / "manifest.json").write_bytes(SIGNED.to_json()),
        "not part of a package",
    )

    def as_manifest(d: Path) -> None:
        (d / "disclosure.json").rename(d / "manifest.json")

    refused(as_manifest, "not part of a package")
