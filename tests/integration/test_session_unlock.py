"""``evault unlock`` and ``evault lock``: one passphrase for a while, against a real server.

After ``unlock`` the passphrase is taken out of the environment: the tests
run without a terminal, so a command that asked for it would fail at once
("a passphrase can only be typed on a terminal"). Every test ends with no
unlock process left: each is found by the kernel's word on who listens
(``SO_PEERCRED``) and checked gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from client import _agent_wire as wire
from client.config import Paths
from vault.note import Receipt

from .client_env import (
    DURESS,
    PASSPHRASE,
    Exchange,
    Person,
    Proxy,
    ServerProcess,
    _run,
    assert_ok,
    enroll,
    enroll_reporter,
    upload_signed_items,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

ASKS = "a passphrase can only be typed on a terminal"
IDLE = {"EVAULT_UNLOCK_IDLE": "2m"}
"""Set for every device: should a test run be killed, what it unlocked ends within minutes."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A short private runtime directory, as XDG_RUNTIME_DIR is on a Linux desktop."""
    with tempfile.TemporaryDirectory(prefix="ev") as name:
        os.chmod(name, 0o700)
        yield Path(name)


@pytest.fixture(autouse=True)
def _reaper(tmp_path: Path) -> Iterator[None]:
    """Whatever a failing test left unlocked under its folder is ended (those in a
    runtime folder end by themselves when it is removed)."""
    yield
    for path in tmp_path.rglob("socket"):
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            pid = wire.peer(sock).pid
            if pid is not None:
                os.kill(pid, signal.SIGTERM)


def _folder(person: Person) -> Path:
    """Where the person's session unlock lives, as the client computes it."""
    saved = os.environ.get("XDG_RUNTIME_DIR")
    runtime = person.env.get("XDG_RUNTIME_DIR")
    try:
        if runtime is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = runtime
        return wire.folder(Paths(person.home))
    finally:
        if saved is None:
            os.environ.pop("XDG_RUNTIME_DIR", None)
        else:
            os.environ["XDG_RUNTIME_DIR"] = saved


