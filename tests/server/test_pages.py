"""The public HTML pages: check-in, release page, downloads, key, share form (server.web)."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.app import HTML_CSP, SECURITY_HEADERS
from server.auth import PUBLIC_ENDPOINTS
from server.clock import ManualClock
from server.config import Config
from server.db import transaction
from server.models import Switch
from server.services import release as release_service
from tests.server._pages import (
    DURESS_PHRASE,
    HANDLE,
    HOSTILE,
    INTERVAL,
    PHRASE,
    armed_vault,
    miss_deadline,
    released_vault,
    sweep,
    switch_state,
)
from tests.server.conftest import ORIGIN
from vault import age
from vault.shares import split_secret

FORM = "application/x-www-form-urlencoded"
TIME = re.compile(r'<time datetime="[^"]*">[^<]*</time>')


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def _html(response: TestResponse, status: int = 200) -> str:
    """The page's text, after checking the status and the headers every page has."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == HTML_CSP
    for name, value in SECURITY_HEADERS.items():
        if name not in ("Content-Security-Policy", "Cache-Control"):
            assert response.headers[name] == value
    assert "Set-Cookie" not in response.headers
    text = response.get_data(as_text=True)
    assert "<script" not in text.lower()
    assert " style=" not in text
    return text


def _no_store(response: TestResponse) -> None:
    assert response.headers["Cache-Control"] == "no-store"


def _check_in(client: FlaskClient, handle: str, phrase: str) -> TestResponse:
    return client.post("/checkin", data={"handle": handle, "phrase": phrase})


def _failed_phrases(app: Flask, vault: str) -> int:
    with transaction(app.extensions["evault"].sessions) as session:
        switch = session.get(Switch, vault)
        assert switch is not None
        return switch.failed_phrases


# Check-in ------------------------------------------------------------------


