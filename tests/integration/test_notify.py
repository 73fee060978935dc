"""Email and webhooks against real servers on loopback: aiosmtpd and an HTTP receiver.

The SMTP tests run aiosmtpd plain, with STARTTLS and with TLS from the first
byte, using a certificate made for the test; the webhook tests run an
``http.server`` receiver that checks every signature with
:func:`server.notify.verify_webhook`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import ipaddress
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from server.config import Config
from server.models.switch import OutboxMessage
from server.notify import (
    ATTACHMENT,
    KEYED_BODY,
    PAD_TO,
    SUBJECT,
    DeliveryError,
    NoticeSender,
    WebhookSignatureError,
    WebhookTarget,
    post_webhook,
    send_email,
    sign_webhook,
    verify_webhook,
)
from vault import age

pytestmark = [pytest.mark.integration, pytest.mark.enable_socket]

USER = "evault"
PASSWORD = "correct horse battery staple"  # noqa: S105 — the test server's
SECRET = "whsec-test-4f1c2a"  # noqa: S105 — the test receiver's
DELIVERY = "0123456789abcdef0123456789abcdef"


# Certificates


@dataclasses.dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1 and localhost."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "evault test mail server")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory = tmp_path_factory.mktemp("tls")
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert=cert_path, key=key_path)


# SMTP


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[Callable[..., tuple[Mailbox, int]]]:
    """Starts aiosmtpd servers on free loopback ports; stops them after the test."""
    controllers: list[Controller] = []

    def start(**kwargs: Any) -> tuple[Mailbox, int]:
        mailbox = Mailbox()
        port = _free_port()
        controller = Controller(mailbox, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return mailbox, port

    yield start
    for controller in controllers:
        controller.stop()


def _config(tmp_path: Path, **changes: Any) -> Config:
    base = Config.for_data_dir(tmp_path / "data")
    return dataclasses.replace(
        base, smtp_host="127.0.0.1", mail_from="vault@example.org", **changes
    )


def _password_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "smtp-password"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def _send(config: Config, body: str = "Bitte melde dich: Frist läuft ab.") -> None:
    send_email(
        config,
        delivery_id=DELIVERY,
        to="ana@example.org",
        subject="Erinnerung: check in",
        body=body,
    )


def test_plain_smtp_delivers_with_headers(
    smtp_server: Callable[..., tuple[Mailbox, int]], tmp_path: Path
) -> None:
    mailbox, port = smtp_server()
    _send(_config(tmp_path, smtp_port=port, smtp_security="none"))
    assert len(mailbox.messages) == 1
    message = mailbox.messages[0]
    assert message["From"] == "vault@example.org"
    assert message["To"] == "ana@example.org"
    assert message["Subject"] == "Erinnerung: check in"
    assert message["Message-ID"] == f"<{DELIVERY}@example.org>"
    assert message["X-Evault-Delivery"] == DELIVERY
    assert message["Date"] is not None
    assert message.get_content_type() == "text/plain"
    assert message.get_content_charset() == "utf-8"
    assert message.get_content().rstrip("\r\n") == "Bitte melde dich: Frist läuft ab."
    assert mailbox.envelopes == [("vault@example.org", ["ana@example.org"])]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_starttls_with_login(
    smtp_server: Callable[..., tuple[Mailbox, int]],
    certificate: Certificate,
    tmp_path: Path,
    mechanism: str,
) -> None:
    other = "LOGIN" if mechanism == "PLAIN" else "PLAIN"
    mailbox, port = smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
        auth_exclude_mechanism=[other],
    )
    config = _config(
        tmp_path,
        smtp_port=port,
        smtp_security="starttls",
        smtp_user=USER,
        smtp_password_file=_password_file(tmp_path, PASSWORD + "\n"),
        smtp_ca_file=certificate.cert,
    )
    _send(config)
    assert [m["X-Evault-Delivery"] for m in mailbox.messages] == [DELIVERY]


def test_wrong_password_is_refused_without_revealing_it(
    smtp_server: Callable[..., tuple[Mailbox, int]],
    certificate: Certificate,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox, port = smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
    )
    wrong = "not-the-password-9f8e"
    config = _config(
        tmp_path,
        smtp_port=port,
        smtp_user=USER,
        smtp_password_file=_password_file(tmp_path, wrong + "\n"),
        smtp_ca_file=certificate.cert,
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as caught:
        _send(config)
    assert "refused the login" in str(caught.value)
    assert wrong not in str(caught.value)
    assert wrong not in caplog.text
    assert caught.value.__cause__ is None
    assert mailbox.messages == []


def test_readable_password_file_is_warned_about(
    smtp_server: Callable[..., tuple[Mailbox, int]],
    certificate: Certificate,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailbox, port = smtp_server(
        tls_context=certificate.server_context(),
        require_starttls=True,
        auth_required=True,
        auth_require_tls=True,
        authenticator=_authenticator,
    )
    config = _config(
        tmp_path,
        smtp_port=port,
        smtp_user=USER,
        smtp_password_file=_password_file(tmp_path, PASSWORD, mode=0o644),
        smtp_ca_file=certificate.cert,
    )
    with caplog.at_level(logging.DEBUG):
        _send(config)
    assert len(mailbox.messages) == 1
    assert "readable by others" in caplog.text
    assert PASSWORD not in caplog.text


def test_starttls_required_but_not_offered(
    smtp_server: Callable[..., tuple[Mailbox, int]], tmp_path: Path
) -> None:
    mailbox, port = smtp_server()
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        _send(_config(tmp_path, smtp_port=port, smtp_security="starttls"))
    assert mailbox.messages == []


def test_untrusted_certificate_is_refused(
    smtp_server: Callable[..., tuple[Mailbox, int]], certificate: Certificate, tmp_path: Path
) -> None:
    mailbox, port = smtp_server(tls_context=certificate.server_context(), require_starttls=True)
    with pytest.raises(DeliveryError, match="TLS with the mail server failed"):
        _send(_config(tmp_path, smtp_port=port, smtp_security="starttls"))
    assert mailbox.messages == []


def test_implicit_tls(
    smtp_server: Callable[..., tuple[Mailbox, int]], certificate: Certificate, tmp_path: Path
) -> None:
    mailbox, port = smtp_server(ssl_context=certificate.server_context())
    _send(_config(tmp_path, smtp_port=port, smtp_security="tls", smtp_ca_file=certificate.cert))
    assert len(mailbox.messages) == 1


def test_no_mail_server_configured(tmp_path: Path) -> None:
    config = dataclasses.replace(_config(tmp_path), smtp_host=None)
    with pytest.raises(DeliveryError, match=r"no mail server configured \(EVAULT_SMTP_HOST\)"):
        _send(config)


def test_unreachable_mail_server(tmp_path: Path) -> None:
    config = _config(tmp_path, smtp_port=_free_port(), smtp_security="none")
    with pytest.raises(DeliveryError, match="cannot reach the mail server"):
        _send(config)


@pytest.mark.parametrize(
    "to", ["ana@example.org\r\nBcc: eve@example.org", "ana@example.org, eve@example.org", "ana"]
)
def test_malformed_recipient_is_refused(tmp_path: Path, to: str) -> None:
    with pytest.raises(DeliveryError, match="malformed email address"):
        send_email(_config(tmp_path), delivery_id=DELIVERY, to=to, subject="s", body="b")


def test_header_injection_in_subject_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="malformed email header"):
        send_email(
            _config(tmp_path),
            delivery_id=DELIVERY,
            to="ana@example.org",
            subject="hi\r\nBcc: eve@example.org",
            body="b",
        )


# Webhooks


@dataclasses.dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool


class Receiver:
    """A loopback HTTP server answering by path, checking every signature it gets."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    verify_webhook(
                        SECRET.encode(),
                        self.headers.get("Evault-Signature", ""),
                        body,
                        now=int(time.time()),
                    )
                    verified = True
                except WebhookSignatureError:
                    verified = False
                receiver.received.append(
                    Received(self.path, dict(self.headers.items()), body, verified)
                )
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", "/ok")
                elif self.path == "/fail":
                    self.send_response(500)
                else:
                    self.send_response(204 if verified else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    receiver.thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        receiver.thread.join(timeout=10)


def _target(url: str, secret: str = SECRET) -> str:
    return WebhookTarget(url=url, secret=secret).dumps()


def _body(event: str = "switch.overdue") -> bytes:
    return json.dumps(
        {
            "delivery": DELIVERY,
            "event": event,
            "text": "Ana has not checked in.",
            "time": int(time.time()),
            "vault": "v" * 32,
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()


def _post(config: Config, url: str, body: bytes | None = None) -> None:
    post_webhook(
        config,
        delivery_id=DELIVERY,
        target=_target(url),
        body=body if body is not None else _body(),
        now=int(time.time()),
    )


def test_webhook_is_delivered_signed(receiver: Receiver, tmp_path: Path) -> None:
    config = _config(tmp_path, webhook_allow_private=True)
    body = _body()
    _post(config, receiver.url("/ok"), body)
    [got] = receiver.received
    assert got.verified
    assert got.body == body
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Evault-Delivery"] == DELIVERY
    assert got.headers["Evault-Signature"].startswith("t=")


def test_webhook_error_answer_is_a_delivery_error(receiver: Receiver, tmp_path: Path) -> None:
    config = _config(tmp_path, webhook_allow_private=True)
    with pytest.raises(DeliveryError) as caught:
        _post(config, receiver.url("/fail"))
    assert str(caught.value) == "webhook receiver answered HTTP 500"
    assert SECRET not in str(caught.value)


def test_webhook_redirect_is_not_followed(receiver: Receiver, tmp_path: Path) -> None:
    config = _config(tmp_path, webhook_allow_private=True)
    with pytest.raises(DeliveryError, match="HTTP 302"):
        _post(config, receiver.url("/redirect"))
    assert [r.path for r in receiver.received] == ["/redirect"]


def test_webhook_to_private_address_is_refused(receiver: Receiver, tmp_path: Path) -> None:
    config = _config(tmp_path, webhook_allow_private=False)
    for url in [
        receiver.url("/ok", "https"),
        f"https://localhost:{receiver.port}/ok",
        f"https://[::ffff:127.0.0.1]:{receiver.port}/ok",
        "https://[::1]/ok",
        "https://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/hook",
        "https://0.0.0.0/hook",
        # 6to4 and Teredo addresses wrapping loopback and private IPv4 addresses.
        "https://[2002:7f00:1::1]/hook",
        "https://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/hook",
    ]:
        with pytest.raises(DeliveryError, match="private or reserved address"):
            _post(config, url)
    assert receiver.received == []


def test_webhook_name_resolving_to_private_address_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        address = "93.184.215.14" if host == "public.example" else "192.168.1.10"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    config = _config(tmp_path)
    with pytest.raises(DeliveryError, match="private or reserved address"):
        _post(config, "https://hooks.example/evault")


def test_webhook_url_must_be_https(receiver: Receiver, tmp_path: Path) -> None:
    config = _config(tmp_path)
    for url in ["http://hooks.example.org/x", "ftp://hooks.example.org/x", "https:///x"]:
        with pytest.raises(DeliveryError, match=r"https|host"):
            _post(config, url)
    with pytest.raises(DeliveryError, match="credentials"):
        _post(config, "https://user:pw@hooks.example.org/x")
    assert receiver.received == []


def test_webhook_tls_certificate_is_verified(certificate: Certificate, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    server.socket = certificate.server_context().wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        config = _config(tmp_path, webhook_allow_private=True)
        with pytest.raises(DeliveryError, match="TLS with the webhook receiver failed"):
            _post(config, f"https://127.0.0.1:{server.server_address[1]}/ok")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_malformed_webhook_target(tmp_path: Path) -> None:
    config = _config(tmp_path, webhook_allow_private=True)
    for target in [
        '{"url": "https://a.example", "secret": "s"}',
        '{"secret":"","url":"https://a.example"}',
        '{"url":"https://a.example"}',
        "not json",
    ]:
        with pytest.raises(DeliveryError, match="malformed webhook target"):
            post_webhook(config, delivery_id=DELIVERY, target=target, body=b"{}", now=0)


def test_webhook_target_repr_hides_the_secret() -> None:
    assert SECRET not in repr(WebhookTarget(url="https://a.example", secret=SECRET))


def test_signature_verification() -> None:
    secret = SECRET.encode()
    body = _body()
    now = 1_900_000_000
    header = sign_webhook(secret, now, body)
    verify_webhook(secret, header, body, now=now)
    verify_webhook(secret, header, body, now=now + 300)
    verify_webhook(secret, header, body, now=now - 300)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_webhook(secret, header, body, now=now + 301)
    with pytest.raises(WebhookSignatureError, match="tolerance"):
        verify_webhook(secret, header, body, now=now - 301)
    with pytest.raises(WebhookSignatureError, match="does not verify"):
        verify_webhook(secret, header, body.replace(b"Ana", b"Eve"), now=now)
    with pytest.raises(WebhookSignatureError, match="does not verify"):
        verify_webhook(b"another secret", header, body, now=now)
    with pytest.raises(WebhookSignatureError, match="does not verify"):
        verify_webhook(secret, header.replace(f"t={now}", f"t={now + 1}"), body, now=now)
    for bad in ["", "v1=00", f"t={now}", f"t=+{now},v1={'0' * 64}", header.upper(), header + ","]:
        with pytest.raises(WebhookSignatureError, match="malformed"):
            verify_webhook(secret, bad, body, now=now)


def test_signature_matches_the_documented_computation() -> None:
    import hashlib
    import hmac

    body = b'{"event":"switch.overdue"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign_webhook(b"s3cret", 1_700_000_000, body) == f"t=1700000000,v1={expected}"


def test_stale_delivery_is_refused_by_the_receiver(receiver: Receiver, tmp_path: Path) -> None:
    config = _config(tmp_path, webhook_allow_private=True)
    with pytest.raises(DeliveryError, match="HTTP 401"):
        post_webhook(
            config,
            delivery_id=DELIVERY,
            target=_target(receiver.url("/ok")),
            body=_body(),
            now=int(time.time()) - 3600,
        )
    assert [r.verified for r in receiver.received] == [False]


# The sender


def _message(channel: str, target: str, body: str, recipient: str | None = None) -> OutboxMessage:
    now = dt.datetime.now(dt.UTC)
    return OutboxMessage(
        id=DELIVERY,
        vault_id="v" * 32,
        event="switch.overdue",
        channel=channel,
        target=target,
        subject="Ana is overdue",
        body=body,
        created_at=now,
        next_attempt_at=now,
        attempts=1,
        recipient=recipient,
    )


def _opened(armored: bytes, identity: age.Identity) -> str:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(armored), out, [identity])
    return out.getvalue().decode("utf-8")


def test_notice_sender_dispatches_by_channel(
    smtp_server: Callable[..., tuple[Mailbox, int]], receiver: Receiver, tmp_path: Path
) -> None:
    mailbox, port = smtp_server()
    config = _config(tmp_path, smtp_port=port, smtp_security="none", webhook_allow_private=True)
    sender = NoticeSender(config)
    key = age.X25519Identity.generate()
    recipient = str(key.recipient())
    now = int(time.time())
    sender.send(_message("email", "trustee@example.org", "Ana is overdue.", recipient), now=now)
    details = _body().decode()
    sender.send(_message("webhook", _target(receiver.url("/ok")), details, recipient), now=now)
    [mail] = mailbox.messages
    assert mail["To"] == "trustee@example.org"
    assert mail["Subject"] == SUBJECT
    text, attached = list(mail.iter_parts())
    assert text.get_content().replace("\r\n", "\n") == KEYED_BODY
    assert attached.get_filename() == ATTACHMENT
    opened = _opened(attached.get_content(), key)
    assert opened.rstrip(" ") == "Ana is overdue\n\nAna is overdue.\n"
    assert len(opened) % PAD_TO == 0
    [got] = receiver.received
    assert got.verified
    document = json.loads(got.body)
    assert set(document) == {"age", "delivery", "time"}
    assert json.loads(_opened(document["age"].encode(), key)) == json.loads(details)
    with pytest.raises(DeliveryError, match="unknown channel"):
        sender.send(_message("sms", "+1555", "x"), now=now)
    # Without a key the details go behind a link, which needs the database.
    with pytest.raises(DeliveryError, match="no database"):
        sender.send(_message("email", "trustee@example.org", "Ana is overdue."), now=now)
