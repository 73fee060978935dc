"""Every command shown in README.md and the guides, run as shown.

The commands come from the documents themselves (:mod:`.doc_commands`);
the tests only supply what a reader would have at hand (a file to add, an
invite code, the item id the previous command printed) and answer the
questions a person would answer on the terminal. A documented command that
no test runs fails :func:`test_no_document_is_left_out` or the test of its
document. The operators' guide runs against a scratch layout of its paths
under a temporary directory and a PostgreSQL database of its own; the few
commands that change the machine itself (installing packages, adding a
system user, systemd) are checked against the repository instead, as
:data:`HOST_ONLY` lists.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pexpect
import pytest
import requests

from vault import keystore

from .client_env import BIN, Person, ServerProcess, enroll, pin
from .doc_commands import DOCUMENTS, ROOT, Transcript, environment
from .switch_env import Mailbox, free_port, quick_switches, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

PASSPHRASE = "correct horse battery staple orbit"  # noqa: S105 — a test keystore's
TESTED = {"README.md": "test_readme", "docs/reporters.md": "test_guides"}
Replace = dict[str, str] | None
Answers = Sequence[tuple[str, str]]
ITEM_LINE = re.compile(r"(\S+): stored as item ([0-9a-f]{32})")


@pytest.fixture(scope="module")
def transcript() -> Transcript:
    return Transcript()


def person_env(person: Person, **extra: str) -> dict[str, str]:
    """What a person's shell has: evault on the PATH, their home, their passphrase."""
    return environment(
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(person.user_home),
        EVAULT_HOME=str(person.home),
        EVAULT_PASSPHRASE=PASSPHRASE,
        **extra,
    )


def light_keystore(home: Path) -> None:
    """Seal the identity ``evault init`` made again under the test Argon2 parameters.

    ``init`` runs as the documents show it, with the real parameters; every
    command after it unlocks the keystore, and would spend seconds of the
    machine's two cores on each unlock while testing what it shows, not what
    guessing costs (``bench/keystore_unlock.py`` measures that).
    """
    path = home / "keystore"
    assert keystore.read_params(path) == keystore.Argon2Params.DEFAULT
    secret = keystore.unlock(path, PASSPHRASE).secret
    path.unlink()
    keystore.create_keystore(path, PASSPHRASE, secret, params=keystore.Argon2Params.TESTING)


def added(output: str) -> dict[str, str]:
    """File name → item id, from what ``evault add`` printed."""
    return {m[1]: m[2] for m in ITEM_LINE.finditer(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output))}


# -- README.md ---------------------------------------------------------------------


