"""A trustee's share: opened with their identity, checked before it is sent."""

from __future__ import annotations

import base64
import io
import os
from types import SimpleNamespace
from typing import Any

import pytest

from client import trustee
from vault import age
from vault.errors import ConfigError, DecryptError, ShareError
from vault.keys import PersonalIdentity
from vault.shares import split_secret

VAULT = "a" * 32


class _Server:
    def __init__(self, sealed: bytes) -> None:
        self.sealed = sealed
        self.sent: list[tuple[str, str, Any]] = []

    def call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        self.sent.append((method, path, kwargs.get("json")))
        if method == "GET":
            return {"position": 1, "age": base64.b64encode(self.sealed).decode()}
        return {"have": 1, "need": 2, "state": "releasing"}


def _sealed_to(identity: PersonalIdentity, text: str) -> bytes:
    out = io.BytesIO()
    age.encrypt(io.BytesIO(text.encode()), out, [identity.card().age_recipient()])
    return out.getvalue()


def test_my_share_opens_and_is_handed_in_as_typed() -> None:
    maria = PersonalIdentity.generate("Maria")
    words = split_secret(os.urandom(32), 2, 3)[1]
    server = _Server(_sealed_to(maria, words))
    client = SimpleNamespace(call=server.call, identity=maria)
    share = trustee.my_share(client, VAULT)  # type: ignore[arg-type]
    assert share.mnemonic == words
    assert len(share.words) == 33
    # Typed from paper: any case, any spacing.
    shouted = "  " + "\n".join(w.upper() for w in share.words)
    answer = trustee.submit_share(client, VAULT, shouted)  # type: ignore[arg-type]
    assert answer["have"] == 1
    assert server.sent[-1] == ("POST", f"/trustee/vaults/{VAULT}/shares", {"mnemonic": words})


def test_a_mistyped_share_never_leaves_the_device() -> None:
    words = split_secret(os.urandom(32), 2, 3)[0].split()
    words[5] = "zzzz"
    server = _Server(b"")
    client = SimpleNamespace(call=server.call)
    with pytest.raises(ShareError):
        trustee.submit_share(client, VAULT, " ".join(words))  # type: ignore[arg-type]
    assert server.sent == []


def test_a_share_sealed_to_someone_else_does_not_open() -> None:
    maria, other = PersonalIdentity.generate("Maria"), PersonalIdentity.generate("Other")
    server = _Server(_sealed_to(other, split_secret(os.urandom(32), 1, 2)[0]))
    client = SimpleNamespace(call=server.call, identity=maria)
    with pytest.raises(DecryptError, match="cannot open your share"):
        trustee.my_share(client, VAULT)  # type: ignore[arg-type]


@pytest.mark.parametrize("vault", ["", "A" * 32, "a" * 31, "../" + "a" * 29])
def test_vault_ids_are_checked(vault: str) -> None:
    with pytest.raises(ConfigError):
        trustee.check_vault_id(vault)
