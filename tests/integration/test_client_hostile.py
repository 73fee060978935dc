"""``evault`` against a hostile server: a tampering proxy in front of the real one.

The client talks only to :class:`client_env.Proxy`, which forwards to a real
``evault-server`` and rewrites the answers a test picks: swapped or
damaged ciphertext, another item's manifest, forged receipts, another log
key, a checkpoint signed by a stranger. Each attack must be refused with a
clear message, and a download must write nothing at all, anywhere: the
output directory, its parent and the person's home directory are listed
before and after.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vault import canonical
from vault.manifest import safe_filename
from vault.note import Checkpoint, Note, NoteSigner, Receipt, sign_checkpoint

from .client_env import (
    Exchange,
    Person,
    Proxy,
    ServerProcess,
    enroll,
    pin,
    snapshot,
    upload_signed_items,
)

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

API = "/api/v1"
HOSTILE_NAMES = [
    "../../.bashrc",
    "NUL.txt",
    # Colours, a window title, a bell and a line that looks like the client's own.
    "\x1b[31mred\x1b[0m\x1b]0;owned\x07.txt\nevault: error: fake line",
]


@dataclass(frozen=True)
class Desk:
    """The people of this module, all talking through the proxy, and their items."""

    rhea: Person  # reporter
    mal: Person  # reporter whose tool signs hostile names
    ed: Person  # editor, verified by both reporters
    alpha: str  # rhea's item shared with ed
    beta: str  # another of rhea's items shared with ed
    alpha_share: dict[str, str]  # the genuine answer to alpha's share
    hostile: dict[str, str]  # mal's items by filename


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess.started(tmp_path_factory.mktemp("server")) as started:
        yield started


@pytest.fixture(scope="module")
def proxy(server: ServerProcess) -> Iterator[Proxy]:
    started = Proxy(server.url)
    try:
        yield started
    finally:
        started.close()


@pytest.fixture(scope="module")
def desk(server: ServerProcess, proxy: Proxy, tmp_path_factory: pytest.TempPathFactory) -> Desk:
    root = tmp_path_factory.mktemp("people")
    rhea, mal, ed = enroll(
        server,
        root,
        [
            ("rhea", "reporter", proxy.url),
            ("mal", "reporter", proxy.url),
            ("ed", "editor", proxy.url),
        ],
    )
    pin(rhea, ed)
    pin(mal, ed)
    (root / "alpha.txt").write_bytes(b"alpha: the first document\n")
    (root / "beta.txt").write_bytes(b"beta: the second, other document\n")
    proxy.reset()
    added = rhea.add(root / "alpha.txt", root / "beta.txt", "--share", "ed")
    alpha, beta = (a["item"] for a in added)
    share = next(e for e in proxy.seen if e.path == f"{API}/items/{alpha}/share")
    hostile = upload_signed_items(
        server.url, mal, [(name, f"content of {name!r}\n".encode()) for name in HOSTILE_NAMES]
    )
    mal.ok("share", hostile[0], "--with", "ed")
    return Desk(
        rhea=rhea,
        mal=mal,
        ed=ed,
        alpha=alpha,
        beta=beta,
        alpha_share=share.json(),
        hostile=dict(zip(HOSTILE_NAMES, hostile, strict=True)),
    )


@pytest.fixture
def hostile(proxy: Proxy) -> Iterator[Proxy]:
    """The proxy with no hooks; whatever a test sets is undone afterwards."""
    proxy.reset()
    yield proxy
    proxy.reset()
    errors = list(proxy.errors)
    proxy.errors.clear()
    assert errors == [], "the proxy itself failed"


@dataclass
class Place:
    """An output directory inside a directory of its own, and what was there before."""

    parent: Path
    out: Path
    before: list[str]

    def unchanged(self, person: Person) -> None:
        assert snapshot(self.out) == []
        assert snapshot(self.parent) == self.before
        assert snapshot(person.user_home) == []


@pytest.fixture
def place(tmp_path: Path) -> Place:
    parent = tmp_path / "work"
    out = parent / "out"
    out.mkdir(parents=True)
    return Place(parent=parent, out=out, before=snapshot(parent))


def _no_escape(*texts: bytes) -> None:
    for text in texts:
        assert b"\x1b" not in text
        assert b"\x07" not in text


# a. Hostile file names in validly signed manifests -------------------------------


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=["dotdot", "device", "escapes"])
def test_a_hostile_filename_lands_inside_the_output_directory(
    desk: Desk, hostile: Proxy, place: Place, name: str
) -> None:
    item = desk.hostile[name]
    run = desk.mal.ok("get", item, "-o", place.out, cwd=place.out)

    safe = safe_filename(name)
    assert snapshot(place.parent) == ["out", f"out/{safe}"]
    assert (place.out / safe).read_bytes() == f"content of {name!r}\n".encode()
    assert "/" not in safe
    assert not safe.startswith(".")
    assert safe.split(".")[0].upper() != "NUL"
    assert snapshot(desk.mal.user_home) == []
    _no_escape(run.stdout, run.stderr)
    assert "evault: error: fake line" not in run.err
    assert len(run.out.splitlines()) == 1


def test_hostile_filenames_are_not_echoed_raw(desk: Desk, hostile: Proxy) -> None:
    listed = desk.mal.ok("ls")
    _no_escape(listed.stdout, listed.stderr)
    assert "[31mred" in listed.out  # shown, with its escape characters replaced
    assert not any(line.startswith("evault: error: fake") for line in listed.out.splitlines())


def test_an_editor_pulling_dotdot_bashrc_writes_only_into_the_current_directory(
    desk: Desk, hostile: Proxy, place: Place
) -> None:
    item = desk.hostile["../../.bashrc"]
    desk.ed.ok("pull", item, cwd=place.out)

    assert snapshot(place.parent) == ["out", "out/bashrc"]
    assert snapshot(desk.ed.user_home) == []
    assert not (place.parent.parent / ".bashrc").exists()


# b-d. Swapped, damaged or mismatched downloads ----------------------------------------


def _path(item: str, what: str = "") -> str:
    return f"{API}/items/{item}" + (f"/{what}" if what else "")


def _swap_content(desk: Desk, proxy: Proxy, *, metadata: bool) -> Callable[[Exchange], None]:
    def hook(exchange: Exchange) -> None:
        if exchange.method != "GET":
            return
        if exchange.path == _path(desk.alpha, "content"):
            exchange.response = proxy.fetch(exchange, _path(desk.beta, "content"))
        elif metadata and exchange.path == _path(desk.alpha):
            other = json.loads(proxy.fetch(exchange, _path(desk.beta)))["item"]
            answer = exchange.json()
            for key in ("sha256", "size", "header_sha256", "header_size"):
                answer["item"][key] = other[key]
            exchange.set_json(answer)

    return hook


def _swap_manifest(desk: Desk, proxy: Proxy, *, metadata: bool) -> Callable[[Exchange], None]:
    def hook(exchange: Exchange) -> None:
        if exchange.method != "GET":
            return
        if exchange.path == _path(desk.alpha, "manifest"):
            exchange.response = proxy.fetch(exchange, _path(desk.beta, "manifest"))
        elif metadata and exchange.path == _path(desk.alpha):
            other = json.loads(proxy.fetch(exchange, _path(desk.beta)))["item"]
            answer = exchange.json()
            answer["item"]["manifest_sha256"] = other["manifest_sha256"]
            answer["item"]["manifest_size"] = other["manifest_size"]
            exchange.set_json(answer)

    return hook


def _flip_content(desk: Desk, proxy: Proxy, *, where: str) -> Callable[[Exchange], None]:
    def hook(exchange: Exchange) -> None:
        if exchange.method == "GET" and exchange.path == _path(desk.alpha, "content"):
            data = bytearray(exchange.response)
            if where == "payload":
                data[-20] ^= 0x01
            else:
                # Another valid base64 letter in the header's MAC.
                at = data.index(b"\n--- ") + 10
                data[at] = ord("B") if data[at] == ord("A") else ord("A")
            exchange.response = bytes(data)

    return hook


Attack = Callable[[Desk, Proxy], Callable[[Exchange], None]]
ATTACKS: dict[str, tuple[Attack, str]] = {
    "b-content-swapped": (
        # The other item is larger than this one's signed size allows.
        lambda d, p: _swap_content(d, p, metadata=False),
        "the server sent more bytes than the item holds",
    ),
    "b-content-and-metadata-swapped": (
        lambda d, p: _swap_content(d, p, metadata=True),
        "the server sent more bytes than the item holds",
    ),
    "c-payload-byte-flipped": (
        lambda d, p: _flip_content(d, p, where="payload"),
        "chunk 0 failed to authenticate",
    ),
    "c-header-mac-changed": (lambda d, p: _flip_content(d, p, where="mac"), "header"),
    "d-manifest-swapped": (
        lambda d, p: _swap_manifest(d, p, metadata=False),
        "the manifest does not match the item's metadata",
    ),
    "d-manifest-and-metadata-swapped": (
        lambda d, p: _swap_manifest(d, p, metadata=True),
        "the item id does not match the signed manifest",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_a_tampered_download_is_refused_and_writes_nothing(
    desk: Desk, hostile: Proxy, place: Place, attack: str
) -> None:
    make_hook, message = ATTACKS[attack]
    hostile.after = make_hook(desk, hostile)

    err = desk.ed.fails("pull", desk.alpha, "-o", place.out, cwd=place.out)

    assert message in err, err
    assert any(
        e.path == _path(desk.alpha, what) for e in hostile.seen for what in ("content", "manifest")
    )
    place.unchanged(desk.ed)


# e. Forged receipts and log entries in write answers ------------------------------


def _forge_commit(change: Callable[[dict[str, Any]], None]) -> Callable[[Exchange], None]:
    def hook(exchange: Exchange) -> None:
        if exchange.method == "POST" and exchange.path.endswith("/commit"):
            answer = exchange.json()
            change(answer)
            exchange.set_json(answer)

    return hook


def _bigger_size(answer: dict[str, str]) -> None:
    event = canonical.loads(base64.b64decode(answer["entry"]))
    assert isinstance(event, dict)
    event["size"] = int(event["size"]) + 1
    answer["entry"] = base64.b64encode(canonical.dumps(event)).decode()


def _other_proof_hash(answer: dict[str, str]) -> None:
    receipt = Receipt.parse(answer["receipt"].encode())
    assert receipt.proof, "a one-entry log has no proof hash to change"
    forged = Receipt(
        index=receipt.index,
        proof=(bytes(32), *receipt.proof[1:]),
        checkpoint=receipt.checkpoint,
    )
    answer["receipt"] = forged.marshal().decode()


@pytest.mark.parametrize(
    "change", [_bigger_size, _other_proof_hash], ids=["entry-size", "proof-hash"]
)
def test_add_refuses_a_forged_receipt(
    desk: Desk, hostile: Proxy, tmp_path: Path, change: Callable[[dict[str, str]], None]
) -> None:
    evidence = tmp_path / f"{change.__name__}.txt"
    evidence.write_bytes(b"an upload whose receipt the server forges\n")
    hostile.after = _forge_commit(change)

    err = desk.rhea.fails("add", evidence)

    assert "receipt does not prove the change was logged" in err
    assert "do not trust this server" in err


def _forge_consistency(answer: dict[str, Any]) -> None:
    given = answer["consistency"]  # sent, since the client named the size it verified
    given["proof"] = [base64.b64encode(bytes(32)).decode(), *given["proof"][1:]]


def test_add_of_a_folder_refuses_a_forged_consistency_proof_and_stops(
    desk: Desk, hostile: Proxy, tmp_path: Path
) -> None:
    folder = tmp_path / "forged-consistency"
    folder.mkdir()
    for n in range(4):
        (folder / f"note-{n}.txt").write_bytes(f"note {n}\n".encode())
    hostile.after = _forge_commit(_forge_consistency)

    run = desk.rhea.run("add", folder)

    assert run.returncode == 1, str(run)
    assert "the server's audit log was rewritten or forked" in run.err, str(run)
    assert "do not trust this server" in run.err
    commits = [e for e in hostile.seen if e.method == "POST" and e.path.endswith("/commit")]
    # Checked at the first commit: the files not started are not sent.
    assert 1 <= len(commits) < 4, [e.path for e in commits]
    assert all(e.headers.get("Evault-Log-Size", "").isdigit() for e in commits)


def test_share_refuses_a_replayed_receipt(desk: Desk, hostile: Proxy, tmp_path: Path) -> None:
    evidence = tmp_path / "gamma.txt"
    evidence.write_bytes(b"gamma\n")
    (added,) = desk.rhea.add(evidence)

    # A genuine, verifiable receipt, but of another change: alpha's share.
    def replay(exchange: Exchange) -> None:
        if exchange.method == "POST" and exchange.path.endswith("/share"):
            answer = exchange.json()
            answer["entry"] = desk.alpha_share["entry"]
            answer["receipt"] = desk.alpha_share["receipt"]
            exchange.set_json(answer)

    hostile.after = replay
    err = desk.rhea.fails("share", added["item"], "--with", "ed")

    assert "the server logged something other than this change" in err


# f. Another log key at registration ----------------------------------------------------


def test_register_refuses_a_log_key_other_than_the_published_one(
    server: ServerProcess, hostile: Proxy, tmp_path: Path
) -> None:
    fay = Person(tmp_path / "fay", "fay", "reporter")
    fay.ok("init", "--name", "Fay", "--insecure-fast-kdf")
    code = server.invite("reporter")
    impostor = NoteSigner.generate(server.log_key.split("+", 1)[0]).verifier()

    def other_key(exchange: Exchange) -> None:
        if exchange.path == f"{API}/log/key":
            answer = exchange.json()
            answer["key"] = str(impostor)
            answer["fingerprint"] = "0000 0000 0000 0000 0000 0000 0000 0000"
            exchange.set_json(answer)

    hostile.after = other_key
    register = ("--server", hostile.url, "register", "--invite", code)
    err = fay.fails(*register, "--log-key", server.log_key)

    assert "the server's log key is not the one you were given" in err
    assert "do not register" in err
    assert not any(e.path == f"{API}/accounts" for e in hostile.seen)
    assert not (fay.home / "state.json").exists()

    # Nothing was sent: the same invite still works with the honest server.
    hostile.after = None
    assert "Registered as reporter" in fay.ok(*register, "--log-key", server.log_key).out


# g. A checkpoint signed by another key ---------------------------------------------------


def test_log_verify_refuses_a_checkpoint_signed_by_another_key(
    desk: Desk, server: ServerProcess, hostile: Proxy
) -> None:
    origin = server.log_key.split("+", 1)[0]
    stranger = NoteSigner.generate(origin)

    def resign(exchange: Exchange) -> None:
        if exchange.path == f"{API}/log/checkpoint":
            checkpoint = Checkpoint.parse(Note.parse(exchange.response).text)
            exchange.response = sign_checkpoint(checkpoint, stranger)

    before = desk.rhea.state()["log"]
    hostile.after = resign
    err = desk.rhea.fails("log", "verify")

    assert "not signed by the log key this device pinned" in err
    assert desk.rhea.state()["log"] == before
    hostile.after = None
    desk.rhea.ok("log", "verify")


def test_log_verify_refuses_a_rolled_back_checkpoint(desk: Desk, hostile: Proxy) -> None:
    # The server's latest checkpoint can only grow. One older than a
    # checkpoint this device verified means the server hides newer entries
    # (a deletion, a release) from this device: a frozen or forked view.
    desk.rhea.ok("log", "verify")
    seen = desk.rhea.state()["log"]["checkpoint"].encode()
    older = Receipt.parse(desk.alpha_share["receipt"].encode()).checkpoint
    assert (
        Checkpoint.parse(Note.parse(older).text).size < Checkpoint.parse(Note.parse(seen).text).size
    )

    def roll_back(exchange: Exchange) -> None:
        if exchange.path == f"{API}/log/checkpoint":
            exchange.response = older

    hostile.after = roll_back
    run = desk.rhea.run("log", "verify")

    assert run.returncode == 1, str(run)
    assert "rolled back" in run.err or "rewritten or forked" in run.err, str(run)
    assert desk.rhea.state()["log"]["checkpoint"].encode() == seen


# h. Another item's header and manifest offered for re-wrapping ----------------------------


@pytest.mark.parametrize("entries_too", [False, True])
def test_share_refuses_to_rewrap_another_items_header(
    desk: Desk, hostile: Proxy, tmp_path: Path, entries_too: bool
) -> None:
    """Asked to share gamma, a server hands over delta's header and manifest instead.

    With ``entries_too`` it also names delta's log entries as gamma's: the
    entries name their item, and the log alone tells which header is gamma's.
    """
    (tmp_path / "gamma.txt").write_bytes(b"gamma: may be shared\n")
    (tmp_path / "delta.txt").write_bytes(b"delta: never to be shared\n")
    gamma, delta = (
        a["item"] for a in desk.rhea.add(tmp_path / "gamma.txt", tmp_path / "delta.txt")
    )

    def substitute(exchange: Exchange) -> None:
        if exchange.method != "GET":
            return
        if entries_too and exchange.path == _path(gamma, "entries"):
            exchange.response = hostile.fetch(exchange, _path(delta, "entries"))
        elif exchange.path == _path(gamma):
            other = json.loads(hostile.fetch(exchange, _path(delta)))["item"]
            answer = exchange.json()
            for key in ("header_sha256", "header_size", "manifest_sha256", "manifest_size"):
                answer["item"][key] = other[key]
            exchange.set_json(answer)
        elif exchange.path in (_path(gamma, "content"), _path(gamma, "manifest")):
            what = exchange.path.rsplit("/", 1)[1]
            exchange.response = hostile.fetch(exchange, _path(delta, what))

    hostile.after = substitute
    err = desk.rhea.fails("share", gamma, "--with", "ed")
    hostile.after = None

    assert "the log does not record for this item" in err
    assert not any(e.method == "POST" and e.path.endswith("/share") for e in hostile.seen)
    listed = desk.rhea.items()
    assert listed[delta]["shared_with"] == []
    assert listed[gamma]["shared_with"] == []


def test_share_refuses_an_editor_list_the_log_does_not_record(
    desk: Desk, hostile: Proxy, tmp_path: Path
) -> None:
    """A server that lists other editors would have the share replace the real ones."""
    (tmp_path / "epsilon.txt").write_bytes(b"epsilon\n")
    (added,) = desk.rhea.add(tmp_path / "epsilon.txt")
    stranger = desk.mal.account

    def other_editors(exchange: Exchange) -> None:
        if exchange.method == "GET" and exchange.path == _path(added["item"]):
            answer = exchange.json()
            answer["item"]["shared_with"] = [stranger]
            exchange.set_json(answer)

    hostile.after = other_editors
    err = desk.rhea.fails("share", added["item"], "--with", "ed")
    hostile.after = None

    assert "editor list that the log does not record" in err
    assert not any(e.method == "POST" and e.path.endswith("/share") for e in hostile.seen)


# g. Listing: one request a page, every manifest checked -----------------------------


def _listing(seen: list[Exchange]) -> tuple[int, list[str]]:
    """The pages of the item list asked for, and every other item request made."""
    pages = sum(1 for e in seen if e.method == "GET" and e.path == f"{API}/items")
    others = [e.path for e in seen if e.path.startswith(f"{API}/items/")]
    return pages, others


def test_ls_and_inbox_take_one_request_for_the_list_and_none_per_item(
    desk: Desk, hostile: Proxy
) -> None:
    listed = desk.rhea.json("ls")["items"]
    assert {desk.alpha, desk.beta} <= {i["id"] for i in listed}
    assert all(i["verified"] and i["signer"] == "you" for i in listed)
    assert _listing(hostile.seen) == (1, [])
    hostile.reset()
    inbox = {i["id"]: i for i in desk.ed.json("inbox")["items"]}
    assert {desk.alpha, desk.beta, desk.hostile[HOSTILE_NAMES[0]]} <= set(inbox)
    assert all(i["verified"] for i in inbox.values())
    assert _listing(hostile.seen) == (1, [])
    # Each reporter's card is asked for once, not once per item.
    cards = [e.path for e in hostile.seen if e.path.startswith(f"{API}/accounts/")]
    assert sorted(cards) == sorted({f"{API}/accounts/{i['owner']}" for i in inbox.values()})


def test_a_list_carrying_another_items_manifest_is_refused_row_by_row(
    desk: Desk, hostile: Proxy
) -> None:
    def swap(exchange: Exchange) -> None:
        if exchange.path != f"{API}/items" or exchange.query.get("with") != "manifest":
            return
        answer = exchange.json()
        items = {item["id"]: item for item in answer["items"]}
        one, two = items[desk.alpha], items[desk.beta]
        # Both the manifests and their hashes: only the signed item ids can tell.
        for key in ("manifest", "manifest_sha256", "manifest_size"):
            one[key], two[key] = two[key], one[key]
        exchange.set_json(answer)

    hostile.after = swap
    listed = {i["id"]: i for i in desk.rhea.json("ls")["items"]}
    swapped = [listed.pop(desk.alpha), listed.pop(desk.beta)]
    assert all(not i["verified"] and i["filename"] is None and i["problem"] for i in swapped)
    assert all(i["verified"] for i in listed.values())
    table = desk.rhea.ok("ls").out
    assert table.count("check failed") == 2
    assert f"{desk.alpha}: " in table


def test_ls_against_an_older_server_fetches_each_manifest_and_checks_it(
    desk: Desk, hostile: Proxy
) -> None:
    def older(exchange: Exchange) -> None:
        if exchange.path == f"{API}/items" and "with" in exchange.query:
            exchange.status = 400
            exchange.set_json({"error": "bad_request", "message": "unknown query parameter 'with'"})

    hostile.after = older
    listed = desk.rhea.json("ls")["items"]
    assert {desk.alpha, desk.beta} <= {i["id"] for i in listed}
    assert all(i["verified"] for i in listed)
    pages, others = _listing(hostile.seen)
    assert pages == 2
    assert sorted(others) == sorted(f"{API}/items/{i['id']}/manifest" for i in listed)
