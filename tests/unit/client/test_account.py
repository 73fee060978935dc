"""Invite links: what the app reads from the link an operator sends."""

from __future__ import annotations

import urllib.parse

import pytest

from client.account import parse_invite_link
from vault.errors import ConfigError
from vault.note import NoteSigner

KEY = str(NoteSigner.generate("vault.example.org/log").verifier())


def _link(base: str = "https://vault.example.org", **fields: str) -> str:
    values = {"code": "jdeXcCHekfdANXsfB5FB65ggacA", "log-key": KEY, **fields}
    return f"{base}/invite#{urllib.parse.urlencode(values)}"


def test_an_invite_link_gives_the_server_the_code_and_the_log_key() -> None:
    invite = parse_invite_link("  " + _link() + "\n")
    assert invite.server == "https://vault.example.org"
    assert invite.code == "jdeXcCHekfdANXsfB5FB65ggacA"
    assert invite.log_key == KEY
    behind = parse_invite_link(_link("http://abc.onion/evault"))
    assert behind.server == "http://abc.onion/evault"


@pytest.mark.parametrize(
    "link",
    [
        "jdeXcCHekfdANXsfB5FB65ggacA",
        "https://vault.example.org/checkin#code=x&log-key=y",
        "ftp://vault.example.org/invite#code=x",
        _link().split("#")[0],
        _link().replace("log-key=", "key="),
        _link(**{"log-key": "not a key"}),
        _link() + "&code=again",
    ],
)
def test_anything_else_is_not_an_invite_link(link: str) -> None:
    with pytest.raises(ConfigError, match="not an invite link") as refused:
        parse_invite_link(link)
    assert refused.value.hint is not None
    assert "#code=" in refused.value.hint
