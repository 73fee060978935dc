#!/usr/bin/env python3
"""Upload throughput and memory of the server under gunicorn against a minimal streaming sink.

For each item size, a random payload (opaque ciphertext behind a real age
header) goes to the real API over loopback: one upload session, 64 MiB
chunks sent with ``sendfile`` over one kept-alive connection, then the
commit; the time runs from creating the session to the commit's answer.
Every upload is of new content, as in real use (see ``renew_payload``).
The same bytes go by ``curl -T`` to a sink under gunicorn that does the
storage's work and nothing else (read the body in 1 MiB blocks, write them
to a file, fsync). The two alternate, after one warm-up each, each timed
transfer after writing and deleting a file of its size (see
``warm_memory``). A thread samples the RSS of the server's workers every
20 ms during each upload. Files live in RAM (/dev/shm) when there is room.
Prints the median MB/s of each, the ratio evault / sink and the server's
peak RSS, and whether the targets hold (>= 0.8x the sink; peak RSS flat in
item size and <= 80 MiB). This machine is noisy: look at medians and ratios.

    python bench/upload_speed.py [--sizes-mib 64,1024] [--rounds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from vault._base64 import b64decode, b64encode
from vault.age import X25519Identity, encrypt
from vault.age.format import Source, parse_header
from vault.keys import PersonalIdentity
from vault.protocol import LoginChallenge

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
CHUNK = 64 * 1024 * 1024
MIB = 1024 * 1024
RATIO_TARGET = 0.8
RSS_TARGET_MIB = 80.0
# How much the peak RSS may grow from the smallest to the largest item and still count as flat.
FLAT_SLACK_MIB = 8.0

SINK_APP = '''\
"""A minimal streaming sink: the body to a file in 1 MiB blocks, then fsync."""

import os

TARGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sink.out")


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    stream = environ["wsgi.input"]
    received = 0
    fd = os.open(TARGET, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        while received < length:
            block = stream.read(min(1 << 20, length - received))
            if not block:
                break
            view = memoryview(block)
            while view:
                view = view[os.write(fd, view):]
            received += len(block)
        os.fsync(fd)
    finally:
        os.close(fd)
    status = "200 OK" if received == length else "400 Bad Request"
    body = b"%d\\n" % received
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def workdir(requested: str | None, size: int) -> Path:
    if requested:
        return Path(tempfile.mkdtemp(prefix="evault-bench-", dir=requested))
    shm = Path("/dev/shm")
    # The payload, the staged upload (then the blob) and the sink's copy, with room to spare.
    if shm.is_dir() and shutil.disk_usage(shm).free > 4 * size:
        return Path(tempfile.mkdtemp(prefix="evault-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="evault-bench-"))


def evault_server(env: dict[str, str], *argv: str) -> str:
    """Run ``evault-server`` with ``argv``; its standard output."""
    done = subprocess.run(
        [str(BIN / "evault-server"), *argv], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"evault-server {' '.join(argv)} failed: {done.stderr}")
    return done.stdout


def gunicorn(app: str, port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start gunicorn in its own process group; return once it answers on ``port``."""
    argv = [str(BIN / "gunicorn"), "--bind", f"{HOST}:{port}", "--workers", "2"]
    # Threaded workers keep connections alive, as the README's production setup does.
    argv += ["--worker-class", "gthread", "--threads", "2"]
    # A 1 GiB body in one request must not trip the worker timeout (30 s by default).
    argv += ["--timeout", "600", "--log-level", "error", app]
    proc = subprocess.Popen(argv, env=env, cwd=cwd, start_new_session=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn {app} exited with status {proc.returncode}")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
        except OSError:
            time.sleep(0.1)
            continue
        # The master listens before its workers run; wait for both of them.
        if len(workers(proc.pid)) == 2:
            return proc
        time.sleep(0.1)
    raise SystemExit(f"gunicorn {app} did not start")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def workers(master: int) -> list[int]:
    try:
        text = Path(f"/proc/{master}/task/{master}/children").read_text()
    except OSError:
        return []
    return [int(pid) for pid in text.split()]


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """The largest VmRSS of any worker of a gunicorn master, sampled every 20 ms."""

    def __init__(self, master: int) -> None:
        self._master = master
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak_kib = 0

    def _run(self) -> None:
        while True:
            for pid in workers(self._master):
                self.peak_kib = max(self.peak_kib, rss_kib(pid))
            if self._stop.wait(0.02):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class Api:
    """Calls to the server over one kept-alive loopback connection, as the client makes them."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.token = ""
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(HOST, self.port, timeout=600)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def _answer(self, conn: http.client.HTTPConnection) -> tuple[int, bytes]:
        response = conn.getresponse()
        answer = response.read()
        if response.will_close:
            self.close()
        return response.status, answer

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        conn = self._connection()
        headers = self._headers()
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        status, answer = self._answer(conn)
        if status >= 300:
            raise SystemExit(f"{method} {path}: {status} {answer.decode()}")
        return json.loads(answer)

    def put_chunk(
        self, upload_id: str, payload: io.BufferedReader, offset: int, length: int
    ) -> None:
        """PUT ``length`` bytes of ``payload`` from ``offset``, sent by the kernel (sendfile)."""
        conn = self._connection()
        conn.putrequest("PUT", f"/api/v1/uploads/{upload_id}/chunks?offset={offset}")
        for name, value in self._headers().items():
            conn.putheader(name, value)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        assert conn.sock is not None
        sent = conn.sock.sendfile(payload, offset, length)
        if sent != length:
            raise RuntimeError(f"internal error: sent {sent} of {length} bytes")
        status, answer = self._answer(conn)
        if status != 200:
            raise SystemExit(f"chunk at {offset}: {status} {answer.decode()}")


def log_in(api: Api, invite: str) -> None:
    """Register a reporter with ``invite`` and log in as it."""
    person = PersonalIdentity.generate("Bench", post_quantum=False)
    card = person.card()
    registered = api.call(
        "POST", "/api/v1/accounts", {"invite": invite, "card": card.to_json().decode()}
    )
    account = registered["account"]["id"]
    issued = api.call("POST", "/api/v1/auth/challenge", {"public_key": b64encode(card.signing_key)})
    nonce = b64decode(issued["nonce"], 32)
    assert nonce is not None
    message = LoginChallenge(origin=issued["origin"], account=account, nonce=nonce).message()
    signature = b64encode(person.sign("login", message))
    answer = api.call(
        "POST",
        "/api/v1/auth/login",
        {"account": account, "nonce": issued["nonce"], "signature": signature},
    )
    api.token = answer["token"]


def age_header() -> bytes:
    """A real age v1 header, to a fresh X25519 recipient."""
    out = io.BytesIO()
    encrypt(io.BytesIO(b"evidence"), out, [X25519Identity.generate().recipient()])
    return parse_header(Source(io.BytesIO(out.getvalue()))).marshal()


def make_payload(path: Path, size: int) -> None:
    """Write ``size`` random bytes to ``path``."""
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            f.write(block)
            left -= len(block)


def upload(api: Api, path: Path, size: int, digest: str, header: str) -> float:
    """Upload the file through the API; seconds from session creation to commit answer."""
    # A new connection, as a client starting an upload has (the last may have idled out).
    api.close()
    with path.open("rb") as payload:
        start = time.perf_counter()
        created = api.call(
            "POST", "/api/v1/uploads", {"size": size, "sha256": digest, "header": header}
        )
        upload_id = created["upload"]["id"]
        for offset in range(0, size, CHUNK):
            api.put_chunk(upload_id, payload, offset, min(CHUNK, size - offset))
        committed = api.call("POST", f"/api/v1/uploads/{upload_id}/commit")
        elapsed = time.perf_counter() - start
    if committed["item"]["size"] != size:
        raise SystemExit(f"the item has {committed['item']['size']} bytes, not {size}")
    return elapsed


def renew_payload(path: Path, size: int) -> str:
    """New random bytes at the start of ``path``; the file's hex SHA-256.

    Every upload is then of content the server does not hold yet, as in
    real use: storing content it already holds would discard the staged
    copy inside the timed commit, a cost the sink never pays.
    """
    with path.open("r+b") as f:
        f.write(os.urandom(min(4096, size)))
        f.seek(0)
        return hashlib.file_digest(f, "sha256").hexdigest()


def sha256_rate() -> float:
    """MB/s of SHA-256 on one core here, from memory (the median of five 256 MiB runs)."""
    block = os.urandom(16 * MIB)
    rates = []
    for _ in range(5):
        digest = hashlib.sha256()
        start = time.perf_counter()
        for _ in range(16):
            digest.update(block)
        rates.append(256 * MIB / 1e6 / (time.perf_counter() - start))
    return statistics.median(rates)


def warm_memory(directory: Path, size: int) -> None:
    """Write and delete a file a quarter larger than ``size`` in ``directory``.

    Virtual machines that hand freed memory back to their host (virtio-balloon
    free page reporting) make the first touch of a page slow; which transfer
    pays for it is luck, and it swamped the difference between the two. Done
    before every timed transfer, this gives both the same warm pages to write to.
    """
    ballast = directory / "ballast"
    block = b"\x01" * MIB
    with ballast.open("wb") as f:
        for _ in range(-(-size * 5 // 4) // MIB):
            f.write(block)
    ballast.unlink()


def curl(path: Path, port: int, sink_out: Path) -> float:
    """``curl -T`` the file to the sink, timed as a whole process."""
    sink_out.unlink(missing_ok=True)
    argv = ["curl", "-sS", "-o", "/dev/null", "-f", "-T", str(path), f"http://{HOST}:{port}/sink"]
    start = time.perf_counter()
    subprocess.run(argv, check=True)
    elapsed = time.perf_counter() - start
    if sink_out.stat().st_size != path.stat().st_size:
        raise SystemExit("the sink did not receive the whole file")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mib", default="64,1024", help="item sizes (default 64,1024)")
    parser.add_argument(
        "--rounds", type=int, help="rounds per size (default 7 up to 64 MiB, 5 above)"
    )
    parser.add_argument("--dir", help="where to put the files (default: /dev/shm if it has room)")
    args = parser.parse_args()
    sizes = sorted(int(text) for text in args.sizes_mib.split(","))
    if not shutil.which("curl"):
        raise SystemExit("curl is needed: apt-get install curl")
    work = workdir(args.dir, max(sizes) * MIB)
    server: subprocess.Popen[bytes] | None = None
    sink: subprocess.Popen[bytes] | None = None
    try:
        data = work / "data"
        env = {key: value for key, value in os.environ.items() if not key.startswith("EVAULT_")}
        env |= {
            "EVAULT_DATA_DIR": str(data),
            "EVAULT_STORAGE": "local",
            "EVAULT_MAX_ITEM_SIZE": str(64 << 30),
            "EVAULT_QUOTA_BYTES": str(1 << 40),
            "EVAULT_LOG_LEVEL": "ERROR",
        }
        evault_server(env, "init")
        invite = evault_server(env, "invite", "create", "--role", "reporter").split()[-1]
        sink_dir = work / "sink"
        sink_dir.mkdir()
        (sink_dir / "sink_app.py").write_text(SINK_APP)
        port, sink_port = free_port(), free_port()
        server = gunicorn("server.wsgi:app", port, env, ROOT)
        sink = gunicorn("sink_app:app", sink_port, dict(os.environ), sink_dir)
        idle_kib = max(rss_kib(pid) for pid in workers(server.pid))
        master_kib = rss_kib(server.pid)
        api = Api(port)
        log_in(api, invite)
        header = b64encode(age_header())

        rows = []
        for size_mib in sizes:
            size = size_mib * MIB
            rounds = args.rounds or (7 if size_mib <= 64 else 5)
            payload = work / "payload.bin"
            make_payload(payload, size)
            # One warm-up each: imports, page cache, first blob directory.
            upload(api, payload, size, renew_payload(payload, size), header)
            curl(payload, sink_port, sink_dir / "sink.out")
            evault_times, sink_times, peak_kib = [], [], 0
            for _ in range(rounds):
                digest = renew_payload(payload, size)
                warm_memory(work, size)
                with RssSampler(server.pid) as sampler:
                    evault_times.append(upload(api, payload, size, digest, header))
                peak_kib = max(peak_kib, sampler.peak_kib)
                warm_memory(work, size)
                sink_times.append(curl(payload, sink_port, sink_dir / "sink.out"))
            payload.unlink()
            (sink_dir / "sink.out").unlink(missing_ok=True)
            mb = size / 1e6
            rows.append(
                (
                    size_mib,
                    rounds,
                    statistics.median(mb / t for t in evault_times),
                    statistics.median(mb / t for t in sink_times),
                    peak_kib / 1024,
                    sorted(mb / t for t in evault_times),
                    sorted(mb / t for t in sink_times),
                )
            )

        where = f"files in {work.parent}, {os.cpu_count()} cores"
        where += ", gunicorn --workers 2 --worker-class gthread --threads 2"
        print(f"\nupload over loopback, {CHUNK // MIB} MiB chunks; {where}\n")
        print(
            "| size     | rounds | evault MB/s (median) | sink MB/s (median) | ratio "
            "| server peak RSS MiB |"
        )
        print(
            "|----------|--------|----------------------|--------------------|-------"
            "|---------------------|"
        )
        for size_mib, rounds, ev, sk, peak, _, _ in rows:
            label = f"{size_mib // 1024} GiB" if size_mib % 1024 == 0 else f"{size_mib} MiB"
            print(
                f"| {label:>8} | {rounds:6} | {ev:20.0f} | {sk:18.0f} | {ev / sk:5.2f} | "
                f"{peak:19.1f} |"
            )
        print()
        for size_mib, _, _, _, _, ev_rates, sk_rates in rows:
            print(
                f"{size_mib} MiB: evault {ev_rates[0]:.0f}–{ev_rates[-1]:.0f} MB/s, "
                f"sink {sk_rates[0]:.0f}–{sk_rates[-1]:.0f} MB/s"
            )
        print(
            f"server RSS before any upload: worker {idle_kib / 1024:.1f} MiB, "
            f"master {master_kib / 1024:.1f} MiB"
        )
        sha = sha256_rate()
        print(
            f"SHA-256 on one core: {sha:.0f} MB/s "
            "(the server hashes every byte it accepts; the sink does not)"
        )
        # The server cannot accept bytes faster than one core hashes them.
        for size_mib, _, _, sk, _, _, _ in rows:
            print(
                f"{size_mib} MiB: SHA-256 alone caps the ratio at {min(1.0, sha / sk):.2f} "
                f"against this run's sink ({sk:.0f} MB/s)"
            )
        ratio_ok = all(ev / sk >= RATIO_TARGET for _, _, ev, sk, _, _, _ in rows)
        peaks = [peak for *_, peak, _, _ in rows]
        flat = max(peaks) - peaks[0] <= FLAT_SLACK_MIB
        small = max(peaks) <= RSS_TARGET_MIB
        print(
            f"\ntargets: ratio >= {RATIO_TARGET}: {'yes' if ratio_ok else 'NO'}; "
            f"peak RSS flat in item size (within {FLAT_SLACK_MIB:.0f} MiB): "
            f"{'yes' if flat else 'NO'}; "
            f"peak RSS <= {RSS_TARGET_MIB:.0f} MiB: {'yes' if small else 'NO'}"
        )
    finally:
        stop(server)
        stop(sink)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
