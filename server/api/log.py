"""The public audit log: its key, checkpoint, entries and proofs (no authentication).

- ``GET /api/v1/log/key``: ``{"origin": the checkpoint origin line, "key":
  the C2SP note verifier key, "fingerprint": eight groups of four hex
  digits}``, exactly as ``evault-server keys show`` prints them, so a client
  can pin the key on first use and a person can compare the fingerprint
  with the operator's out of band.
- ``GET /api/v1/log/keys``: ``{"keys": [...]}``, the log's keys oldest first,
  each ``{"key", "fingerprint", "first_size", "last_size", "transition"}``:
  the tree sizes it signs (``last_size`` null for the current key) and the
  transition checkpoint, signed by it and the next key, that hands the log
  over (null for the current key). See docs/protocol.md, "Log key rotation".
- ``GET /api/v1/log/checkpoint``: the latest signed checkpoint, ``text/plain``
  (a C2SP signed note) with the cosignatures of the witnesses that cosigned
  it after the log's signature; 404 while the log is empty. With
  ``?cosignatures=K``: the newest checkpoint that has at least K
  cosignatures (404 if none), for clients that require them (§15).
- ``GET /api/v1/log/entries?start=&end=``: entries ``[start, end)`` with their
  exact bytes (base64), at most :data:`MAX_ENTRIES_PAGE` per response.
- ``GET /api/v1/log/proof/inclusion?index=&size=``
- ``GET /api/v1/log/proof/consistency?old=&new=``

Proofs are RFC 9162 proofs as lists of base64 hashes. Sizes are bounded by
the latest signed checkpoint, so every proof is against a signed root.
"""

from __future__ import annotations

import base64

from flask import Blueprint, Response

from server.api._request import db_session, log_signer, query_ints
from server.errors import ApiError
from server.keyfile import fingerprint
from server.services import cosigning, log
from server.services.log import MAX_ENTRIES_PAGE
from vault.note import NoteVerifier

__all__ = ["log_api"]

log_api = Blueprint("log", __name__)

JsonObject = dict[str, object]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _signed_size() -> int:
    checkpoint = log.latest_checkpoint(db_session())
    return 0 if checkpoint is None else checkpoint.size


@log_api.get("/key")
def key() -> JsonObject:
    """The log's verifier key, its origin and its fingerprint."""
    query_ints(required=())
    verifier = log_signer().verifier()
    return {"origin": verifier.name, "key": str(verifier), "fingerprint": fingerprint(verifier)}


@log_api.get("/keys")
def keys() -> JsonObject:
    """The log's key history, oldest first, with the checkpoints that hand over between keys."""
    query_ints(required=())
    history = log.key_history(db_session())
    if not history:
        # No append or rotation since the key history began: the key file's key
        # has signed every checkpoint.
        verifier = log_signer().verifier()
        return {"keys": [_key(str(verifier), 0, None, None)]}
    return {
        "keys": [_key(row.key, row.first_size, row.last_size, row.transition) for row in history]
    }


def _key(text: str, first: int, last: int | None, transition: str | None) -> JsonObject:
    return {
        "key": text,
        "fingerprint": fingerprint(NoteVerifier.parse(text)),
        "first_size": first,
        "last_size": last,
        "transition": transition,
    }


@log_api.get("/checkpoint")
def checkpoint() -> Response:
    """The latest signed checkpoint with its cosignatures, or the newest with enough of them."""
    args = query_ints(required=(), optional=("cosignatures",))
    session = db_session()
    wanted = args.get("cosignatures")
    if wanted is None or wanted == 0:
        latest = log.latest_checkpoint(session)
        if latest is None:
            raise ApiError.not_found("the log is empty: no checkpoint yet")
    else:
        latest = cosigning.checkpoint_with_cosignatures(session, wanted)
        if latest is None:
            raise ApiError.not_found(f"no checkpoint has {wanted} cosignatures yet")
    return Response(cosigning.cosigned_note(session, latest), mimetype="text/plain")


@log_api.get("/entries")
def entries() -> JsonObject:
    """Entries ``[start, end)`` of the signed log; fewer if the page is full."""
    args = query_ints(required=("start",), optional=("end",))
    size = _signed_size()
    start = args["start"]
    end = args.get("end", min(size, start + MAX_ENTRIES_PAGE))
    if start >= end:
        raise ApiError.bad_request("start must be below end")
    if end > size:
        raise ApiError.bad_request(f"end {end} is beyond the signed log of {size} entries")
    rows = log.entries(db_session(), start, end)
    return {
        "entries": [
            {"index": row.idx, "data": _b64(row.data), "leaf_hash": _b64(row.leaf_hash)}
            for row in rows
        ],
        "size": size,
    }


@log_api.get("/proof/inclusion")
def inclusion_proof() -> JsonObject:
    """The inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    args = query_ints(required=("index", "size"))
    index, size = args["index"], args["size"]
    if index >= size:
        raise ApiError.bad_request("index must be below size")
    if size > _signed_size():
        raise ApiError.bad_request(f"size {size} is beyond the signed log")
    proof = log.inclusion_proof(db_session(), index, size)
    return {"index": index, "size": size, "proof": [_b64(node) for node in proof]}


@log_api.get("/proof/consistency")
def consistency_proof() -> JsonObject:
    """The consistency proof between the trees of ``old`` and ``new`` leaves."""
    args = query_ints(required=("old", "new"))
    old, new = args["old"], args["new"]
    if old == 0 or old > new:
        raise ApiError.bad_request("old must be at least 1 and at most new")
    if new > _signed_size():
        raise ApiError.bad_request(f"new size {new} is beyond the signed log")
    proof = log.consistency_proof(db_session(), old, new)
    return {"old": old, "new": new, "proof": [_b64(node) for node in proof]}
