"""``evault app``: the reporter's and editor's app, a local web app in the default browser.

It is served by this laptop only, on 127.0.0.1 and a free port, and speaks
only to the browser that opened the launch link (:mod:`client.app._guard`).
Its pages call the same ``client`` functions as the ``evault`` commands
(:mod:`client.app.views`); the unlocked identity lives in the app's memory
only while the app is used (:mod:`client.app.state`).
"""

from __future__ import annotations

import io
import tempfile
import threading
from pathlib import Path
from typing import IO

from flask import Flask, Request, Response, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from client.app._guard import Door, harden, refusal
from client.app.state import SPOOL_TO, AppState
from client.app.views import pages
from client.config import Paths
from vault import keystore

__all__ = ["IDLE_LOCK", "create_app", "serve"]

IDLE_LOCK = 10 * 60
"""Seconds without a request after which the app locks itself."""
_HERE = Path(__file__).resolve().parent


class _AppRequest(Request):
    """A request whose uploaded files go where the page says, never to the system's /tmp.

    The add page names the app's private folder (:data:`client.app.state.SPOOL`)
    before it reads the form: each file is written there, 0600, and its name
    noted so that nothing is left behind if the form breaks off. Elsewhere a
    file stays in memory, within the app's 1 MiB limit on a request.
    """

    def _get_file_stream(
        self,
        total_content_length: int | None,
        content_type: str | None,
        filename: str | None = None,
        content_length: int | None = None,
    ) -> IO[bytes]:
        target = self.environ.get(SPOOL_TO)
        if target is None:
            return io.BytesIO()
        folder, made = target
        handle = tempfile.NamedTemporaryFile(dir=folder, prefix="picked-", delete=False)  # noqa: SIM115
        made.append(handle.name)
        return handle


def create_app(
    paths: Paths,
    door: Door,
    *,
    idle: float = IDLE_LOCK,
    kdf: keystore.Argon2Params = keystore.Argon2Params.DEFAULT,
) -> Flask:
    """The app for the client home ``paths``, behind ``door``.

    ``kdf`` is what a keystore made on the first-run page uses (tests pass a
    cheap one).
    """
    app = Flask(
        __name__,
        template_folder=str(_HERE / "templates"),
        static_folder=str(_HERE / "static"),
        static_url_path="/static",
    )
    app.request_class = _AppRequest
    app.config.update(EVAULT_KDF=kdf, MAX_CONTENT_LENGTH=1024 * 1024, TEMPLATES_AUTO_RELOAD=False)
    app.extensions["evault_app"] = AppState(paths, idle=idle)
    app.extensions["evault_door"] = door

    @app.before_request
    def guard() -> Response | None:
        reason = door.check(request)
        return refusal(reason) if reason is not None else None

    @app.after_request
    def headers(response: Response) -> Response:
        return harden(response)

    app.register_blueprint(pages)
    return app


class _Quiet(WSGIRequestHandler):
    """Logs no request: a line per request would leave searches, file paths and the launch
    key in the terminal's scrollback."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve(app: Flask, port: int = 0) -> BaseWSGIServer:
    """A threaded server of ``app`` on 127.0.0.1 (``port`` 0: a free one), not yet started."""
    return make_server("127.0.0.1", port, app, threaded=True, request_handler=_Quiet)


def start(server: BaseWSGIServer) -> threading.Thread:
    """Serve in a thread of its own (for tests and for the command)."""
    thread = threading.Thread(target=server.serve_forever, name="evault-app", daemon=True)
    thread.start()
    return thread
