"""Notices on the wire: email over SMTP and HMAC-signed webhooks.

DESIGN.md, "Reminders and alerts". The outbox (:mod:`server.services.outbox`)
hands each message to a :class:`NoticeSender`, which sends it by its channel
and raises :class:`DeliveryError` when it could not. Delivery is
at-least-once: receivers drop a repeat by its delivery id, the email's
``Message-ID`` / ``X-Evault-Delivery`` header or the webhook's
``Evault-Delivery`` header.

Email: ``EVAULT_SMTP_SECURITY=tls`` speaks TLS from the first byte,
``starttls`` (the default) requires the server to offer STARTTLS and refuses
to send otherwise, so a stripped offer cannot downgrade the connection;
``none`` is plain SMTP, only for a relay on the same machine. Certificates
are always verified, against ``EVAULT_SMTP_CA_FILE`` or the system store.

Webhooks: ``POST`` of the JSON body, signed as
``Evault-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>``
(``docs/webhooks.md``). The URL must be https and its host must resolve to
public addresses only, so a reporter's contact list cannot point the server
at its own network. Known limit: the host is resolved for the check and
again by the HTTP client when it connects, so a name whose DNS answer
changes in between (DNS rebinding) can still reach a private address;
operators who care should also filter the server's egress.

What goes on the wire gives nothing away (SECURITY.md, "Notices"). Every
notice, whatever it announces, has the same subject (:data:`SUBJECT`) and
one of two fixed bodies: when its contact carries an age recipient, the
details travel as an ASCII-armored age file encrypted to it (``notice.age``
attached to the e-mail, ``"age"`` in the webhook's JSON); otherwise the
body holds only a private link (:mod:`server.services.notice_links`) to a
page that shows them. The details are padded to a multiple of
:data:`PAD_TO` bytes before encryption, so a reminder, a duress alert and a
release notice are the same size on the wire.

No error message carries a password, a webhook secret or a message body, so
:class:`DeliveryError` text can be stored and logged.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email.utils
import hashlib
import hmac
import io
import ipaddress
import logging
import re
import smtplib
import socket
import ssl
import stat
import urllib.parse
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from server.config import Config
from server.models.switch import OutboxMessage
from server.services import notice_links
from vault import age, canonical
from vault.errors import FormatError, KeyFormatError, ServerError, SignatureError

__all__ = [
    "ATTACHMENT",
    "KEYED_BODY",
    "LINK_BODY",
    "PAD_TO",
    "SMTP_TIMEOUT",
    "SUBJECT",
    "WEBHOOK_TIMEOUT",
    "WEBHOOK_TOLERANCE",
    "DeliveryError",
    "NoticeSender",
    "WebhookSignatureError",
    "WebhookTarget",
    "details_of",
    "notice_link",
    "padded",
    "post_webhook",
    "seal_details",
    "send_email",
    "sign_webhook",
    "verify_webhook",
]

SMTP_TIMEOUT = 30
"""Seconds any one SMTP operation may take."""
WEBHOOK_TIMEOUT = 10
"""Seconds to connect to a webhook receiver, and again to wait for its answer."""
WEBHOOK_TOLERANCE = 300
"""Seconds a webhook signature's time may differ from the receiver's clock."""

SUBJECT = "A new notice"
"""The subject of every notice e-mail, whatever it announces."""
KEYED_BODY = (
    "You have a new notice.\n"
    "\n"
    "It is in the attached file notice.age, encrypted to your key. Open it with\n"
    "\n"
    "    evault notice open notice.age\n"
    "\n"
    "or with the age tool and your identity file:\n"
    "\n"
    "    age -d -i your-identity.txt notice.age\n"
)
"""The body of every notice e-mail whose contact has an age recipient."""
LINK_BODY = (
    "You have a new notice.\n"
    "\n"
    "Read it at this private link, which works for {days} days. Do not forward it:\n"
    "\n"
    "{link}\n"
)
"""The body of every other notice e-mail; ``{link}`` is the private link."""
ATTACHMENT = "notice.age"
"""The file name of the attached details."""
PAD_TO = 4096
"""The details are padded to a multiple of this many bytes before encryption."""

log = logging.getLogger(__name__)

_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")
_SIGNATURE = re.compile(r"t=(0|[1-9][0-9]{0,15}),v1=([0-9a-f]{64})")
_USER_AGENT = "notices"
"""Says no more than any other notice sender would: not the product, not its version."""
_warned_files: set[Path] = set()


class DeliveryError(ServerError):
    """A notice that could not be delivered; the message is safe to store and log."""


class WebhookSignatureError(SignatureError):
    """An ``Evault-Signature`` header that is malformed, out of time or does not verify."""


# Email


def _password(config: Config) -> str:
    path = config.smtp_password_file
    if path is None:
        raise DeliveryError("EVAULT_SMTP_USER is set without EVAULT_SMTP_PASSWORD_FILE")
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise DeliveryError(
            f"cannot read the SMTP password file (EVAULT_SMTP_PASSWORD_FILE): "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO) and path not in _warned_files:
        # A warning, not a refusal: container secrets are often mounted 0444.
        _warned_files.add(path)
        log.warning("the SMTP password file %s is readable by others; chmod 600 it", path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryError("the SMTP password file is not UTF-8") from None
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def _ehlo_name(config: Config) -> str:
    # Given explicitly: smtplib would otherwise look up the machine's FQDN,
    # which can stall on a host without working reverse DNS.
    host = urllib.parse.urlsplit(config.base_url).hostname or "localhost"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    return f"[IPv6:{address}]" if address.version == 6 else f"[{address}]"


def _domain(sender: str) -> str:
    """The domain of the sender address, which Message-IDs use, as is usual."""
    _, address = email.utils.parseaddr(sender)
    domain = address.rpartition("@")[2]
    return domain if re.fullmatch(r"[A-Za-z0-9.-]{1,253}", domain) else "localhost"


def _message(
    config: Config,
    *,
    delivery_id: str,
    to: str,
    subject: str,
    body: str,
    attachment: bytes | None = None,
) -> EmailMessage:
    if not _ADDRESS.fullmatch(to):
        raise DeliveryError("malformed email address")
    message = EmailMessage()
    try:
        message["From"] = config.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = email.utils.formatdate(usegmt=True)
        message["Message-ID"] = f"<{delivery_id}@{_domain(config.mail_from)}>"
        message["X-Evault-Delivery"] = delivery_id
    except ValueError:
        # The default policy refuses line breaks in a header value (header injection).
        raise DeliveryError("malformed email header") from None
    message.set_content(body, charset="utf-8")
    if attachment is not None:
        message.add_attachment(
            attachment, maintype="application", subtype="octet-stream", filename=ATTACHMENT
        )
    return message


def _smtp_error(exc: smtplib.SMTPException) -> DeliveryError:
    # Server replies are left out: they may quote what was sent.
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return DeliveryError(f"mail server refused the login ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return DeliveryError("mail server offers no login (AUTH) on this connection")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = sorted({code for code, _ in exc.recipients.values()})
        return DeliveryError(f"mail server refused the recipient ({', '.join(map(str, codes))})")
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return DeliveryError(f"mail server refused the sender ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPDataError):
        return DeliveryError(f"mail server refused the message ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPConnectError):
        return DeliveryError(f"mail server refused the connection ({exc.smtp_code})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return DeliveryError("mail server closed the connection")
    if isinstance(exc, smtplib.SMTPResponseException):
        return DeliveryError(f"mail server answered {exc.smtp_code}")
    return DeliveryError(f"mail delivery failed ({type(exc).__name__})")


def _os_error(exc: OSError, peer: str) -> DeliveryError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return DeliveryError(f"TLS with the {peer} failed: {exc.verify_message}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"TLS with the {peer} failed: {exc.reason or type(exc).__name__}")
    if isinstance(exc, TimeoutError):
        return DeliveryError(f"timed out talking to the {peer}")
    return DeliveryError(f"cannot reach the {peer}: {exc.strerror or type(exc).__name__}")


def _transmit(config: Config, host: str, message: EmailMessage, to: str) -> None:
    context = ssl.create_default_context(cafile=config.smtp_ca_file)
    name = _ehlo_name(config)
    client: smtplib.SMTP
    if config.smtp_security == "tls":
        client = smtplib.SMTP_SSL(
            host, config.smtp_port, local_hostname=name, timeout=SMTP_TIMEOUT, context=context
        )
    else:
        client = smtplib.SMTP(host, config.smtp_port, local_hostname=name, timeout=SMTP_TIMEOUT)
    with client:
        client.ehlo()
        if config.smtp_security == "starttls":
            if not client.has_extn("starttls"):
                raise DeliveryError("mail server does not offer STARTTLS; refusing to send")
            client.starttls(context=context)
            client.ehlo()
        if config.smtp_user:
            client.login(config.smtp_user, _password(config))
        client.send_message(message, to_addrs=[to])


def send_email(
    config: Config,
    *,
    delivery_id: str,
    to: str,
    subject: str,
    body: str,
    attachment: bytes | None = None,
) -> None:
    """Send one plain-text UTF-8 email through the configured SMTP server.

    With ``attachment`` (an armored age file) it is attached as
    :data:`ATTACHMENT`.

    The message carries ``Message-ID: <delivery_id@sender's domain>`` and
    ``X-Evault-Delivery: delivery_id`` so a recipient can spot a repeat.
    With ``EVAULT_SMTP_USER`` set it logs in with the password read from
    ``EVAULT_SMTP_PASSWORD_FILE`` (one trailing newline removed).

    Raises:
        DeliveryError: no mail server is configured, ``to`` or a header is
            malformed, the server is unreachable, does not offer STARTTLS
            when required, presents a certificate that does not verify, or
            refuses the login, the sender, the recipient or the message.
    """
    if config.smtp_host is None:
        raise DeliveryError("no mail server configured (EVAULT_SMTP_HOST)")
    message = _message(
        config, delivery_id=delivery_id, to=to, subject=subject, body=body, attachment=attachment
    )
    try:
        _transmit(config, config.smtp_host, message, to)
    except smtplib.SMTPException as exc:
        raise _smtp_error(exc) from None
    except OSError as exc:
        raise _os_error(exc, "mail server") from None


# Webhooks


@dataclasses.dataclass(frozen=True, kw_only=True)
class WebhookTarget:
    """Where a webhook goes and the secret it is signed with.

    Stored in an outbox row's ``target`` as canonical JSON
    ``{"secret": "...", "url": "..."}``; the HMAC key is the secret's UTF-8
    bytes, exactly as the receiver was given it.
    """

    url: str
    secret: str = dataclasses.field(repr=False)

    @classmethod
    def parse(cls, target: str) -> WebhookTarget:
        """Read a target from its canonical JSON.

        Raises:
            DeliveryError: not canonical JSON with exactly a non-empty
                ``secret`` and ``url``.
        """
        try:
            value: Any = canonical.loads(target.encode("utf-8"))
        except (FormatError, UnicodeEncodeError):
            value = None
        if (
            not isinstance(value, dict)
            or set(value) != {"secret", "url"}
            or not isinstance(value["secret"], str)
            or not isinstance(value["url"], str)
            or not value["secret"]
        ):
            # Fixed text: the parser's message could quote the secret.
            raise DeliveryError("malformed webhook target")
        return cls(url=value["url"], secret=value["secret"])

    def dumps(self) -> str:
        """The canonical JSON stored in the outbox."""
        return canonical.dumps({"secret": self.secret, "url": self.url}).decode("utf-8")


def sign_webhook(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``Evault-Signature`` value: ``t=<timestamp>,v1=<hex HMAC-SHA256>``.

    The MAC covers ``f"{timestamp}."`` followed by the exact body bytes.
    """
    mac = hmac.new(secret, f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_webhook(
    secret: bytes, header: str, body: bytes, *, now: int, tolerance: int = WEBHOOK_TOLERANCE
) -> None:
    """Check an ``Evault-Signature`` header against the body a receiver got.

    Args:
        secret: the webhook secret's UTF-8 bytes.
        header: the ``Evault-Signature`` value.
        body: the request body, exactly as received.
        now: the receiver's time, Unix seconds.
        tolerance: how many seconds the signed time may differ from ``now``.

    Raises:
        WebhookSignatureError: the header is malformed, its time is more than
            ``tolerance`` seconds away from ``now``, or the MAC does not verify.
    """
    match = _SIGNATURE.fullmatch(header)
    if match is None:
        raise WebhookSignatureError("malformed webhook signature header")
    timestamp = int(match.group(1))
    if abs(now - timestamp) > tolerance:
        raise WebhookSignatureError("webhook signature time is outside the tolerance")
    expected = sign_webhook(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode("ascii"), header.encode("ascii")):
        raise WebhookSignatureError("webhook signature does not verify")


def _forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address (mapped, 6to4, Teredo) are judged by it.
        inner = address.ipv4_mapped or address.sixtofour
        if inner is None and address.teredo is not None:
            inner = address.teredo[1]
        if inner is not None and _forbidden(inner):
            return True
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


def _check_destination(url: str, *, allow_private: bool) -> None:
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise DeliveryError("malformed webhook URL") from None
    schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in schemes:
        raise DeliveryError("webhook URL must be https")
    host = parts.hostname
    if not host or "@" in parts.netloc:
        raise DeliveryError("webhook URL must name a host and no credentials")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise DeliveryError("cannot resolve the webhook host") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]))
        if _forbidden(address):
            raise DeliveryError(
                "webhook host resolves to a private or reserved address "
                "(EVAULT_WEBHOOK_ALLOW_PRIVATE)"
            )


