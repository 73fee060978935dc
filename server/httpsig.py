"""RFC 9421 HTTP message signatures between peer servers, with Ed25519 (docs/protocol.md §14).

The library ``http-message-signatures`` builds and checks signature bases;
this module fixes the profile both sides use and reads the signature
parameters before the library does, so that each refusal has its reason:

- Requests carry one signature labelled ``evault`` with ``tag="evault-peer/v1"``
  and ``alg="ed25519"``, covering ``"@method" "@target-uri" "content-digest"``
  (plus ``"content-type"`` when there is a body), with ``created``,
  ``expires`` (at most :data:`MAX_LIFETIME` after ``created``), a random
  ``nonce`` and ``keyid``, the signer's peer key (:mod:`vault.peer_key`).
  Content-Digest (RFC 9530) is SHA-256 of the body, also of an empty one.
- Responses are signed by the answering server over ``"@status"
  "content-type" "content-digest"`` and the request's ``"@method";req``,
  ``"@target-uri";req`` and ``"signature";req;key="evault"``, so an answer
  belongs to one request and cannot be replayed for another.

The verifier takes ``@target-uri`` from its own public URL, never from the
Host header: a request signed for another server does not verify here.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any, Protocol

import http_sf
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from http_message_signatures import (
    ContentDigest,
    HTTPMessageSignaturesException,
    HTTPMessageSigner,
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)

from vault.peer_key import PeerSigner, PeerVerifier

__all__ = [
    "LABEL",
    "LIFETIME",
    "MAX_LIFETIME",
    "REQUEST_COMPONENTS",
    "RESPONSE_COMPONENTS",
    "SKEW",
    "TAG",
    "Refusal",
    "SignedParams",
    "check_times",
    "new_nonce",
    "read_params",
    "sign_request",
    "sign_response",
    "verify_request",
    "verify_response",
]

LABEL = "evault"
TAG = "evault-peer/v1"
LIFETIME = 60
"""Seconds from ``created`` to ``expires`` in the signatures this server makes."""
MAX_LIFETIME = 300
"""Longest accepted: ``expires - created`` and a signature's age, in seconds."""
SKEW = 30
"""Seconds a peer's clock may run ahead of this server's."""
REQUEST_COMPONENTS = ("@method", "@target-uri", "content-digest")
RESPONSE_COMPONENTS = (
    "@status",
    "content-type",
    "content-digest",
    '"@method";req',
    '"@target-uri";req',
    f'"signature";req;key="{LABEL}"',
)
_NONCE = 32
_MAX_FIELD = 8192