def _pid(person: Person) -> int:
    """The pid of the process listening on the person's socket (it asks nothing of it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(str(_folder(person) / "socket"))
        found = wire.peer(sock).pid
    assert found is not None
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _without_passphrase(person: Person) -> Person:
    person.env.pop("EVAULT_PASSPHRASE", None)
    return person


def _reporter(server: ServerProcess, root: Path, name: str, runtime: Path | None) -> Person:
    person = enroll_reporter(server, root, name, display=name.title())
    person.env |= IDLE
    if runtime is not None:
        person.env["XDG_RUNTIME_DIR"] = str(runtime)
    return person


def test_unlock_lets_commands_run_without_the_passphrase_until_lock(
    server: ServerProcess, tmp_path: Path, runtime: Path
) -> None:
    ana = _reporter(server, tmp_path, "ana", runtime)
    ana.ok("switch", "set", "--every", "1d")
    said = ana.ok("unlock").out
    assert re.fullmatch(
        r"Unlocked until (tomorrow )?\d\d:\d\d \(or 2m after the last use\); "
        r"`evault lock` locks now\n",
        said,
    ), said
    pid = _pid(ana)
    folder = _folder(ana)
    assert folder.parent == runtime / "evidence-vault"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    assert sorted(p.name for p in folder.iterdir()) == ["socket", "token"]
    assert oct((folder / "token").stat().st_mode & 0o777) == "0o600"

    _without_passphrase(ana)
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"the minister's driver kept a ledger\n")
    (added,) = ana.add(memo)
    assert [i["filename"] for i in ana.json("ls")["items"]] == ["memo.txt"]
    assert "Checked in; next check-in due by" in ana.ok("checkin").out
    (tmp_path / "out").mkdir()
    got = ana.json("get", added["item"], "-o", f"{tmp_path}/out/")
    assert Path(got["path"]).read_bytes() == memo.read_bytes()
    assert "Already unlocked until" in ana.ok("unlock").out

    assert ana.ok("lock").out == "Locked: the next command asks for your passphrase\n"
    assert _gone(pid)
    assert not (folder / "socket").exists()
    assert not (folder / "token").exists()
    assert ASKS in ana.fails("ls")
    assert ana.ok("lock").out == "Nothing was unlocked: each command asks for your passphrase\n"


def test_panic_ends_the_session_unlock(
    server: ServerProcess, tmp_path: Path, runtime: Path
) -> None:
    bea = _reporter(server, tmp_path, "bea", runtime)
    bea.ok("unlock")
    pid = _pid(bea)
    _without_passphrase(bea).ok("whoami")
    bea.ok("panic", "--yes")
    assert _gone(pid)
    assert not (_folder(bea) / "socket").exists()
    assert "no keystore" in bea.fails("whoami")


def _init_only(root: Path, runtime: Path | None) -> Person:
    """A device with a keystore and no account: enough for the unlock itself."""
    person = Person(root, "cleo", "reporter")
    person.env |= IDLE
    if runtime is not None:
        person.env["XDG_RUNTIME_DIR"] = str(runtime)
    person.ok("init", "--name", "Cleo", "--insecure-fast-kdf")
    return person


def test_the_unlock_ends_after_idle_time_and_when_its_socket_goes(tmp_path: Path) -> None:
    # No runtime directory: the folder is in the client's home (or, for a
    # home whose path is too long for a socket, in the temporary directory).
    cleo = _init_only(tmp_path / "cleo", None)
    cleo.env.pop("XDG_RUNTIME_DIR", None)
    assert "(or 1s after the last use)" in cleo.ok("unlock", "--idle", "1s").out
    pid = _pid(cleo)
    assert _gone(pid, within=5)
    assert ASKS in _without_passphrase(cleo).fails("whoami")

    # Removing the socket (a test's folder cleaned up) ends it too.
    cleo.env["EVAULT_PASSPHRASE"] = PASSPHRASE
    cleo.ok("unlock")
    pid = _pid(cleo)
    (_folder(cleo) / "socket").unlink()
    assert _gone(pid)
    # And so does a changed keystore.
    cleo.ok("unlock")
    pid = _pid(cleo)
    keystore = cleo.home / "keystore"
    keystore.write_bytes(keystore.read_bytes())
    assert _gone(pid)


def test_a_wrong_token_is_refused_and_ends_the_unlock(tmp_path: Path, runtime: Path) -> None:
    dan = _init_only(tmp_path / "dan", runtime)
    dan.ok("unlock")
    pid = _pid(dan)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(_folder(dan) / "socket"))
        wire.send(sock, {"op": "hello", "token": "0" * 64})
        assert wire.receive(sock) == {"error": "refused", "ok": False}
    assert _gone(pid)
    assert ASKS in _without_passphrase(dan).fails("whoami")


@pytest.mark.skipif(
    not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to act as another user"
)
def test_another_user_is_refused_even_with_the_token(tmp_path: Path, runtime: Path) -> None:
    """The peer check holds even if the folder's permissions were opened up."""
    eve = _init_only(tmp_path / "eve", runtime)
    eve.ok("unlock")
    pid = _pid(eve)
    folder = _folder(eve)
    token = (folder / "token").read_text()
    for path in (runtime, folder.parent, folder):
        path.chmod(0o755)
    (folder / "socket").chmod(0o777)
    code = (
        "import os, socket, struct, sys\n"
        "os.setgid(65534); os.setuid(65534)\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(5)\n"
        "s.connect(sys.argv[1])\n"
        "data = sys.argv[2].encode()\n"
        'body = b\'{"op":"hello","token":"\' + data + b\'"}\'\n'
        'try:\n    s.sendall(struct.pack(">I", len(body)) + body); print(repr(s.recv(100)))\n'
        "except OSError as e:\n    print('closed', e.errno)\n"
    )
    seen = assert_ok(_run([sys.executable, "-c", code, str(folder / "socket"), token], eve.env))
    assert "ok" not in seen.out, seen.out  # no answer at all, let alone a status
    assert _gone(pid)


def _normalised(text: str) -> str:
    text = re.sub(r'"uploaded_at": \d+', '"uploaded_at": TIME', text)
    text = re.sub(r"\b[0-9a-f]{32}\b", "ID", text)
    text = re.sub(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d)?Z?( UTC)?", "TIME", text)
    return re.sub(r"(tomorrow )?\d\d:\d\d", "HH:MM", text)


