"""What every view uses: strict reading of requests, the database session, the log key.

Query values are ASCII decimal without sign, spaces, underscores or leading
zeros; ``int()`` alone would take ``+1``, `` 1`` and ``1_0``. Unknown or
repeated parameters are refused, so one request has one meaning.

A response to a write carries the write's log entry twice over
(:func:`receipt_fields`): ``receipt``, the C2SP tlog-proof, and ``entry``,
the exact leaf bytes it proves, so a client checks what was logged without
guessing the ``time`` the server added; and the answer to an upload's
commit, asked with the request header ``Evault-Log-Size``, the consistency
proof from the client's newest verified checkpoint to the receipt's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from flask import current_app, g, request
from sqlalchemy.orm import Session

from server.errors import ApiError
from server.keyfile import load_key_file
from server.services.log import Appended, consistency_proof, receipt
from server.storage import BlobStore
from vault._base64 import b64encode
from vault.note import NoteSigner

if TYPE_CHECKING:
    from server.app import AppState

__all__ = [
    "LOG_SIZE_HEADER",
    "app_state",
    "blob_store",
    "db_session",
    "json_body",
    "log_signer",
    "optional_json_body",
    "query_ints",
    "receipt_fields",
    "receipt_text",
    "seen_log_size",
    "string_fields",
]

_DECIMAL = re.compile(r"0|[1-9][0-9]{0,17}")
LOG_SIZE_HEADER = "Evault-Log-Size"
"""Request header: the size of the newest log checkpoint the client verified."""


def query_ints(
    required: Collection[str], optional: Collection[str] = (), text: Collection[str] = ()
) -> dict[str, int]:
    """The query parameters as non-negative integers below 10^18 (they fit a BIGINT).

    Parameters named in ``text`` are allowed once each and left for the caller.

    Raises:
        ApiError: 400 for a missing, unknown, repeated or malformed parameter.
    """
    allowed = set(required) | set(optional)
    for name in request.args:
        if name not in allowed and name not in text:
            raise ApiError.bad_request(f"unknown query parameter {name!r}")
    for name in text:
        if len(request.args.getlist(name)) > 1:
            raise ApiError.bad_request(f"query parameter {name!r} given more than once")
    values: dict[str, int] = {}
    for name in sorted(allowed):
        given = request.args.getlist(name)
        if not given:
            if name in required:
                raise ApiError.bad_request(f"missing query parameter {name!r}")
            continue
        if len(given) > 1:
            raise ApiError.bad_request(f"query parameter {name!r} given more than once")
        if not _DECIMAL.fullmatch(given[0]):
            raise ApiError.bad_request(f"query parameter {name!r} is not a non-negative integer")
        values[name] = int(given[0])
    return values


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def json_body() -> dict[str, Any]:
    """The request body as a JSON object.

    Raises:
        ApiError: 400 for a body that is not a UTF-8 JSON object; 415 for
            another content type. Too large a body is a 413 before this runs.
    """
    if request.mimetype != "application/json":
        raise ApiError(415, "unsupported_media_type", "the body must be application/json")
    data = request.get_data(cache=False)
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_no_constant,
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: a body of thousands of nested brackets.
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object")
    return value


def optional_json_body() -> dict[str, Any] | None:
    """The request body as a JSON object, or ``None`` for an empty body of any type.

    Raises:
        ApiError: as :func:`json_body` for a body that is not empty.
    """
    # Cached, so json_body reads the same bytes; the size is bounded as for any body.
    if not request.get_data(cache=True):
        return None
    return json_body()


def db_session() -> Session:
    """This request's database session, closed when the request ends."""
    session: Session | None = g.get("db_session")
    if session is None:
        session = current_app.extensions["evault"].sessions()
        g.db_session = session
    return session


def app_state() -> AppState:
    """The application's configuration, database and rate limiter."""
    state: AppState = current_app.extensions["evault"]
    return state


def blob_store() -> BlobStore:
    """The application's blob store."""
    return app_state().store


def log_signer() -> NoteSigner:
    """The log key, read from the key file for an operation that signs."""
    return load_key_file(app_state().config.key_file).log_signer


def receipt_text(appended: Appended) -> str:
    """The C2SP tlog-proof of a new entry against the checkpoint signed with it."""
    proof = receipt(db_session(), appended.entry.idx, appended.checkpoint, appended.hashes)
    return proof.marshal().decode("utf-8")


def seen_log_size() -> int | None:
    """The request's :data:`LOG_SIZE_HEADER`, if any: call it before a write, to refuse early.

    Raises:
        ApiError: 400 for a value that is not a decimal as query values are, or a repeated one.
    """
    given = request.headers.getlist(LOG_SIZE_HEADER)
    if not given:
        return None
    if len(given) > 1 or not _DECIMAL.fullmatch(given[0]):
        raise ApiError.bad_request(f"header {LOG_SIZE_HEADER} must be one non-negative integer")
    return int(given[0])


def receipt_fields(appended: Appended, *, consistency: bool = False) -> dict[str, object]:
    """``{"receipt", "entry"}`` of a new log entry, for a response to the write it records.

    ``receipt`` is :func:`receipt_text`; ``entry`` is standard padded base64
    of the leaf bytes, the canonical JSON event exactly as logged (with the
    ``time`` the log added), whose RFC 6962 leaf hash the receipt proves
    (:func:`vault.note.verify_receipt`). With ``consistency``, when the request
    names the size of the newest checkpoint its client verified (header
    :data:`LOG_SIZE_HEADER`, read with :func:`seen_log_size` before the write)
    and the receipt's tree is larger, ``consistency`` is the RFC 9162 proof
    from that size to the receipt's, ``{"old", "new", "proof"}``: the client
    checks it as it would one it asked ``GET /log/proof/consistency`` for,
    one request fewer per write. Call it before the commit.
    """
    fields: dict[str, object] = {
        "receipt": receipt_text(appended),
        "entry": b64encode(appended.entry.data),
    }
    seen = seen_log_size() if consistency else None
    if seen is not None:
        old, new = seen, appended.checkpoint.size
        if 0 < old < new:
            proof = consistency_proof(db_session(), old, new, appended.hashes)
            fields["consistency"] = {
                "old": old,
                "new": new,
                "proof": [b64encode(node) for node in proof],
            }
    return fields


def string_fields(
    body: dict[str, Any], required: Collection[str], optional: Collection[str] = ()
) -> dict[str, str]:
    """The body's fields, all strings, with no field missing or unknown.

    Raises:
        ApiError: 400 for a missing, unknown or non-string field.
    """
    allowed = set(required) | set(optional)
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise ApiError.bad_request(f"unknown field {unknown[0]!r}")
    for name in sorted(required):
        if name not in body:
            raise ApiError.bad_request(f"missing field {name!r}")
    for name, value in body.items():
        if not isinstance(value, str):
            raise ApiError.bad_request(f"field {name!r} must be a string")
    return dict(body)
