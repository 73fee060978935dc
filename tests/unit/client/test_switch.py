"""The switch on the reporter's side: shares, release recipients in headers, check-ins, status."""

from __future__ import annotations

import base64
import io
import os
from types import SimpleNamespace
from typing import Any

import pytest

from client import recipients
from client import switch as service
from client.changes import parse_change
from client.logcheck import LogCheck
from client.switch import Custodian, seal_shares
from client.trustee import normalise_words
from vault import age, canonical
from vault.age.format import Source, parse_header
from vault.errors import ConfigError, EncryptError, ProofError
from vault.keys import PersonalIdentity, verify_signature
from vault.protocol import CHECKIN_CONTEXT, CheckinStatement
from vault.shares import combine_shares, describe_share, share_commitment

from .test_logcheck import LOG, ORIGIN, FakeLog

VAULT = "c" * 32


def _holders() -> tuple[list[Custodian], list[Any]]:
    server = age.X25519Identity.generate()
    trustees = [PersonalIdentity.generate(f"T{i}") for i in range(3)]
    holders = [Custodian(custodian="server", name="the server", recipient=server.recipient())]
    holders += [
        Custodian(custodian=f"{i:032x}", name=f"t{i}", recipient=t.card().age_recipient())
        for i, t in enumerate(trustees)
    ]
    return holders, [server, *(t.age_identity for t in trustees)]


def _open(sealed: dict[str, str], identity: Any) -> str:
    out = io.BytesIO()
    age.decrypt(io.BytesIO(base64.b64decode(sealed["age"])), out, [identity])
    return out.getvalue().decode("ascii")


@pytest.mark.parametrize("threshold", [1, 2, 4])
def test_shares_are_sealed_to_each_custodian_and_combine_to_the_release_key(
    threshold: int,
) -> None:
    holders, identities = _holders()
    secret = os.urandom(32)
    sealed = seal_shares(secret, threshold, holders)
    assert [s["custodian"] for s in sealed] == [h.custodian for h in holders]
    words = [_open(s, identity) for s, identity in zip(sealed, identities, strict=True)]
    for mnemonic in words:
        assert len(mnemonic.split()) == 33
        assert describe_share(mnemonic).threshold == threshold
    # Each custodian opens only its own share.
    with pytest.raises(age.NoIdentityMatchError):
        _open(sealed[0], identities[1])
    assert combine_shares(words[-threshold:]) == secret
    assert str(age.X25519Identity(combine_shares(words[:threshold])).recipient()) == str(
        age.X25519Identity(secret).recipient()
    )
    if threshold > 1:
        with pytest.raises(Exception, match="share"):
            combine_shares(words[: threshold - 1])


def test_each_sealed_share_goes_with_its_commitment() -> None:
    holders, identities = _holders()
    sealed = seal_shares(os.urandom(32), 2, holders)
    assert all(set(s) == {"custodian", "age", "commitment"} for s in sealed)
    words = [_open(s, identity) for s, identity in zip(sealed, identities, strict=True)]
    commitments = [base64.b64decode(s["commitment"]) for s in sealed]
    assert commitments == [share_commitment(w) for w in words]
    assert len(set(commitments)) == len(holders)


def test_a_threshold_beyond_the_custodians_is_refused() -> None:
    holders, _ = _holders()
    for threshold in (0, len(holders) + 1):
        with pytest.raises(ConfigError, match="threshold"):
            seal_shares(os.urandom(32), threshold, holders)


