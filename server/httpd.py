"""The HTTP server of ``evault-server run``: waitress, with a request log that names nobody.

The embedded, one-machine setup faces the same clients as a deployment
under gunicorn, so it runs on a production server rather than a
development one: waitress parses requests strictly (two ``Content-Length``
headers, or one that is not a number, answer 400 at once), reads a whole
request body before the application sees it (a client that stops halfway
holds no lock and no thread of the application), closes connections idle
for :data:`IDLE_SECONDS`, and bounds what it buffers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from waitress import wasyncore
from waitress.server import create_server

from server.api.uploads import MAX_CHUNK_SIZE

__all__ = ["IDLE_SECONDS", "THREADS", "HttpServer", "make_http_server"]

# A connection that sends nothing for this long is closed, so idle or
# half-sent requests cannot pile up until nobody can check in.
IDLE_SECONDS = 30
# Requests handled at once; more wait in waitress's queue, already read.
THREADS = 8
# The largest body any request may have: an upload chunk and its framing.
_MAX_BODY = MAX_CHUNK_SIZE + (1 << 20)

_log = logging.getLogger("evault.access")

_StartResponse = Callable[..., Any]
_App = Callable[[dict[str, Any], _StartResponse], Iterable[bytes]]


class _AccessLog:
    """Logs each request's method, path (no query string) and status: never the client's address.

    The query string is left out because a link's token may sit there.
    """

    def __init__(self, app: _App) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: _StartResponse) -> Iterable[bytes]:
        def logged(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            _log.info(
                "%s %s %s",
                environ.get("REQUEST_METHOD", "-"),
                environ.get("PATH_INFO", "-"),
                status.split(" ", 1)[0],
            )
            return start_response(status, headers, *args)

        return self._app(environ, logged)


class HttpServer:
    """A bound waitress server: its address, and a blocking :meth:`serve` until :meth:`close`."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._serving = threading.Event()

    @property
    def host(self) -> str:
        return str(self._server.effective_host)

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def serve(self) -> None:
        """Serve until :meth:`close` (from any thread) or Ctrl-C; then close every connection."""
        self._serving.set()
        try:
            self._server.run()
        finally:
            self._serving.clear()
            self._server.task_dispatcher.shutdown()
            wasyncore.close_all(self._server._map)

    def close(self) -> None:
        if self._serving.is_set():
            # The loop's own thread closes everything; with nothing left to
            # watch, the loop ends and serve() returns.
            self._server.trigger.pull_trigger(lambda: wasyncore.close_all(self._server._map))
        else:
            self._server.close()


def make_http_server(app: _App, host: str, port: int) -> HttpServer:
    """Bind ``app`` to ``host``:``port`` (0 picks a free port).

    Raises:
        OSError: the address cannot be bound.
    """
    server = create_server(
        _AccessLog(app),
        host=host,
        port=port,
        threads=THREADS,
        channel_timeout=IDLE_SECONDS,
        max_request_body_size=_MAX_BODY,
        # The Server header names neither waitress nor Python.
        ident="evault-server",
        expose_tracebacks=False,
        clear_untrusted_proxy_headers=True,
    )
    return HttpServer(server)
