"""The public HTML pages (DESIGN.md, "Dead-man switch"): web check-in, release pages, shares.

- ``GET /checkin``, ``POST /checkin``: a reporter checks in with the handle
  and check-in phrase set with ``POST /api/v1/switch/phrase``. The real and
  the duress phrase give the same page, status and headers; only the times
  differ. A refusal is one 403 page whatever the cause. Every attempt is
  judged, however many came before (:func:`server.services.switch.checkin_with_phrase`).
- ``GET /release/<vault>``: the page of the vault's first release, under
  way or published (404 for any other vault, and for one that does not
  exist). A vault armed again after a release and released again has
  ``/release/<vault>/2``, and so on; a published release's page stays as it
  was published, whatever the vault does later.
- ``GET /release/<vault>[/<n>]/items/<item>.age``: a released item's age
  file as its release published it, header then payload, streamed.
- ``GET /release/<vault>[/<n>]/key.txt``: the published release identity.
- ``GET /release/<vault>/share``, ``POST``: a trustee hands in a share by
  its mnemonic words while the vault is releasing.
- ``GET /static/evault.css``: the one stylesheet.

There is no JavaScript anywhere, no cookie and no session: the pages get the
strict ``Content-Security-Policy`` of :data:`server.app.HTML_CSP`. Forms are
small and parsed strictly: a form of the wrong type, with an unknown,
missing or repeated field, or too long a value is a 400 page (413 for a body
above :data:`MAX_FORM_BYTES`).

Caching: the check-in page, the share form, a release still under way and
every error page are ``no-store`` (the app's default). A *published* release
never changes and is the same for everyone (no cookies, nothing personal), so
its page may be cached for :data:`RELEASE_PAGE_MAX_AGE` and its files and key
for :data:`RELEASE_FILE_MAX_AGE`: when a release draws a crowd, browsers and
caching proxies take the load, and copies outlive a takedown a little longer.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shlex
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from flask import Blueprint, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from server.api._request import app_state, blob_store, db_session, log_signer
from server.keyfile import fingerprint, load_key_file
from server.services import release as release_service
from server.services import switch as switch_service
from server.storage import CHUNK_SIZE, BlobNotFoundError, StorageError
from vault import canonical
from vault.manifest import safe_filename
from vault.protocol import ACCOUNT_ID_PATTERN

__all__ = [
    "MAX_FORM_BYTES",
    "MAX_HANDLE",
    "MAX_MNEMONIC",
    "MAX_PHRASE",
    "RELEASE_FILE_MAX_AGE",
    "RELEASE_PAGE_MAX_AGE",
    "pages",
]

MAX_HANDLE = 64
"""Characters of a check-in handle (the API allows 3 to 64 of ``[a-z0-9-]``)."""
MAX_PHRASE = 1024
"""Characters of a check-in phrase."""
MAX_MNEMONIC = 1024
"""Characters of a share's words (33 SLIP-39 words take about 300)."""
MAX_FORM_BYTES = 16 * 1024
"""Largest form body read (or the app's limit if lower): the longest fields fit
percent-encoded, even of four-byte characters."""
RELEASE_PAGE_MAX_AGE = 300
"""Seconds a published release page may be cached."""
RELEASE_FILE_MAX_AGE = 3600
"""Seconds a published release's files and key may be cached."""
STYLESHEET_MAX_AGE = 365 * 24 * 3600
"""The stylesheet's URL carries its hash, so a changed sheet has a new URL."""

_log = logging.getLogger(__name__)
_HANDLE = re.compile(r"[a-z0-9-]{3,64}")
_FORM_TYPE = "application/x-www-form-urlencoded"
_STYLESHEET = (Path(__file__).resolve().parent.parent / "static" / "evault.css").read_bytes()
_STYLESHEET_VERSION = hashlib.sha256(_STYLESHEET).hexdigest()[:16]

pages = Blueprint("pages", __name__)