def test_readme(transcript: Transcript, tmp_path: Path) -> None:
    readme = "README.md"
    with ServerProcess.started(tmp_path / "server") as server:
        bob, tom = enroll(server, tmp_path, [("bob", "editor"), ("tom", "editor")])
        alice = Person(tmp_path / "alice", "alice", "reporter")
        alice.root.mkdir(parents=True, exist_ok=True)
        env = person_env(alice)
        here = alice.root
        (here / "memo.txt").write_text("the ledger\n")
        (here / "interview.wav").write_bytes(os.urandom(300_000))
        (here / "late.txt").write_text("late\n")
        shutil.copy(bob.card_path, here / "bob.card")

        def run(start: str, replace: Replace = None, answers: Answers = ()) -> str:
            return transcript.run(
                readme, start, env=env, cwd=here, replace=replace, answers=answers
            ).output

        run("evault init --name Alice")
        light_keystore(alice.home)
        run(
            "evault --server https://vault.example.org register",
            replace={
                "https://vault.example.org": server.url,
                "X34LUc7_wPs20-Oj9smljItEFgg": server.invite("reporter"),
                "vault.example.org/log+1b5f0253+AT4xEPPEZ1JtxDYM0au1luzXh3kbGU+HG2tErEYQeMuc": (
                    server.log_key
                ),
            },
        )
        ids = added(run("evault add memo.txt interview.wav"))
        assert set(ids) == {"memo.txt", "interview.wav"}
        memo = {"240045a7a036ab148e019ab80e7a2932": ids["memo.txt"]}
        run("evault editors add bob bob.card")
        run("evault editors verify bob", answers=[("Did bob read you exactly", "y")])
        run("evault share 240045a7a036ab148e019ab80e7a2932 --with bob", replace=memo)
        listing = run("evault ls")
        assert ids["memo.txt"] in listing
        assert "bob" in listing
        run("evault log verify")
        run("evault export 240045a7a036ab148e019ab80e7a2932 -o memo-evidence/", replace=memo)
        run("evault verify memo-evidence/")

        # The switch, with Tom as the trustee Alice has verified.
        pin(alice, tom)
        run(
            "evault switch set --every 3d",
            answers=[
                ("Publish the file names?", "y"),
                ("Publish the capture times?", "n"),
                ("Choose file by file instead?", "n"),
            ],
        )
        run("evault checkin")
        status = run("evault switch status")
        assert re.search(r"state:\s+armed", status)
        late = run(
            "evault add late.txt",
            answers=[("publish its name?", "y"), ("publish its capture time", "y")],
        )
        assert "in the release set" in late
        run(
            "evault rm d6c2a51075bc98480ddf8e779f67e6c4",
            replace={"d6c2a51075bc98480ddf8e779f67e6c4": ids["interview.wav"]},
            answers=[("Delete item", "y")],
        )

    # The offline commands need no server.
    (here / "memo.pdf").write_bytes(b"%PDF-1.4 the memo\n")
    reporter_key = run("evault keygen -o reporter.key")
    recipient = re.search(r"age1pq1[0-9a-z]+", reporter_key)
    assert recipient is not None
    editor_key = run("evault keygen --x25519 -o editor.key")
    editor_recipient = re.search(r"age1[0-9a-z]{58}", editor_key)
    assert editor_recipient is not None
    (here / "editors.txt").write_text(f"# the desk\n{editor_recipient[0]}\n")
    run("evault encrypt -r age1pq1x5h0…", replace={"age1pq1x5h0…": recipient[0]})
    run("evault encrypt -R editors.txt -a")
    assert (here / "memo.pdf.asc").read_bytes().startswith(b"-----BEGIN AGE ENCRYPTED FILE-----")
    run(
        "evault encrypt -p",
        answers=[("Enter passphrase:", PASSPHRASE), ("Confirm passphrase:", PASSPHRASE)],
    )
    run("evault decrypt -i reporter.key -o memo-copy.pdf memo.pdf.age")
    assert (here / "memo-copy.pdf").read_bytes() == (here / "memo.pdf").read_bytes()
    assert "the memo" in run("evault decrypt -i editor.key < memo.pdf.asc | less")

    # The server's commands, on a data directory of their own.
    data = tmp_path / "var-lib-evault-server"
    shutil.copy(bob.card_path, here / "olga.card")
    server_env = environment(
        PATH=env["PATH"], HOME=str(alice.user_home), EVAULT_PORT=str(free_port())
    )
    transcript.export(
        readme,
        "export EVAULT_DATA_DIR=",
        server_env,
        replace={"/var/lib/evault-server": str(data)},
    )

    def server_run(start: str) -> str:
        return transcript.run(readme, start, env=server_env, cwd=here).output

    server_run("evault-server init")
    assert "log key:" in server_run("evault-server keys show")
    invite = server_run("evault-server invite create --role reporter")
    assert re.search(r"^[A-Za-z0-9_-]{20,}\s*$", invite, re.MULTILINE)
    server_run("evault-server operator create --card olga.card")
    serving = transcript.start(readme, "evault-server run", env=server_env, cwd=here)
    try:
        serving.expect(r"serving on (http://127\.0\.0\.1:\d+)")
        url = serving.match[1]
        assert requests.get(f"{url}/api/v1/log/checkpoint", timeout=30).status_code == 200
    finally:
        serving.kill(signal.SIGTERM)
        serving.expect(pexpect.EOF)
        serving.close()
    assert transcript.unrun([readme]) == []


# -- the guides for reporters and editors -------------------------------------------


