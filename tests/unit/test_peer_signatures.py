"""Peer keys and the RFC 9421 profile between servers; docs/protocol.md §14 recomputed."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest

from server import httpsig
from server.services.peers import HELLO_PATH, Identity, check_hello, hello_body, normalise_url
from vault import canonical
from vault.errors import ConfigError, NoteError, SignatureError
from vault.note import NoteSigner
from vault.peer_key import PeerSigner, PeerVerifier, peer_fingerprint

DOC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
A = PeerSigner(name="a.example/log/peer", seed=b"\x05" * 32)
B = PeerSigner(name="b.example/log/peer", seed=b"\x06" * 32)
A_ID = Identity(
    url="https://a.example",
    peer_key=str(A.verifier()),
    log_key=str(NoteSigner.from_seed("a.example/log", b"\x07" * 32).verifier()),
)
B_ID = Identity(
    url="https://b.example",
    peer_key=str(B.verifier()),
    log_key=str(NoteSigner.from_seed("b.example/log", b"\x08" * 32).verifier()),
)
NOW = dt.datetime.fromtimestamp(1900000000, dt.UTC)
NONCE = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
URL = B_ID.url + HELLO_PATH


def example(name: str) -> str:
    match = re.search(rf"<!-- example:{re.escape(name)} -->\n```\n(.*?)\n```\n", DOC, re.DOTALL)
    assert match is not None, f"no example {name!r} in docs/protocol.md"
    return match.group(1)


def _signed(body: bytes, *, now: dt.datetime = NOW, url: str = URL) -> dict[str, str]:
    headers = {"Content-Type": "application/json"} if body else {}
    httpsig.sign_request(
        method="POST" if body else "GET",
        url=url,
        headers=headers,
        body=body,
        signer=A,
        now=now,
        nonce=NONCE,
    )
    return headers


def _verify(headers: dict[str, str], body: bytes, *, url: str = URL) -> None:
    params = httpsig.read_params(_Items(headers))
    httpsig.check_times(params, NOW + dt.timedelta(seconds=10))
    httpsig.verify_request(
        method="POST" if body else "GET",
        url=url,
        headers=_Items(headers),
        body=body,
        params=params,
        verifier=A.verifier(),
    )


class _Items:
    """Headers as the verifier reads them: ``items()`` of name/value pairs."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def items(self) -> list[tuple[str, str]]:
        return list(self._headers.items())


# -- the peer key -----------------------------------------------------------------------------


def test_peer_key_is_a_cosignature_vkey() -> None:
    verifier = A.verifier()
    expected = hashlib.sha256(b"a.example/log/peer\n\x04" + verifier.public_key).digest()[:4]
    assert verifier.key_id == int.from_bytes(expected, "big")
    assert PeerVerifier.parse(str(verifier)) == verifier
    assert PeerSigner.parse_skey(A.skey()).verifier() == verifier
    assert "05050505" not in repr(A)


def test_peer_key_refuses_a_log_key_and_a_wrong_key_id() -> None:
    with pytest.raises(NoteError, match="want 0x04"):
        PeerVerifier.parse(A_ID.log_key)
    text = str(A.verifier())
    name, key_id, material = text.split("+", 2)
    wrong = f"{name}+{int(key_id, 16) ^ 1:08x}+{material}"
    with pytest.raises(NoteError, match="does not match"):
        PeerVerifier.parse(wrong)
    with pytest.raises(SignatureError):
        A.verifier().verify(b"message", B.sign(b"message"))


def test_url_normalisation() -> None:
    assert normalise_url("HTTPS://B.Example:443/") == "https://b.example"
    assert normalise_url("http://127.0.0.1:8080/vault/") == "http://127.0.0.1:8080/vault"
    for bad in ("ftp://b.example", "https://b.example/?q=1", "https://u@b.example", "b.example"):
        with pytest.raises(ConfigError):
            normalise_url(bad)


# -- the examples of docs/protocol.md §14 ----------------------------------------------------------


def test_peer_identity_example() -> None:
    fingerprint = peer_fingerprint(A.verifier(), A_ID.log_key)
    assert example("peer-identity") == (
        f"url: {A_ID.url}\npeer key: {A_ID.peer_key}\nlog key: {A_ID.log_key}\n"
        f"fingerprint: {fingerprint}"
    )
    assert A_ID.fingerprint() == fingerprint


def test_peer_request_example() -> None:
    body = canonical.dumps(hello_body(A_ID, B_ID))
    headers = _signed(body)
    lines = [f"{name}: {value}" for name, value in headers.items()]
    text = "\n".join(
        ["POST /api/v1/peer/hello HTTP/1.1", "Host: b.example", *lines, "", body.decode()]
    )
    assert example("peer-request") == text


