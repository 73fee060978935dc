"""RFC 9421 appendix B.2.6: the signing library reproduces the RFC's Ed25519 signature exactly.

The vector (key of appendix B.1.4, request of B.2, signature of B.2.6) is a
copy in ``data/rfc9421/``; see its ``FORMAT.md`` and ``NOTICE``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from requests.structures import CaseInsensitiveDict

from tests.conftest import VECTORS_DIR
from vault.peer_key import PeerVerifier

VECTOR = json.loads((VECTORS_DIR / "rfc9421" / "b26_ed25519.json").read_text(encoding="utf-8"))


class _Request:
    def __init__(self, headers: list[list[str]]) -> None:
        self.method = VECTOR["request"]["method"]
        self.url = VECTOR["request"]["url"]
        self.headers: Any = CaseInsensitiveDict({name: value for name, value in headers})


def _keys() -> MappingKeyResolver:
    private = load_pem_private_key(VECTOR["private_key_pem"].encode(), None)
    public = load_pem_public_key(VECTOR["public_key_pem"].encode())
    return MappingKeyResolver(
        public_keys={VECTOR["keyid"]: public},  # type: ignore[dict-item]
        private_keys={VECTOR["keyid"]: private},  # type: ignore[dict-item]
    )


def test_signing_reproduces_the_rfc_signature() -> None:
    request = _Request(VECTOR["request"]["headers"])
    HTTPMessageSigner(signature_algorithm=algorithms.ED25519, key_resolver=_keys()).sign(
        request,
        key_id=VECTOR["keyid"],
        created=dt.datetime.fromtimestamp(VECTOR["created"], dt.UTC),
        include_alg=False,
        label=VECTOR["label"],
        covered_component_ids=VECTOR["covered_components"],
        use_existing_digest=True,
    )
    assert request.headers["Signature-Input"] == VECTOR["signature_input"]
    assert request.headers["Signature"] == VECTOR["signature"]


def _with_signature(signature: str) -> _Request:
    headers = [*VECTOR["request"]["headers"]]
    headers += [["Signature-Input", VECTOR["signature_input"]], ["Signature", signature]]
    return _Request(headers)


def test_the_rfc_signature_verifies_and_a_changed_one_does_not() -> None:
    verifier = HTTPMessageVerifier(signature_algorithm=algorithms.ED25519, key_resolver=_keys())
    # The RFC's signature is from 2021: no age limit here, the profile's limits are tested apart.
    [result] = verifier.verify(_with_signature(VECTOR["signature"]), max_age=None)
    assert result.parameters == {"created": VECTOR["created"], "keyid": VECTOR["keyid"]}
    changed = VECTOR["signature"].replace("wqcA", "wqcB")
    with pytest.raises(InvalidSignature):
        verifier.verify(_with_signature(changed), max_age=None)


def test_the_peer_key_type_verifies_the_rfc_signature_base() -> None:
    public = load_pem_public_key(VECTOR["public_key_pem"].encode())
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    signature = base64.b64decode(VECTOR["signature"].split(":")[1])
    base = VECTOR["signature_base"].encode("ascii")
    PeerVerifier(name="test-key-ed25519", public_key=raw).verify(base, signature)