@pytest.fixture
def newsroom(tmp_path: Path, mailbox: tuple[Mailbox, int]) -> Iterator[ServerProcess]:
    """A server whose switches may be short and whose worker runs every second."""
    _, smtp_port = mailbox
    with ServerProcess.started(
        tmp_path / "server", quick_switches(smtp_port, worker=True)
    ) as server:
        yield server


def test_guides(
    transcript: Transcript,
    newsroom: ServerProcess,
    mailbox: tuple[Mailbox, int],
    tmp_path: Path,
) -> None:
    reporters, editors = "docs/reporters.md", "docs/editors.md"
    server = newsroom
    log_key = "'vault.example.org/log+…'"
    maria = Person(tmp_path / "maria", "maria", "editor")
    maria.root.mkdir(parents=True, exist_ok=True)
    maria_env = person_env(maria)
    you = Person(tmp_path / "you", "you", "reporter")
    you.root.mkdir(parents=True, exist_ok=True)
    you_env = person_env(you)

    def as_maria(start: str, replace: Replace = None, answers: Answers = ()) -> str:
        return transcript.run(
            editors, start, env=maria_env, cwd=maria.root, replace=replace, answers=answers
        ).output

    def as_you(start: str, replace: Replace = None, answers: Answers = ()) -> str:
        return transcript.run(
            reporters, start, env=you_env, cwd=you.root, replace=replace, answers=answers
        ).output

    def joining(role: str) -> dict[str, str]:
        return {
            "https://vault.example.org": server.url,
            "CODE": server.invite(role),
            log_key: f"'{server.log_key}'",
        }

    # Maria sets up and hands over her card.
    as_maria('evault init --name "Maria Editor"')
    light_keystore(maria.home)
    as_maria("evault --server https://vault.example.org register", replace=joining("editor"))
    as_maria("evault card > maria.card")
    maria.fingerprint = json.loads(maria.ok("--json", "whoami").stdout)["fingerprint"]
    maria.card_path = maria.root / "maria.card"

    # The reporter sets up, adds files, shares one with Maria, arms the switch.
    as_you('evault init --name "Your Name"')
    light_keystore(you.home)
    as_you("evault --server https://vault.example.org register", replace=joining("reporter"))
    (you.root / "interview.wav").write_bytes(os.urandom(100_000))
    (you.root / "memo.pdf").write_bytes(b"%PDF-1.4 memo\n")
    ids = added(as_you("evault add interview.wav memo.pdf"))
    pin(you, maria)
    you.ok("share", ids["memo.pdf"], "--with", "maria")
    armed = as_you(
        "evault switch set --every 3d --grace 12h",
        answers=[
            ("Publish the file names?", "y"),
            ("Publish the capture times?", "y"),
            ("Publish the notes?", "n"),
            ("Choose file by file instead?", "n"),
        ],
    )
    assert "private: the note" in armed
    as_you("evault checkin")
    # One passphrase for a while, then locked again.
    assert "`evault lock` locks now" in as_you("evault unlock")
    you.env.pop("EVAULT_PASSPHRASE", None)
    you.ok("ls")  # no terminal to ask on: it did not ask
    as_you("evault lock")
    you.env["EVAULT_PASSPHRASE"] = PASSPHRASE
    as_you("evault export memo.pdf -o memo-evidence/")

    # Maria's inbox, with the reporter's name from her card, and everything pulled.
    inbox = as_maria("evault inbox")
    assert ids["memo.pdf"] in inbox
    assert "Your Name (unverified)" in inbox
    assert "1 of 1 item(s) downloaded" in as_maria("evault inbox pull --all -o ~/cases/ledger/")
    pulled = list((maria.user_home / "cases" / "ledger").iterdir())
    assert [p.read_bytes() for p in pulled] == [b"%PDF-1.4 memo\n"]

    # Two reporters who named Maria as a trustee go silent.
    silent = enroll(server, tmp_path, [("rosa", "reporter"), ("ruth", "reporter")])
    vaults = []
    for reporter in silent:
        pin(reporter, maria)
        (reporter.root / "ledger.pdf").write_bytes(f"ledger of {reporter.name}\n".encode())
        reporter.add(reporter.root / "ledger.pdf")
        armed = reporter.ok(
            "switch", "set", "--every", "2s", "--grace", "1s", "--trustee", "maria",
            "--alert-email", "maria <maria@example.org>", "--publish-email", "desk@example.org",
        )  # fmt: skip
        assert "Every custodian's share is needed (2 of 2)" in armed.err
        status = reporter.json("switch", "status")
        # With a trustee named, the default needs two shares: the server's alone is not enough.
        assert status["threshold"] == 2
        vaults.append(status["vault"])
    for reporter in silent:
        wait_for(
            f"{reporter.name}'s release to start",
            lambda r=reporter: r.json("switch", "status")["state"] == "releasing",  # type: ignore[misc]
        )
    listed = as_maria("evault trustee list")
    assert all(vault in listed for vault in vaults)
    # Their alerts reached Maria encrypted to her card; she opens one as the guide says.
    box, _ = mailbox
    alert = wait_for("an alert to Maria", lambda: box.to("maria@example.org"))[0]
    (attached,) = list(alert.iter_attachments())
    (maria.root / "notice.age").write_bytes(attached.get_content())
    opened = as_maria("evault notice open notice.age")
    assert "Rosa" in opened or "Ruth" in opened
    rosa, ruth = vaults
    as_maria(
        "evault trustee submit VAULT",
        replace={"VAULT": rosa},
        answers=[("Hand in your share now?", "y")],
    )
    words = json.loads(maria.ok("--json", "trustee", "show", ruth, "--yes").stdout)["words"]
    shown = as_maria(
        "evault trustee show VAULT", replace={"VAULT": ruth}, answers=[("Show the share now?", "y")]
    )
    assert all(word in shown for word in words)
    as_maria(
        "evault trustee submit VAULT --words",
        replace={"VAULT": ruth},
        answers=[("Hand in your share now?", "y"), ("separated by spaces:", " ".join(words))],
    )

    # Rosa's release, checked as the guide says.
    def release_page() -> str:
        answer = requests.get(f"{server.url}/release/{rosa}", timeout=30)
        return answer.text if answer.ok else ""

    page = wait_for("Rosa's release page", release_page)
    links = re.findall(r'href="(/release/[0-9a-f]+/items/[0-9a-f]+\.age)"', page)
    assert len(links) == 1
    blob = requests.get(server.url + links[0], timeout=30)
    name = links[0].rsplit("/", 1)[1]
    (maria.root / name).write_bytes(blob.content)
    key = requests.get(f"{server.url}/release/{rosa}/key.txt", timeout=30)
    assert key.ok
    (maria.root / "key.txt").write_bytes(key.content)
    as_maria("age -d -i key.txt -o ledger.pdf 9c1f….age", replace={"9c1f….age": name})
    assert (maria.root / "ledger.pdf").read_bytes() == b"ledger of rosa\n"
    digest = as_maria("sha256sum ledger.pdf").split()[0]
    assert digest in page
    as_maria("evault log verify --full")
    # The whole page at once, as anyone could, against the log key the operator published.
    (maria.root / "rosa.card").write_bytes(silent[0].card_path.read_bytes())
    checked = as_maria(
        "evault release check https://vault.example.org/release/VAULT --log-key KEY "
        "--card reporter.card -o released",
        replace={
            "https://vault.example.org/release/VAULT": f"{server.url}/release/{rosa}",
            "KEY": f"'{server.log_key}'",
            "reporter.card": "rosa.card",
        },
    )
    assert "checks out" in checked
    assert (maria.root / "released" / "ledger.pdf").read_bytes() == b"ledger of rosa\n"

    # A change Maria cancels: the reporter's deletion during the cooling-off.
    you.ok("rm", ids["interview.wav"], "--yes")
    vault = you.json("switch", "status")["vault"]
    [held] = [v for v in maria.json("trustee", "list")["vaults"] if v["vault"] == vault]
    [change] = [c["id"] for c in held["pending"]]
    as_maria("evault trustee cancel VAULT CHANGE", replace={"VAULT": vault, "CHANGE": change})

    # The evidence package the reporter gave Maria, checked against what she pinned.
    shutil.copytree(you.root / "memo-evidence", maria.root / "memo-evidence")
    (maria.root / "reporter.card").write_bytes(you.ok("card").stdout)
    as_maria(
        "evault verify memo-evidence/ --card reporter.card",
        replace={log_key: f"'{server.log_key}'"},
    )

    # Last, the reporter wipes the device.
    as_you("evault panic", answers=[("Destroy the keystore", "y")])
    assert not (you.home / "keystore").exists()
    assert transcript.unrun([reporters, editors]) == []