def post_webhook(config: Config, *, delivery_id: str, target: str, body: bytes, now: int) -> None:
    """POST ``body`` (JSON) to a webhook, signed at time ``now`` (Unix seconds).

    Redirects are not followed and no proxy settings are read from the
    environment. Any 2xx answer counts as delivered.

    Raises:
        DeliveryError: the target is malformed; the URL is not https, or its
            host resolves to a loopback, private, link-local, multicast or
            reserved address (both allowed with ``EVAULT_WEBHOOK_ALLOW_PRIVATE``);
            the request failed; or the answer was not 2xx (the status only).
    """
    hook = WebhookTarget.parse(target)
    _check_destination(hook.url, allow_private=config.webhook_allow_private)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": _USER_AGENT,
        "Evault-Delivery": delivery_id,
        "Evault-Signature": sign_webhook(hook.secret.encode("utf-8"), now, body),
    }
    # Imported here: only the process that sends notices needs it, and the
    # web workers stay smaller without it.
    import requests

    with requests.Session() as session:
        session.trust_env = False
        try:
            # stream=True: the answer's body is never read, however large.
            with session.post(
                hook.url,
                data=body,
                headers=headers,
                timeout=WEBHOOK_TIMEOUT,
                allow_redirects=False,
                stream=True,
            ) as response:
                status = response.status_code
        except requests.exceptions.SSLError:
            raise DeliveryError("TLS with the webhook receiver failed") from None
        except requests.Timeout:
            raise DeliveryError("timed out talking to the webhook receiver") from None
        except requests.ConnectionError:
            raise DeliveryError("cannot connect to the webhook receiver") from None
        except requests.RequestException as exc:
            # The exception's text can quote the URL, which may itself be a secret.
            raise DeliveryError(f"webhook request failed ({type(exc).__name__})") from None
    if not 200 <= status < 300:
        raise DeliveryError(f"webhook receiver answered HTTP {status}")