def test_a_duress_unlock_looks_like_a_real_one(server: ServerProcess, tmp_path: Path) -> None:
    """Same messages, same files, same lists: nothing tells the sides apart."""
    fay = enroll_reporter(server, tmp_path, "fay", display="Fay", duress=True)
    recipe = tmp_path / "recipe.txt"
    recipe.write_bytes(b"lentil soup: onions, cumin, lemon\n")
    os.utime(recipe, (1_700_000_000, 1_700_000_000))
    fay.add(recipe)
    fay.json("decoy", "add", recipe)
    seen: dict[str, dict[str, object]] = {}
    for side, passphrase in (("real", PASSPHRASE), ("duress", DURESS)):
        with tempfile.TemporaryDirectory(prefix="ev") as runtime:
            os.chmod(runtime, 0o700)
            device = Person(fay.root, fay.name, fay.role)
            device.env |= IDLE
            device.env["XDG_RUNTIME_DIR"] = runtime
            device.env["EVAULT_PASSPHRASE"] = passphrase
            started = time.monotonic()
            unlocked = device.ok("unlock").out
            took = time.monotonic() - started
            pid = _pid(device)
            folder = _folder(device)
            files = sorted(
                (p.name, oct(p.stat().st_mode), p.stat().st_size) for p in folder.iterdir()
            )
            _without_passphrase(device)
            listed = device.ok("ls").out
            listed_json = device.json("ls")["items"]
            locked = device.ok("lock").out
            assert _gone(pid)
            seen[side] = {
                "unlock": _normalised(unlocked),
                "files": files,
                "folder": oct(folder.stat().st_mode),
                "ls": _normalised(listed),
                "ls --json": _normalised(json.dumps(listed_json, sort_keys=True)),
                "lock": locked,
            }
            print(f"{side}: unlock took {took:.2f} s")
    assert seen["real"] == seen["duress"]


def test_without_unix_sockets_each_command_asks(tmp_path: Path, runtime: Path) -> None:
    """The fallback of systems without AF_UNIX (Windows), forced here."""
    gus = _init_only(tmp_path / "gus", runtime)
    gus.env[wire.FORCE_OFF] = "1"
    refused = gus.fails("unlock")
    assert "the session unlock is not available on this system" in refused
    assert "each command asks for your passphrase" in refused
    assert not (runtime / "evidence-vault").exists()
    assert "Cleo" in gus.ok("whoami").out  # with the passphrase, as before
    assert ASKS in _without_passphrase(gus).fails("whoami")


# -- listing through the session unlock ----------------------------------------------------

API = "/api/v1"


@pytest.fixture
def proxy(server: ServerProcess) -> Iterator[Proxy]:
    started = Proxy(server.url)
    try:
        yield started
    finally:
        started.close()
    assert started.errors == []


def _through(server: ServerProcess, proxy: Proxy, root: Path, name: str, runtime: Path) -> Person:
    """A reporter whose device talks to the server through ``proxy``."""
    (person,) = enroll(server, root, [(name, "reporter", proxy.url)])
    person.env |= IDLE | {"XDG_RUNTIME_DIR": str(runtime)}
    return person


def _requests(proxy: Proxy) -> list[str]:
    return [f"{e.method} {e.path}" + ("?with" if "with" in e.query else "") for e in proxy.seen]


def test_ls_through_the_unlock_checks_an_unchanged_manifest_once_and_keeps_it_in_memory(
    server: ServerProcess, proxy: Proxy, tmp_path: Path, runtime: Path
) -> None:
    eva = _through(server, proxy, tmp_path, "eva", runtime)
    files = []
    for n, words in enumerate(["the ledger", "the driver's notes", "a photo of the gate"]):
        files.append(tmp_path / f"secret-name-{n}.txt")
        files[-1].write_text(words + "\n")
    added = [a["item"] for a in eva.add(*files)]
    alone = eva.env | {"EVAULT_NO_SESSION_UNLOCK": "1"}
    expected = assert_ok(_run(eva.argv("--json", "ls"), alone)).out
    table = assert_ok(_run(eva.argv("ls"), alone)).out
    eva.ok("unlock")
    pid = _pid(eva)
    _without_passphrase(eva)

    # The first listing checks every manifest, as the command would.
    proxy.reset()
    assert eva.ok("--json", "ls").out == expected
    assert f"GET {API}/items?with" in _requests(proxy)
    # Then the list alone and the log's checkpoint: no login, nothing decrypted again.
    proxy.reset()
    assert eva.ok("--json", "ls").out == expected
    assert sorted(_requests(proxy)) == [f"GET {API}/items", f"GET {API}/log/checkpoint"]
    assert eva.ok("ls").out == table

    # A changed manifest is checked again, and what does not match is refused.
    def changed(exchange: Exchange) -> None:
        if exchange.path == f"{API}/items" and exchange.method == "GET":
            answer = exchange.json()
            for item in answer["items"]:
                if item["id"] == added[1]:
                    item["manifest_sha256"] = "0" * 64
            exchange.set_json(answer)

    proxy.reset()
    proxy.after = changed
    listed = {i["id"]: i for i in eva.json("ls")["items"]}
    proxy.after = None
    assert f"GET {API}/items/{added[1]}/manifest" in _requests(proxy)
    assert not listed[added[1]]["verified"]
    assert "does not match" in listed[added[1]]["problem"]
    assert all(listed[i]["verified"] for i in (added[0], added[2]))

    # Nothing decrypted was written: no file name anywhere in the home or the unlock's folder.
    for folder in (eva.home, runtime):
        for path in folder.rglob("*"):
            if path.is_file():
                assert b"secret-name" not in path.read_bytes(), path

    # What it kept goes with it.
    eva.ok("lock")
    assert _gone(pid)
    assert ASKS in eva.fails("ls")