# -- the operators' guide ----------------------------------------------------------------

HOST_ONLY = {
    "apt install python3 python3-venv git sqlite3 caddy": "installs system packages",
    "apt install postgresql": "installs system packages",
    "apt install tor": "installs system packages",
    "adduser --system": "adds a system user",
    "git clone": "the repository under test is the clone",
    "python3 -m venv": "the virtual environment under test is the one made",
    "/opt/evault-server/.venv/bin/pip install": "the virtual environment under test has it",
    "git -C /opt/evault-server pull": "the repository under test is the pulled one",
    "systemctl": "needs systemd as the init system",
}
"""Commands of the operators' guide that change the machine itself, and why they are not run."""

PG_ADMIN_URL = os.environ.get(
    "EVAULT_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
).replace("postgresql+psycopg://", "postgresql://", 1)
"""A role that may create databases, for the restore drill's scratch database (libpq form)."""


def _host_paths(scratch: Path) -> dict[str, str]:
    """The guide's paths, moved under ``scratch``; the repository stands for its clone."""
    return {
        "/opt/evault-server": str(ROOT),
        "/var/lib/evault-server": f"{scratch}/var/lib/evault-server",
        "/etc/evault-server": f"{scratch}/etc/evault-server",
        "/etc/systemd/system/": f"{scratch}/etc/systemd/system/",
        "/usr/local/bin/evault-env": f"{scratch}/usr/local/bin/evault-env",
        "/var/backups/evault": f"{scratch}/var/backups/evault",
        "/tmp/operator.card": f"{scratch}/tmp/operator.card",
        # One unprivileged user plays root, evault and postgres.
        "sudo -u evault ": "",
        "sudo -u postgres ": "",
        "-o evault -g evault ": "",
        "-o root -g evault ": "",
    }


