"""What the client acceptance tests drive: a real server, people with their own devices, a proxy.

- :class:`ServerProcess` runs ``evault-server init`` and ``evault-server run``
  as subprocesses on a fresh data directory (SQLite and local blobs) and a
  free loopback port; :meth:`ServerProcess.db` opens its database with the
  standard ``sqlite3`` module, to look at it or tamper with it like an
  operator could.
- :class:`Person` is one device: an ``EVAULT_HOME``, the passphrase in
  ``EVAULT_PASSPHRASE`` and a private ``HOME``. Every run of ``evault`` goes
  through :meth:`Person.run`, which fails the test on any traceback.
- :class:`Proxy` is a threaded HTTP server on loopback that forwards every
  request to the real server and lets a test hold, drop or rewrite chosen
  exchanges: a hostile or flaky server in front of an honest one.

Only loopback sockets are used; the test modules mark themselves
``enable_socket`` for the proxy, which runs in the test process.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import dataclasses
import hashlib
import io
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from vault import age, canonical, keystore
from vault.keys import PersonalIdentity
from vault.manifest import Manifest
from vault.protocol import LOGIN_CONTEXT, LoginChallenge

__all__ = [
    "PASSPHRASE",
    "Drop",
    "Exchange",
    "Person",
    "Proxy",
    "Run",
    "ServerProcess",
    "enroll",
    "payload",
    "pin",
    "rehash_package",
    "snapshot",
    "upload_signed_items",
]

BIN = Path(sys.executable).parent
EVAULT = BIN / "evault"
EVAULT_SERVER = BIN / "evault-server"
PASSPHRASE = "correct horse battery staple orbit"  # noqa: S105 — a test keystore's
TIMEOUT = 60
"""Seconds one subprocess may run before the test fails."""


def payload(size: int, seed: int = 0) -> bytes:
    """Reproducible pseudo-random bytes."""
    return random.Random(seed).randbytes(size)  # noqa: S311 — test data, not secrets


def snapshot(directory: Path) -> list[str]:
    """Every path under ``directory`` (hidden and temporary files too), relative and sorted."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def _base_env() -> dict[str, str]:
    # Nothing of the person running the tests leaks in: no EVAULT_* setting,
    # no proxy, no colour forcing.
    drop = ("EVAULT_", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "FORCE_COLOR")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(drop)}
    env["PYTHONUNBUFFERED"] = "1"
    env["LC_ALL"] = "C.UTF-8"
    return env


# -- running programs ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """What one run of a program did."""

    args: list[str]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", errors="replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", errors="replace")

    def __str__(self) -> str:
        return f"{self.args[1:]} exited {self.returncode}\nstdout: {self.out}\nstderr: {self.err}"


def _checked(run: Run) -> Run:
    # Requirement 7: whatever happens, no command shows a traceback.
    assert "Traceback" not in run.err, str(run)
    assert "Traceback" not in run.out, str(run)
    return run


def _run(
    args: Sequence[str | os.PathLike[str]],
    env: dict[str, str],
    *,
    cwd: Path | None = None,
    timeout: float = TIMEOUT,
) -> Run:
    argv = [str(a) for a in args]
    result = subprocess.run(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=timeout,
        check=False,
        # No controlling terminal: a prompt fails at once instead of waiting.
        start_new_session=True,
    )
    return _checked(Run(argv, result.returncode, result.stdout, result.stderr))


def _parallel(jobs: Sequence[tuple[Sequence[str | os.PathLike[str]], dict[str, str]]]) -> list[Run]:
    """Run independent programs at the same time; their results in order."""
    procs = []
    for args, env in jobs:
        argv = [str(a) for a in args]
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        procs.append((argv, proc))
    results = []
    for argv, proc in procs:
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
        results.append(_checked(Run(argv, proc.returncode, out, err)))
    return results


def assert_ok(run: Run) -> Run:
    assert run.returncode == 0, str(run)
    return run


def assert_refused(run: Run) -> str:
    """The client's error convention: status 1, an ``evault: error: …`` line; the stderr."""
    assert run.returncode == 1, str(run)
    assert any(line.startswith("evault: error: ") for line in run.err.splitlines()), str(run)
    return run.err


# -- the server ---------------------------------------------------------------