def test_release_headers_mix_the_release_recipient_with_post_quantum_ones() -> None:
    reporter = PersonalIdentity.generate("R")
    editor = PersonalIdentity.generate("E")
    release = age.X25519Identity.generate()
    # vault.age alone refuses the mix ...
    with pytest.raises(EncryptError):
        age.new_header([reporter.card().age_recipient(), release.recipient()])
    # ... this module makes it, for the release recipient only.
    header, file_key = recipients.new_header([reporter.card().age_recipient()], release.recipient())
    for identity in (reporter.age_identity, release):
        assert age.unwrap_file_key(header, [identity]) == file_key
    sealed = recipients.encrypt(b"manifest", [reporter.card().age_recipient()], release.recipient())
    for identity in (reporter.age_identity, release):
        out = io.BytesIO()
        age.decrypt(io.BytesIO(sealed), out, [identity])
        assert out.getvalue() == b"manifest"
    # An item made without it gets it added, then an editor beside it.
    plain = io.BytesIO()
    age.encrypt(io.BytesIO(b"evidence"), plain, [reporter.card().age_recipient()])
    with_release = recipients.rewrap(
        plain.getvalue(), [reporter.age_identity], [release.recipient()]
    )
    shared = recipients.rewrap(
        with_release, [reporter.age_identity], [editor.card().age_recipient()]
    )
    assert shared.endswith(plain.getvalue()[-40:])  # the payload is untouched
    for identity in (reporter.age_identity, release, editor.age_identity):
        out = io.BytesIO()
        age.decrypt(io.BytesIO(shared), out, [identity])
        assert out.getvalue() == b"evidence"
    old = parse_header(Source(io.BytesIO(plain.getvalue())))
    new = parse_header(Source(io.BytesIO(shared)))
    assert new.stanzas[: len(old.stanzas)] == old.stanzas


def test_a_passphrase_file_takes_no_release_recipient() -> None:
    sealed = io.BytesIO()
    age.encrypt(
        io.BytesIO(b"x"), sealed, [age.ScryptRecipient("a long passphrase here", work_factor=10)]
    )
    with pytest.raises(EncryptError):
        recipients.rewrap(
            sealed.getvalue(),
            age.ScryptIdentity("a long passphrase here"),
            [age.X25519Identity.generate().recipient()],
        )


class _Api:
    """What ``checkin`` sends, and the server's answer from a fake log."""

    def __init__(self, log: FakeLog, reporter: PersonalIdentity) -> None:
        self.log = log
        self.reporter = reporter
        self.sent: list[dict[str, Any]] = []

    def json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        if path != "/switch/checkin":
            return self.log.json(method, path, **kwargs)
        body = kwargs["json"]
        self.sent.append(body)
        statement = CheckinStatement.parse(body["statement"].encode())
        verify_signature(
            self.reporter.duress_twin().card().signing_key,
            CHECKIN_CONTEXT,
            statement.message(),
            base64.b64decode(body["signature"]),
        )
        self.log.append(canonical.dumps({"type": "switch.checkin", "vault": VAULT, "time": 5}))
        return {
            "status": "ok",
            "deadline": "2030-01-02T03:04:05Z",
            **self.log.answer(len(self.log.entries) - 1),
        }

    def get_bytes(self, path: str, *, limit: int) -> bytes:
        return self.log.get_bytes(path, limit=limit)


def test_a_check_in_is_a_signed_statement_for_the_pinned_origin() -> None:
    reporter = PersonalIdentity.generate("R")
    twin = reporter.duress_twin()  # under duress: the same statement, the twin's key
    log = FakeLog([canonical.dumps({"type": "test", "time": 1})])
    api = _Api(log, reporter)
    check = LogCheck(api, str(LOG.verifier()), None)  # type: ignore[arg-type]
    client = SimpleNamespace(
        api=api, log=check, vault=VAULT, identity=twin, origin=lambda: check.verifier.name
    )
    done = service.checkin(client)  # type: ignore[arg-type]
    assert done.deadline is not None
    assert done.deadline.isoformat() == "2030-01-02T03:04:05+00:00"
    assert done.entry.event["type"] == "switch.checkin"
    (sent,) = api.sent
    statement = CheckinStatement.parse(sent["statement"].encode())
    assert statement.origin == ORIGIN
    assert statement.vault == VAULT
    assert len(statement.nonce) == 16
    second = service.checkin(client)  # type: ignore[arg-type]
    assert second.entry.index == done.entry.index + 1
    assert CheckinStatement.parse(api.sent[1]["statement"].encode()).nonce != statement.nonce


def test_a_check_in_logged_for_another_vault_is_refused() -> None:
    reporter = PersonalIdentity.generate("R")
    log = FakeLog([canonical.dumps({"type": "test", "time": 1})])
    api = _Api(log, reporter)
    check = LogCheck(api, str(LOG.verifier()), None)  # type: ignore[arg-type]
    client = SimpleNamespace(
        api=api,
        log=check,
        vault="d" * 32,
        identity=reporter.duress_twin(),
        origin=lambda: check.verifier.name,
    )
    with pytest.raises(ProofError, match="something other"):
        service.checkin(client)  # type: ignore[arg-type]


