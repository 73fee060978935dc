"""The dead-man switch API: arming, policy, check-ins, and the trustees' side.

Reporter (bearer token, role reporter):

- ``GET /api/v1/switch``: the switch (``{"state": "disarmed"}`` before arming).
- ``GET /api/v1/switch/custodian``: ``{"recipient"}``, the server custodian's
  age recipient, to which the server's share is encrypted.
- ``POST /api/v1/switch/arm``: policy, release recipient, threshold, the
  encrypted shares in custodian order with each share's commitment, the
  release-set items, optional web check-in handle and phrases → 201 with the
  logged ``switch.armed`` entry. With ``"dry_run": true`` the same checks
  run and nothing is written: 200 ``{"dry_run": true}``, or the refusal the
  real request would get. Items staged for the release recipient are
  re-wrapped in the same transaction (``"items"``: each ``item.shared``
  entry with its receipt).
- ``POST /api/v1/switch/arm/items``: ``{"release_recipient", "items": [{"item",
  "header", "disclosure"}]}``, items re-wrapped on the reporter's device for
  the release recipient, each with its encrypted disclosure, staged for the
  arm: nothing changes before it.
- ``POST /api/v1/switch/policy``: a new policy → ``applied`` at once, or
  ``pending`` (202) when it weakens the switch and must cool off.
- ``POST /api/v1/switch/disarm`` → 202 pending.
- ``POST /api/v1/switch/phrase``: the web check-in handle and phrases.
- ``POST /api/v1/switch/release-items``: more items for the release set.

Anyone (the signature authenticates):

- ``POST /api/v1/switch/checkin``: ``{"statement", "signature"}`` (see
  :class:`vault.protocol.CheckinStatement`) → ``{"status": "ok", "deadline",
  "receipt", "entry"}``; 403 ``check-in not accepted`` for every refusal.

Trustee (bearer token, role editor):

- ``GET /api/v1/trustee/vaults``; ``GET /api/v1/trustee/vaults/<vault>/share``;
  ``POST /api/v1/trustee/vaults/<vault>/shares`` ``{"mnemonic"}``;
  ``POST /api/v1/trustee/vaults/<vault>/changes/<change>/cancel``.

In a session under duress (:attr:`server.models.Token.duress`) the answers
are those a real session would get; see :mod:`server.services.switch`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from server.api._request import (
    app_state,
    blob_store,
    db_session,
    json_body,
    log_signer,
    optional_json_body,
    query_ints,
    receipt_fields,
)
from server.api._storage import manifest_field, storage_error
from server.auth import current_account, requires_role, session_depth
from server.errors import ApiError
from server.keyfile import load_key_file
from server.services import items as item_service
from server.services import log
from server.services import release as releases
from server.services import switch as service
from server.storage import StorageError
from vault._base64 import b64decode, b64encode
from vault.errors import FormatError
from vault.protocol import parse_account_id
from vault.shares import COMMITMENT_SIZE

__all__ = ["switch_api", "trustee_api"]

switch_api = Blueprint("switch", __name__)
trustee_api = Blueprint("trustee", __name__)
JsonObject = dict[str, object]
_MAX_ITEMS = 10_000
_MAX_STAGED = 1000
_SHARE_FIELDS = {"custodian", "age", "commitment"}
_STAGED_FIELDS = {"item", "header", "disclosure"}


def _duress() -> bool:
    token = g.get("token")
    return bool(token is not None and token.duress)


def _now() -> Any:
    return app_state().clock.now()


def _fields(
    body: dict[str, Any], required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    unknown = sorted(set(body) - set(required) - set(optional))
    if unknown:
        raise ApiError.bad_request(f"unknown field {unknown[0]!r}")
    for name in required:
        if name not in body:
            raise ApiError.bad_request(f"missing field {name!r}")


def _policy(value: object) -> service.Policy:
    try:
        return service.Policy.parse(value, min_interval=app_state().config.min_interval)
    except service.PolicyError as exc:
        raise ApiError.bad_request(exc.message) from None


def _optional_string(body: dict[str, Any], name: str, limit: int = 1024) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ApiError.bad_request(f"field {name!r} must be a string of at most {limit} characters")
    return value


def _item_ids(value: object, name: str) -> list[str]:
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise ApiError.bad_request(f"field {name!r} must be a list of item ids")
    try:
        return [parse_account_id(v) for v in value]
    except FormatError:
        raise ApiError.bad_request(f"field {name!r} holds a malformed item id") from None


def _change_answer(requested: service.ChangeRequested) -> tuple[JsonObject, int]:
    session = db_session()
    logged = receipt_fields(requested.appended)
    change = None
    if requested.change is not None:
        switch = service.find_switch(session, requested.change.vault_id)
        if switch is None:
            raise RuntimeError("internal error: a change without its switch")
        change = service.change_json(session, switch, requested.change)
    session.commit()
    status = "applied" if change is None else "pending"
    return {"status": status, "change": change, **logged}, 200 if change is None else 202


@switch_api.get("")
@requires_role("reporter")
def status() -> JsonObject:
    """The caller's switch."""
    query_ints(required=())
    return service.status_json(db_session(), current_account(), duress=_duress())


