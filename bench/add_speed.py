#!/usr/bin/env python3
"""`evault add` against the two-step baseline `age -e` then `curl -T`, in the same run.

``evault add`` encrypts a file while it uploads it to the real server under
gunicorn (the README's production settings: 4 gthread workers of 4
threads), and verifies the receipt. The baseline does the same work in two
steps with standard tools: ``age -e -r RECIPIENT -o FILE.age FILE``, then
``curl -T FILE.age`` to a minimal streaming sink under the same gunicorn
settings (read the body in 1 MiB blocks, write, fsync: the sink of
``upload_speed.py``). Every program runs as a whole process, start-up
included, and the times are wall times from start to exit.

The client's keystore uses ``--insecure-fast-kdf``, so that the Argon2id
unlock (0.6 s by default, see ``keystore_unlock.py``) does not dominate
small files. The recipient is the reporter's post-quantum hybrid
(``age1pq1…``) for both when this ``age`` supports it (age >= 1.3);
otherwise age gets a classic X25519 recipient, which the output says.

Each timed run starts on warm memory (``warm_memory`` of ``upload_speed.py``
with room for what the run writes: the staged upload for evault, the
ciphertext and the sink's copy for the baseline). Files live in RAM
(/dev/shm) when there is room. The peak RSS of each ``evault add`` comes
from ``wait4``; a thread watching the server's staging directory gives the
time ``evault add`` takes to open its upload session (start-up, unlock,
login) and to get its first bytes to the server; the CPU time of the
server's and the sink's workers during each transfer comes from /proc.
Prints the median MB/s of each, the ratio of the baseline's time to
evault's, the client's peak RSS, and whether the targets hold (ratio >= 1.5;
peak RSS flat in file size and <= 80 MiB), then the best ratio
this machine allows: the cryptography ``evault add`` cannot skip plus the
baseline's own transfer work, spread perfectly over every core. This
machine is noisy: look at medians and ratios.

    python bench/add_speed.py [--sizes-mib 64,1024] [--rounds N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
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

# upload_speed.py is a sibling script, not a package: import its server helpers and sink.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from upload_speed import (
    MIB,
    SINK_APP,
    evault_server,
    free_port,
    sha256_rate,
    stop,
    warm_memory,
    workers,
)

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent
EVAULT = BIN / "evault"
HOST = "127.0.0.1"
PASSPHRASE = "correct horse battery staple orbit"  # noqa: S105 — a bench keystore's
WORKERS, THREADS = 4, 4
RATIO_TARGET = 1.5
RSS_TARGET_MIB = 80.0
# How much the peak RSS may grow from the smallest to the largest file and still count as flat.
FLAT_SLACK_MIB = 8.0


@dataclasses.dataclass(frozen=True)
class Run:
    """One finished process: wall time, peak RSS and CPU time (user + system)."""

    seconds: float
    rss_mib: float
    cpu: float
    output: str = ""


def run(argv: list[str], env: dict[str, str] | None = None) -> Run:
    """Run a command to its end with its output in a file; fail loudly if it fails."""
    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{text}")
    return Run(elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, text)


def workdir(requested: str | None, size: int, files: int) -> Path:
    if requested:
        return Path(tempfile.mkdtemp(prefix="evault-bench-", dir=requested))
    shm = Path("/dev/shm")
    # Every evault add leaves its blob on the server; then the plaintext, the
    # ciphertext, the sink's copy and the ballast, with room to spare.
    if shm.is_dir() and shutil.disk_usage(shm).free > (files + 6) * size:
        return Path(tempfile.mkdtemp(prefix="evault-bench-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="evault-bench-"))


def gunicorn(app: str, port: int, env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    """Start gunicorn as the README recommends; return once all its workers run."""
    argv = [str(BIN / "gunicorn"), "--bind", f"{HOST}:{port}", "--workers", str(WORKERS)]
    argv += ["--worker-class", "gthread", "--threads", str(THREADS), "--log-level", "error"]
    # The sink takes a 1 GiB body in one request: more than the 30 s default must be fine.
    argv += ["--timeout", "600", app]
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
        if len(workers(proc.pid)) == WORKERS:
            return proc
        time.sleep(0.1)
    raise SystemExit(f"gunicorn {app} did not start")


class StagingWatch:
    """When a new upload session appears in the server's staging directory, and its first bytes.

    Polls every 2 ms until both are seen, then stops, so it does not
    compete with the transfer. Either time stays None if the layout differs.
    """

    def __init__(self, staging: Path) -> None:
        self._staging = staging
        self._before = set(self._names())
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.start = 0.0
        self.session: float | None = None
        self.first_byte: float | None = None

    def _names(self) -> list[str]:
        try:
            return os.listdir(self._staging)
        except OSError:
            return []

    def _run(self) -> None:
        fresh: Path | None = None
        while not self._stop.wait(0.002):
            if fresh is None:
                new = set(self._names()) - self._before
                if new:
                    self.session = time.perf_counter() - self.start
                    fresh = self._staging / new.pop() / "payload"
                continue
            try:
                blocks = fresh.stat().st_blocks
            except OSError:
                return
            if blocks:
                self.first_byte = time.perf_counter() - self.start
                return

    def __enter__(self) -> StagingWatch:
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@dataclasses.dataclass(frozen=True)
class Servers:
    """The evault server and the sink, both on gunicorn."""

    clean: dict[str, str]
    """This environment without any ``EVAULT_`` variable."""
    data: Path
    sink_dir: Path
    invite: str
    """A reporter's one-time invite."""
    port: int
    sink_port: int
    server: subprocess.Popen[bytes]
    sink: subprocess.Popen[bytes]


