#!/usr/bin/env python3
"""`evault ls` of 1,000 items against one `GET /items` by `curl`, same server, same run.

The server runs under gunicorn as the README recommends (4 gthread workers
of 4 threads, SQLite, local storage). A reporter registers with the real
commands (keystore made with ``--insecure-fast-kdf``: the Argon2id unlock,
see ``keystore_unlock.py``, is kept out of it); then 1,000 small items, each
with its signed and encrypted manifest, are uploaded through the API from
this process over one connection, as the client does it, so seeding takes
seconds rather than 1,000 processes.

Timed, alternating, each a whole process from start to exit:

- ``evault ls, no session unlock``: the command does everything itself
  (start-up with every import, the keystore opened with the passphrase,
  login, the log's checkpoint checked, the list with its manifests, every
  manifest decrypted and its signature checked, the table printed to a file);
- ``evault ls, session unlocked, warm``: ``evault unlock`` ran before, and
  an ``evault ls`` since: the unlock process does the listing
  (``client._agent_list``), logged in already, with the manifests it
  checked kept in its memory, so only the list and the log's checkpoint are
  fetched (two requests) and nothing is decrypted again;
- ``evault ls, session unlocked, cold``: the first ``evault ls`` after
  ``evault unlock`` (an untimed ``evault lock`` and ``evault unlock`` before
  each run): the unlock process imports the listing code, logs in, and
  decrypts and checks every manifest;
- ``curl GET /items``, the reference: ``curl`` fetching
  ``GET /api/v1/items?limit=1000`` once with a bearer token (the metadata of
  all 1,000 items: the least any listing must fetch).

Also shown, not judged: ``curl`` of the same page with the manifests
(``with=manifest``), ``curl`` of the list and the log's checkpoint (what a
warm ``evault ls`` fetches), and ``evault --version`` (Python's start-up and
the CLI's imports). Each round runs them all, in an order of its own (no
command always runs after a heavy one); ``--rounds`` rounds quiet, then as
many with the other core busy (a process spinning beside). Prints medians,
min–max, the ratio to the reference and whether the goal holds (``evault ls``
within 2× of the curl request), for each way of running ``evault ls``.

    python bench/ls_items.py [--items 1000] [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from add_speed import EVAULT, HOST, PASSPHRASE, ROOT, gunicorn, run
from upload_speed import evault_server, free_port, stop

from client import config as client_config
from client import identity as identities
from vault import age
from vault.manifest import Manifest
from vault.protocol import LOGIN_CONTEXT, LoginChallenge

GOAL = 2.0
CONDITIONS = ("quiet", "other core busy")
REFERENCE = "curl GET /items"
WARM = "evault ls, session unlocked, warm"
COLD = "evault ls, session unlocked, cold"
ALONE = "evault ls, no session unlock"


def hog() -> subprocess.Popen[bytes]:
    """A process that keeps one core busy until stopped."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)


def _split(data: bytes) -> tuple[bytes, bytes]:
    end = data.index(b"\n---") + 1
    end = data.index(b"\n", end) + 1
    return data[:end], data[end:]


def login(api: str, home: Path, account: str) -> requests.Session:
    """A session logged in as the reporter whose keystore is in ``home``."""
    identity = identities.unlock(
        client_config.Paths(home).keystore, prompt=lambda _question: PASSPHRASE
    )
    http = requests.Session()
    http.trust_env = False
    challenge = http.post(f"{api}/auth/challenge", json={"account": account}, timeout=30).json()
    nonce = base64.b64decode(challenge["nonce"])
    message = LoginChallenge(origin=challenge["origin"], account=account, nonce=nonce).message()
    answer = http.post(
        f"{api}/auth/login",
        json={
            "account": account,
            "nonce": challenge["nonce"],
            "signature": base64.b64encode(identity.sign(LOGIN_CONTEXT, message)).decode(),
        },
        timeout=30,
    )
    answer.raise_for_status()
    http.headers["Authorization"] = f"Bearer {answer.json()['token']}"
    http.identity = identity  # type: ignore[attr-defined]
    return http


def seed(http: requests.Session, api: str, vault: str, count: int, *, streams: int = 4) -> None:
    """Upload ``count`` small items with signed, encrypted manifests, as ``evault add`` does.

    ``streams`` connections upload at once, each its share of the items.
    """
    with ThreadPoolExecutor(streams) as pool:
        done = [
            pool.submit(_seed_some, http, api, vault, range(k, count, streams))
            for k in range(streams)
        ]
        for future in done:
            future.result()


def _seed_some(http: requests.Session, api: str, vault: str, numbers: range) -> None:
    identity = http.identity  # type: ignore[attr-defined]
    card = identity.card()
    recipient = card.age_recipient()
    mine = requests.Session()
    mine.trust_env = False
    mine.headers["Authorization"] = http.headers["Authorization"]
    http = mine
    for n in numbers:
        plaintext = b"evidence %d\n" % n
        sealed = io.BytesIO()
        age.encrypt(io.BytesIO(plaintext), sealed, [recipient])
        header, body = _split(sealed.getvalue())
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
        digest = hashlib.sha256(body).hexdigest()
        manifest = Manifest(
            item_id=upload["item"],
            vault_id=vault,
            filename=f"interview-{n:04d}-transcript-corrected.txt",
            media_type="text/plain",
            size=len(plaintext),
            plaintext_sha256=hashlib.sha256(plaintext).hexdigest(),
            payload_sha256=digest,
            captured_at=Manifest.now(),
            note="",
            signer=card.signing_key,
        ).sign(identity)
        sealed_manifest = io.BytesIO()
        age.encrypt(io.BytesIO(manifest.to_json()), sealed_manifest, [recipient])
        http.post(
            f"{api}/uploads/{upload['id']}/commit",
            json={
                "sha256": digest,
                "manifest": base64.b64encode(sealed_manifest.getvalue()).decode(),
            },
            timeout=30,
        ).raise_for_status()


