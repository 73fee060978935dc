"""The HTTP client of the server's JSON API (``/api/v1``), over Tor if asked.

One :class:`Api` per command. It logs in with the identity's Ed25519 key
(challenge–response, :mod:`vault.protocol`) and keeps the bearer token in
memory only: a token on disk would be one more thing to seize.

Connections are meant to fail: a reporter may be on a bad line through Tor.
Idempotent requests (reads, chunk uploads) are retried with backoff;
anything else is tried once and reported honestly. A :class:`~client.waits.Watch`,
if given, is told of every request, every byte that moves and every failed
attempt, so that a long wait is said in words rather than felt as a freeze. Errors become
:class:`ApiError` with the server's code and message, or a plain sentence
for a network failure, never a traceback.

Transport rules, safe by default:

- The server URL must be ``https://``, except on loopback and for ``.onion``
  addresses, where Tor already encrypts and authenticates the connection.
- A proxy must be ``socks5h://`` (names resolved by the proxy, as Tor needs);
  ``socks5://`` would look names up locally and leak them, so it is refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NameResolutionError

from client.waits import Watch
from vault._base64 import b64encode
from vault.errors import ConfigError, ServerError
from vault.keys import PersonalIdentity
from vault.protocol import LOGIN_CONTEXT, LoginChallenge, parse_nonce

__all__ = ["Api", "ApiError", "check_proxy", "check_server_url"]

_PREFIX = "/api/v1"
# Public pages' files (a release's record, key and files), outside the API's prefix.
_PAGES = "/release/"
_CONNECT_TIMEOUT = 30.0
_READ_TIMEOUT = 300.0
_RETRIES = 8
_GATEWAY_ERRORS = (502, 503, 504)
_MAX_WAITS = 3
_MAX_WAIT_SECONDS = 30
_MAX_JSON = 8 * 1024 * 1024
_MAX_ERROR = 16 * 1024
_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_DROPPED = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)
"""A body cut short: the line dropped, it timed out, or the server died mid-answer."""


class ApiError(ServerError):
    """The server refused a request, or could not be reached (``status`` 0)."""

    def __init__(
        self, message: str, *, status: int = 0, code: str = "", hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.code = code


def check_server_url(url: str) -> str:
    """A server base URL without a trailing slash.

    Raises:
        ConfigError: not http(s), or plain http to a host that is neither
            loopback nor an onion service.
    """
    parsed = urllib.parse.urlsplit(url)
    host = (parsed.hostname or "").lower()
    if parsed.scheme not in ("http", "https") or not host:
        raise ConfigError(
            f"invalid server address {url!r}", hint="use https://host or http://xyz.onion"
        )
    if parsed.username or parsed.password or parsed.query or parsed.fragment:
        raise ConfigError("the server address may not carry a user, a query or a fragment")
    if parsed.scheme == "http" and host not in _LOOPBACK and not host.endswith(".onion"):
        raise ConfigError(
            f"refusing plain http to {host}",
            hint="use https://, or the server's .onion address through Tor",
        )
    return url.rstrip("/")


def check_proxy(proxy: str) -> str:
    """A SOCKS proxy URL that resolves names remotely.

    Raises:
        ConfigError: anything but ``socks5h://host:port``.
    """
    parsed = urllib.parse.urlsplit(proxy)
    if parsed.scheme == "socks5":
        raise ConfigError(
            "refusing socks5:// : it resolves server names on this machine, outside Tor",
            hint="use socks5h://127.0.0.1:9050 (Tor) or socks5h://127.0.0.1:9150 (Tor Browser)",
        )
    if parsed.scheme != "socks5h" or not parsed.hostname or parsed.port is None:
        raise ConfigError(
            f"invalid proxy {proxy!r}",
            hint="use socks5h://HOST:PORT, e.g. socks5h://127.0.0.1:9050",
        )
    return proxy


_BLOCK = 1024 * 1024


class _Adapter(HTTPAdapter):
    """Sends streamed bodies in 1 MiB writes, not urllib3's default 16 KiB."""

    def init_poolmanager(
        self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any
    ) -> None:
        super().init_poolmanager(connections, maxsize, block, blocksize=_BLOCK, **pool_kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        return super().proxy_manager_for(proxy, blocksize=_BLOCK, **proxy_kwargs)


def _retry_after(response: requests.Response) -> float | None:
    """The short wait a 429 asks for, or None if it asks for none or too long."""
    text = response.headers.get("Retry-After", "")
    if not text.isdigit():
        return None
    seconds = int(text)
    return float(seconds) if seconds <= _MAX_WAIT_SECONDS else None


def _caused_by(
    exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    """Whether ``exc`` or an error behind it is one of ``kinds``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kinds):
            return True
        seen = (
            seen.__cause__
            or seen.__context__
            or (seen.args[0] if seen.args and isinstance(seen.args[0], BaseException) else None)
        )
    return False


def _unresolvable(exc: BaseException) -> bool:
    """Whether a connection failed because the name has no address (no use retrying)."""
    return _caused_by(exc, (NameResolutionError, socket.gaierror))


def _untrusted(exc: BaseException) -> bool:
    """Whether a connection failed because the server's certificate did not verify."""
    return _caused_by(exc, ssl.SSLCertVerificationError)


def _read_limited(response: requests.Response, limit: int) -> bytes:
    """The body, read as it streams in, refused past ``limit`` bytes."""
    data = bytearray()
    try:
        for piece in response.iter_content(65536):
            data += piece
            if len(data) > limit:
                raise ApiError("the server sent an oversized answer")
    except _DROPPED as exc:
        raise ApiError("the connection dropped during an answer", hint="run it again") from exc
    return bytes(data)


def _message(response: requests.Response) -> tuple[str, str]:
    try:
        body = json.loads(_read_limited(response, _MAX_ERROR))
    except (ValueError, ApiError):
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body.get("error", "")), body["message"]
    return "", f"HTTP {response.status_code}"


class Api:
    """One server, one optional proxy, one bearer token once logged in."""

    def __init__(
        self,
        server: str,
        *,
        proxy: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        watch: Watch | None = None,
    ) -> None:
        self.server = check_server_url(server)
        if proxy is None and (urllib.parse.urlsplit(self.server).hostname or "").endswith(".onion"):
            raise ConfigError(
                "an .onion address can only be reached through Tor",
                hint="add --proxy socks5h://127.0.0.1:9050 (Tor) or :9150 (Tor Browser)",
            )
        self._session = requests.Session()
        self._session.trust_env = False  # no proxy or netrc from the environment by surprise
        ca_file = os.environ.get("EVAULT_CA_FILE")
        if ca_file:
            # A newsroom's own certificate authority, trusted instead of the system's.
            if not os.path.isfile(ca_file):
                raise ConfigError(
                    f"EVAULT_CA_FILE is not a file: {ca_file}",
                    hint="give the PEM file of the certificate authority that signed the server's",
                )
            self._session.verify = ca_file
        for scheme in ("http://", "https://"):
            self._session.mount(scheme, _Adapter())
        if proxy is not None:
            check_proxy(proxy)
            self._session.proxies = {"http": proxy, "https": proxy}
        self._session.headers["User-Agent"] = "evault"
        # Sizes are checked as bodies arrive; a compressed body could not be.
        self._session.headers["Accept-Encoding"] = "identity"
        self._token: str | None = None
        self._relogin: Callable[[], None] | None = None
        self._login_lock = threading.Lock()
        self._sleep = sleep
        self._watch = watch

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
        self._session.close()

    def moved(self) -> None:
        """Bytes went to the server or came from it (a streamed body says so as it goes)."""
        if self._watch is not None:
            self._watch.moved()

    def _under_way(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext() if self._watch is None else self._watch.request()

    def _failed(self, *, busy: bool = False) -> None:
        if self._watch is not None:
            self._watch.failed(busy=busy)

    # -- transport -------------------------------------------------------

    def _url(self, path: str) -> str:
        if path.startswith(_PAGES):
            return self.server + path
        return self.server + _PREFIX + path

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _retry(
        self, attempt: Callable[[], requests.Response], *, idempotent: bool
    ) -> requests.Response:
        """Send; on a dropped connection or a gateway error, try again with backoff."""
        tries = _RETRIES if idempotent else 1
        delay = 1.0
        for n in range(tries):
            last = n + 1 >= tries
            try:
                response = attempt()
            except (requests.ConnectionError, requests.Timeout) as exc:
                if _unresolvable(exc):
                    raise ApiError(
                        f"cannot find the server {self.server}: the name does not resolve",
                        hint="check the address; with Tor, check --proxy",
                    ) from exc
                if _untrusted(exc):
                    # Not a passing fault: someone may be in the middle. Nothing was sent.
                    raise ApiError(
                        f"the server {self.server} did not prove who it is: its certificate "
                        "is not trusted",
                        hint="check the address; a server with a certificate from its own "
                        "authority needs that authority's file in EVAULT_CA_FILE",
                    ) from exc
                if last:
                    raise ApiError(
                        f"cannot reach the server at {self.server}",
                        hint="check the connection, the address and --proxy (is Tor running?); "
                        "what was sent so far is kept and the command can be run again",
                    ) from exc
                wait = delay
                self._failed()
            else:
                if last or response.status_code not in _GATEWAY_ERRORS:
                    self.moved()
                    return response
                # A server that says when to come back (503 Retry-After) is taken at its word.
                asked = _retry_after(response) if response.status_code == 503 else None
                response.close()
                wait = delay if asked is None else asked
                self._failed(busy=asked is not None)
            self._sleep(wait)
            delay = min(delay * 2, 30.0)
        raise AssertionError("unreachable")

    def request(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str | int] | None = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
        idempotent: bool | None = None,
        ok: tuple[int, ...] = (200, 201),
    ) -> requests.Response:
        """Send one request; raise :class:`ApiError` unless the status is in ``ok``."""
        if idempotent is None:
            idempotent = method in ("GET", "HEAD", "PUT")

        def attempt() -> requests.Response:
            return self._session.request(
                method,
                self._url(path),
                json=json,
                params=params,
                data=data,
                headers=self._headers(headers),
                stream=stream,
                timeout=(_CONNECT_TIMEOUT, _READ_TIMEOUT),
                allow_redirects=False,
            )

        with self._under_way():
            return self._request(attempt, data=data, idempotent=idempotent, ok=ok)

    def _request(
        self,
        attempt: Callable[[], requests.Response],
        *,
        data: object,
        idempotent: bool,
        ok: tuple[int, ...],
    ) -> requests.Response:
        sent = self._token
        response = self._retry(attempt, idempotent=idempotent)
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            response.close()
            raise ApiError("the server sent a compressed answer, which this client refuses")
        # A streamed body (a chunk from the encryptor) can be sent only once:
        # such a request is never replayed here, its caller plans again.
        replayable = data is None or isinstance(data, bytes)
        if not replayable and response.status_code in (401, 429):
            response.close()
            if response.status_code == 401:
                self._token = None
                if self._relogin is not None:
                    self._relogin()
            raise ApiError(
                "the server turned a chunk away for now",
                status=response.status_code,
                hint="run the command again",
            )
        waits = 0
        while response.status_code == 429 and waits < _MAX_WAITS:
            # Rate-limited: nothing was done, so any request may be sent again.
            delay = _retry_after(response)
            if delay is None:
                break
            response.close()
            self._failed(busy=True)
            self._sleep(delay)
            waits += 1
            response = self._retry(attempt, idempotent=idempotent)
        if response.status_code == 401 and self._relogin is not None:
            # The token expired during a long transfer: log in again, once. Requests
            # under way side by side (files added together) log in once for all.
            response.close()
            with self._login_lock:
                if self._token == sent and self._relogin is not None:
                    relogin, self._relogin = self._relogin, None
                    self._token = None
                    try:
                        relogin()
                    finally:
                        self._relogin = self._relogin or relogin
            response = self._retry(attempt, idempotent=idempotent)
        if response.status_code not in ok:
            code, message = _message(response)
            response.close()
            hint = None
            if response.status_code == 429:
                wait = response.headers.get("Retry-After", "")
                hint = f"the server asks to slow down; try again in {wait or 'a few'} seconds"
            elif response.status_code == 401:
                hint = "log in again: run the command again"
            raise ApiError(
                f"the server refused: {message}",
                status=response.status_code,
                code=code,
                hint=hint,
            )
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """:meth:`request` and decode a JSON object of at most :data:`_MAX_JSON` bytes."""
        return self.answer(method, path, **kwargs)[1]

    def answer(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
        """:meth:`json` with the status, for calls that may answer 200 or 202."""
        response = self.request(method, path, stream=True, **kwargs)
        try:
            data = _read_limited(response, _MAX_JSON)
        finally:
            response.close()
        try:
            body = json.loads(data)
        except ValueError:
            raise ApiError("the server sent an answer that is not JSON") from None
        if not isinstance(body, dict):
            raise ApiError("the server sent an unexpected answer")
        return response.status_code, body

    def discard(self, response: requests.Response) -> None:
        """Close an answer that is not needed, read first if small, so that its
        connection serves the next request instead of a new one being opened."""
        try:
            length = int(response.headers.get("Content-Length", "-1"))
            if 0 <= length <= _MAX_JSON:
                _read_limited(response, _MAX_JSON)
        except (ValueError, ApiError):
            pass  # not needed anyway: the connection is closed instead
        finally:
            response.close()

    def get_bytes(
        self, path: str, *, limit: int, params: Mapping[str, str | int] | None = None
    ) -> bytes:
        """A small body (a checkpoint, a manifest), refused if over ``limit`` bytes."""
        response = self.request("GET", path, params=params, stream=True)
        try:
            return _read_limited(response, limit)
        finally:
            response.close()

    def stream(self, path: str, *, headers: Mapping[str, str] | None = None) -> requests.Response:
        """A streamed GET; the caller closes the response."""
        return self.request("GET", path, headers=headers, stream=True, ok=(200, 206))

    def iter_body(self, response: requests.Response, size: int = 1 << 20) -> Iterator[bytes]:
        with self._under_way():
            try:
                for piece in response.iter_content(size):
                    self.moved()
                    yield piece
            except _DROPPED as exc:
                raise ApiError(
                    "the connection dropped during a download", hint="run it again"
                ) from exc

    # -- login -----------------------------------------------------------

    def login(self, identity: PersonalIdentity, account: str, origin: str) -> None:
        """Log in as ``account`` with the identity's signing key.

        ``origin`` is the pinned log origin, never the one the server names:
        a server that relayed another server's challenge would otherwise get
        a login signature valid there.
        """
        challenge = self.json("POST", "/auth/challenge", json={"account": account}, idempotent=True)
        try:
            nonce = parse_nonce(challenge.get("nonce"))
            if challenge.get("origin") != origin:
                raise ApiError(
                    "the server named another log origin than the one pinned",
                    hint="this may not be your server; check --server",
                )
            message = LoginChallenge(origin=origin, account=account, nonce=nonce).message()
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError("the server sent a malformed login challenge") from exc
        signature = identity.sign(LOGIN_CONTEXT, message)
        try:
            answer = self.json(
                "POST",
                "/auth/login",
                json={
                    "account": account,
                    "nonce": b64encode(nonce),
                    "signature": b64encode(signature),
                },
            )
        except ApiError as exc:
            if exc.status == 403:
                raise ApiError(
                    "the server did not accept this identity's login",
                    status=403,
                    code=exc.code,
                    hint="is this the keystore you registered with this server? "
                    "an operator may also have disabled the account",
                ) from None
            raise
        token = answer.get("token")
        if not isinstance(token, str) or not token:
            raise ApiError("the server sent a malformed login answer")
        self._token = token
        self._relogin = lambda: self.login(identity, account, origin)