def _armed(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "vault": VAULT,
        "state": "armed",
        "policy": {
            "interval": 86400,
            "grace": 3600,
            "reminders": [3600],
            "duress": "alert",
            "cooling_off": 259200,
            "remind": [],
            "alert": [{"email": "maria@example.org"}],
            "publish": [],
        },
        "threshold": 2,
        "custodians": [
            {"position": 1, "custodian": "a" * 32},
            {"position": 0, "custodian": "server"},
        ],
        "release_recipient": str(age.X25519Identity.generate().recipient()),
        "commitment": {"count": 1, "sha256": ["0" * 64]},
        "release_items": ["b" * 32],
        "armed_at": "2026-01-01T00:00:00Z",
        "last_checkin": "2026-01-01T00:00:00Z",
        "deadline": "2026-01-02T00:00:00Z",
        "release_at": "2026-01-02T01:00:00Z",
        "handle": None,
        "pending": [
            {
                "id": "e" * 32,
                "kind": "delete",
                "params": {"item": "b" * 32},
                "requested_at": "2026-01-01T00:00:00Z",
                "effective_at": "2026-01-04T00:00:00Z",
                "votes": 0,
                "votes_needed": 1,
            }
        ],
    }
    value.update(changes)
    return value


def test_status_parses() -> None:
    assert service.parse_status({"state": "disarmed"}).armed is False
    status = service.parse_status(_armed())
    assert status.armed
    assert status.custodians == ((0, "server"), (1, "a" * 32))
    assert status.policy is not None
    assert status.policy.interval == 86400
    assert status.pending[0].kind == "delete"
    assert status.pending[0].effective_at.day == 4


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "asleep"},
        {"custodians": [{"position": 0, "custodian": "mallory"}]},
        {"release_items": ["../x"]},
        {"deadline": "tomorrow"},
        {"pending": [{"id": "x", "kind": "delete"}]},
        {"policy": None},
    ],
)
def test_a_malformed_status_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ProofError):
        service.parse_status(_armed(**changes))


def test_pending_changes() -> None:
    change = parse_change(_armed()["pending"][0])
    assert (change.kind, change.votes, change.votes_needed) == ("delete", 0, 1)
    with pytest.raises(ProofError):
        parse_change({**_armed()["pending"][0], "kind": "format-disk"})


def test_releases_parse() -> None:
    releases = [{"number": 1, "published_at": "2026-11-03T09:00:00Z"}]
    status = service.parse_status(_armed(state="released", releases=releases))
    assert [number for number, _ in status.releases] == [1]
    with pytest.raises(ProofError):
        service.parse_status(_armed(releases=[{"number": -1}]))


def test_staged_items_go_in_requests_of_bounded_size() -> None:
    def item(size: int) -> tuple[Any, bytes]:
        return SimpleNamespace(header=b"h" * size), b"d" * 100

    small = [item(1000) for _ in range(120)]
    batches = service._batches(small)  # type: ignore[arg-type]
    assert [len(b) for b in batches] == [service.STAGE_BATCH] * 2 + [20]
    heavy = [item(100_000) for _ in range(9)]
    batches = service._batches(heavy)  # type: ignore[arg-type]
    assert all(sum(len(r.header) + len(d) for r, d in b) <= service.STAGE_BYTES for b in batches)
    assert sum(len(b) for b in batches) == 9
    huge = [item(service.STAGE_BYTES + 1), item(10)]
    assert [len(b) for b in service._batches(huge)] == [1, 1]  # type: ignore[arg-type]


@pytest.mark.parametrize("handle", ["ab", "A-b-c", "x" * 65, "me me", "me_1", "-ab"])
def test_handles(handle: str) -> None:
    with pytest.raises(ConfigError):
        service.check_handle(handle)
    assert service.check_handle("reporter-7") == "reporter-7"


def test_typed_share_words_are_normalised() -> None:
    assert normalise_words("  Academic\tACID\n  acne ") == "academic acid acne"