# What a notice says


def details_of(message: OutboxMessage) -> bytes:
    """The details a notice carries, before padding.

    An e-mail's are its title and text; a webhook's, its JSON document
    (``docs/webhooks.md``).
    """
    if message.channel == "webhook":
        return message.body.encode("utf-8")
    return f"{message.subject}\n\n{message.body}\n".encode()


def padded(details: bytes) -> bytes:
    """``details`` with spaces appended up to a multiple of :data:`PAD_TO` bytes.

    Trailing spaces change neither a text nor a JSON document.
    """
    return details + b" " * (-len(details) % PAD_TO)


def seal_details(details: bytes, recipient: str) -> bytes:
    """The padded ``details`` encrypted to ``recipient``, as an ASCII-armored age file.

    Raises:
        DeliveryError: ``recipient`` is not an age recipient.
    """
    try:
        parsed = age.parse_recipient(recipient)
    except KeyFormatError:
        raise DeliveryError("malformed age recipient for the notice") from None
    out = io.BytesIO()
    age.encrypt(io.BytesIO(padded(details)), out, [parsed], armor=True)
    return out.getvalue()


def notice_link(config: Config, token: str) -> str:
    """The page that shows a notice's details to whoever holds ``token``."""
    return f"{config.base_url}/notice/{token}"


