"""Evidence packages: one item with its signed description and the log entries that prove it.

What `evault export` writes and the app's export page offers, made once here: anyone can check a
package offline with `evault verify`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from client import items as item_service
from client.audit import Event, read_log, receipt_for
from client.context import Client
from client.disclosure import sign_disclosure
from client.items import check_item_id
from vault.disclosure import DEFAULT_REVEAL, SignedDisclosure
from vault.errors import ConfigError, ProofError
from vault.evidence import write_package
from vault.manifest import SignedManifest
from vault.note import Checkpoint, Note

__all__ = ["Package", "export_item"]


@dataclass(frozen=True)
class Package:
    """An evidence package written."""

    path: Path
    entries: list[int]
    """The log entries it carries, by index."""
    with_note: bool
    """Whether it holds the signed manifest, note included (else a signed disclosure)."""
    had_note: bool
    """Whether the item has a note at all."""


def export_item(client: Client, item: str, output: Path, *, with_note: bool = False) -> Package:
    """Write the evidence package of ``item`` into ``output``, a new directory.

    The note is left out unless ``with_note``: the reporter's client signs a
    disclosure of the rest (a package is made for someone else).

    Raises:
        ConfigError: a package without the note that only the reporter can make.
        ProofError: the log or the server contradicts the item.
    """
    check_item_id(item)
    found = item_service.signed_item(client, item)
    meta = found.meta
    described: SignedManifest | SignedDisclosure = found.signed
    if not with_note:
        if found.pinned is None:
            # The name and capture time, as a release shows them by default.
            described = sign_disclosure(client, found.manifest, DEFAULT_REVEAL)
        elif found.manifest.note:
            raise ConfigError(
                "this item's signed manifest holds the reporter's note, and only the "
                "reporter can make a package that leaves it out",
                hint="ask the reporter for a package, or give --with-note to put the note in it",
            )
    checkpoint, events = read_log(client, keep=lambda event: _kept_for_export(item, event))
    note = client.log.note
    if note is None:
        raise ProofError("no verified checkpoint to prove the log entries against")
    about = [e for e in events if e.event.get("type") != _REGISTERED]
    uploads = [e for e in about if e.event.get("type") == "item.uploaded"]
    if not uploads:
        raise ProofError("the log has no upload entry for this item")
    # The package carries the uploader's registration: it logs the hash of
    # the card, so the log itself says whose key signed the manifest.
    uploader = uploads[0].event.get("account")
    if uploader != meta["owner"]:
        raise ProofError(
            "the log's upload entry names another account than the server's item owner",
            hint="the server contradicts its own log; do not trust it",
        )
    registrations = [
        e
        for e in events
        if e.event.get("type") == _REGISTERED and e.event.get("account") == uploader
    ]
    if not registrations:
        raise ProofError("the log has no registration of the account that uploaded this item")
    # The receipts each write was answered with, as the server kept them for the item.
    kept = (
        {e.index: (e.data, e.receipt) for e in item_service.logged_entries(client, item)}
        if meta["owner"] == client.account
        else {}
    )
    cosigned = client.log.cosigned_note
    if cosigned is not None:
        # With pinned witnesses, every receipt is made against the checkpoint they
        # cosigned, so the package carries their cosignatures (docs/protocol.md §15).
        witnessed = Checkpoint.parse(Note.parse(cosigned).text)
        entries = [
            (e.index, e.data, receipt_for(client, witnessed, cosigned, e))
            for e in sorted([*about, *registrations], key=lambda e: e.index)
        ]
    else:
        entries = [
            (e.index, e.data, _receipt(client, checkpoint, note, e, kept.get(e.index)))
            for e in sorted([*about, *registrations], key=lambda e: e.index)
        ]
    chain = client.log.package_chain([receipt for _, _, receipt in entries])
    with item_service.content(client, found) as download:
        write_package(
            output,
            item=download,  # type: ignore[arg-type]
            manifest=described,
            card=found.card,
            log_key=str(client.log.verifier),
            entries=entries,
            key_chain=chain,
        )
    return Package(
        path=output,
        entries=[e[0] for e in entries],
        with_note=isinstance(described, SignedManifest),
        had_note=bool(found.manifest.note),
    )


_REGISTERED = "account.registered"


def _kept_for_export(item: str, event: dict[str, object]) -> bool:
    """Whether ``event`` may go into the package of ``item``.

    Every registration is kept: the uploader is known only from the upload
    entry, which comes after its account's registration in the log.
    """
    kind = event.get("type")
    if kind == _REGISTERED:
        return True
    return kind in ("item.uploaded", "item.shared") and event.get("item") == item


def _receipt(
    client: Client,
    checkpoint: Checkpoint,
    note: bytes,
    event: Event,
    kept: tuple[bytes, bytes] | None,
) -> bytes:
    """The receipt the write of ``event`` was answered with, else one made now.

    That receipt is the log's answer at the time, perhaps signed by a log
    key since retired (the package then carries the key chain); it was
    checked against the pinned log when the server gave it again.
    """
    if kept is not None and kept[0] == event.data:
        return kept[1]
    return receipt_for(client, checkpoint, note, event)