def start_servers(
    work: Path, settings: dict[str, str], started: list[subprocess.Popen[bytes]]
) -> Servers:
    """An evault server on local disk under ``work`` (with ``settings`` on top) and the sink.

    Each process goes into ``started`` as it starts, for the caller to stop.
    """
    data = work / "data"
    clean = {key: value for key, value in os.environ.items() if not key.startswith("EVAULT_")}
    server_env = clean | {
        "EVAULT_DATA_DIR": str(data),
        "EVAULT_STORAGE": "local",
        "EVAULT_QUOTA_BYTES": str(1 << 40),
        "EVAULT_LOG_LEVEL": "ERROR",
        **settings,
    }
    evault_server(server_env, "init")
    invite = evault_server(server_env, "invite", "create", "--role", "reporter").split()[-1]
    sink_dir = work / "sink"
    sink_dir.mkdir()
    (sink_dir / "sink_app.py").write_text(SINK_APP)
    port, sink_port = free_port(), free_port()
    server = gunicorn("server.wsgi:app", port, server_env, ROOT)
    started.append(server)
    sink = gunicorn("sink_app:app", sink_port, clean, sink_dir)
    started.append(sink)
    return Servers(clean, data, sink_dir, invite, port, sink_port, server, sink)


def evault_add(path: Path, env: dict[str, str], staging: Path) -> tuple[Run, StagingWatch]:
    with StagingWatch(staging) as watch:
        done = run([str(EVAULT), "add", str(path)], env)
    if "stored as item" not in done.output:
        raise SystemExit(f"evault add did not store the file:\n{done.output}")
    return done, watch


def age_encrypt(path: Path, out: Path, recipient: str) -> Run:
    out.unlink(missing_ok=True)
    return run(["age", "-e", "-r", recipient, "-o", str(out), str(path)])


def curl(path: Path, port: int, sink_out: Path) -> Run:
    sink_out.unlink(missing_ok=True)
    done = run(["curl", "-sS", "-o", "/dev/null", "-f", "-T", str(path), f"http://{HOST}:{port}/"])
    if sink_out.stat().st_size != path.stat().st_size:
        raise SystemExit("the sink did not receive the whole file")
    return done


def make_plaintext(path: Path, size: int) -> None:
    with path.open("wb") as f:
        left = size
        while left:
            block = os.urandom(min(MIB, left))
            f.write(block)
            left -= len(block)