def _translate(text: str, paths: dict[str, str]) -> str:
    for old, new in paths.items():
        text = text.replace(old, new)
    return text


def _settings_block() -> list[str]:
    """The settings the guide tells the operator to put in /etc/evault-server/env."""
    text = (ROOT / "docs/operators.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(EVAULT_DATA_DIR=.*?)```", text, re.DOTALL)
    assert block is not None, "docs/operators.md: no block of settings"
    return block[1].splitlines()


def test_operators_guide(
    transcript: Transcript, tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    guide = "docs/operators.md"
    _, smtp_port = mailbox
    scratch = tmp_path / "host"
    for directory in ("var/lib", "etc/systemd/system", "usr/local/bin", "var/backups", "tmp"):
        (scratch / directory).mkdir(parents=True)
    paths = _host_paths(scratch)
    role = f"evault_docs_{secrets.token_hex(4)}"
    env = environment(
        PATH=f"{scratch}/usr/local/bin{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        HOME=str(tmp_path),
        PGHOST="127.0.0.1",
        PGUSER="postgres",
        EVAULT_DRILL_PG_URL=PG_ADMIN_URL,
    )

    def run(start: str, also: Replace = None) -> str:
        command = transcript.find(guide, start)
        replace = {old: new for old, new in paths.items() if old in command.text}
        return transcript.run(
            guide, start, env=env, cwd=tmp_path, replace=replace | (also or {})
        ).output

    try:
        run("install -d -m 700 -o evault -g evault /var/lib/evault-server")
        run("install -d -m 750 -o root -g evault /etc/evault-server")
        run("install -m 640 -o root -g evault /opt/evault-server/.env.example")
        run("cat > /usr/local/bin/evault-env")
        run("chmod 755 /usr/local/bin/evault-env")
        # The edit the guide asks for: its settings, on this machine's paths and
        # services (the mail server on loopback, without TLS or a login).
        settings = scratch / "etc/evault-server/env"
        database = f"postgresql+psycopg://{role}@127.0.0.1:5432/{role}"
        lines = [
            _translate(settings.read_text(), paths),
            *(_translate(line, paths) for line in _settings_block()),
            f"EVAULT_DATABASE_URL={database}",
            "EVAULT_SMTP_HOST=127.0.0.1",
            f"EVAULT_SMTP_PORT={smtp_port}",
            "EVAULT_SMTP_SECURITY=none",
            "EVAULT_SMTP_USER=",
        ]
        settings.write_text("\n".join(lines) + "\n")
        password = scratch / "etc/evault-server/smtp-password"
        password.write_text("unused\n")
        password.chmod(0o600)

        run("sudo -u postgres createuser evault", also={"createuser evault": f"createuser {role}"})
        run(
            "sudo -u postgres createdb --owner evault evault",
            also={"--owner evault evault": f"--owner {role} {role}"},
        )
        created = run("sudo -u evault evault-env evault-server init --origin vault.example.org/log")
        assert "log key: vault.example.org/log+" in created
        card = scratch / "tmp/operator.card"
        [olga] = enroll_offline(tmp_path, "olga")
        card.write_bytes(olga)
        run("sudo -u evault evault-env evault-server operator create")
        run("sudo -u evault evault-env evault-server invite create --role reporter --expires 72h")
        run("sudo -u evault evault-env evault-server invite create --role editor")

        run("install -m 644 /opt/evault-server/deploy/evault-web.service")
        run("install -m 644 /opt/evault-server/deploy/evault-worker@.service")
        units = {p.name for p in (scratch / "etc/systemd/system").iterdir()}
        for command in transcript.commands:
            if command.document == guide and command.text.startswith("systemctl "):
                for unit in re.findall(r"evault-[a-z]+(?:@[0-9*]+)?", command.text):
                    template = re.sub(r"@.*", "@", unit)
                    assert f"{template}.service" in units, f"{command}: no unit {unit}"

        run("install -d -m 700 -o evault -g evault /var/backups/evault")
        backup = "sudo -u evault evault-env /opt/evault-server/deploy/backup.sh"
        run(f"{backup} /var/backups/evault/before")
        run("sudo -u evault evault-env evault-server db upgrade")
        run("sudo -u evault evault-env evault-server doctor")
        run(f"{backup} /var/backups/evault/$(")
        [dated] = [
            p.name for p in (scratch / "var/backups/evault").iterdir() if p.name != "before-upgrade"
        ]
        run(
            "sudo -u evault evault-env /opt/evault-server/deploy/restore-drill.sh",
            also={"20261127T030000Z": dated},
        )
        # The guide's second doctor, whose output it shows in full.
        run("sudo -u evault evault-env evault-server doctor")

        # Rotating the log key, the guide's last section.
        run(f"{backup} /var/backups/evault/key-rotation")
        rotated = run("sudo -u evault evault-env evault-server keys rotate --yes")
        assert "log key: vault.example.org/log+" in rotated
    finally:
        subprocess.run(
            ["dropdb", "--if-exists", "--force", role], env=env, check=False, capture_output=True
        )
        subprocess.run(["dropuser", "--if-exists", role], env=env, check=False, capture_output=True)

    for unrun in transcript.unrun([guide]):
        text = unrun.split(": ", 1)[1]
        assert any(text.startswith(start) for start in HOST_ONLY), unrun


def enroll_offline(root: Path, name: str) -> list[bytes]:
    """A person's public card, from ``evault init`` and ``evault card`` (no server)."""
    person = Person(root / name, name, "operator")
    person.ok("init", "--name", name.title(), "--insecure-fast-kdf")
    return [person.ok("card").stdout]


# -- every document is someone's ------------------------------------------------------


def test_no_document_is_left_out(transcript: Transcript) -> None:
    with_commands = {c.document for c in transcript.commands}
    covered = {"README.md", "docs/reporters.md", "docs/editors.md", "docs/operators.md"}
    assert with_commands <= covered, sorted(with_commands - covered)
    assert set(DOCUMENTS) >= covered
