"""``GET /api/v1/openapi.json``: the OpenAPI 3.1 description of the API.

The document is written by hand next to the code it describes and kept
truthful by ``tests/server/test_openapi.py``, which fails on an endpoint the
document does not list, a documented path the app does not serve, and a real
response that does not match its documented schema.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from vault import __version__

__all__ = ["DOCUMENT", "openapi"]

openapi = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/schemas/Error"}
_B64 = {"type": "string", "contentEncoding": "base64"}
_COUNT = {"type": "integer", "minimum": 0}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _query(name: str, description: str, *, required: bool = True) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$"},
    }


_PROOF = {
    "type": "array",
    "items": _B64,
    "description": "RFC 9162 proof: base64 SHA-256 hashes, bottom up",
}

_ACCOUNT = {"$ref": "#/components/schemas/Account"}
_PEER_IDENTITY = {
    "type": "object",
    "properties": {
        "url": {"type": "string"},
        "peer_key": {"type": "string"},
        "log_key": {"type": "string"},
    },
    "required": ["url", "peer_key", "log_key"],
    "additionalProperties": False,
}
_PEER_HELLO = {
    "type": "object",
    "properties": {"from": _PEER_IDENTITY, "to": _PEER_IDENTITY},
    "required": ["from", "to"],
    "additionalProperties": False,
}
_ACCOUNT_ID = {"type": "string", "pattern": "^[0-9a-f]{32}$"}
_RECEIPT = {
    "type": "string",
    "description": "C2SP tlog-proof: the new entry's index, inclusion proof and signed checkpoint",
}
_ENTRY = {
    **_B64,
    "description": (
        "the exact bytes of the log entry the receipt proves (a canonical JSON event, "
        "with the time the log added); its RFC 6962 leaf hash verifies against the receipt"
    ),
}
_UNIX_TIME = {"type": "integer", "minimum": 0, "description": "Unix seconds"}


_HEX_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_RANGES = {
    "type": "array",
    "items": {"type": "array", "items": _COUNT, "minItems": 2, "maxItems": 2},
    "description": "half-open byte ranges [start, end), sorted",
}
_UPLOAD = {"$ref": "#/components/schemas/Upload"}
_ITEM = {"$ref": "#/components/schemas/Item"}
_UPLOAD_ID = {
    "name": "upload_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_-]{16,64}$"},
}
_ETAG = {
    "description": "a strong entity tag of the file, for If-Range",
    "schema": {"type": "string", "pattern": '^"[0-9a-f]{32}"$'},
}
_ITEM_ID = {"name": "item_id", "in": "path", "required": True, "schema": _ACCOUNT_ID}
_PERSON = {"$ref": "#/components/schemas/Person"}
_MANIFEST = {
    **_B64,
    "description": (
        "an encrypted manifest: a whole binary age v1 file (canonical header, then at least "
        "the payload nonce and one tag) of at most 64 KiB"
    ),
}
_AUTH_ERRORS = {
    "401": _error("no valid bearer token"),
    "403": _error("the account's role may not do this"),
}
_BINARY = {"type": "string", "contentMediaType": "application/octet-stream"}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _object(
    properties: dict[str, Any], *, optional: tuple[str, ...] = (), **extra: Any
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [name for name in properties if name not in optional],
        "additionalProperties": False,
        **extra,
    }


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [{"type": "null"}, schema]}


_UPLOAD_FIELDS = {
    "id": {"type": "string"},
    "item": {
        **_nullable(_ACCOUNT_ID),
        "description": "the reserved item id; null for an older server's session",
    },
    "size": _COUNT,
    "sha256": {
        **_nullable(_HEX_SHA256),
        "description": "the declared SHA-256; null if it comes with the commit",
    },
    "expires_at": _UNIX_TIME,
    "received": _RANGES,
    "missing": _RANGES,
}


_ITEM_FIELDS: dict[str, Any] = {
    "id": _ACCOUNT_ID,
    "vault": _ACCOUNT_ID,
    "owner": {**_ACCOUNT_ID, "description": "the owning reporter's account id"},
    "sha256": {**_HEX_SHA256, "description": "SHA-256 of the payload"},
    "size": {**_COUNT, "description": "payload bytes"},
    "header_sha256": _HEX_SHA256,
    "header_size": _COUNT,
    "manifest_sha256": {
        **_nullable(_HEX_SHA256),
        "description": "SHA-256 of the encrypted manifest; null if none",
    },
    "manifest_size": {
        "oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1}],
        "description": "bytes of the encrypted manifest; null if none",
    },
    "disclosure_sha256": {
        **_nullable(_HEX_SHA256),
        "description": (
            "SHA-256 of the encrypted disclosure (what a release may publish); "
            "null outside the release set and for items armed before "
            "disclosures"
        ),
    },
    "disclosure_size": {
        "oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1}],
        "description": "bytes of the encrypted disclosure; null if none",
    },
    "created_at": _UNIX_TIME,
    "release_set": {"type": "boolean"},
    "released_in": {
        "oneOf": [{"type": "null"}, {"type": "integer", "minimum": 1}],
        "description": (
            "the number of the vault's release that published the item; null "
            "while unpublished. A published item joins no later release set"
        ),
    },
    "shared_with": {"type": "array", "items": _ACCOUNT_ID},
}


_TIME = {
    "type": "string",
    "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$",
    "description": "ISO 8601 UTC time to the second",
}
_VAULT_ID = {"name": "vault_id", "in": "path", "required": True, "schema": {"type": "string"}}
_POLICY = {"$ref": "#/components/schemas/Policy"}
_CONTACT_EXTRAS: dict[str, Any] = {
    "age": {
        "type": "string",
        "description": "an age recipient (age1… or age1pq1…) the notice's details are encrypted to",
    },
    "name": {
        "type": "string",
        "minLength": 1,
        "maxLength": 128,
        "description": "how the notice's details name the reporter to this contact",
    },
}
_COMMITMENT = {"$ref": "#/components/schemas/Commitment"}
_CHANGE = {"$ref": "#/components/schemas/Change"}
_CUSTODIAN = {
    "oneOf": [{"const": "server"}, _ACCOUNT_ID],
    "description": "`server`, or the account id of a trustee (an editor)",
}
_SECONDS = {"type": "integer", "minimum": 0, "description": "seconds"}
_ITEM_IDS = {"type": "array", "items": _ACCOUNT_ID, "maxItems": 10000}
_CONTACTS = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/Contact"},
    "maxItems": 16,
}
_CONTACTS_SHOWN = {"type": "array", "items": {"$ref": "#/components/schemas/ContactShown"}}
_CHANGE_ANSWER = _object(
    {
        "status": {"const": "pending"},
        "change": _CHANGE,
        "receipt": _RECEIPT,
        "entry": {**_ENTRY, "description": "the logged change.requested event"},
    }
)


DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Evidence Vault API",
        "version": __version__,
        "description": (
            "The server stores only ciphertext and writes every event into an append-only "
            "Merkle log (RFC 9162) whose checkpoints are C2SP signed notes. Every error is "
            '`{"error": code, "message": text}`.'
        ),
    },
    "servers": [{"url": "/"}],
    "paths": {
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "The process answers and the migrated database is reachable",
                "security": [],
                "responses": {
                    "200": _json(
                        "healthy",
                        {
                            "type": "object",
                            "properties": {"status": {"const": "ok"}},
                            "required": ["status"],
                            "additionalProperties": False,
                        },
                    ),
                    "503": _error("the database is unavailable or not migrated"),
                },
            }
        },
        "/api/v1/peer/hello": {
            "post": {
                "operationId": "peerHello",
                "summary": "Peer handshake: confirm a pinned peer that pinned this server",
                "description": (
                    "Server to server only, signed with RFC 9421 HTTP message signatures "
                    "(Ed25519, the peer key; docs/protocol.md §14). The answer is signed by "
                    "this server over the status, its body's Content-Digest and the request's "
                    "method, target URI and signature."
                ),
                "security": [],
                "requestBody": _body(_PEER_HELLO),
                "responses": {
                    "200": _json("the pairing is active on this server", _PEER_HELLO),
                    "401": _error("not signed as required, expired, replayed or unknown key"),
                    "403": _error("the peer pinned other keys or URLs for this server"),
                    "429": _error("too many refused requests"),
                    "503": _error("this server has no peer key"),
                },
            },
            "get": {
                "operationId": "peerStatus",
                "summary": "How this server sees a confirmed peer (signed like the handshake)",
                "security": [],
                "responses": {
                    "200": _json("the pinned identities of both sides", _PEER_HELLO),
                    "401": _error("not signed as required, expired, replayed or unknown key"),
                    "403": _error("the peer is not confirmed"),
                    "429": _error("too many refused requests"),
                    "503": _error("this server has no peer key"),
                },
            },
        },
        "/api/v1/witness/add-checkpoint": {
            "post": {
                "operationId": "witnessAddCheckpoint",
                "summary": "Witness: cosign a peer's checkpoint that extends the last one cosigned",
                "description": (
                    "C2SP tlog-witness add-checkpoint (docs/protocol.md §15). Not authenticated "
                    "beyond the log's signature; only the logs of active peers are witnessed."
                ),
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "responses": {
                    "200": {
                        "description": "the cosignature line (C2SP tlog-cosignature, Ed25519)",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "400": _text("malformed, or an old size above the checkpoint's"),
                    "403": _text("not validly signed by the log's pinned key"),
                    "404": _text("not the log of an active peer"),
                    "409": {
                        "description": "another old size than the one last cosigned",
                        "content": {"text/x.tlog.size": {"schema": {"type": "string"}}},
                    },
                    "413": _text("request too large"),
                    "422": _text("not consistent with the checkpoint last cosigned"),
                    "503": _error("this server has no peer key"),
                },
            }
        },
        "/api/v1/witness/{origin_hash}/checkpoint": {
            "get": {
                "operationId": "witnessCheckpoint",
                "summary": "Witness: the latest checkpoint cosigned for a log, by origin hash",
                "security": [],
                "parameters": [
                    {
                        "name": "origin_hash",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "the checkpoint, its log signature and this cosignature",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "404": _error("no checkpoint of that log was cosigned"),
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json("the OpenAPI document", {"type": "object"})},
            }
        },
        "/api/v1/log/key": {
            "get": {
                "operationId": "logKey",
                "summary": "The log's verifier key, to pin on first use, and its fingerprint",
                "description": (
                    "The same values `evault-server keys show` prints: compare the fingerprint "
                    "with the operator's out of band before trusting the key."
                ),
                "security": [],
                "responses": {
                    "200": _json(
                        "the log key",
                        _object(
                            {
                                "origin": {
                                    "type": "string",
                                    "description": "the checkpoint origin line: the key's name",
                                },
                                "key": {
                                    "type": "string",
                                    "description": "C2SP signed-note verifier key: name+id+base64",
                                },
                                "fingerprint": {
                                    "type": "string",
                                    "pattern": "^[0-9a-f]{4}( [0-9a-f]{4}){7}$",
                                    "description": "SHA-256 of the key string, 8 groups of 4 hex",
                                },
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                },
            }
        },
        "/api/v1/log/keys": {
            "get": {
                "operationId": "logKeys",
                "summary": "The log's key history, oldest first, and the checkpoints handing over",
                "description": (
                    "Each key signs the checkpoints of first_size to last_size entries (no "
                    "last_size: the current key). A retired key's transition is the checkpoint of "
                    "last_size entries signed by it and the next key, whose last entry is the "
                    "log.key_rotated event naming both. A client whose pinned key no longer signs "
                    "follows this chain from its pinned key (docs/protocol.md, Log key rotation)."
                ),
                "security": [],
                "responses": {
                    "200": _json(
                        "the log's keys",
                        _object(
                            {
                                "keys": {
                                    "type": "array",
                                    "minItems": 1,
                                    "items": _object(
                                        {
                                            "key": {
                                                "type": "string",
                                                "description": "C2SP signed-note verifier key",
                                            },
                                            "fingerprint": {
                                                "type": "string",
                                                "pattern": "^[0-9a-f]{4}( [0-9a-f]{4}){7}$",
                                            },
                                            "first_size": _COUNT,
                                            "last_size": _nullable(_COUNT),
                                            "transition": _nullable(
                                                {
                                                    "type": "string",
                                                    "description": (
                                                        "the transition checkpoint, a C2SP "
                                                        "signed note signed by this key and "
                                                        "the next"
                                                    ),
                                                }
                                            ),
                                        }
                                    ),
                                }
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                },
            }
        },
        "/api/v1/log/checkpoint": {
            "get": {
                "operationId": "logCheckpoint",
                "summary": "The latest checkpoint, a C2SP signed note (tlog-checkpoint)",
                "description": (
                    "With the cosignature lines of the witnesses that cosigned it after the "
                    "log's signature (docs/protocol.md §15)."
                ),
                "security": [],
                "parameters": [
                    _query(
                        "cosignatures",
                        "the newest checkpoint with at least this many cosignatures instead",
                        required=False,
                    )
                ],
                "responses": {
                    "200": {
                        "description": "the signed checkpoint, byte for byte",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "400": _error("unexpected query parameters"),
                    "404": _error("the log is empty, or no checkpoint has that many cosignatures"),
                },
            }
        },
        "/api/v1/log/entries": {
            "get": {
                "operationId": "logEntries",
                "summary": "Entries [start, end) of the signed log, at most 256 per response",
                "security": [],
                "parameters": [
                    _query("start", "first index"),
                    _query("end", "index after the last; default: a full page", required=False),
                ],
                "responses": {
                    "200": _json(
                        "the entries and the size of the signed log",
                        {
                            "type": "object",
                            "properties": {
                                "entries": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "index": _COUNT,
                                            "data": {
                                                **_B64,
                                                "description": "the canonical JSON event",
                                            },
                                            "leaf_hash": _B64,
                                        },
                                        "required": ["index", "data", "leaf_hash"],
                                        "additionalProperties": False,
                                    },
                                },
                                "size": _COUNT,
                            },
                            "required": ["entries", "size"],
                            "additionalProperties": False,
                        },
                    ),
                    "400": _error("malformed or out-of-range parameters"),
                },
            }
        },
        "/api/v1/log/proof/inclusion": {
            "get": {
                "operationId": "logInclusionProof",
                "summary": "Inclusion proof of leaf `index` in the tree of `size` leaves",
                "security": [],
                "parameters": [
                    _query("index", "leaf index"),
                    _query("size", "tree size, at most the signed size"),
                ],
                "responses": {
                    "200": _json(
                        "the proof",
                        {
                            "type": "object",
                            "properties": {"index": _COUNT, "size": _COUNT, "proof": _PROOF},
                            "required": ["index", "size", "proof"],
                            "additionalProperties": False,
                        },
                    ),
                    "400": _error("malformed or out-of-range parameters"),
                },
            }
        },
        "/api/v1/log/proof/consistency": {
            "get": {
                "operationId": "logConsistencyProof",
                "summary": "Consistency proof between the trees of `old` and `new` leaves",
                "security": [],
                "parameters": [
                    _query("old", "older tree size, at least 1"),
                    _query("new", "newer tree size, at most the signed size"),
                ],
                "responses": {
                    "200": _json(
                        "the proof",
                        {
                            "type": "object",
                            "properties": {"old": _COUNT, "new": _COUNT, "proof": _PROOF},
                            "required": ["old", "new", "proof"],
                            "additionalProperties": False,
                        },
                    ),
                    "400": _error("malformed or out-of-range parameters"),
                },
            }
        },
        "/api/v1/accounts": {
            "post": {
                "operationId": "register",
                "summary": "Register a public card with an invite code; the invite gives the role",
                "security": [],
                "requestBody": _body(
                    _object(
                        {
                            "invite": {"type": "string", "description": "the one-time code"},
                            "card": {
                                "type": "string",
                                "description": "the card's canonical JSON (vault.keys.Card)",
                            },
                            "duress_key": {
                                **_B64,
                                "description": (
                                    "a reporter's duress key: the 32-byte Ed25519 public key of "
                                    "PersonalIdentity.duress_twin(); a login or check-in signed "
                                    "with it is under duress. Ignored for other roles. Older "
                                    "clients; with duress_card it must be that card's key"
                                ),
                            },
                            "duress_card": {
                                "type": "string",
                                "description": (
                                    "a reporter's duress card: the canonical JSON card of "
                                    "PersonalIdentity.duress_twin(). A login or check-in signed "
                                    "with its key is under duress, and such a session is shown "
                                    "this card as the account's. The logged event then has "
                                    "cards_sha256 (both cards' hashes, sorted) instead of "
                                    "card_sha256. Ignored for other roles"
                                ),
                            },
                        },
                        optional=("duress_key", "duress_card"),
                    )
                ),
                "responses": {
                    "201": _json(
                        "the new account and the receipt of its log entry",
                        _object({"account": _ACCOUNT, "receipt": _RECEIPT, "entry": _ENTRY}),
                    ),
                    "400": _error("a malformed body, card or duress key"),
                    "403": _error("the invite code is unknown, used or expired"),
                    "409": _error("an account with this signing key or duress key already exists"),
                    "415": _error("the body is not application/json"),
                },
            },
            "get": {
                "operationId": "findAccountByKey",
                "summary": "The reporter or editor registered with an Ed25519 signing key",
                "description": (
                    "For checking a card received out of band and re-checking a pinned key. "
                    "Operators and disabled accounts are not found. There is no listing."
                ),
                "parameters": [
                    {
                        "name": "signing_key",
                        "in": "query",
                        "required": True,
                        "description": (
                            "canonical padded base64 of the 32-byte key, percent-encoded "
                            "('+' is %2B, '/' is %2F, '=' is %3D)"
                        ),
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json("the account", _object({"account": _PERSON})),
                    "400": _error("a missing, repeated or malformed key, or another parameter"),
                    **_AUTH_ERRORS,
                    "404": _error("no enabled reporter or editor with this key"),
                },
            },
        },
        "/api/v1/accounts/me": {
            "get": {
                "operationId": "me",
                "summary": "The account of the bearer token",
                "responses": {
                    "200": _json("the account", _ACCOUNT),
                    "401": _error("no valid bearer token"),
                },
            }
        },
        "/api/v1/accounts/{account_id}": {
            "get": {
                "operationId": "findAccount",
                "summary": "An enabled reporter or editor, by account id",
                "parameters": [
                    {
                        "name": "account_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": _json("the account", _object({"account": _PERSON})),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such account (unknown, malformed, disabled or an operator)"),
                },
            }
        },
        "/api/v1/auth/challenge": {
            "post": {
                "operationId": "loginChallenge",
                "summary": "A nonce to sign; the same answer whether or not the account exists",
                "security": [],
                "requestBody": _body(
                    {
                        "oneOf": [
                            _object({"public_key": {**_B64, "description": "Ed25519 key"}}),
                            _object({"account": _ACCOUNT_ID}),
                        ]
                    }
                ),
                "responses": {
                    "200": _json(
                        "the challenge, valid for 120 seconds",
                        _object(
                            {
                                "nonce": {**_B64, "description": "32 random bytes"},
                                "expires_at": _UNIX_TIME,
                                "origin": {"type": "string", "description": "the log origin"},
                            }
                        ),
                    ),
                    "400": _error("a malformed body"),
                    "429": _error("too many attempts for this key or overall; see Retry-After"),
                },
            }
        },
        "/api/v1/auth/login": {
            "post": {
                "operationId": "login",
                "summary": "A bearer token for a signed challenge (vault.protocol.LoginChallenge)",
                "security": [],
                "requestBody": _body(
                    _object(
                        {
                            "account": _ACCOUNT_ID,
                            "nonce": _B64,
                            "signature": {
                                **_B64,
                                "description": "Ed25519, context 'login', over the challenge",
                            },
                        }
                    )
                ),
                "responses": {
                    "200": _json(
                        "a bearer token, valid for one hour",
                        _object(
                            {
                                "account": _ACCOUNT_ID,
                                "token": {"type": "string"},
                                "expires_at": _UNIX_TIME,
                                "receipt": _RECEIPT,
                                "entry": _ENTRY,
                            }
                        ),
                    ),
                    "400": _error("a malformed body"),
                    "403": _error("login failed (every failure is the same)"),
                    "429": _error("too many attempts for this account or overall; see Retry-After"),
                },
            }
        },
        "/api/v1/auth/logout": {
            "post": {
                "operationId": "logout",
                "summary": "Revoke the bearer token",
                "responses": {
                    "200": _json("revoked", _object({"receipt": _RECEIPT, "entry": _ENTRY})),
                    "401": _error("no valid bearer token"),
                },
            }
        },
        "/api/v1/uploads": {
            "post": {
                "operationId": "createUpload",
                "summary": "Open a resumable upload of an item's payload (reporters)",
                "description": (
                    "The limits are checked here, before any byte is stored: a payload above "
                    "EVAULT_MAX_ITEM_SIZE is 413 item_too_large, one that would take the "
                    "account over EVAULT_QUOTA_BYTES is 413 quota_exceeded. The item's id is "
                    "reserved now (`upload.item`), so a manifest signed before the commit can "
                    "name it. `sha256` may be left out (or null) and given at the commit. "
                    "`decoy`: true makes the item one of the session's decoys (a real session's "
                    "decoys are the decoy vault a session under duress sees). `state` is the "
                    "client's own sealed record for resuming, given back by GET /uploads."
                ),
                "requestBody": _body(
                    _object(
                        {
                            "size": {"type": "integer", "minimum": 1, "description": "payload"},
                            "sha256": {
                                **_nullable(_HEX_SHA256),
                                "description": "SHA-256 of the payload, if known yet",
                            },
                            "header": {
                                **_B64,
                                "description": "the item's age v1 header, at most 64 KiB",
                            },
                            "decoy": {
                                "type": "boolean",
                                "description": "the item is one of the session's decoys",
                            },
                            "state": {
                                **_nullable(_B64),
                                "description": "the client's sealed resume record, at most 128 KiB",
                            },
                        },
                        optional=("sha256", "decoy", "state"),
                    )
                ),
                "responses": {
                    "201": _json("the new upload session", _object({"upload": _UPLOAD})),
                    "400": _error("a malformed body or header"),
                    **_AUTH_ERRORS,
                    "413": _error("item too large, quota exceeded, or header too large"),
                    "415": _error("the body is not application/json"),
                    "503": _error("storage is unavailable"),
                },
            },
            "get": {
                "operationId": "listUploads",
                "summary": "The unfinished uploads this kind of session opened, to resume",
                "description": (
                    "A session under duress lists only the uploads such sessions opened, a real "
                    "session only its own kind's; oldest first, at most 1000, each with the "
                    "`state` the client gave when opening it."
                ),
                "responses": {
                    "200": _json(
                        "the unfinished uploads",
                        _object(
                            {
                                "uploads": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/UnfinishedUpload"},
                                }
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/uploads/{upload_id}": {
            "get": {
                "operationId": "getUpload",
                "parameters": [_UPLOAD_ID],
                "summary": "The ranges received so far and those missing",
                "responses": {
                    "200": _json("the upload session", _object({"upload": _UPLOAD})),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such upload (unknown, another account's, ended, expired)"),
                    "503": _error("storage is unavailable"),
                },
            },
            "delete": {
                "operationId": "abortUpload",
                "parameters": [_UPLOAD_ID],
                "summary": "End an upload session and remove its bytes",
                "responses": {
                    "200": _json("aborted", _object({"aborted": {"type": "string"}})),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such upload"),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/uploads/{upload_id}/chunks": {
            "put": {
                "operationId": "putChunk",
                "summary": "Store the body at `offset`; any order, repeats allowed",
                "parameters": [
                    _UPLOAD_ID,
                    _query("offset", "byte offset of the chunk in the payload"),
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": _BINARY}},
                    "description": "at most 64 MiB, with Content-Length",
                },
                "responses": {
                    "200": _json("stored; the session's ranges", _object({"upload": _UPLOAD})),
                    "400": _error("bad offset, a chunk past the size, or a body cut short"),
                    **_AUTH_ERRORS,
                    "404": _error("no such upload"),
                    "411": _error("no Content-Length"),
                    "413": _error("a chunk above 64 MiB"),
                    "415": _error("the body is not application/octet-stream"),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/uploads/{upload_id}/commit": {
            "post": {
                "operationId": "commitUpload",
                "parameters": [
                    _UPLOAD_ID,
                    {
                        "name": "Evault-Log-Size",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "pattern": "^(0|[1-9][0-9]{0,17})$"},
                        "description": (
                            "the size of the newest log checkpoint the client verified: the "
                            "answer then proves the receipt's checkpoint extends it "
                            "(`consistency`)"
                        ),
                    },
                ],
                "summary": "Check size and SHA-256, create the item, log item.uploaded",
                "description": (
                    "The body may be empty (older clients) or an object with `sha256` (required "
                    "if the upload declared none, else equal to it) and `manifest`, both "
                    "optional, null meaning absent, and `release`: true puts the item in the "
                    "release set of the armed switch (its header already wrapped to the release "
                    "recipient; item.uploaded then has `release_set`: true), with `disclosure`: "
                    "the item's disclosure (docs/protocol.md, 6.1), a small age file encrypted "
                    "to the owner and the release recipient, kept with the item and logged "
                    "(`disclosure_sha256`, `disclosure_size`); the manifest is not encrypted "
                    "to the release recipient. The item gets the id reserved by the upload. "
                    "Refusals before the 422 leave the session as it was."
                ),
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": _object(
                                {
                                    "sha256": {
                                        **_nullable(_HEX_SHA256),
                                        "description": "SHA-256 of the payload",
                                    },
                                    "manifest": _nullable(_MANIFEST),
                                    "release": {
                                        "type": "boolean",
                                        "description": "add the item to the release set",
                                    },
                                    "disclosure": _nullable(
                                        {
                                            **_MANIFEST,
                                            "description": "the encrypted disclosure, only "
                                            "with release: true (at most 64 KiB)",
                                        }
                                    ),
                                },
                                optional=("sha256", "manifest", "release", "disclosure"),
                            )
                        }
                    },
                },
                "responses": {
                    "201": _json(
                        "the new item and the receipt of its log entry",
                        _object(
                            {
                                "item": _ITEM,
                                "receipt": _RECEIPT,
                                "entry": _ENTRY,
                                "consistency": {
                                    **_object(
                                        {
                                            "old": _COUNT,
                                            "new": _COUNT,
                                            "proof": {"type": "array", "items": _B64},
                                        }
                                    ),
                                    "description": (
                                        "with Evault-Log-Size N, when 0 < N < the receipt's "
                                        "tree size: the RFC 9162 consistency proof from N "
                                        "to that size"
                                    ),
                                },
                            },
                            optional=("consistency",),
                        ),
                    ),
                    "400": _error(
                        "a malformed Evault-Log-Size header, "
                        "unexpected query parameters, a malformed body, missing_digest (no "
                        "SHA-256 declared or given), invalid_manifest, invalid_disclosure or "
                        "unexpected_disclosure (without release); the session stays"
                    ),
                    **_AUTH_ERRORS,
                    "404": _error("no such upload"),
                    "409": _error(
                        "bytes are missing (the session stays), upload_again, or not_armed: "
                        "`release` without an armed switch (the session stays)"
                    ),
                    "413": _error(
                        "manifest_too_large or disclosure_too_large: above 64 KiB; the session "
                        "stays"
                    ),
                    "415": _error("a body that is not application/json"),
                    "422": _error(
                        "the bytes, or the SHA-256 given, do not match the declared SHA-256; "
                        "the session ended"
                    ),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/items": {
            "get": {
                "operationId": "listItems",
                "summary": "A reporter's own items, or the items shared with an editor",
                "parameters": [
                    _query("limit", "items per page: 1 to 1000, 100 if absent", required=False),
                    _query(
                        "decoys",
                        "1 for a reporter's decoy items instead (0 if absent)",
                        required=False,
                    ),
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "the previous page's `next`: the last item it held",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "with",
                        "in": "query",
                        "required": False,
                        "description": (
                            "`manifest`: each item also holds its encrypted manifest, the bytes "
                            "/items/{item_id}/manifest gives, so that a listing takes one request "
                            "per page; such a page ends early once it holds 4 MiB of manifests "
                            "(`next` says where to go on)"
                        ),
                        "schema": {"const": "manifest"},
                    },
                ],
                "responses": {
                    "200": _json(
                        "one page of the items, oldest first",
                        _object(
                            {
                                "items": {
                                    "type": "array",
                                    "items": {
                                        "oneOf": [
                                            _ITEM,
                                            {"$ref": "#/components/schemas/ItemWithManifest"},
                                        ]
                                    },
                                },
                                "next": {
                                    "oneOf": [{"type": "null"}, _ACCOUNT_ID],
                                    "description": "`after` for the next page; null on the last",
                                },
                            }
                        ),
                    ),
                    "400": _error(
                        "unexpected query parameters, a bad limit or cursor, or `with` other "
                        "than manifest"
                    ),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/items/history": {
            "get": {
                "operationId": "itemHistory",
                "summary": "Every item id this session's view ever held, deleted ones too",
                "description": (
                    "A reporter's items and decoys, sorted by id; a session under duress is "
                    "given those of the decoy vault only. For showing one's part of the log."
                ),
                "parameters": [
                    _query("limit", "ids per page: 1 to 1000, 100 if absent", required=False),
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "description": "the previous page's `next`",
                        "schema": {"type": "string"},
                    },
                ],
                "responses": {
                    "200": _json(
                        "one page of item ids",
                        _object(
                            {
                                "items": {"type": "array", "items": _ACCOUNT_ID},
                                "next": {
                                    "oneOf": [{"type": "null"}, _ACCOUNT_ID],
                                    "description": "`after` for the next page; null on the last",
                                },
                                "moves_until": {
                                    **_nullable(_COUNT),
                                    "description": (
                                        "for a session under duress shown a switch of its own: "
                                        "the log index from which the real switch's moves "
                                        "(overdue, releasing, released) are not that switch's"
                                    ),
                                },
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters or a bad limit"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/items/{item_id}/entries": {
            "get": {
                "operationId": "itemEntries",
                "parameters": [_ITEM_ID],
                "summary": "An owned item's upload and share entries, with receipts",
                "description": (
                    "Oldest first; each receipt is the one the write was answered with, against "
                    "the checkpoint signed right after the entry (perhaps by a log key since "
                    "retired), so a client finds an item's history without reading the whole log."
                ),
                "responses": {
                    "200": _json(
                        "the entries",
                        _object(
                            {
                                "entries": {
                                    "type": "array",
                                    "items": _object({"receipt": _RECEIPT, "entry": _ENTRY}),
                                }
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such item of this account"),
                },
            }
        },
        "/api/v1/items/{item_id}": {
            "get": {
                "operationId": "getItem",
                "parameters": [_ITEM_ID],
                "summary": "An item's metadata",
                "responses": {
                    "200": _json("the item", _object({"item": _ITEM})),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such item this account may see"),
                },
            },
            "delete": {
                "operationId": "deleteItem",
                "parameters": [_ITEM_ID],
                "summary": "Delete an owned item (log item.deleted), or ask to in an armed vault",
                "description": (
                    "While the vault's switch is armed (and in a session under duress) the "
                    "delete waits out the cooling-off delay as a pending change, logged as "
                    "change.requested; the item stays until the change takes effect."
                ),
                "responses": {
                    "200": _json(
                        "deleted",
                        _object(
                            {
                                "status": {"const": "deleted"},
                                "receipt": _RECEIPT,
                                "entry": _ENTRY,
                            }
                        ),
                    ),
                    "202": _json("the delete is pending until cooling-off ends", _CHANGE_ANSWER),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such item of this account"),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/items/{item_id}/share": {
            "post": {
                "operationId": "shareItem",
                "summary": "Replace an owned item's header and its set of editors; log item.shared",
                "description": (
                    "The header is re-wrapped by the client (vault.age.rewrap_header) so that "
                    "the listed editors can open it; the payload is not sent again. `editors` "
                    "is the whole new set: an editor left out loses access. An item with a "
                    "manifest needs `manifest`, the current one re-wrapped (vault.age.rewrap): "
                    "every stanza of its header kept (else invalid_manifest) and the bytes "
                    "after the header unchanged (else manifest_changed); missing_manifest "
                    "without it, unexpected_manifest with one for an item that has none."
                ),
                "parameters": [_ITEM_ID],
                "requestBody": _body(
                    _object(
                        {
                            "header": {**_B64, "description": "the new age v1 header, ≤ 64 KiB"},
                            "editors": {
                                "type": "array",
                                "items": _ACCOUNT_ID,
                                "maxItems": 256,
                                "uniqueItems": True,
                            },
                            "manifest": _nullable(_MANIFEST),
                        },
                        optional=("manifest",),
                    )
                ),
                "responses": {
                    "200": _json(
                        "the item and the receipt of its log entry",
                        _object({"item": _ITEM, "receipt": _RECEIPT, "entry": _ENTRY}),
                    ),
                    "400": _error(
                        "a malformed body, header or manifest, an id that is not an editor, "
                        "missing_manifest, unexpected_manifest or manifest_changed"
                    ),
                    **_AUTH_ERRORS,
                    "404": _error("no such item of this account"),
                    "409": _error("a concurrent delete removed the header; share again"),
                    "413": _error("manifest_too_large: above 64 KiB"),
                    "415": _error("the body is not application/json"),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/items/{item_id}/manifest": {
            "get": {
                "operationId": "getItemManifest",
                "summary": "The item's encrypted manifest, a whole age file; not logged",
                "parameters": [_ITEM_ID],
                "responses": {
                    "200": {
                        "description": "the encrypted manifest, byte for byte",
                        "headers": {"ETag": _ETAG},
                        "content": {"application/octet-stream": {"schema": _BINARY}},
                    },
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such item this account may see, or no_manifest"),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/items/{item_id}/content": {
            "get": {
                "operationId": "getItemContent",
                "summary": "The age file (header, then payload), streamed; one Range allowed",
                "description": (
                    "Logs item.downloaded; its log index is in the Evault-Log-Index header."
                ),
                "parameters": [
                    _ITEM_ID,
                    {
                        "name": "Range",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "one range, bytes=start-end, bytes=start- or bytes=-n",
                    },
                    {
                        "name": "If-Range",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": (
                            "the ETag of an earlier answer: the range is sent only if the file "
                            "is still the same (a share replaces the header), else all of it"
                        ),
                    },
                ],
                "responses": {
                    "200": {
                        "description": "the whole age file",
                        "headers": {"ETag": _ETAG},
                        "content": {"application/octet-stream": {"schema": _BINARY}},
                    },
                    "206": {
                        "description": "the range asked for, see Content-Range",
                        "headers": {"ETag": _ETAG},
                        "content": {"application/octet-stream": {"schema": _BINARY}},
                    },
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no such item this account may see"),
                    "416": _error("the range is outside the item"),
                    "503": _error("storage is unavailable"),
                },
            },
        },
        "/api/v1/switch": {
            "get": {
                "operationId": "getSwitch",
                "summary": "The reporter's dead-man switch (`disarmed` before it is ever armed)",
                "description": (
                    "In a session under duress the answer is what a real session would see: "
                    "armed, with the deadline the last check-in promised."
                ),
                "responses": {
                    "200": _json(
                        "the switch",
                        {
                            "oneOf": [
                                _object({"state": {"const": "disarmed"}}),
                                {"$ref": "#/components/schemas/Switch"},
                            ]
                        },
                    ),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/switch/custodian": {
            "get": {
                "operationId": "getSwitchCustodian",
                "summary": "The server custodian's age recipient, to seal the server's share to",
                "responses": {
                    "200": _json(
                        "the recipient",
                        _object(
                            {
                                "recipient": {
                                    "type": "string",
                                    "pattern": "^age1[02-9ac-hj-np-z]+$",
                                    "description": "an X25519 age recipient",
                                }
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/switch/arm": {
            "post": {
                "operationId": "armSwitch",
                "summary": "Arm the vault; log switch.armed with the insurance commitment",
                "description": (
                    "`shares` are SLIP-39 shares of the release identity, each an age file "
                    "sealed to its custodian, in position order: exactly one for `server` "
                    "(sealed to /switch/custodian), the others for editors (trustees). "
                    "`release_items` are the reporter's items, already re-wrapped to include "
                    "`release_recipient`. The logged event is `{type: switch.armed, vault, "
                    "account, recipient, threshold, shares, commitment, policy_sha256, time}`. "
                    "A refusal stores nothing. With `dry_run: true` the server runs exactly the "
                    "checks of a real arm and writes nothing: 200 `{dry_run: true}` when it "
                    "would arm, or the very refusal the real request would get. Clients send "
                    "the dry run before they re-wrap any item (docs/protocol.md, 10.2)."
                ),
                "requestBody": _body(
                    _object(
                        {
                            "policy": _POLICY,
                            "release_recipient": {
                                "type": "string",
                                "description": "the X25519 age recipient of the release identity",
                            },
                            "threshold": {"type": "integer", "minimum": 1, "maximum": 16},
                            "shares": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 16,
                                "items": _object(
                                    {
                                        "custodian": _CUSTODIAN,
                                        "age": {
                                            **_B64,
                                            "description": "an age file of at most 4 KiB",
                                        },
                                        "commitment": {
                                            **_B64,
                                            "description": "SHA-256 commitment to the share's "
                                            "words, 32 bytes (docs/protocol.md, 10.2)",
                                        },
                                    }
                                ),
                            },
                            "release_items": {**_ITEM_IDS, "uniqueItems": True},
                            "handle": _nullable(
                                {
                                    "type": "string",
                                    "pattern": "^[a-z0-9][a-z0-9-]{2,63}$",
                                    "description": "the name to check in with on the web page",
                                }
                            ),
                            "phrase": _nullable(
                                {"type": "string", "minLength": 8, "maxLength": 1024}
                            ),
                            "duress_phrase": _nullable(
                                {"type": "string", "minLength": 8, "maxLength": 1024}
                            ),
                            "dry_run": {
                                "type": "boolean",
                                "description": "check only; nothing is written (default false)",
                            },
                        },
                        optional=("handle", "phrase", "duress_phrase", "dry_run"),
                    )
                ),
                "responses": {
                    "200": _json(
                        "dry run: the real request would arm the vault; nothing was written",
                        _object({"dry_run": {"const": True}}),
                    ),
                    "201": _json(
                        "armed; the receipt of switch.armed, and of each staged item's re-wrap",
                        _object(
                            {
                                "state": {"const": "armed"},
                                "deadline": _TIME,
                                "commitment": _COMMITMENT,
                                "items": {
                                    "type": "array",
                                    "description": (
                                        "the items staged for this release recipient, in the "
                                        "order of release_items, each re-wrapped in this "
                                        "transaction and logged item.shared (same editors), "
                                        "proved in the checkpoint of switch.armed"
                                    ),
                                    "items": _object(
                                        {"item": _ACCOUNT_ID, "entry": _ENTRY, "receipt": _RECEIPT}
                                    ),
                                },
                                "receipt": _RECEIPT,
                                "entry": _ENTRY,
                            }
                        ),
                    ),
                    "400": _error(
                        "a malformed body or policy, a threshold above the number of shares, "
                        "not exactly one server share, a custodian that is not an editor, a "
                        "share that is not an age file, an unknown or foreign item, a recipient "
                        "that is not X25519, a taken handle"
                    ),
                    **_AUTH_ERRORS,
                    "409": _error("conflict: armed already (a released vault may be armed again)"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/switch/arm/items": {
            "post": {
                "operationId": "stageReleaseItems",
                "summary": "Stage items re-wrapped for a release recipient, for the arm to apply",
                "description": (
                    "Arming re-wraps each item of the release set on the reporter's device: its "
                    "header with the release recipient added, and its disclosure (what the "
                    "reporter chose to publish, docs/protocol.md 6.1) encrypted to the owner "
                    "and the release recipient; the manifest is left as it is. They are staged "
                    "here first, and nothing changes: no item, no log entry. POST /switch/arm "
                    "with the same release_recipient applies the staged items with the switch "
                    "in one transaction (each logged item.shared with the same editors and "
                    "manifest and the disclosure's hash and size), so an arm that is refused or "
                    "never sent leaves every item as it was. Each item must be the reporter's "
                    "own, unpublished, and its header must keep every recipient of the current "
                    "one. Items staged for another recipient are dropped; staging an item "
                    "again replaces it."
                ),
                "requestBody": _body(
                    _object(
                        {
                            "release_recipient": {"type": "string"},
                            "items": {
                                "type": "array",
                                "minItems": 1,
                                "maxItems": 1000,
                                "items": _object(
                                    {
                                        "item": _ACCOUNT_ID,
                                        "header": {
                                            **_B64,
                                            "description": "the re-wrapped age header",
                                        },
                                        "disclosure": {
                                            **_MANIFEST,
                                            "description": "the encrypted disclosure",
                                        },
                                    },
                                ),
                            },
                        }
                    )
                ),
                "responses": {
                    "200": _json("staged", _object({"staged": _COUNT})),
                    "400": _error(
                        "a malformed body or recipient, an item named twice, not the "
                        "reporter's, published already, a header that drops a recipient, or a "
                        "disclosure that is not an age file"
                    ),
                    **_AUTH_ERRORS,
                    "409": _error("conflict: the switch is armed already"),
                    "413": _error("a disclosure larger than 64 KiB"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/switch/policy": {
            "post": {
                "operationId": "setSwitchPolicy",
                "summary": "A new policy: at once if it only tightens, else after cooling-off",
                "description": (
                    "A longer interval, grace or cooling-off, another duress mode, a removed "
                    "contact or reminder weaken the switch: the change is pending (202, "
                    "change.requested logged) and trustees are told. Otherwise it applies at "
                    "once (200, switch.policy logged)."
                ),
                "requestBody": _body(_object({"policy": _POLICY})),
                "responses": {
                    "200": _json(
                        "applied",
                        _object(
                            {
                                "status": {"const": "applied"},
                                "change": {"type": "null"},
                                "receipt": _RECEIPT,
                                "entry": _ENTRY,
                            }
                        ),
                    ),
                    "202": _json("pending until cooling-off ends", _CHANGE_ANSWER),
                    "400": _error("a malformed body or policy"),
                    **_AUTH_ERRORS,
                    "409": _error("not_armed: the switch is not armed"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/switch/disarm": {
            "post": {
                "operationId": "disarmSwitch",
                "summary": "Ask to disarm: after cooling-off, unless trustees cancel",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _object({})}},
                },
                "responses": {
                    "202": _json("pending until cooling-off ends", _CHANGE_ANSWER),
                    "400": _error("unexpected query parameters or fields"),
                    **_AUTH_ERRORS,
                    "409": _error("not_armed: the switch is not armed"),
                    "415": _error("a body that is not application/json"),
                },
            }
        },
        "/api/v1/switch/phrase": {
            "post": {
                "operationId": "setSwitchPhrase",
                "summary": "Set the web check-in handle and phrases (stored as Argon2id hashes)",
                "requestBody": _body(
                    _object(
                        {
                            "handle": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{2,63}$"},
                            "phrase": {"type": "string", "minLength": 8, "maxLength": 1024},
                            "duress_phrase": _nullable(
                                {"type": "string", "minLength": 8, "maxLength": 1024}
                            ),
                        },
                        optional=("duress_phrase",),
                    )
                ),
                "responses": {
                    "200": _json("set", _object({"handle": {"type": "string"}})),
                    "400": _error(
                        "a malformed body, handle or phrase, a duress phrase equal to the "
                        "phrase, or a taken handle"
                    ),
                    **_AUTH_ERRORS,
                    "409": _error("not_armed: the switch is not armed"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/switch/release-items": {
            "post": {
                "operationId": "addReleaseItems",
                "summary": "Add items (already re-wrapped) to the release set; log switch.extended",
                "requestBody": _body(
                    _object({"items": {**_ITEM_IDS, "minItems": 1, "uniqueItems": True}})
                ),
                "responses": {
                    "200": _json(
                        "added; the new commitment",
                        _object({"commitment": _COMMITMENT, "receipt": _RECEIPT, "entry": _ENTRY}),
                    ),
                    "400": _error("a malformed body, or an unknown or foreign item"),
                    **_AUTH_ERRORS,
                    "409": _error("not_armed: the switch is not armed"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/switch/checkin": {
            "post": {
                "operationId": "checkIn",
                "summary": "A check-in signed with the reporter's key (or duress key)",
                "description": (
                    "Moves the deadline by the interval and logs `{type: switch.checkin, vault, "
                    "time}`. One answer for every refusal: unknown vault, bad signature, a time "
                    "more than 300 s off, a replayed nonce, another origin, a switch not armed."
                ),
                "security": [],
                "requestBody": _body(
                    _object(
                        {
                            "statement": {
                                "type": "string",
                                "maxLength": 1024,
                                "description": (
                                    "the canonical JSON text of "
                                    "vault.protocol.CheckinStatement.message()"
                                ),
                            },
                            "signature": {
                                **_B64,
                                "description": "Ed25519, context 'checkin', over the statement",
                            },
                        }
                    )
                ),
                "responses": {
                    "200": _json(
                        "accepted",
                        _object(
                            {
                                "status": {"const": "ok"},
                                "deadline": _TIME,
                                "receipt": _RECEIPT,
                                "entry": _ENTRY,
                            }
                        ),
                    ),
                    "400": _error("a malformed body"),
                    "403": _error("check-in not accepted (every refusal is the same)"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/trustee/vaults": {
            "get": {
                "operationId": "trusteeVaults",
                "summary": "The vaults the editor holds a share of",
                "responses": {
                    "200": _json(
                        "the vaults",
                        _object(
                            {
                                "vaults": {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/TrusteeVault"},
                                }
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                },
            }
        },
        "/api/v1/trustee/vaults/{vault_id}/share": {
            "get": {
                "operationId": "trusteeShare",
                "summary": "The editor's share of a vault, an age file sealed to their card",
                "parameters": [_VAULT_ID],
                "responses": {
                    "200": _json(
                        "the share",
                        _object(
                            {
                                "position": _COUNT,
                                "age": {**_B64, "description": "an age file of the mnemonic"},
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters"),
                    **_AUTH_ERRORS,
                    "404": _error("no share of this vault (or no such vault)"),
                },
            }
        },
        "/api/v1/trustee/vaults/{vault_id}/shares": {
            "post": {
                "operationId": "submitShare",
                "summary": "Hand in a share (its mnemonic words) for a vault being released",
                "parameters": [_VAULT_ID],
                "requestBody": _body(
                    _object({"mnemonic": {"type": "string", "description": "SLIP-39 words"}})
                ),
                "responses": {
                    "200": _json(
                        "taken (or the vault is released already)",
                        _object(
                            {
                                "have": _COUNT,
                                "need": {"type": "integer", "minimum": 1},
                                "state": {"enum": ["releasing", "released"]},
                            }
                        ),
                    ),
                    "400": _error(
                        "a malformed body, or share_rejected: not a share, or one of another "
                        "vault or arming"
                    ),
                    **_AUTH_ERRORS,
                    "404": _error("no such vault"),
                    "409": _error("not_releasing: shares are taken only while releasing"),
                    "415": _error("the body is not application/json"),
                },
            }
        },
        "/api/v1/trustee/vaults/{vault_id}/changes/{change_id}/cancel": {
            "post": {
                "operationId": "cancelChange",
                "summary": "Vote to cancel a pending change; enough votes cancel it",
                "parameters": [
                    _VAULT_ID,
                    {
                        "name": "change_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _object({})}},
                },
                "responses": {
                    "200": _json(
                        "the vote counted; the change's state",
                        _object(
                            {
                                "votes": _COUNT,
                                "votes_needed": _COUNT,
                                "state": {
                                    "enum": ["pending", "cancelled", "applied", "void"],
                                    "description": "applied or void: settled before the vote",
                                },
                            }
                        ),
                    ),
                    "400": _error("unexpected query parameters or fields"),
                    **_AUTH_ERRORS,
                    "404": _error("no share of this vault, or no such change of it"),
                    "415": _error("a body that is not application/json"),
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Account": _object(
                {
                    "id": _ACCOUNT_ID,
                    "role": {"enum": ["operator", "reporter", "editor"]},
                    "vault": {
                        "type": ["string", "null"],
                        "description": "the reporter's vault id; null for other roles",
                    },
                    "card": {"type": "string", "description": "the card's canonical JSON"},
                    "created_at": _UNIX_TIME,
                }
            ),
            "Person": _object(
                {
                    "id": _ACCOUNT_ID,
                    "role": {"enum": ["reporter", "editor"]},
                    "card": {"type": "string", "description": "the card's canonical JSON"},
                },
                description="another reporter or editor, as an account sees them",
            ),
            "Upload": _object(_UPLOAD_FIELDS),
            "UnfinishedUpload": _object(
                {
                    **_UPLOAD_FIELDS,
                    "state": {
                        **_nullable(_B64),
                        "description": "the client's sealed resume record, as it was given",
                    },
                }
            ),
            "Item": _object(_ITEM_FIELDS),
            "ItemWithManifest": _object(
                {
                    **_ITEM_FIELDS,
                    "manifest": {
                        **_nullable(_MANIFEST),
                        "description": (
                            "the encrypted manifest, as /items/{item_id}/manifest gives it; "
                            "null if none"
                        ),
                    },
                }
            ),
            "Contact": {
                "oneOf": [
                    _object(
                        {"email": {"type": "string", "format": "email"}, **_CONTACT_EXTRAS},
                        optional=("age", "name"),
                    ),
                    _object(
                        {
                            "webhook": {"type": "string", "pattern": "^https?://"},
                            "secret": {
                                "type": "string",
                                "minLength": 16,
                                "maxLength": 256,
                                "description": "signs each delivery (see docs/webhooks.md)",
                            },
                            **_CONTACT_EXTRAS,
                        },
                        optional=("secret", "age", "name"),
                    ),
                ],
                "description": (
                    "where a notice goes; in a policy update, a webhook the vault already has "
                    "may come without its secret, which then stays as it is. A notice says "
                    "nothing in the clear: its details go encrypted to `age` when the contact "
                    "has one, else behind a private link"
                ),
            },
            "ContactShown": {
                "oneOf": [
                    _object(
                        {"email": {"type": "string"}, **_CONTACT_EXTRAS}, optional=("age", "name")
                    ),
                    _object(
                        {"webhook": {"type": "string"}, **_CONTACT_EXTRAS}, optional=("age", "name")
                    ),
                ],
                "description": "a contact as answers show it: a webhook without its secret",
            },
            "Policy": _object(
                {
                    "interval": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": 316224000,
                        "description": (
                            "seconds between check-ins, at least the server's "
                            "EVAULT_MIN_INTERVAL (default 3600)"
                        ),
                    },
                    "grace": {**_SECONDS, "description": "seconds after the deadline; default 0"},
                    "reminders": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1},
                        "maxItems": 8,
                        "description": "seconds before the deadline, each less than the interval",
                    },
                    "duress": {"enum": ["alert", "release", "both"]},
                    "cooling_off": {
                        **_SECONDS,
                        "description": "seconds a weakening change waits; default 259200 (72 h)",
                    },
                    "remind": _CONTACTS,
                    "alert": _CONTACTS,
                    "publish": _CONTACTS,
                },
                optional=(
                    "grace",
                    "reminders",
                    "duress",
                    "cooling_off",
                    "remind",
                    "alert",
                    "publish",
                ),
                description=(
                    "the reporter's switch policy; `remind` gets their own reminders, `alert` "
                    "the trustees' alerts, `publish` the release notice"
                ),
            ),
            "PolicyShown": _object(
                {
                    "interval": {"type": "integer", "minimum": 1},
                    "grace": _SECONDS,
                    "reminders": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1},
                        "description": "seconds before the deadline, largest first",
                    },
                    "duress": {"enum": ["alert", "release", "both"]},
                    "cooling_off": _SECONDS,
                    "remind": _CONTACTS_SHOWN,
                    "alert": _CONTACTS_SHOWN,
                    "publish": _CONTACTS_SHOWN,
                },
                description="a policy as answers show it, without webhook secrets",
            ),
            "Commitment": _object(
                {
                    "count": _COUNT,
                    "sha256": {
                        "type": "array",
                        "items": _HEX_SHA256,
                        "description": "the payload SHA-256 of each release-set item, sorted",
                    },
                },
                description="the insurance commitment: what the release set holds",
            ),
            "Change": _object(
                {
                    "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    "kind": {"enum": ["delete", "disarm", "policy"]},
                    "params": _object(
                        {
                            "item": {**_ACCOUNT_ID, "description": "the item to delete"},
                            "policy": {"$ref": "#/components/schemas/PolicyShown"},
                        },
                        optional=("item", "policy"),
                    ),
                    "requested_at": _TIME,
                    "effective_at": _TIME,
                    "votes": {**_COUNT, "description": "trustees' votes to cancel it"},
                    "votes_needed": {**_COUNT, "description": "votes that cancel it"},
                },
                description="a change waiting out the cooling-off delay",
            ),
            "Switch": _object(
                {
                    "vault": _ACCOUNT_ID,
                    "state": {"enum": ["armed", "overdue", "releasing", "released", "disarmed"]},
                    "policy": {"$ref": "#/components/schemas/PolicyShown"},
                    "threshold": {"type": "integer", "minimum": 1},
                    "custodians": {
                        "type": "array",
                        "items": _object({"position": _COUNT, "custodian": _CUSTODIAN}),
                    },
                    "release_recipient": {"type": "string"},
                    "commitment": _COMMITMENT,
                    "release_items": {"type": "array", "items": _ACCOUNT_ID},
                    "armed_at": _TIME,
                    "last_checkin": _TIME,
                    "deadline": _TIME,
                    "release_at": {**_TIME, "description": "the deadline plus grace"},
                    "handle": {"type": ["string", "null"]},
                    "pending": {"type": "array", "items": _CHANGE},
                    "releases": {
                        "type": "array",
                        "description": (
                            "the vault's published releases, oldest first; the first one's page "
                            "is /release/VAULT, release n's /release/VAULT/n"
                        ),
                        "items": _object(
                            {"number": {"type": "integer", "minimum": 1}, "published_at": _TIME}
                        ),
                    },
                },
                description=(
                    "a switch that was armed at least once; a released vault may be armed "
                    "again, with a fresh release identity and release set"
                ),
            ),
            "TrusteeVault": _object(
                {
                    "vault": _ACCOUNT_ID,
                    "owner": {**_ACCOUNT_ID, "description": "the reporter's account id"},
                    "state": {"enum": ["armed", "overdue", "releasing", "released", "disarmed"]},
                    "position": _COUNT,
                    "threshold": {"type": "integer", "minimum": 1},
                    "shares": {"type": "integer", "minimum": 1},
                    "deadline": _TIME,
                    "pending": {"type": "array", "items": _CHANGE},
                },
                description="a vault an editor holds a share of",
            ),
            "Error": {
                "type": "object",
                "properties": {
                    "error": {"type": "string", "description": "a stable code"},
                    "message": {"type": "string", "description": "what went wrong"},
                },
                "required": ["error", "message"],
                "additionalProperties": False,
            },
        },
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "a short-lived token from Ed25519 challenge-response login",
            }
        },
    },
    "security": [{"bearer": []}],
}


@openapi.get("/openapi.json")
def document() -> dict[str, Any]:
    """The OpenAPI document."""
    return DOCUMENT
