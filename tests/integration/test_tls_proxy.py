"""``deploy/nginx.conf`` in front of a real server: TLS, redirects, big chunks, no access log.

nginx (Debian's) runs the shipped site file with only what a test machine
needs changed: loopback ports instead of 80 and 443, a certificate from a
certificate authority made for the test instead of certbot's, the
server's port instead of 8080, and files under a temporary directory. A
reporter then registers and uploads through it over https, with the
authority given to ``evault`` in ``EVAULT_CA_FILE``; without it, the
connection is refused.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .client_env import Person, ServerProcess, assert_ok, payload
from .switch_env import free_port

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
TIMEOUT = 30


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A test authority, and a certificate it signed for 127.0.0.1: (authority, chain, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("evault test authority"))
        .issuer_name(_name("evault test authority"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    authority = directory / "ca.pem"
    authority.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain = directory / "fullchain.pem"
    chain.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + authority.read_bytes())
    private = directory / "privkey.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    return authority, chain, private


def _site(directory: Path, *, http: int, https: int, upstream: int) -> str:
    """The shipped site file, moved onto loopback test ports and files."""
    chain, key = directory / "fullchain.pem", directory / "privkey.pem"
    moved = {
        "listen 80;": f"listen 127.0.0.1:{http};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/letsencrypt/live/vault.example.org/fullchain.pem": str(chain),
        "/etc/letsencrypt/live/vault.example.org/privkey.pem": str(key),
        "/var/log/nginx/evault-error.log": str(directory / "evault-error.log"),
        "/var/www/letsencrypt": str(directory / "www"),
        "proxy_pass http://127.0.0.1:8080;": f"proxy_pass http://127.0.0.1:{upstream};",
    }
    text = (DEPLOY / "nginx.conf").read_text()
    for old, new in moved.items():
        assert old in text, f"deploy/nginx.conf no longer has {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, str, Path, Path]]:
    """A server behind nginx: (server, https URL, http URL, the authority, nginx's directory)."""
    if not Path(NGINX).exists():
        pytest.fail("nginx is missing: run `make system-deps`")
    directory = tmp_path / "nginx"
    directory.mkdir()
    (directory / "www").mkdir()
    authority, _, _ = _certificates(directory)
    http, https = free_port(), free_port()
    with ServerProcess.started(tmp_path / "server") as server:
        upstream = int(server.url.rsplit(":", 1)[1])
        (directory / "evault.conf").write_text(
            _site(directory, http=http, https=https, upstream=upstream)
        )
        temp = "".join(
            f"    {kind}_temp_path {directory / kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root root;\n" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(
            f"{user}worker_processes 1;\ndaemon off;\npid {directory / 'nginx.pid'};\n"
            f"error_log {directory / 'error.log'} warn;\nevents {{}}\n"
            f"http {{\n{temp}    access_log {directory / 'access.log'};\n"
            f"    include {directory / 'evault.conf'};\n}}\n"
        )
        check = subprocess.run(
            [NGINX, "-t", "-p", str(directory), "-c", str(directory / "nginx.conf")],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen(
            [NGINX, "-p", str(directory), "-c", str(directory / "nginx.conf")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            base = f"https://127.0.0.1:{https}"
            deadline = time.monotonic() + TIMEOUT
            while True:
                try:
                    requests.get(f"{base}/healthz", verify=str(authority), timeout=5)
                    break
                except requests.ConnectionError:
                    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                    assert time.monotonic() < deadline, "nginx did not start"
                    time.sleep(0.05)
            yield server, base, f"http://127.0.0.1:{http}", authority, directory
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()


def test_a_reporter_works_through_nginx_over_tls(
    proxied: tuple[ServerProcess, str, str, Path, Path], tmp_path: Path
) -> None:
    server, base, plain, authority, directory = proxied

    # Plain http is sent to https; https answers with HSTS and no version.
    moved = requests.get(f"{plain}/healthz", allow_redirects=False, timeout=10)
    assert moved.status_code == 301
    assert moved.headers["Location"].startswith("https://")
    answer = requests.get(f"{base}/healthz", verify=str(authority), timeout=10)
    assert answer.status_code == 200, answer.text
    assert "max-age=63072000" in answer.headers["Strict-Transport-Security"]
    assert answer.headers["Server"] == "nginx"

    # Without the authority, the client refuses the connection and sends nothing.
    stranger = Person(tmp_path / "stranger", "stranger", "reporter")
    assert_ok(stranger.run("init", "--name", "Stranger", "--insecure-fast-kdf"))
    refused = stranger.run(
        "--server", base, "register", "--invite", server.invite("reporter"),
        "--log-key", server.log_key,
    )  # fmt: skip
    assert refused.returncode == 1, str(refused)
    assert "its certificate is not trusted" in refused.err
    assert "EVAULT_CA_FILE" in refused.err
    assert "Traceback" not in refused.err

    # With it, a reporter registers and uploads a file larger than one upload piece.
    rita = Person(tmp_path / "rita", "rita", "reporter")
    rita.env["EVAULT_CA_FILE"] = str(authority)
    assert_ok(rita.run("init", "--name", "Rita", "--insecure-fast-kdf"))
    registered = rita.run(
        "--server", base, "register", "--invite", server.invite("reporter"),
        "--log-key", server.log_key,
    )  # fmt: skip
    assert_ok(registered)
    evidence = tmp_path / "recording.bin"
    evidence.write_bytes(payload(40 * 1024 * 1024, seed=3))
    [added] = rita.add(evidence)
    fetched = tmp_path / "back"
    fetched.mkdir()
    assert_ok(rita.run("get", added["item"], "-o", f"{fetched}/"))
    assert (fetched / "recording.bin").read_bytes() == evidence.read_bytes()

    # The site keeps no access log: the http block's log never names a request of it.
    access = directory / "access.log"
    assert not access.exists() or access.read_text() == ""
    errors = (
        (directory / "evault-error.log").read_text()
        if (directory / "evault-error.log").exists()
        else ""
    )
    assert not re.search(r"127\.0\.0\.1", errors)