class NoticeSender:
    """Sends outbox messages by their channel with the server's settings.

    ``sessions`` is the database a notice without an age recipient records
    its link in.
    """

    def __init__(self, config: Config, sessions: sessionmaker[Session] | None = None) -> None:
        self._config = config
        self._sessions = sessions

    def _link(self, message: OutboxMessage, now: int) -> str:
        if self._sessions is None:
            raise DeliveryError("no database to record the notice's link in")
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        return notice_link(self._config, notice_links.mint(self._sessions, message.id, when))

    def send(self, message: OutboxMessage, *, now: int) -> None:
        """Send ``message``; ``now`` (Unix seconds) is the time a webhook is signed at.

        Raises:
            DeliveryError: the message could not be delivered.
        """
        if message.channel not in ("email", "webhook"):
            raise DeliveryError(f"unknown channel {message.channel!r}")
        sealed = link = None
        if message.recipient is not None:
            sealed = seal_details(details_of(message), message.recipient)
        else:
            link = self._link(message, now)
        if message.channel == "email":
            days = notice_links.LINK_LIFETIME.days
            send_email(
                self._config,
                delivery_id=message.id,
                to=message.target,
                subject=SUBJECT,
                body=KEYED_BODY if link is None else LINK_BODY.format(days=days, link=link),
                attachment=sealed,
            )
            return
        document: dict[str, Any] = {"delivery": message.id, "time": now}
        if sealed is not None:
            document["age"] = sealed.decode("ascii")
        else:
            document["link"] = link
        post_webhook(
            self._config,
            delivery_id=message.id,
            target=message.target,
            body=canonical.dumps(document),
            now=now,
        )