@switch_api.get("/custodian")
@requires_role("reporter")
def custodian() -> JsonObject:
    """The server custodian's age recipient."""
    query_ints(required=())
    keys = load_key_file(app_state().config.key_file)
    return {"recipient": str(keys.custodian.recipient())}


@switch_api.post("/arm")
@requires_role("reporter")
def arm() -> tuple[JsonObject, int]:
    """Arm the caller's vault (or, with ``dry_run``, check that it would be armed)."""
    query_ints(required=())
    body = json_body()
    _fields(
        body,
        ("policy", "release_recipient", "threshold", "shares", "release_items"),
        ("handle", "phrase", "duress_phrase", "dry_run"),
    )
    dry_run = body.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise ApiError.bad_request("field 'dry_run' must be true or false")
    policy = _policy(body["policy"])
    recipient = _optional_string(body, "release_recipient", 256)
    threshold = body["threshold"]
    if type(threshold) is not int:
        raise ApiError.bad_request("field 'threshold' must be a whole number")
    shares = _shares(body["shares"])
    items = _item_ids(body["release_items"], "release_items")
    handle = _optional_string(body, "handle", 64)
    phrase = _optional_string(body, "phrase")
    duress_phrase = _optional_string(body, "duress_phrase")
    session = db_session()
    try:
        if dry_run:
            # The real arm's own checks, without its writes: a client asks
            # this before it re-wraps a single item (docs/protocol.md, 10.2).
            service.check_arm(
                session,
                account=current_account(),
                recipient=recipient or "",
                threshold=threshold,
                shares=shares,
                release_items=items,
                handle=handle,
                phrase=phrase,
                duress_phrase=duress_phrase,
                lock=False,
                duress=_duress(),
            )
            session.rollback()
            return {"dry_run": True}, 200
        armed = service.arm(
            session,
            account=current_account(),
            policy=policy,
            recipient=recipient or "",
            threshold=threshold,
            shares=shares,
            release_items=items,
            handle=handle,
            phrase=phrase,
            duress_phrase=duress_phrase,
            now=_now(),
            signer=log_signer(),
            store=blob_store(),
            duress=_duress(),
        )
    except service.AlreadyArmedError as exc:
        raise ApiError(409, "conflict", exc.message) from None
    except service.PolicyError as exc:
        raise ApiError.bad_request(exc.message) from None
    except StorageError as exc:
        raise storage_error(exc) from None
    logged = receipt_fields(armed.appended)
    checkpoint = armed.appended.checkpoint
    answer: JsonObject = {
        "state": armed.switch.state,
        "deadline": service.iso(armed.switch.deadline_at),
        "commitment": armed.commitment,
        # Each re-wrapped item's entry, proved in the checkpoint of switch.armed.
        "items": [
            {
                "item": item,
                "entry": b64encode(appended.entry.data),
                "receipt": log.receipt(session, appended.entry.idx, checkpoint)
                .marshal()
                .decode("utf-8"),
            }
            for item, appended in armed.items
        ],
        **logged,
    }
    session.commit()
    return answer, 201


@switch_api.post("/arm/items")
@requires_role("reporter")
def stage_items() -> JsonObject:
    """Stage items re-wrapped for a release recipient; the arm applies them (atomic arming)."""
    query_ints(required=())
    body = json_body()
    _fields(body, ("release_recipient", "items"))
    recipient = _optional_string(body, "release_recipient", 256)
    raw = body["items"]
    if not isinstance(raw, list) or not 0 < len(raw) <= _MAX_STAGED:
        raise ApiError.bad_request(f"field 'items' must list 1 to {_MAX_STAGED} items")
    staged = []
    for entry in raw:
        if not isinstance(entry, dict) or set(entry) != _STAGED_FIELDS:
            raise ApiError.bad_request("an item is {'item', 'header', 'disclosure'}")
        try:
            item_id = parse_account_id(entry["item"])
        except FormatError:
            raise ApiError.bad_request("field 'items' holds a malformed item id") from None
        header = b64decode(entry["header"]) if isinstance(entry["header"], str) else None
        if header is None:
            raise ApiError.bad_request("an item's 'header' must be canonical padded base64")
        try:
            item_service.parse_item_header(header)
        except FormatError as exc:
            raise ApiError(400, "invalid_header", f"item {item_id}: {exc.message}") from None
        disclosure = manifest_field(entry, "disclosure")
        if disclosure is None:
            raise ApiError.bad_request("an item's 'disclosure' must be base64 of an age file")
        staged.append(service.StagedItem(item=item_id, header=header, disclosure=disclosure))
    session = db_session()
    try:
        count = service.stage_release_items(
            session,
            blob_store(),
            account=current_account(),
            recipient=recipient or "",
            items=staged,
            now=_now(),
            duress=_duress(),
        )
    except service.AlreadyArmedError as exc:
        raise ApiError(409, "conflict", exc.message) from None
    except service.PolicyError as exc:
        raise ApiError.bad_request(exc.message) from None
    except StorageError as exc:
        raise storage_error(exc) from None
    session.commit()
    return {"staged": count}