def test_peer_signature_base_example() -> None:
    base = example("peer-signature-base").encode("ascii")
    headers = _signed(canonical.dumps(hello_body(A_ID, B_ID)))
    signature = headers["Signature"].removeprefix("evault=:").removesuffix(":")
    A.verifier().verify(base, base64.b64decode(signature))
    assert base.endswith(b'"@signature-params": ' + headers["Signature-Input"][7:].encode())


# -- verification ---------------------------------------------------------------------------------


def test_signed_requests_verify_with_and_without_body() -> None:
    body = canonical.dumps(hello_body(A_ID, B_ID))
    _verify(_signed(body), body)
    _verify(_signed(b""), b"")


def _reason(headers: dict[str, str], body: bytes, *, url: str = URL) -> str:
    with pytest.raises(httpsig.Refusal) as caught:
        _verify(headers, body, url=url)
    return caught.value.reason


def test_refusals_have_their_reasons() -> None:
    body = canonical.dumps(hello_body(A_ID, B_ID))
    headers = _signed(body)
    assert _reason({}, b"") == "unsigned"
    assert _reason({"Signature": headers["Signature"]}, body) == "malformed"
    assert _reason(headers, body + b" ") == "bad_digest"
    assert _reason(headers, body, url="https://c.example" + HELLO_PATH) == "bad_signature"
    for name, old, new in [
        ("Signature-Input", 'tag="evault-peer/v1"', 'tag="other"'),
        ("Signature-Input", 'alg="ed25519"', 'alg="hmac-sha256"'),
        ("Signature-Input", "evault=", "other="),
    ]:
        assert _reason({**headers, name: headers[name].replace(old, new)}, body) == "malformed"
    # A signature without content-type coverage, although there is a body.
    stripped = {**headers}
    stripped["Signature-Input"] = stripped["Signature-Input"].replace(' "content-type"', "")
    assert _reason(stripped, body) == "bad_signature"


@pytest.mark.parametrize(
    ("seconds", "ok"),
    [(-httpsig.SKEW, True), (-httpsig.SKEW - 1, False), (59, True), (60, False)],
)
def test_times_are_bounded(seconds: int, ok: bool) -> None:
    """A signature made ``-seconds`` ago (negative: in the future) with the usual 60 s lifetime."""
    created = int(NOW.timestamp()) - seconds
    params = httpsig.SignedParams(keyid="k", nonce=NONCE, created=created, expires=created + 60)
    if created + 60 <= int(NOW.timestamp()):
        ok = False
    if ok:
        httpsig.check_times(params, NOW)
    else:
        with pytest.raises(httpsig.Refusal, match="expired"):
            httpsig.check_times(params, NOW)
    long = httpsig.SignedParams(
        keyid="k", nonce=NONCE, created=int(NOW.timestamp()), expires=int(NOW.timestamp()) + 301
    )
    with pytest.raises(httpsig.Refusal, match="expired"):
        httpsig.check_times(long, NOW)


def test_an_answer_belongs_to_its_request() -> None:
    body = canonical.dumps(hello_body(A_ID, B_ID))
    request = _signed(body)
    answer_body = canonical.dumps(hello_body(B_ID, A_ID))
    answer = {"Content-Type": "application/json"}
    httpsig.sign_response(
        status=200,
        headers=answer,
        body=answer_body,
        request_method="POST",
        request_url=URL,
        request_headers=_Items(request),
        signer=B,
        now=NOW,
    )
    check = {
        "status": 200,
        "headers": _Items(answer),
        "body": answer_body,
        "request_method": "POST",
        "request_url": URL,
        "verifier": B.verifier(),
        "now": NOW,
    }
    httpsig.verify_response(request_headers=_Items(request), **check)  # type: ignore[arg-type]
    other = _signed(body, now=NOW + dt.timedelta(seconds=1))
    with pytest.raises(httpsig.Refusal, match="bad_signature"):
        httpsig.verify_response(request_headers=_Items(other), **check)  # type: ignore[arg-type]
    with pytest.raises(httpsig.Refusal, match="unknown_peer"):
        httpsig.verify_response(  # type: ignore[arg-type]
            request_headers=_Items(request), **{**check, "verifier": A.verifier()}
        )


def test_hello_must_name_both_sides_as_pinned() -> None:
    check_hello(hello_body(A_ID, B_ID), sender=A_ID, receiver=B_ID)
    with pytest.raises(httpsig.Refusal, match="pin_mismatch"):
        check_hello(hello_body(A_ID, A_ID), sender=A_ID, receiver=B_ID)
    with pytest.raises(httpsig.Refusal, match="malformed"):
        check_hello({"from": A_ID.to_json()}, sender=A_ID, receiver=B_ID)