def age_version() -> str:
    done = subprocess.run(["age", "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def age_recipient(reporter: str, work: Path) -> tuple[str, str]:
    """The reporter's hybrid recipient if this age encrypts to it, else a new X25519 one."""
    probe = subprocess.run(
        ["age", "-e", "-r", reporter, "-o", "/dev/null"], input=b"probe", capture_output=True
    )
    if probe.returncode == 0:
        return reporter, "post-quantum hybrid (age1pq1…) for both"
    key = work / "x25519.key"
    subprocess.run(["age-keygen", "-o", str(key)], capture_output=True, check=True)
    found = re.search(r"public key: (age1\S+)", key.read_text())
    assert found is not None
    return found.group(1), (
        "evault: post-quantum hybrid (age1pq1…); age: X25519, because this age "
        "does not support hybrid recipients (it needs age >= 1.3)"
    )


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes ``pids`` have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclasses.dataclass
class Results:
    """The timed rounds of one file size."""

    size_mib: int
    adds: list[Run] = dataclasses.field(default_factory=list)
    server_cpu: list[float] = dataclasses.field(default_factory=list)
    sessions: list[float] = dataclasses.field(default_factory=list)
    first_bytes: list[float] = dataclasses.field(default_factory=list)
    ages: list[Run] = dataclasses.field(default_factory=list)
    curls: list[Run] = dataclasses.field(default_factory=list)
    sink_cpu: list[float] = dataclasses.field(default_factory=list)

    @property
    def megabytes(self) -> float:
        return self.size_mib * MIB / 1e6

    def evault_seconds(self) -> list[float]:
        return [r.seconds for r in self.adds]

    def baseline_seconds(self) -> list[float]:
        """Each round of the baseline: its age run, then its curl run."""
        return [a.seconds + c.seconds for a, c in zip(self.ages, self.curls, strict=True)]


def label(size_mib: int) -> str:
    return f"{size_mib // 1024} GiB" if size_mib % 1024 == 0 else f"{size_mib} MiB"


def aead_rate() -> float:
    """MB/s of ChaCha20-Poly1305 on one core, sealing 64 KiB chunks as age does (median of 5)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    aead = ChaCha20Poly1305(os.urandom(32))
    chunk, nonce = os.urandom(64 * 1024), os.urandom(12)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(2048):
            aead.encrypt(nonce, chunk, None)
        rates.append(2048 * len(chunk) / 1e6 / (time.perf_counter() - start))
    return statistics.median(rates)


def crypto_seconds_per_mb() -> float:
    """CPU seconds per MB of the cryptography ``evault add`` cannot skip, on one core here.

    The client hashes the plaintext and the payload (both are signed in the
    manifest) and seals the payload; the server hashes the payload again
    before the item may exist.
    """
    return 3 / sha256_rate() + 1 / aead_rate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes-mib", default="64,1024", help="file sizes (default 64,1024)")
    parser.add_argument(
        "--rounds", type=int, help="rounds per size (default 5 up to 64 MiB, 3 above)"
    )
    parser.add_argument("--dir", help="where to put the files (default: /dev/shm if it has room)")
    args = parser.parse_args()
    sizes = sorted(int(text) for text in args.sizes_mib.split(","))
    rounds_of = {s: args.rounds or (5 if s <= 64 else 3) for s in sizes}
    for tool, package in (("curl", "curl"), ("age", "age"), ("age-keygen", "age")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed: apt-get install {package}")
    largest = max(sizes) * MIB
    work = workdir(args.dir, largest, rounds_of[max(sizes)] + 1)
    started: list[subprocess.Popen[bytes]] = []
    try:
        up = start_servers(work, {"EVAULT_MAX_ITEM_SIZE": str(64 << 30)}, started)
        data, clean, invite, sink_dir = up.data, up.clean, up.invite, up.sink_dir
        port, sink_port, server, sink = up.port, up.sink_port, up.server, up.sink
        staging = data / "blobs" / "staging"

        client_env = clean | {"EVAULT_HOME": str(work / "home"), "EVAULT_PASSPHRASE": PASSPHRASE}
        run([str(EVAULT), "init", "--name", "Bench", "--insecure-fast-kdf"], client_env)
        url = f"http://{HOST}:{port}"
        run([str(EVAULT), "--server", url, "register", "--invite", invite], client_env)
        reporter = json.loads(run([str(EVAULT), "card"], client_env).output)["recipient"]
        recipient, recipients_note = age_recipient(reporter, work)
        startup = statistics.median(
            run([str(EVAULT), "--version"], client_env).seconds for _ in range(5)
        )

        results = []
        for size_mib in sizes:
            size = size_mib * MIB
            plaintext = work / f"evidence-{size_mib}.bin"
            encrypted = work / f"evidence-{size_mib}.bin.age"
            sink_out = sink_dir / "sink.out"
            make_plaintext(plaintext, size)
            # One warm-up each: page cache, the server's and the sink's first requests.
            evault_add(plaintext, client_env, staging)
            age_encrypt(plaintext, encrypted, recipient)
            curl(encrypted, sink_port, sink_out)
            done = Results(size_mib)
            for _ in range(rounds_of[size_mib]):
                warm_memory(work, size)  # the staged upload
                before = cpu_seconds(workers(server.pid))
                added, watch = evault_add(plaintext, client_env, staging)
                done.server_cpu.append(cpu_seconds(workers(server.pid)) - before)
                done.adds.append(added)
                if watch.session is not None:
                    done.sessions.append(watch.session)
                if watch.first_byte is not None:
                    done.first_bytes.append(watch.first_byte)
                encrypted.unlink(missing_ok=True)
                sink_out.unlink(missing_ok=True)
                warm_memory(work, 2 * size)  # the ciphertext and the sink's copy
                done.ages.append(age_encrypt(plaintext, encrypted, recipient))
                before = cpu_seconds(workers(sink.pid))
                done.curls.append(curl(encrypted, sink_port, sink_out))
                done.sink_cpu.append(cpu_seconds(workers(sink.pid)) - before)
            plaintext.unlink()
            encrypted.unlink(missing_ok=True)
            sink_out.unlink(missing_ok=True)
            results.append(done)

        print(
            f"\nevault add vs age -e + curl -T; files in {work.parent}, {os.cpu_count()} cores, "
            f"gunicorn --workers {WORKERS} --worker-class gthread --threads {THREADS}"
        )
        print(f"age {age_version()}; recipients: {recipients_note}")
        print("client keystore made with --insecure-fast-kdf (Argon2id unlock kept out of it)\n")
        print(
            "| size | rounds | evault add MB/s | age+curl MB/s | ratio (baseline/evault time) "
            "| evault add peak RSS MiB | evault add CPU s | age MB/s | curl MB/s |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        peaks = []
        ratios = []
        for r in results:
            evault_s = statistics.median(r.evault_seconds())
            baseline_s = statistics.median(r.baseline_seconds())
            peak = max(a.rss_mib for a in r.adds)
            peaks.append(peak)
            ratios.append(baseline_s / evault_s)
            print(
                f"| {label(r.size_mib)} | {len(r.adds)} | {r.megabytes / evault_s:.0f} "
                f"| {r.megabytes / baseline_s:.0f} | {baseline_s / evault_s:.2f} | {peak:.1f} "
                f"| {statistics.median(a.cpu for a in r.adds):.2f} "
                f"| {r.megabytes / statistics.median(a.seconds for a in r.ages):.0f} "
                f"| {r.megabytes / statistics.median(c.seconds for c in r.curls):.0f} |"
            )
        print()
        for r in results:
            ev = sorted(r.megabytes / t for t in r.evault_seconds())
            base = sorted(r.megabytes / t for t in r.baseline_seconds())
            print(
                f"{label(r.size_mib)}: evault add {ev[0]:.0f}–{ev[-1]:.0f} MB/s, "
                f"age+curl {base[0]:.0f}–{base[-1]:.0f} MB/s; "
                f"age peak RSS {max(a.rss_mib for a in r.ages):.1f} MiB"
            )
            client, server_cpu = (
                statistics.median(a.cpu for a in r.adds),
                statistics.median(r.server_cpu),
            )
            age_cpu, curl_cpu, sink_cpu = (
                statistics.median(a.cpu for a in r.ages),
                statistics.median(c.cpu for c in r.curls),
                statistics.median(r.sink_cpu),
            )
            print(
                f"  CPU s (medians): evault add {client:.2f} + server {server_cpu:.2f} = "
                f"{client + server_cpu:.2f}; age {age_cpu:.2f} + curl {curl_cpu:.2f} "
                f"+ sink {sink_cpu:.2f} = {age_cpu + curl_cpu + sink_cpu:.2f}"
            )
            if r.sessions and r.first_bytes:
                print(
                    f"  evault add before its upload session exists (start-up, unlock, login): "
                    f"{statistics.median(r.sessions) * 1000:.0f} ms; "
                    f"before the server has its first bytes: "
                    f"{statistics.median(r.first_bytes) * 1000:.0f} ms (medians)"
                )
        print(f"evault --version (Python start-up and imports): {startup * 1000:.0f} ms (median)")
        per_mb = crypto_seconds_per_mb()
        for r in results:
            # evault add must also send the bytes and the server receive and write them:
            # at least what curl and the sink spend on the same bytes.
            crypto = per_mb * r.megabytes
            transfer = statistics.median(c.cpu for c in r.curls) + statistics.median(r.sink_cpu)
            floor = (crypto + transfer) / (os.cpu_count() or 1)
            baseline_s = statistics.median(r.baseline_seconds())
            print(
                f"{label(r.size_mib)}: cryptography {crypto:.2f} CPU s (3 SHA-256 passes, "
                f"1 ChaCha20-Poly1305) + transfer {transfer:.2f} CPU s (curl + sink) "
                f"= at least {floor:.2f} s on {os.cpu_count()} cores, perfectly shared: "
                f"the ratio cannot pass {baseline_s / floor:.2f} against this run's baseline "
                f"({baseline_s:.2f} s)"
            )
        ratio_ok = all(r >= RATIO_TARGET for r in ratios)
        flat = max(peaks) - peaks[0] <= FLAT_SLACK_MIB
        small = max(peaks) <= RSS_TARGET_MIB
        print(
            f"\ntargets: ratio >= {RATIO_TARGET}: {'yes' if ratio_ok else 'NO'}; "
            f"evault add peak RSS flat in file size (within {FLAT_SLACK_MIB:.0f} MiB): "
            f"{'yes' if flat else 'NO'}; "
            f"peak RSS <= {RSS_TARGET_MIB:.0f} MiB: {'yes' if small else 'NO'}"
        )
    finally:
        for proc in started:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    main()