# Looked up once in the parent: between fork and exec the child only calls it.
_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: be killed when the test process dies (Linux PR_SET_PDEATHSIG).

    ``start_new_session`` keeps a server out of the test's process group, so
    without this a killed test run would leave its servers listening.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class ServerProcess:
    """``evault-server run`` on a fresh data directory, on a free loopback port."""

    def __init__(
        self, root: Path, env: dict[str, str] | None = None, *, origin: str | None = None
    ) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.env = (
            _base_env()
            | {
                "EVAULT_DATA_DIR": str(self.data_dir),
                "EVAULT_LOG_LEVEL": "WARNING",
                # The switch's worker only where a test asks for it.
                "EVAULT_RUN_WORKER": "0",
            }
            | (env or {})
        )
        self._proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        named = ["--origin", origin] if origin else []
        init = assert_ok(_run([EVAULT_SERVER, "init", *named], self.env))
        lines = dict(line.split(": ", 1) for line in init.out.splitlines() if ": " in line)
        self.log_key = lines["log key"].strip()

    @property
    def db_path(self) -> Path:
        return self.data_dir / "vault.db"

    @property
    def database_url(self) -> str:
        """The server's database: its own setting, else the SQLite file in the data directory."""
        return self.env.get("EVAULT_DATABASE_URL") or f"sqlite:///{self.db_path}"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "server.key"

    @property
    def staging(self) -> Path:
        return self.data_dir / "blobs" / "staging"

    def start(self, port: int = 0) -> None:
        """Serve on ``port`` (0: a free one)."""
        log = self.root / "server.log"
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [str(EVAULT_SERVER), "run", "--port", str(port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # Runs between fork and exec; it only calls prctl, looked up beforehand.
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            text = log.read_text(errors="replace")
            if "serving on " in text:
                self.url = text.split("serving on ", 1)[1].split()[0]
                return
            if self._proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise AssertionError(f"evault-server did not start: {log.read_text(errors='replace')}")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def crash_and_restart(self, down: Callable[[], None]) -> None:
        """Kill the server as a crash would (no clean shutdown), run ``down``, serve again.

        It comes back on the same address, as a restarted service does.
        """
        assert self._proc is not None
        port = urllib.parse.urlsplit(self.url).port
        assert port is not None
        self._proc.kill()
        self._proc.wait()
        self._proc = None
        down()
        self.start(port)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @classmethod
    @contextlib.contextmanager
    def started(cls, root: Path, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
        server = cls(root, env)
        server.start()
        try:
            yield server
        finally:
            server.stop()

    def cli(self, *args: str) -> Run:
        """``evault-server ARGS`` on this server's data directory."""
        return _run([EVAULT_SERVER, *args], self.env)

    @contextlib.contextmanager
    def db(self) -> Iterator[sqlite3.Connection]:
        """The server's SQLite database; committed when the block ends well."""
        connection = sqlite3.connect(self.db_path, timeout=30)
        try:
            with connection:
                yield connection
        finally:
            connection.close()

    def invite(self, role: str) -> str:
        """A one-time invite code, made in-process as ``evault-server invite create`` does.

        The command itself takes a second to start; the tests need a dozen.
        """
        import datetime as dt

        from server.db import make_engine, make_sessionmaker, transaction
        from server.keyfile import load_key_file
        from server.services.invites import create_invite

        signer = load_key_file(self.key_file).log_signer
        engine = make_engine(self.database_url)
        try:
            with transaction(make_sessionmaker(engine)) as session:
                created = create_invite(
                    session, role=role, lifetime=dt.timedelta(hours=1), signer=signer
                )
            return created.code
        finally:
            engine.dispose()


# -- people and their devices -------------------------------------------------


class Person:
    """One device: its ``EVAULT_HOME``, a private ``HOME`` and the passphrase in the environment."""

    def __init__(self, root: Path, name: str, role: str) -> None:
        self.name = name
        self.role = role
        self.root = root
        self.home = root / "evault"
        self.user_home = root / "user"
        self.user_home.mkdir(parents=True, exist_ok=True)
        self.env = _base_env() | {
            "EVAULT_HOME": str(self.home),
            "EVAULT_PASSPHRASE": PASSPHRASE,
            "HOME": str(self.user_home),
        }
        self.fingerprint = ""
        self.card_path = root / f"{name}.card"

    def argv(self, *args: str | os.PathLike[str]) -> list[str | os.PathLike[str]]:
        return [EVAULT, *args]

    def run(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> Run:
        """``evault ARGS`` on this device; never a traceback."""
        return _run(self.argv(*args), self.env, cwd=cwd or self.root)

    def ok(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> Run:
        return assert_ok(self.run(*args, cwd=cwd))

    def fails(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> str:
        """Run, expect the error convention (status 1); the stderr."""
        return assert_refused(self.run(*args, cwd=cwd))

    def json(self, *args: str | os.PathLike[str], cwd: Path | None = None) -> Any:
        return json.loads(self.ok("--json", *args, cwd=cwd).stdout)

    def state(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.home / "state.json").read_bytes())
        return value

    @property
    def account(self) -> str:
        return str(self.state()["account"])

    def identity(self) -> PersonalIdentity:
        """The identity in the keystore, unlocked in-process as the client does."""
        slot = keystore.unlock(self.home / "keystore", PASSPHRASE)
        return PersonalIdentity.from_bytes(slot.secret)

    def items(self, *, inbox: bool = False) -> dict[str, dict[str, Any]]:
        """``evault --json ls`` (or ``inbox``) by item id."""
        listed = self.json("inbox" if inbox else "ls")["items"]
        return {item["id"]: item for item in listed}

    def add(self, *paths: Path) -> list[dict[str, Any]]:
        """``evault --json add PATHS``: what was added."""
        added: list[dict[str, Any]] = self.json("add", *paths)["added"]
        return added

    def coerced(self) -> Person:
        """This device, opened with the duress passphrase (:data:`DURESS`)."""
        other = Person(self.root, self.name, self.role)
        other.env["EVAULT_PASSPHRASE"] = DURESS
        return other

    def logged_entries(self, item: str) -> list[tuple[bytes, bytes]]:
        """The item's upload and share entries with the receipts their writes got, checked."""
        code = (
            "import base64, json, sys\n"
            "from client.config import home\n"
            "from client.context import Client\n"
            "from client.items import logged_entries\n"
            "client = Client(home())\n"
            "found = logged_entries(client, sys.argv[1])\n"
            "print(json.dumps([[base64.b64encode(e.data).decode(), e.receipt.decode()]"
            " for e in found]))\n"
        )
        listed = assert_ok(_run([sys.executable, "-c", code, item], self.env, cwd=self.root))
        return [(base64.b64decode(d), r.encode()) for d, r in json.loads(listed.out)]

    def pending(self) -> list[str]:
        """The local paths of this device's unfinished uploads, from the server's records."""
        code = (
            "from client.config import home\n"
            "from client.context import Client\n"
            "from client.pending import pending_uploads\n"
            "client = Client(home())\n"
            "print('\\n'.join(sorted(p.path for p in pending_uploads(client))))\n"
        )
        listed = assert_ok(_run([sys.executable, "-c", code], self.env, cwd=self.root))
        return listed.out.split()


def enroll(
    server: ServerProcess, root: Path, people: Sequence[tuple[str, str] | tuple[str, str, str]]
) -> list[Person]:
    """Set up devices of ``(name, role)`` or ``(name, role, url)``: ``init``, then ``register``.

    Independent devices are set up at the same time. ``url`` is the address
    a device registers with (the server's own by default); every
    registration pins the log key the operator published. Each person's
    card (what ``evault card`` prints) is written to ``card_path``.
    """
    made = [Person(root / spec[0], spec[0], spec[1]) for spec in people]
    inits = _parallel(
        [
            (p.argv("--json", "init", "--name", p.name.title(), "--insecure-fast-kdf"), p.env)
            for p in made
        ]
    )
    for person, result in zip(made, inits, strict=True):
        person.fingerprint = json.loads(assert_ok(result).stdout)["fingerprint"]
    jobs: list[tuple[Sequence[str | os.PathLike[str]], dict[str, str]]] = []
    for person, spec in zip(made, people, strict=True):
        url = spec[2] if len(spec) == 3 else server.url
        code = server.invite(person.role)
        argv = person.argv(
            "--server", url, "register", "--invite", code, "--log-key", server.log_key
        )
        jobs.append((argv, person.env))
    for person, registered in zip(made, _parallel(jobs), strict=True):
        assert f"Registered as {person.role}" in assert_ok(registered).out, str(registered)
        # What `evault card` prints, without one more process per person.
        person.card_path.write_bytes(person.identity().card().to_json() + b"\n")
    return made


DURESS = "orbit staple horse correct battery under duress"
"""The duress passphrase of the reporters :func:`enroll_reporter` gives one."""


def enroll_reporter(
    server: ServerProcess, root: Path, name: str, *, display: str, duress: bool = False
) -> Person:
    """A reporter's device: ``init`` (``--duress``: passphrase :data:`DURESS`), ``register``.

    :meth:`Person.coerced` is the same device opened with the duress passphrase.
    """
    person = Person(root / name, name, "reporter")
    if duress:
        person.env["EVAULT_DURESS_PASSPHRASE"] = DURESS
    args = ["init", "--name", display, "--insecure-fast-kdf", *(["--duress"] if duress else [])]
    person.fingerprint = person.json(*args)["fingerprint"]
    person.env.pop("EVAULT_DURESS_PASSPHRASE", None)
    registered = person.ok(
        "--server",
        server.url,
        "register",
        "--invite",
        server.invite("reporter"),
        "--log-key",
        server.log_key,
    )
    assert "Registered as reporter" in registered.out
    return person


def pin(reporter: Person, editor: Person, name: str | None = None) -> None:
    """The reporter pins the editor's card and verifies the fingerprint read to them."""
    name = name or editor.name
    reporter.ok("editors", "add", name, editor.card_path)
    reporter.ok("editors", "verify", name, "--fingerprint", editor.fingerprint)


# -- evidence packages ----------------------------------------------------------


def rehash_package(package: Path) -> None:
    """Make package.json list the SHA-256 of each file as it is now (a careful forger)."""
    index = canonical.loads((package / "package.json").read_bytes())
    assert isinstance(index, dict)
    index["files"] = {
        name: hashlib.sha256((package / name).read_bytes()).hexdigest() for name in index["files"]
    }
    (package / "package.json").write_bytes(canonical.dumps(index))


# -- an item uploaded by hand ---------------------------------------------------


def _split_age(data: bytes) -> tuple[bytes, bytes]:
    """A binary age file's header (through the MAC line) and its payload."""
    mac_line = data.index(b"\n--- ") + 1
    end = data.index(b"\n", mac_line) + 1
    return data[:end], data[end:]


def upload_signed_items(url: str, person: Person, files: Sequence[tuple[str, bytes]]) -> list[str]:
    """Upload ``(filename, plaintext)`` pairs as the reporter would, with any filename.

    This mirrors ``client/transfer.py`` with the API alone: log in once, and
    for each file open an upload with the age header, send the payload and
    commit with the encrypted, signed manifest. ``evault add`` takes names
    from local files, which can never be ``../../.bashrc``; a reporter's
    compromised tool could. Returns the item ids.
    """
    identity = person.identity()
    state = person.state()
    account, vault = state["account"], state["vault"]
    recipient = identity.card().age_recipient()
    api = url.rstrip("/") + "/api/v1"
    items = []
    with requests.Session() as http:
        http.trust_env = False
        challenge = http.post(f"{api}/auth/challenge", json={"account": account}, timeout=30)
        challenge.raise_for_status()
        answer = challenge.json()
        nonce = base64.b64decode(answer["nonce"])
        message = LoginChallenge(origin=answer["origin"], account=account, nonce=nonce).message()
        login = http.post(
            f"{api}/auth/login",
            json={
                "account": account,
                "nonce": answer["nonce"],
                "signature": base64.b64encode(identity.sign(LOGIN_CONTEXT, message)).decode(),
            },
            timeout=30,
        )
        login.raise_for_status()
        http.headers["Authorization"] = f"Bearer {login.json()['token']}"
        for filename, plaintext in files:
            sealed = io.BytesIO()
            age.encrypt(io.BytesIO(plaintext), sealed, [recipient])
            header, body = _split_age(sealed.getvalue())
            opened = http.post(
                f"{api}/uploads",
                json={"size": len(body), "header": base64.b64encode(header).decode()},
                timeout=30,
            )
            opened.raise_for_status()
            upload = opened.json()["upload"]
            http.put(
                f"{api}/uploads/{upload['id']}/chunks",
                params={"offset": 0},
                data=body,
                headers={"Content-Type": "application/octet-stream"},
                timeout=30,
            ).raise_for_status()
            payload_sha256 = hashlib.sha256(body).hexdigest()
            manifest = Manifest(
                item_id=upload["item"],
                vault_id=vault,
                filename=filename,
                media_type="text/plain",
                size=len(plaintext),
                plaintext_sha256=hashlib.sha256(plaintext).hexdigest(),
                payload_sha256=payload_sha256,
                captured_at=Manifest.now(),
                note="",
                signer=identity.card().signing_key,
            ).sign(identity)
            sealed_manifest = io.BytesIO()
            age.encrypt(io.BytesIO(manifest.to_json()), sealed_manifest, [recipient])
            committed = http.post(
                f"{api}/uploads/{upload['id']}/commit",
                json={
                    "sha256": payload_sha256,
                    "manifest": base64.b64encode(sealed_manifest.getvalue()).decode(),
                },
                timeout=30,
            )
            committed.raise_for_status()
            items.append(str(committed.json()["item"]["id"]))
    return items


# -- the proxy --------------------------------------------------------------------


class Drop(Exception):
    """Raised by a hook: close the client's connection without an answer."""


@dataclasses.dataclass
class Exchange:
    """One request through the proxy and the answer it gets; hooks may change the answer."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    status: int = 0
    response_headers: dict[str, str] = dataclasses.field(default_factory=dict)
    response: bytes = b""

    def json(self) -> Any:
        return json.loads(self.response)

    def set_json(self, value: object) -> None:
        self.response = json.dumps(value).encode("utf-8")


Hook = Callable[[Exchange], None]

_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "host",
    "server",
    "date",
    "accept-encoding",
}


class Proxy:
    """A forwarding HTTP proxy on loopback with per-test hooks.

    ``before`` sees each request before it is forwarded (it may block, or
    raise :class:`Drop`); ``after`` sees each answer and may rewrite its
    status, headers or body. Every exchange is kept in ``seen``; any failure
    inside the proxy is kept in ``errors`` (and answered with 502).
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.before: Hook | None = None
        self.after: Hook | None = None
        self.seen: list[Exchange] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                proxy._serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client killed mid-request is expected here

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reset(self) -> None:
        with self._lock:
            self.before = self.after = None
            self.seen.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def fetch(self, exchange: Exchange, path: str) -> bytes:
        """GET ``path`` from the real server with the same credentials as ``exchange``."""
        _, _, body = self._forward("GET", path, exchange.headers, b"")
        return body

    def _forward(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        with requests.Session() as http:
            http.trust_env = False
            answer = http.request(
                method,
                self.upstream + target,
                data=body or None,
                headers=headers,
                allow_redirects=False,
                timeout=TIMEOUT,
            )
            return answer.status_code, dict(answer.headers), answer.content

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        exchange = Exchange(
            method=handler.command,
            path=parts.path,
            query=dict(urllib.parse.parse_qsl(parts.query)),
            headers={k: v for k, v in handler.headers.items() if k.lower() not in _HOP},
            body=body,
        )
        try:
            if self.before is not None:
                self.before(exchange)
            exchange.status, exchange.response_headers, exchange.response = self._forward(
                exchange.method, handler.path, exchange.headers, body
            )
            if self.after is not None:
                self.after(exchange)
        except Drop:
            handler.close_connection = True
            return
        except Exception as exc:  # noqa: BLE001 — reported by the test through ``errors``
            self.errors.append(f"{exchange.method} {exchange.path}: {exc!r}")
            exchange.status, exchange.response_headers, exchange.response = 502, {}, b""
        with self._lock:
            self.seen.append(exchange)
        try:
            handler.send_response(exchange.status)
            for key, value in exchange.response_headers.items():
                if key.lower() not in _HOP:
                    handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(exchange.response)))
            handler.end_headers()
            if exchange.method != "HEAD":
                handler.wfile.write(exchange.response)
        except OSError:
            handler.close_connection = True  # the client went away