def _shares(raw_shares: object) -> list[tuple[str, bytes, bytes]]:
    """The ``shares`` of an arm request: ``(custodian, age file, commitment)`` each."""
    if not isinstance(raw_shares, list) or len(raw_shares) > service.MAX_SHARES:
        raise ApiError.bad_request(f"field 'shares' must list at most {service.MAX_SHARES} shares")
    shares: list[tuple[str, bytes, bytes]] = []
    for share in raw_shares:
        if not isinstance(share, dict) or not {"custodian", "age"} <= set(share) <= _SHARE_FIELDS:
            raise ApiError.bad_request("a share is {'custodian', 'age', 'commitment'}")
        custodian = share["custodian"]
        if custodian != "server":
            try:
                custodian = parse_account_id(custodian)
            except FormatError:
                raise ApiError.bad_request(
                    "a share's custodian is 'server' or an account id"
                ) from None
        if not isinstance(share["age"], str) or len(share["age"]) > 8192:
            raise ApiError.bad_request("a share's 'age' must be base64 of an age file")
        data = b64decode(share["age"])
        if data is None:
            raise ApiError.bad_request("a share's 'age' must be canonical padded base64")
        if "commitment" not in share:
            raise ApiError.bad_request(
                f"a share's 'commitment' is missing (base64 of {COMMITMENT_SIZE} bytes)"
            )
        commitment = b64decode(share["commitment"], COMMITMENT_SIZE)
        if commitment is None:
            raise ApiError.bad_request(
                f"a share's 'commitment' must be canonical padded base64 of {COMMITMENT_SIZE} bytes"
            )
        shares.append((custodian, data, commitment))
    return shares


@switch_api.post("/policy")
@requires_role("reporter")
def policy() -> tuple[JsonObject, int]:
    """Change the policy: at once, or after cooling-off when it weakens the switch."""
    query_ints(required=())
    body = json_body()
    _fields(body, ("policy",))
    new = _policy(service.keep_secrets(db_session(), current_account(), body["policy"]))
    try:
        requested = service.set_policy(
            db_session(),
            account=current_account(),
            policy=new,
            duress=_duress(),
            now=_now(),
            signer=log_signer(),
        )
    except service.NotArmedError as exc:
        raise ApiError(409, "not_armed", exc.message) from None
    return _change_answer(requested)


@switch_api.post("/disarm")
@requires_role("reporter")
def disarm() -> tuple[JsonObject, int]:
    """Ask to disarm; it takes effect after cooling-off unless trustees cancel it."""
    query_ints(required=())
    body = optional_json_body() or {}
    _fields(body, ())
    try:
        requested = service.disarm(
            db_session(),
            account=current_account(),
            duress=_duress(),
            now=_now(),
            signer=log_signer(),
        )
    except service.NotArmedError as exc:
        raise ApiError(409, "not_armed", exc.message) from None
    return _change_answer(requested)


@switch_api.post("/phrase")
@requires_role("reporter")
def phrase() -> JsonObject:
    """Set the web check-in handle and phrases."""
    query_ints(required=())
    body = json_body()
    _fields(body, ("handle", "phrase"), ("duress_phrase",))
    handle = _optional_string(body, "handle", 64)
    text = _optional_string(body, "phrase")
    if handle is None or text is None:
        raise ApiError.bad_request("fields 'handle' and 'phrase' must be strings")
    session = db_session()
    try:
        result = service.set_phrases(
            session,
            account=current_account(),
            handle=handle,
            phrase=text,
            duress_phrase=_optional_string(body, "duress_phrase"),
            duress_session=_duress(),
        )
    except service.NotArmedError as exc:
        raise ApiError(409, "not_armed", exc.message) from None
    except service.PolicyError as exc:
        raise ApiError.bad_request(exc.message) from None
    session.commit()
    return {"handle": result}


