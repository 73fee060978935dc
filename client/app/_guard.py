"""Who may talk to the local app: one browser, through one door, on this machine only.

The app listens on 127.0.0.1 and answers only:

- requests whose ``Host`` is exactly ``127.0.0.1:PORT`` — a web page served
  from elsewhere that rebinds its own name to 127.0.0.1 (DNS rebinding)
  sends its own name and is refused;
- with the session cookie, a fresh random value that the browser gets once,
  in exchange for the per-launch key in the link ``evault app`` opens
  (``/open?key=…``; the key works once); the cookie is ``HttpOnly`` and
  ``SameSite=Strict``, so no other site's page can send it;
- for anything that changes something (POST), with an ``Origin`` of this
  very address (and ``Sec-Fetch-Site: same-origin`` when the browser says).

Every answer carries a strict Content-Security-Policy (nothing from
outside the app, no inline script, no framing) and is not cached.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

from flask import Request, Response

__all__ = ["COOKIE", "CSP", "Door", "refusal"]

COOKIE = "evault_app"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_OPEN_PATHS = ("/open", "/static/")


@dataclass
class Door:
    """The launch key (good once), the session cookie's value, and the app's own address."""

    origin: str
    launch_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    session: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    opened: bool = False

    @property
    def host(self) -> str:
        return self.origin.split("://", 1)[1]

    def launch_url(self) -> str:
        return f"{self.origin}/open?key={self.launch_key}"

    def trade(self, key: str) -> bool:
        """Whether ``key`` is the launch key, not used before; it is used up either way."""
        good = not self.opened and hmac.compare_digest(key.encode(), self.launch_key.encode())
        if good:
            self.opened = True
        return good

    def check(self, request: Request) -> str | None:
        """Why ``request`` is refused, or None."""
        if request.host != self.host:
            return "wrong host"
        if request.path.startswith(_OPEN_PATHS):
            return None
        cookie = request.cookies.get(COOKIE, "")
        if not hmac.compare_digest(cookie.encode(), self.session.encode()):
            return "no session"
        if request.method not in ("GET", "HEAD"):
            if request.headers.get("Origin") != self.origin:
                return "wrong origin"
            site = request.headers.get("Sec-Fetch-Site")
            if site is not None and site != "same-origin":
                return "wrong origin"
        return None


def refusal(reason: str) -> Response:
    """A plain refusal: no page of the app is shown to an unknown caller."""
    text = {
        "wrong host": "This address is not the Evidence Vault app.",
        "no session": (
            "Open Evidence Vault from the link that `evault app` printed, "
            "or start `evault app` again."
        ),
        "wrong origin": "Refused: this request did not come from the Evidence Vault app.",
    }.get(reason, "Refused.")
    return Response(text + "\n", status=403, mimetype="text/plain")


def harden(response: Response) -> Response:
    """The headers every answer carries."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    # Not "no-referrer": with it, browsers send "Origin: null" on the app's own forms.
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    response.headers["Cache-Control"] = "no-store"
    return response