def test_checkin_form_and_stylesheet(client: FlaskClient) -> None:
    response = client.get("/checkin")
    page = _html(response)
    _no_store(response)
    assert '<form method="post" action="/checkin"' in page
    assert 'name="handle"' in page
    assert re.search(r'name="phrase" type="password"', page)
    assert 'maxlength="64"' in page
    assert 'maxlength="1024"' in page
    link = re.search(r'<link rel="stylesheet" href="([^"]+)">', page)
    assert link is not None
    assert link[1].startswith("/static/evault.css?v=")
    css = client.get(link[1])
    assert css.status_code == 200
    assert css.mimetype == "text/css"
    assert css.headers["Cache-Control"] == "public, max-age=31536000"
    assert css.headers["X-Content-Type-Options"] == "nosniff"
    assert b"overflow-wrap: anywhere" in css.data
    assert b"@import" not in css.data
    assert b"url(" not in css.data
    again = client.get(link[1], headers={"If-None-Match": css.headers["ETag"]})
    assert again.status_code == 304


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_a_failing_page_says_nothing_of_why(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    monkeypatch.setattr(release_service, "release_view", broken)
    with caplog.at_level(logging.ERROR):
        response = client.get(f"/release/{'0' * 32}")
    page = _html(response, 500)
    _no_store(response)
    assert "Server error" in page
    assert "secret" not in page
    assert "secret internal detail" in caplog.text


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_checkin_refuses_malformed_forms(client: FlaskClient) -> None:
    secret = "do-not-echo-this-phrase"  # noqa: S105 — a marker, not a secret
    for response in (
        client.post("/checkin", json={"handle": HANDLE, "phrase": secret}),
        client.post("/checkin", data=f"handle={HANDLE}&phrase={secret}", content_type="text/plain"),
        client.post("/checkin", data={"handle": HANDLE}),
        client.post("/checkin", data={"handle": HANDLE, "phrase": secret, "extra": "1"}),
        client.post(
            "/checkin", data=f"handle={HANDLE}&handle=x&phrase={secret}", content_type=FORM
        ),
        _check_in(client, "a" * 65, secret),
        _check_in(client, "ab", secret),
        _check_in(client, "ana web", secret),
        _check_in(client, "ana\x00web", secret),
        _check_in(client, HANDLE, ""),
        _check_in(client, HANDLE, "p" * 1025),
    ):
        page = _html(response, 400)
        _no_store(response)
        assert "Bad request" in page
        assert secret not in page
    # 1024 characters are allowed: refused only because the handle is unknown.
    page = _html(_check_in(client, HANDLE, "p" * 1024), 403)
    assert "Not accepted." in page
    too_large = _check_in(client, HANDLE, "p" * 20_000)
    assert "Too large" in _html(too_large, 413)


def test_real_and_duress_phrases_give_the_same_page(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock
) -> None:
    armed = armed_vault(app, config, client, [("a.txt", b"a")])
    real = _check_in(client, HANDLE, PHRASE)
    duress = _check_in(client, HANDLE, DURESS_PHRASE)
    real_page, duress_page = _html(real), _html(duress)
    _no_store(real)
    deadline = (clock.now() + dt.timedelta(seconds=INTERVAL)).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert "Checked in. Your next check-in is due before" in real_page
    assert f">{deadline}</time>" in real_page
    assert TIME.sub("TIME", real_page) == TIME.sub("TIME", duress_page)
    assert real.status_code == duress.status_code
    assert {k: v for k, v in real.headers if k != "Content-Length"} == {
        k: v for k, v in duress.headers if k != "Content-Length"
    }
    # A phone may capitalise the handle; handles are lower case.
    assert "Checked in." in _html(_check_in(client, " Ana-Web ", PHRASE))
    assert _failed_phrases(app, armed.vault) == 0


def test_a_refused_checkin_is_one_page_and_is_counted(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    armed = armed_vault(app, config, client, [("a.txt", b"a")])
    wrong = _check_in(client, HANDLE, "not the phrase at all")
    unknown = _check_in(client, "nobody-here", PHRASE)
    wrong_page = _html(wrong, 403)
    _no_store(wrong)
    assert "Not accepted. Check the handle and phrase and try again." in wrong_page
    assert "Checked in" not in wrong_page
    assert '<form method="post" action="/checkin"' in wrong_page
    assert "not the phrase at all" not in wrong_page
    assert wrong_page == _html(unknown, 403)
    # The refusal was committed: the failure counter moved.
    assert _failed_phrases(app, armed.vault) == 1


@pytest.mark.usefixtures("light_phrase_hashing")
@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_every_checkin_attempt_on_a_handle_is_judged(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    armed = armed_vault(app, config, client, [("a.txt", b"a")])
    # More than any per-handle budget would allow: none is turned away unjudged
    # (no 429), each is counted, and the right phrases still get in at once.
    for _ in range(12):
        _html(_check_in(client, HANDLE, "a wrong phrase"), 403)
        _html(_check_in(client, "guessed-handle", "a wrong phrase"), 403)
    assert _failed_phrases(app, armed.vault) == 12
    assert "Checked in." in _html(_check_in(client, HANDLE, DURESS_PHRASE))
    assert "Checked in." in _html(_check_in(client, HANDLE, PHRASE))
    assert _failed_phrases(app, armed.vault) == 0


# Release -------------------------------------------------------------------


def _items(page: str) -> list[str]:
    return re.findall(r'href="/release/[0-9a-f]{32}/items/([0-9a-f]{32})\.age"', page)


def test_release_page(app: Flask, config: Config, client: FlaskClient) -> None:
    vault = released_vault(app, config, client)
    response = client.get(f"/release/{vault.vault}")
    page = _html(response)
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert "Evidence released for Ana Reporter" in page
    assert vault.who.person.card().fingerprint() in page
    assert "<dd>released</dd>" in page
    # The hostile name is text, escaped, never markup; the command uses a safe name.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pdf" in page
    by_name = {name: item for item, name in vault.names.items()}
    hostile, ledger = by_name[HOSTILE], by_name["ledger.csv"]
    assert f"age -d -i key.txt -o script_.pdf {hostile}.age" in page
    assert f"age -d -i key.txt -o ledger.csv {ledger}.age\nsha256sum ledger.csv" in page
    assert vault.later is not None
    assert sorted(_items(page)) == sorted([*vault.names, vault.later])
    for item, plaintext in vault.who.items.items():
        article = page.split(f'id="item-{item}"', 1)[1].split("</article>", 1)[0]
        assert hashlib.sha256(plaintext).hexdigest() in article
        if item == vault.later:
            assert "added later, with its own log entry" in article
        else:
            assert "in the commitment logged at arming" in article
        assert '<strong class="valid">valid</strong>' in article
        assert "upload logged in entry " in article
        assert "failed a check" not in article
    assert f'<pre class="key">{vault.release}</pre>' in page
    assert f'href="/release/{vault.vault}/key.txt"' in page
    assert "sha256sum" in page
    assert "evault log verify" in page
    assert ORIGIN in page
    assert "under way" not in page


def test_release_downloads_and_key(app: Flask, config: Config, client: FlaskClient) -> None:
    vault = released_vault(app, config, client)
    key = client.get(f"/release/{vault.vault}/key.txt")
    assert key.status_code == 200
    assert key.mimetype == "text/plain"
    assert key.headers["X-Content-Type-Options"] == "nosniff"
    assert key.headers["Cache-Control"] == "public, max-age=3600"
    assert key.get_data(as_text=True) == f"{vault.release}\n"
    released = age.X25519Identity.parse(key.get_data(as_text=True).strip())
    for item, plaintext in vault.who.items.items():
        response = client.get(f"/release/{vault.vault}/items/{item}.age")
        assert response.status_code == 200
        assert response.mimetype == "application/octet-stream"
        assert response.headers["Content-Disposition"] == f'attachment; filename="{item}.age"'
        assert response.headers["Content-Length"] == str(len(response.data))
        assert response.headers["Cache-Control"] == "public, max-age=3600"
        plain = io.BytesIO()
        age.decrypt(io.BytesIO(response.data), plain, [released])
        assert plain.getvalue() == plaintext
    # A released vault takes no more shares.
    assert "Already released" in _html(client.get(f"/release/{vault.vault}/share"), 409)


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_release_pages_of_other_vaults_are_not_found(
    app: Flask, config: Config, client: FlaskClient
) -> None:
    armed = armed_vault(app, config, client, [("a.txt", b"a")])
    (item,) = armed.names
    nothing = "0" * 32
    pages = []
    for vault in (armed.vault, nothing):
        for path in ("", "/key.txt", "/share", f"/items/{item}.age"):
            response = client.get(f"/release/{vault}{path}")
            pages.append(_html(response, 404))
            _no_store(response)
        response = client.post(f"/release/{vault}/share", data={"mnemonic": "word " * 20})
        pages.append(_html(response, 404))
    for path in (
        "/release/XYZ",
        f"/release/{armed.vault.upper()}",
        f"/release/{nothing}/items/x.age",
    ):
        pages.append(_html(client.get(path), 404))
    assert len(set(pages)) == 1
    assert "There is no release at this address." in pages[0]
    # Nor is an item of another vault, or none, under a released vault.
    other = released_vault(app, config, client)
    _html(client.get(f"/release/{other.vault}/items/{item}.age"), 404)
    _html(client.get(f"/release/{other.vault}/items/{nothing}.age"), 404)


def test_share_form_while_releasing(app: Flask, config: Config, client: FlaskClient) -> None:
    vault = armed_vault(app, config, client, [("a.txt", b"a")], trustees=1, threshold=2)
    miss_deadline(app, config, vault, want="releasing")
    response = client.get(f"/release/{vault.vault}")
    page = _html(response)
    _no_store(response)
    assert "Release under way" in page
    assert "1 of 2 custodian shares are in" in page
    assert f'href="/release/{vault.vault}/share"' in page
    assert "AGE-SECRET-KEY-1" not in page
    assert _items(page) == []
    assert client.get(f"/release/{vault.vault}/key.txt").status_code == 404
    form = _html(client.get(f"/release/{vault.vault}/share"))
    assert "<textarea" in form
    assert "1 of 2 shares are in" in form

    # A share of another set is refused with the service's message and not echoed.
    stranger = split_secret(b"\x01" * 32, 2, 2)[0]
    refused = client.post(f"/release/{vault.vault}/share", data={"mnemonic": stranger})
    page = _html(refused, 400)
    _no_store(refused)
    assert "this share does not belong to the release key of this vault" in page
    assert stranger not in page
    assert "</textarea>" in page
    assert "></textarea>" in page  # the text area is empty again
    garbled = client.post(f"/release/{vault.vault}/share", data={"mnemonic": "not a share"})
    assert "Share not accepted" in _html(garbled, 400)
    for data in ({"mnemonic": "x" * 1025}, {"mnemonic": ""}, {"words": "x"}):
        _html(client.post(f"/release/{vault.vault}/share", data=data), 400)

    (words,) = vault.trustee_words
    accepted = client.post(f"/release/{vault.vault}/share", data={"mnemonic": words.upper()})
    page = _html(accepted)
    assert "Share accepted: 2 of 2 are in." in page
    assert "the release will be published within minutes" in page
    assert words not in page
    sweep(app, config)
    assert switch_state(app, vault.vault) == "released"
    assert str(vault.release) in _html(client.get(f"/release/{vault.vault}"))
    late = client.post(f"/release/{vault.vault}/share", data={"mnemonic": words})
    assert "Already released" in _html(late, 409)


@pytest.mark.parametrize("db_kind", ["sqlite"], indirect=True)
def test_the_pages_are_public_by_name(app: Flask) -> None:
    rules = [
        (r.endpoint, r.rule) for r in app.url_map.iter_rules() if r.endpoint.startswith("pages.")
    ]
    assert {e for e, _ in rules} == {e for e in PUBLIC_ENDPOINTS if e.startswith("pages.")}
    assert {rule for _, rule in rules} == {
        "/invite",
        "/checkin",
        "/static/evault.css",
        "/release/<vault>",
        "/release/<vault>/<int:number>",
        "/release/<vault>/items/<item>.age",
        "/release/<vault>/<int:number>/items/<item>.age",
        "/release/<vault>/key.txt",
        "/release/<vault>/<int:number>/key.txt",
        "/release/<vault>/release.json",
        "/release/<vault>/<int:number>/release.json",
        "/release/<vault>/share",
        "/notice/<token>",
    }