@switch_api.post("/release-items")
@requires_role("reporter")
def release_items() -> JsonObject:
    """Add owned items (already re-wrapped to the release recipient) to the release set."""
    query_ints(required=())
    body = json_body()
    _fields(body, ("items",))
    items = _item_ids(body["items"], "items")
    session = db_session()
    try:
        commitment, appended = service.add_release_items(
            session,
            account=current_account(),
            items=items,
            signer=log_signer(),
            depth=session_depth(),
        )
    except service.NotArmedError as exc:
        raise ApiError(409, "not_armed", exc.message) from None
    except service.PolicyError as exc:
        raise ApiError.bad_request(exc.message) from None
    logged = receipt_fields(appended)
    session.commit()
    return {"commitment": commitment, **logged}


@switch_api.post("/checkin")
def checkin() -> JsonObject:
    """A signed check-in (real or duress key): moves the deadline."""
    query_ints(required=())
    body = json_body()
    _fields(body, ("statement", "signature"))
    statement, signature = body["statement"], body["signature"]
    if not isinstance(statement, str) or len(statement) > 1024:
        raise ApiError.bad_request("field 'statement' must be the statement's JSON text")
    signature_bytes = b64decode(signature, 64) if isinstance(signature, str) else None
    if signature_bytes is None:
        raise ApiError.bad_request("field 'signature' must be base64 of 64 bytes")
    session = db_session()
    signer = log_signer()
    try:
        checked = service.checkin_signed(
            session,
            statement=statement.encode("utf-8"),
            signature=signature_bytes,
            origin=signer.name,
            now=_now(),
            signer=signer,
        )
    except service.CheckinRefusedError as exc:
        session.rollback()
        raise ApiError(403, "forbidden", exc.message) from None
    logged = receipt_fields(checked.appended)
    session.commit()
    return {"status": "ok", "deadline": service.iso(checked.deadline), **logged}


# -- trustees ------------------------------------------------------------------------


@trustee_api.get("/vaults")
@requires_role("editor")
def trustee_vaults() -> JsonObject:
    """The vaults the caller holds a share of."""
    query_ints(required=())
    return {"vaults": service.trustee_vaults(db_session(), current_account())}


def _vault_id(vault_id: str) -> str:
    try:
        return parse_account_id(vault_id)
    except FormatError:
        raise ApiError.not_found("no such vault") from None


@trustee_api.get("/vaults/<vault_id>/share")
@requires_role("editor")
def trustee_share(vault_id: str) -> JsonObject:
    """The caller's share of a vault, encrypted to them."""
    query_ints(required=())
    try:
        share = service.trustee_share(db_session(), current_account(), _vault_id(vault_id))
    except service.NotCustodianError as exc:
        raise ApiError.not_found(exc.message) from None
    return {"position": share.position, "age": b64encode(share.encrypted)}


@trustee_api.post("/vaults/<vault_id>/shares")
@requires_role("editor")
def submit_share(vault_id: str) -> JsonObject:
    """Hand in a share (the mnemonic) for a releasing vault."""
    query_ints(required=())
    body = json_body()
    _fields(body, ("mnemonic",))
    mnemonic = _optional_string(body, "mnemonic")
    if mnemonic is None:
        raise ApiError.bad_request("field 'mnemonic' must be a string")
    session = db_session()
    signer = log_signer()
    try:
        # Only the vault's own trustees hand in shares here (others may use the web form).
        service.trustee_share(session, current_account(), _vault_id(vault_id))
    except service.NotCustodianError as exc:
        raise ApiError.not_found(exc.message) from None
    try:
        accepted = releases.submit_share(
            session,
            vault_id=_vault_id(vault_id),
            mnemonic=mnemonic,
            submitted_by=current_account().id,
            now=_now(),
            signer=signer,
            keys=load_key_file(app_state().config.key_file),
        )
    except releases.NotReleasingError as exc:
        raise ApiError(409, "not_releasing", exc.message) from None
    except releases.ShareRejectedError as exc:
        raise ApiError(400, "share_rejected", exc.message) from None
    session.commit()
    return {"have": accepted.have, "need": accepted.need, "state": accepted.state}


@trustee_api.post("/vaults/<vault_id>/changes/<change_id>/cancel")
@requires_role("editor")
def cancel(vault_id: str, change_id: str) -> JsonObject:
    """Vote to cancel a pending change."""
    query_ints(required=())
    body = optional_json_body() or {}
    _fields(body, ())
    session = db_session()
    try:
        change, votes, needed = service.cancel_vote(
            session,
            trustee=current_account(),
            vault_id=_vault_id(vault_id),
            change_id=change_id[:64],
            now=_now(),
            signer=log_signer(),
        )
    except (service.NotCustodianError, service.ChangeNotFoundError) as exc:
        raise ApiError.not_found(exc.message) from None
    session.commit()
    return {"votes": votes, "votes_needed": needed, "state": change.state}