class PageError(Exception):
    """A request a page refuses: rendered as a small HTML page with ``status``."""

    def __init__(self, status: int, title: str, message: str, *, retry_after: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.retry_after = retry_after


@pages.app_template_filter("utc")
def _utc(when: datetime) -> str:
    """A time as people read it: ``2026-11-27 10:41:02 UTC``."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pages.app_template_filter("iso")
def _iso(when: datetime) -> str:
    """A time for a ``<time datetime>`` attribute, as the API writes times."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@pages.app_template_filter("size")
def _size(count: int) -> str:
    """A byte count exactly, then rounded when large: ``1,234,567 bytes (1.2 MB)``."""
    exact = f"{count:,} byte" + ("" if count == 1 else "s")
    if count < 1000:
        return exact
    value = float(count)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000
        if value < 1000 or unit == "TB":
            return f"{exact} ({value:.1f} {unit})"
    raise RuntimeError("internal error: no unit")


def _page(template: str, status: int = 200, **context: object) -> Response:
    html = render_template(template, stylesheet_version=_STYLESHEET_VERSION, **context)
    return Response(html, status=status, mimetype="text/html")


def _error_page(exc: PageError) -> Response:
    response = _page("error.html", exc.status, title=exc.title, message=exc.message)
    if exc.retry_after:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status >= 500:
        return _error_page(PageError(status, "Server error", "Something went wrong; try later."))
    if status == 413:
        return _error_page(PageError(413, "Too large", "The form is too large."))
    # The status name only: descriptions can echo parts of the request.
    return _error_page(PageError(status, exc.name, "The request was not understood."))


def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    _log.exception("internal error while serving a page")
    return _error_page(PageError(500, "Server error", "Something went wrong; try later."))


pages.register_error_handler(PageError, _error_page)
pages.register_error_handler(HTTPException, _http_error)
pages.register_error_handler(Exception, _unexpected)


def _bad_request(message: str) -> PageError:
    return PageError(400, "Bad request", message)


def _not_found() -> PageError:
    # One page for a vault that does not exist and for one that is not
    # releasing: the public learns nothing about vaults still armed.
    return PageError(404, "Not found", "There is no release at this address.")


def _form(names: Collection[str]) -> dict[str, str]:
    """The posted form's fields, each exactly once, and no other.

    Raises:
        PageError: 400 for another content type or a missing, repeated or
            unknown field. A body above :data:`MAX_FORM_BYTES` is a 413.
    """
    if request.mimetype != _FORM_TYPE:
        raise _bad_request("Send the form from its page.")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    request.max_content_length = min(MAX_FORM_BYTES, limit or MAX_FORM_BYTES)
    form = request.form
    for name in form:
        if name not in names:
            raise _bad_request("Send the form from its page.")
    values: dict[str, str] = {}
    for name in names:
        given = form.getlist(name)
        if len(given) != 1:
            raise _bad_request("Send the form from its page.")
        values[name] = given[0]
    return values


def _limit(endpoint: str, key: str) -> None:
    """Take a token from ``key``'s bucket, as ``server.api.login`` does for logins.

    Raises:
        PageError: 429 when the bucket is empty.
    """
    # Hashed, so a long key in a request cannot make the table large.
    digest = hashlib.sha256(f"web-{endpoint}\x00{key}".encode()).hexdigest()
    wait = app_state().limiter.acquire(digest, overall_too=False)
    if wait:
        raise _too_many(wait)


def _too_many(wait: int) -> PageError:
    return PageError(429, "Too many attempts", f"Try again in {wait} seconds.", retry_after=wait)


def _cacheable(response: Response, max_age: int) -> Response:
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@pages.get("/static/evault.css")
def stylesheet() -> Response:
    """The stylesheet; pages link it with its hash in the query, so it may be cached long."""
    response = Response(_STYLESHEET, mimetype="text/css")
    response.set_etag(_STYLESHEET_VERSION)
    # Answers 304 to a matching If-None-Match; changes ``response`` in place.
    response.make_conditional(request)
    return _cacheable(response, STYLESHEET_MAX_AGE)


# Invites -------------------------------------------------------------------


@pages.get("/invite")
def invite() -> Response:
    """Where an invite link leads: what to do with it (its code never reaches the server)."""
    return _page("invite.html", server=app_state().config.base_url)


# Check-in ------------------------------------------------------------------


@pages.get("/checkin")
def checkin_form() -> Response:
    """The check-in form."""
    return _page("checkin.html")


@pages.post("/checkin")
def checkin() -> Response:
    """Check in with a handle and phrase: the same page for the real and the duress phrase."""
    # No CSRF token: this form carries its own credentials (handle and
    # phrase) and the server sets no cookie and honours no ambient authority,
    # so a post forged by another site can do only what its author could do
    # by posting directly.
    fields = _form(("handle", "phrase"))
    # Handles are lower case; a phone may capitalise the first letter.
    handle = fields["handle"].strip().lower()
    phrase = fields["phrase"]
    if not _HANDLE.fullmatch(handle):
        raise _bad_request(f"A handle is 3 to {MAX_HANDLE} lower-case letters, digits and dashes.")
    if not 0 < len(phrase) <= MAX_PHRASE:
        raise _bad_request(f"A check-in phrase is 1 to {MAX_PHRASE} characters.")
    # No rate limit here, per handle or overall: a limit that turned attempts
    # away before their phrase is checked would turn the reporter away too,
    # and a guesser who knows the handle could keep it so. Every attempt is
    # judged; the shared, first-come Argon2id hashing is what slows guessing.
    session = db_session()
    try:
        checked = switch_service.checkin_with_phrase(
            session,
            handle=handle,
            phrase=phrase,
            now=app_state().clock.now(),
            signer=log_signer(),
        )
    except switch_service.CheckinRefusedError:
        # The refusal wrote failure counters and alerts.
        session.commit()
        return _page("checkin.html", 403, refused=True)
    session.commit()
    return _page("checkin.html", deadline=checked.deadline)


# Release -------------------------------------------------------------------


def _vault_id(vault: str) -> str:
    if not ACCOUNT_ID_PATTERN.fullmatch(vault):
        raise _not_found()
    return vault


def _view(vault: str, number: int = 1) -> release_service.ReleaseView:
    view = release_service.release_view(
        db_session(), _vault_id(vault), number, log_origin=log_signer().name
    )
    if view is None:
        raise _not_found()
    return view


@dataclass(frozen=True, kw_only=True)
class _Commands:
    """The shell commands that decrypt and check one released file."""

    decrypt: str
    check: str


def _commands(file: release_service.ReleasedFile) -> _Commands:
    # The name comes from the reporter's disclosure: made safe as a local file
    # name (no directory, no leading dash) and quoted for a POSIX shell, so a
    # hostile name cannot run anything when the command is pasted. A name the
    # reporter withheld is the item id.
    name = shlex.quote(safe_filename(file.name or file.item, fallback=file.item))
    return _Commands(
        decrypt=f"age -d -i key.txt -o {name} {file.item}.age",
        check=f"sha256sum {name}",
    )


# A vault's first release is at /release/<vault> (where its notices and the
# pages of older servers point); a vault armed again after it and released
# again has /release/<vault>/2, and so on. /release/<vault>/1 redirects to
# the first form.
@pages.get("/release/<vault>", defaults={"number": 1})
@pages.get("/release/<vault>/<int:number>")
def release(vault: str, number: int) -> Response:
    """The release page: what was released and how anyone can check it."""
    view = _view(vault, number)
    verifier = log_signer().verifier()
    response = _page(
        "release.html",
        view=view,
        commands={file.item: _commands(file) for file in view.files},
        base_url=app_state().config.base_url,
        log_key=str(verifier),
        log_key_fingerprint=fingerprint(verifier),
    )
    if view.state == "released":
        return _cacheable(response, RELEASE_PAGE_MAX_AGE)
    return response


def _stream(head: bytes, payload: BinaryIO) -> Iterator[bytes]:
    try:
        yield head
        while piece := payload.read(CHUNK_SIZE):
            yield piece
    finally:
        payload.close()


@pages.get("/release/<vault>/items/<item>.age", defaults={"number": 1})
@pages.get("/release/<vault>/<int:number>/items/<item>.age")
def release_item(vault: str, item: str, number: int) -> Response:
    """A released item's age file as its release published it: header, then payload, streamed."""
    if not ACCOUNT_ID_PATTERN.fullmatch(item):
        raise _not_found()
    found = release_service.release_item(db_session(), _vault_id(vault), item, number)
    if found is None:
        raise _not_found()
    store = blob_store()
    try:
        with store.open(found.header_key) as reader:
            head = reader.read(found.header_size)
        payload = store.open(found.payload_key)
    except BlobNotFoundError:
        raise _not_found() from None
    except StorageError:
        raise PageError(503, "Unavailable", "Storage is unavailable; try later.") from None
    response = Response(
        _stream(head, payload),
        mimetype="application/octet-stream",
        headers={
            "Content-Length": str(found.header_size + found.payload_size),
            # The item id is 32 hex digits: nothing to quote or escape.
            "Content-Disposition": f'attachment; filename="{found.item}.age"',
        },
        direct_passthrough=True,
    )
    return _cacheable(response, RELEASE_FILE_MAX_AGE)


@pages.get("/release/<vault>/release.json", defaults={"number": 1})
@pages.get("/release/<vault>/<int:number>/release.json")
def release_record(vault: str, number: int) -> Response:
    """A published release as recorded, for ``evault release check`` and anyone's own tools."""
    record = release_service.published_record(db_session(), _vault_id(vault), number)
    if record is None:
        raise _not_found()
    response = Response(canonical.dumps(record), mimetype="application/json")
    return _cacheable(response, RELEASE_FILE_MAX_AGE)


@pages.get("/release/<vault>/key.txt", defaults={"number": 1})
@pages.get("/release/<vault>/<int:number>/key.txt")
def release_key(vault: str, number: int) -> Response:
    """The release identity, one line, for ``age -d -i key.txt``."""
    view = _view(vault, number)
    if view.identity is None:
        raise _not_found()
    response = Response(view.identity + "\n", mimetype="text/plain")
    return _cacheable(response, RELEASE_FILE_MAX_AGE)


# Shares --------------------------------------------------------------------


def _releasing(vault: str) -> release_service.ReleaseView:
    """The vault's release under way: the one shares are handed in for."""
    view = release_service.under_way(db_session(), _vault_id(vault), log_origin=log_signer().name)
    if view is None:
        _view(vault)  # 404 unless the vault was released once
        raise PageError(409, "Already released", "This release is published; no share is needed.")
    return view


@pages.get("/release/<vault>/share")
def share_form(vault: str) -> Response:
    """The form a trustee types a share into."""
    view = _releasing(vault)
    return _page("share.html", view=view)


@pages.post("/release/<vault>/share")
def share(vault: str) -> Response:
    """Hand in a share by its words; the answer never repeats them."""
    # No CSRF token, as for the check-in: the words are the credential.
    words = _form(("mnemonic",))["mnemonic"]
    if not 0 < len(words) <= MAX_MNEMONIC:
        raise _bad_request(f"A share is its 20 or 33 words, at most {MAX_MNEMONIC} characters.")
    view = _releasing(vault)
    # Per vault: a forger guessing the share set's 15-bit identifier gets a few
    # hundred tries an hour. Trustees held up here hand in with `evault trustee submit`.
    _limit("share", view.vault)
    state = app_state()
    session = db_session()
    # End the read transaction, as server.auth does before a write: on SQLite
    # (WAL) a write cannot then fail on a stale snapshot.
    session.commit()
    keys = load_key_file(state.config.key_file)
    try:
        accepted = release_service.submit_share(
            session,
            vault_id=view.vault,
            mnemonic=words,
            submitted_by="web",
            now=state.clock.now(),
            signer=keys.log_signer,
            keys=keys,
        )
    except release_service.NotReleasingError:
        session.rollback()
        raise PageError(409, "Not releasing", "This vault is not waiting for shares.") from None
    except release_service.ShareRejectedError as exc:
        session.rollback()
        return _page("share.html", 400, view=view, rejected=exc)
    session.commit()
    return _page("share.html", view=view, accepted=accepted)