def spread(values: list[float]) -> str:
    return f"{min(values) * 1000:.0f}–{max(values) * 1000:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", help="where to put the server's files (default: /dev/shm)")
    args = parser.parse_args()
    if not shutil.which("curl"):
        raise SystemExit("curl is needed: apt-get install curl")
    base = args.dir or ("/dev/shm" if Path("/dev/shm").is_dir() else None)
    work = Path(tempfile.mkdtemp(prefix="evault-bench-", dir=base))
    server: subprocess.Popen[bytes] | None = None
    busy: subprocess.Popen[bytes] | None = None
    try:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("EVAULT_")}
        server_env = clean | {
            "EVAULT_DATA_DIR": str(work / "data"),
            "EVAULT_STORAGE": "local",
            "EVAULT_LOG_LEVEL": "ERROR",
        }
        evault_server(server_env, "init")
        invite = evault_server(server_env, "invite", "create", "--role", "reporter").split()[-1]
        port = free_port()
        server = gunicorn("server.wsgi:app", port, server_env, ROOT)
        url = f"http://{HOST}:{port}"
        api = f"{url}/api/v1"
        home = work / "home"
        env = clean | {"EVAULT_HOME": str(home), "EVAULT_PASSPHRASE": PASSPHRASE}
        run([str(EVAULT), "init", "--name", "Bench", "--insecure-fast-kdf"], env)
        run([str(EVAULT), "--server", url, "register", "--invite", invite], env)
        state = json.loads((home / "state.json").read_text())
        http = login(api, home, state["account"])
        started = time.perf_counter()
        seed(http, api, state["vault"], args.items)
        seeding = time.perf_counter() - started
        token = http.headers["Authorization"]
        curl = ["curl", "-sS", "-f", "-o", "/dev/null", "-H", f"Authorization: {token}"]
        plain_url = f"{api}/items?limit=1000"
        alone = env | {"EVAULT_NO_SESSION_UNLOCK": "1"}
        unlocked = {k: v for k, v in env.items() if k != "EVAULT_PASSPHRASE"}
        commands: dict[str, tuple[list[str], dict[str, str]]] = {
            COLD: ([str(EVAULT), "ls"], unlocked),
            WARM: ([str(EVAULT), "ls"], unlocked),
            ALONE: ([str(EVAULT), "ls"], alone),
            REFERENCE: ([*curl, plain_url], env),
            "curl GET /items with manifests": ([*curl, plain_url + "&with=manifest"], env),
            "curl GET /items + GET /log/checkpoint": (
                [
                    *curl,
                    plain_url,
                    "--next",
                    "-sS",
                    "-f",
                    "-o",
                    "/dev/null",
                    f"{api}/log/checkpoint",
                ],
                env,
            ),
            "evault --version": ([str(EVAULT), "--version"], env),
        }
        listed = run(commands[ALONE][0], alone).output
        if f"{args.items} items, every signature checked" not in listed:
            raise SystemExit(f"evault ls did not list every item:\n{listed[-2000:]}")
        run([str(EVAULT), "unlock"], env)
        fast = run(commands[WARM][0], unlocked).output
        if fast != listed:
            raise SystemExit(
                "evault ls through the session unlock printed another table:\n"
                f"{fast[-1500:]}\n---- instead of ----\n{listed[-1500:]}"
            )
        for argv, where in commands.values():  # warm-up
            run(argv, where)
        times: dict[tuple[str, str], list[float]] = {}
        for condition in CONDITIONS:
            if condition != "quiet":
                busy = hog()
                time.sleep(0.5)
            for number in range(args.rounds):
                # Each round in another order: no command always runs after a heavy one.
                order = list(commands.items())
                random.Random(number).shuffle(order)  # noqa: S311 — an order of runs, no secret
                for name, (argv, where) in order:
                    if name == COLD:
                        run([str(EVAULT), "lock"], env)
                        run([str(EVAULT), "unlock"], env)
                    elif name == WARM:
                        run(argv, where)  # warm again after the cold run's restart
                    times.setdefault((condition, name), []).append(run(argv, where).seconds)
            if busy is not None:
                stop(busy)
                busy = None
        run([str(EVAULT), "lock"], env)

        print(
            f"\nevault ls of {args.items} items vs one curl GET /items?limit=1000, "
            f"same server (gunicorn 4x4 gthread, SQLite), {os.cpu_count()} cores, "
            f"{args.rounds} rounds each; seeding {args.items} items took {seeding:.1f} s\n"
        )
        print("| condition | command | median ms | min–max ms | vs curl GET /items |")
        print("|---|---|---|---|---|")
        verdicts = []
        for condition in CONDITIONS:
            reference = statistics.median(times[(condition, REFERENCE)])
            for name in commands:
                values = times[(condition, name)]
                median = statistics.median(values)
                print(
                    f"| {condition} | {name} | {median * 1000:.0f} | {spread(values)} "
                    f"| {median / reference:.2f}× |"
                )
            for name in (WARM, COLD, ALONE):
                ratio = statistics.median(times[(condition, name)]) / reference
                verdicts.append(
                    f"{condition}, {name.removeprefix('evault ls, ')}: {ratio:.2f}× "
                    f"({'yes' if ratio <= GOAL else 'NO'})"
                )
        print(f"\ngoal: evault ls within {GOAL:.0f}× of curl GET /items:")
        for verdict in verdicts:
            print(f"- {verdict}")
    finally:
        stop(busy)
        stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