class Refusal(Exception):
    """A peer request or answer that is not accepted; ``reason`` is a short code for the log.

    Reasons: ``unsigned``, ``malformed``, ``expired``, ``unknown_peer``,
    ``bad_signature``, ``bad_digest``, ``not_confirmed``, ``replayed``,
    ``pin_mismatch``.
    """

    def __init__(self, reason: str, *, peer_key: str | None = None, verified: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.peer_key = peer_key
        """The pinned peer the request named (``verified``: and whose signature it carries)."""
        self.verified = verified
        """Whether the request's signature verified against ``peer_key``: only then is the
        refusal the peer's doing rather than anyone's."""


class _Headers(Protocol):
    def items(self) -> Iterable[tuple[str, str]]: ...


class _FieldView:
    """Header field lines as the library reads them; writes go to ``target`` if given."""

    def __init__(
        self,
        fields: Callable[[], Iterable[tuple[str, str]]],
        target: MutableMapping[str, str] | None = None,
    ) -> None:
        self._fields = fields
        self._target = target

    def items(self) -> Iterable[tuple[str, str]]:
        return list(self._fields())

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self.items()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(n.lower() == name.lower() for n, _ in self.items())

    def __setitem__(self, name: str, value: str) -> None:
        if self._target is None:
            raise RuntimeError("internal error: a read-only header view was written")
        self._target[name] = value

    def __delitem__(self, name: str) -> None:
        if self._target is None:
            raise RuntimeError("internal error: a read-only header view was written")
        del self._target[name]


@dataclasses.dataclass
class _Request:
    method: str
    url: str
    headers: Any


@dataclasses.dataclass
class _Response:
    status_code: int
    headers: Any
    request: _Request


@dataclasses.dataclass(frozen=True, kw_only=True)
class SignedParams:
    """The parameters of a request's ``evault`` signature, read before it is verified."""

    keyid: str
    nonce: str
    created: int
    expires: int


class _Keys(HTTPSignatureKeyResolver):
    """The one public key a verification may use: the pinned key of the claimed peer."""

    def __init__(self, verifier: PeerVerifier) -> None:
        self._verifier = verifier

    def resolve_public_key(self, key_id: str) -> Ed25519PublicKey | None:
        if key_id != str(self._verifier):
            return None
        return Ed25519PublicKey.from_public_bytes(self._verifier.public_key)

    def resolve_private_key(self, key_id: str) -> Any:
        raise RuntimeError("internal error: the private key never leaves PeerSigner")


def _sign(
    message: Any,
    signer: PeerSigner,
    now: dt.datetime,
    nonce: str,
    components: list[str],
    body: bytes,
) -> None:
    """Sign through the library's prepare/apply, so the private key stays in ``signer``."""
    handler = HTTPMessageSigner(signature_algorithm=algorithms.ED25519)
    prepared = handler.prepare(
        message,
        key_id=str(signer.verifier()),
        created=now,
        expires=now + dt.timedelta(seconds=LIFETIME),
        nonce=nonce,
        label=LABEL,
        tag=TAG,
        covered_component_ids=components,
        body=body,
    )
    handler.apply(message, prepared, signer.sign(prepared.signature_base))


class _Verifier(HTTPMessageVerifier):
    """The library's checks without its clock: :func:`_check_times` decides with the app's."""

    def validate_created_and_expires(self, sig_input: Any, max_age: Any = None) -> None:
        return None


def new_nonce() -> str:
    """A new nonce: 32 random bytes, base64url without padding (43 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(_NONCE)).rstrip(b"=").decode("ascii")


def _field(headers: _Headers, name: str) -> str | None:
    values = [value for key, value in headers.items() if key.lower() == name]
    if not values:
        return None
    return ", ".join(values)


def read_params(headers: _Headers) -> SignedParams:
    """The ``evault`` signature's parameters.

    Raises:
        Refusal: ``unsigned`` without signature fields, ``malformed`` for
            fields that do not parse or lack a parameter this profile requires.
    """
    text = _field(headers, "signature-input")
    signature = _field(headers, "signature")
    if text is None and signature is None:
        raise Refusal("unsigned")
    if text is None or signature is None or len(text) > _MAX_FIELD or len(signature) > _MAX_FIELD:
        raise Refusal("malformed")
    try:
        inputs = http_sf.parse(text.encode("ascii"), tltype="dictionary")
    except (ValueError, TypeError, UnicodeEncodeError):
        raise Refusal("malformed") from None
    if not isinstance(inputs, dict) or set(inputs) != {LABEL}:
        raise Refusal("malformed")
    entry: Any = inputs[LABEL]
    if not isinstance(entry, tuple) or len(entry) != 2:
        raise Refusal("malformed")
    member, params = entry
    if not isinstance(member, list) or not isinstance(params, dict):
        raise Refusal("malformed")
    keyid, nonce = params.get("keyid"), params.get("nonce")
    created, expires = params.get("created"), params.get("expires")
    if (
        params.get("alg") != "ed25519"
        or params.get("tag") != TAG
        or not isinstance(keyid, str)
        or not isinstance(nonce, str)
        or not 16 <= len(nonce) <= 64
        or type(created) is not int
        or type(expires) is not int
    ):
        raise Refusal("malformed")
    return SignedParams(keyid=keyid, nonce=nonce, created=created, expires=expires)


def check_times(params: SignedParams, now: dt.datetime) -> None:
    """Refuse a signature made in the future, expired, too old or living too long.

    Raises:
        Refusal: ``expired``.
    """
    at = int(now.timestamp())
    if (
        params.created > at + SKEW
        or params.expires <= at
        or params.expires <= params.created
        or params.expires - params.created > MAX_LIFETIME
        or at - params.created > MAX_LIFETIME
    ):
        raise Refusal("expired")


def _check_digest(headers: _Headers, body: bytes) -> None:
    value = _field(headers, "content-digest")
    if value is None:
        raise Refusal("malformed")
    try:
        ContentDigest.verify(value, body)
    except InvalidSignature:
        raise Refusal("bad_digest") from None
    except HTTPMessageSignaturesException:
        raise Refusal("malformed") from None


def sign_request(
    *,
    method: str,
    url: str,
    headers: MutableMapping[str, str],
    body: bytes,
    signer: PeerSigner,
    now: dt.datetime,
    nonce: str | None = None,
) -> SignedParams:
    """Add ``Content-Digest``, ``Signature-Input`` and ``Signature`` to ``headers``.

    ``url`` is the exact target URI (the peer's URL and the path).
    """
    components = [*REQUEST_COMPONENTS]
    if body:
        components.insert(2, "content-type")
    nonce = nonce or new_nonce()
    keyid = str(signer.verifier())
    message = _Request(method, url, _FieldView(lambda: list(headers.items()), headers))
    _sign(message, signer, now, nonce, components, body)
    created = int(now.timestamp())
    return SignedParams(keyid=keyid, nonce=nonce, created=created, expires=created + LIFETIME)


def verify_request(
    *,
    method: str,
    url: str,
    headers: _Headers,
    body: bytes,
    params: SignedParams,
    verifier: PeerVerifier,
) -> None:
    """Check the ``evault`` signature of a request whose parameters :func:`read_params` read.

    The caller has looked ``params.keyid`` up among its peers (``verifier``)
    and checked the times (:func:`check_times`).

    Raises:
        Refusal: ``bad_digest`` for a body that does not match its digest,
            ``bad_signature`` for anything else that does not verify.
    """
    _check_digest(headers, body)
    required = [*REQUEST_COMPONENTS] + (["content-type"] if body else [])
    message = _Request(method, url, _FieldView(lambda: list(headers.items())))
    try:
        _Verifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(verifier)).verify(
            message,
            max_age=None,
            expect_tag=TAG,
            require_components=required,
            body=body,
        )
    except (InvalidSignature, HTTPMessageSignaturesException):
        raise Refusal("bad_signature") from None


def sign_response(
    *,
    status: int,
    headers: MutableMapping[str, str],
    body: bytes,
    request_method: str,
    request_url: str,
    request_headers: _Headers,
    signer: PeerSigner,
    now: dt.datetime,
) -> None:
    """Sign an answer to a verified peer request, adding its signature fields to ``headers``."""
    request = _Request(
        request_method, request_url, _FieldView(lambda: list(request_headers.items()))
    )
    message = _Response(status, _FieldView(lambda: list(headers.items()), headers), request)
    _sign(message, signer, now, new_nonce(), list(RESPONSE_COMPONENTS), body)


def verify_response(
    *,
    status: int,
    headers: _Headers,
    body: bytes,
    request_method: str,
    request_url: str,
    request_headers: _Headers,
    verifier: PeerVerifier,
    now: dt.datetime,
) -> None:
    """Check that the answer to our request is signed by the peer we pinned.

    Raises:
        Refusal: unsigned, malformed, expired, from another key, or not
            matching its body or our request.
    """
    params = read_params(headers)
    if params.keyid != str(verifier):
        raise Refusal("unknown_peer")
    check_times(params, now)
    _check_digest(headers, body)
    request = _Request(
        request_method, request_url, _FieldView(lambda: list(request_headers.items()))
    )
    message = _Response(status, _FieldView(lambda: list(headers.items())), request)
    try:
        _Verifier(signature_algorithm=algorithms.ED25519, key_resolver=_Keys(verifier)).verify(
            message,
            max_age=None,
            expect_tag=TAG,
            require_components=RESPONSE_COMPONENTS,
            body=body,
        )
    except (InvalidSignature, HTTPMessageSignaturesException):
        raise Refusal("bad_signature") from None
