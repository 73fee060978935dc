"""What a release makes public, and the disclosures that say so (:mod:`vault.disclosure`).

When a release is published, anyone can decrypt the files of the release set
with the published key, and read everything else encrypted to that key.
So the client never encrypts a manifest (file name, capture time, note) to
the release recipient: each item of the release set gets a disclosure
instead, signed by the reporter, holding only what the reporter chose to
publish, and encrypted to the reporter and the release recipient.

:func:`public_facts` says in plain words what a release will make public
about the reporter and the items, for the commands to show before arming
and before each upload into the release set.
"""

from __future__ import annotations

from client import recipients
from client.context import Client
from vault import age
from vault.disclosure import Disclosure, Reveal, SignedDisclosure
from vault.errors import ManifestError
from vault.keys import PersonalIdentity
from vault.manifest import Manifest

__all__ = ["public_facts", "seal_disclosure", "sign_disclosure", "withheld"]


def _signer(client: Client, manifest: Manifest) -> PersonalIdentity:
    """The identity whose key signed ``manifest``: the unlocked one, or its duress twin.

    A file added under duress is signed by the duress twin; its disclosure is
    signed by the twin too, so that a release shows it as it always did: not
    signed by the reporter's registered key.
    """
    identity = client.identity
    if manifest.signer == identity.card().signing_key:
        return identity
    twin = identity.duress_twin()
    if manifest.signer == twin.card().signing_key:
        return twin
    raise ManifestError("this item's manifest was signed by a key this device does not hold")


def sign_disclosure(client: Client, manifest: Manifest, reveal: Reveal) -> SignedDisclosure:
    """What ``reveal`` shows of ``manifest``, signed by the key that signed the manifest.

    Raises:
        ManifestError: the manifest was signed by a key this device does not hold.
    """
    return Disclosure.of(manifest, reveal).sign(_signer(client, manifest))


def seal_disclosure(
    client: Client, manifest: Manifest, reveal: Reveal, release: age.X25519Recipient
) -> bytes:
    """The item's disclosure, signed and encrypted to this account and the release recipient.

    Raises:
        ManifestError: the manifest was signed by a key this device does not hold.
    """
    signer = _signer(client, manifest)
    signed = Disclosure.of(manifest, reveal).sign(signer)
    # To whoever signed it (a decoy's to the decoy identity), and the release recipient.
    return recipients.encrypt(signed.to_json(), [signer.card().age_recipient()], release)


def withheld(reveal: Reveal, *, has_note: bool) -> list[str]:
    """What ``reveal`` keeps private, in words (a file without a note keeps no note)."""
    kept = []
    if not reveal.name:
        kept.append("the file name")
    if not reveal.time:
        kept.append("the capture time")
    if not reveal.note and has_note:
        kept.append("the note")
    return kept


def public_facts(reporter: str, count: int | None) -> list[str]:
    """What a release of ``count`` files (None: not known yet) makes public whatever is chosen."""
    files = "these files" if count is None else f"these {count} file(s)"
    return [
        f"When the release happens, anyone can read on its public page, and decrypt with the "
        f"published key, the contents of {files}, their sizes, types and hashes, "
        f"your signature on them, and your name as on your card ({reporter}) with your "
        "fingerprint.",
        "For each file you choose whether the page also shows its name, its capture time "
        "and its note. Notes stay private unless you say so.",
    ]