def test_ls_through_the_unlock_refuses_a_rolled_back_log(
    server: ServerProcess, proxy: Proxy, tmp_path: Path, runtime: Path
) -> None:
    fay = _through(server, proxy, tmp_path, "fay", runtime)
    memo = tmp_path / "memo.txt"
    memo.write_bytes(b"a memo\n")
    (added,) = fay.add(memo)
    older = Receipt.parse(fay.logged_entries(added["item"])[0][1]).checkpoint
    fay.ok("unlock")
    _without_passphrase(fay)
    fay.ok("ls")
    seen = fay.state()["log"]

    def roll_back(exchange: Exchange) -> None:
        if exchange.path == f"{API}/log/checkpoint":
            exchange.response = older

    proxy.after = roll_back
    run = fay.run("ls")
    proxy.after = None
    assert run.returncode == 1, str(run)
    assert "rolled back" in run.err, str(run)
    assert "every signature checked" not in run.out
    assert fay.state()["log"] == seen
    assert "1 item, every signature checked" in fay.ok("ls").out
    fay.ok("lock")


def test_a_command_at_work_keeps_the_unlock_alive_past_its_idle_limit(
    server: ServerProcess, proxy: Proxy, tmp_path: Path, runtime: Path
) -> None:
    gil = _through(server, proxy, tmp_path, "gil", runtime)
    # Long enough for a command to start on a busy machine, shorter than the wait below.
    gil.ok("unlock", "--idle", "5s")
    pid = _pid(gil)
    _without_passphrase(gil)
    folder = tmp_path / "folder"
    folder.mkdir()
    for n in range(2):
        (folder / f"part-{n}.txt").write_bytes(b"part %d\n" % n)
    commits = []

    def slow(exchange: Exchange) -> None:
        # The server takes its time with the first file: longer than the idle limit.
        if exchange.method == "POST" and exchange.path.endswith("/commit"):
            commits.append(exchange.path)
            if len(commits) == 1:
                time.sleep(12)

    proxy.after = slow
    added = gil.json("add", folder)["added"]
    proxy.after = None
    assert len(added) == 2
    assert len(commits) == 2
    # Idle once the command ended: it locks itself after the limit.
    assert _gone(pid, within=15)


def test_many_changed_manifests_come_again_with_the_list_and_are_checked(
    server: ServerProcess, proxy: Proxy, tmp_path: Path, runtime: Path
) -> None:
    hal = _through(server, proxy, tmp_path, "hal", runtime)
    items = upload_signed_items(
        server.url, hal, [(f"note-{n:02d}.txt", b"note %d\n" % n) for n in range(20)]
    )
    hal.ok("unlock")
    _without_passphrase(hal)
    assert all(i["verified"] for i in hal.json("ls")["items"])

    # Every manifest hash changed: more than a few, so not one request each but the
    # list again with its manifests, and each is checked against its new hash.
    def changed(exchange: Exchange) -> None:
        if exchange.path == f"{API}/items" and exchange.method == "GET":
            answer = exchange.json()
            for item in answer["items"]:
                item["manifest_sha256"] = "0" * 64
            exchange.set_json(answer)

    proxy.reset()
    proxy.after = changed
    listed = hal.json("ls")["items"]
    proxy.after = None
    asked = _requests(proxy)
    assert asked.count(f"GET {API}/items") == 1
    assert asked.count(f"GET {API}/items?with") == 1
    assert not [a for a in asked if a.endswith("/manifest")]
    assert sorted(i["id"] for i in listed) == sorted(items)
    assert all(not i["verified"] and "does not match" in i["problem"] for i in listed)
    # The server's true hashes again: every manifest checked anew, all good.
    assert all(i["verified"] for i in hal.json("ls")["items"])
    hal.ok("lock")
