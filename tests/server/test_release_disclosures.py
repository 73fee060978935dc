"""What a release publishes is what the reporter chose: disclosures, and never a note by default.

Items join the release set as the client adds them: the header encrypted to
the release recipient, the manifest not, the reporter's disclosure beside
it. After the release, the page, the stored report and the public log hold
a note only where the reporter chose to publish it, and no blob the server
holds (old headers and manifests included) opens with the published key to
show one. An item armed before disclosures existed keeps its name on the
page, and its note stays off it. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from server.clock import ManualClock
from server.config import Config
from server.models import LogEntry, Release
from server.worker import Worker
from tests.server._switch import POLICY, Recorder, add_item, arm, new_worker, reporter
from vault import age
from vault.disclosure import Reveal

NOTE = "from the ministry, source K"
CHOSEN = "this one may be published"
OLD = "a note from before disclosures"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(dt.datetime(2026, 11, 1, 9, 0, tzinfo=dt.UTC))


@pytest.fixture
def worker(app: Flask, config: Config, clock: ManualClock) -> Worker:
    return new_worker(app, config, clock, Recorder())


def test_the_release_publishes_only_what_the_reporter_chose(
    app: Flask, config: Config, client: FlaskClient, clock: ManualClock, worker: Worker
) -> None:
    who = reporter(app, config, client)
    release = age.X25519Identity.generate()
    key = release.recipient()
    # Put in the release set before disclosures: its manifest is the release key's.
    legacy = add_item(client, who, b"old", name="old.pdf", note=OLD, extra=[key])
    _, answer = arm(client, who, release=release)
    assert answer.status_code == 201, answer.json
    # Added to the armed vault as the client does it.
    default = Reveal(name=True, time=True, note=False)
    memo = add_item(client, who, b"memo", name="memo.pdf", note=NOTE, disclose=(key, default))
    hidden = add_item(
        client, who, b"call", name="call-with-K.wav", note=NOTE,
        disclose=(key, Reveal(name=False, time=False, note=False)),
    )  # fmt: skip
    chosen = add_item(
        client, who, b"diary", name="diary.txt", note=CHOSEN,
        disclose=(key, Reveal(name=True, time=False, note=True)),
    )  # fmt: skip
    clock.advance(dt.timedelta(seconds=POLICY["interval"] + POLICY["grace"] + 1))
    for _ in range(4):
        worker.sweep()

    page = client.get(f"/release/{who.vault}").get_data(as_text=True)
    assert "memo.pdf" in page
    assert "call-with-K.wav" not in page
    assert f"File {hidden}" in page
    assert "(name withheld by the reporter)" in page
    assert CHOSEN in page
    assert "old.pdf" in page
    assert NOTE not in page
    assert OLD not in page
    # The decrypt command for a withheld name uses the item id.
    assert f"age -d -i key.txt -o {hidden} {hidden}.age" in page

    with app.extensions["evault"].sessions() as session:
        report = session.scalars(select(Release.report)).one()
        entries = list(session.scalars(select(LogEntry.data)))
    assert NOTE.encode() not in report
    assert OLD.encode() not in report
    assert not any(NOTE.encode() in e or b"call-with-K" in e for e in entries)
    files = {f["item"]: f for f in _report_files(report)}
    assert files[memo]["note"] is None
    assert files[hidden]["name"] is None
    assert files[hidden]["captured_at"] is None
    assert files[chosen]["note"] == CHOSEN
    assert files[chosen]["captured_at"] is None
    assert files[legacy]["name"] == "old.pdf"
    assert files[legacy]["note"] is None
    assert all(f["signature"] == "valid" for f in files.values()), files

    # Whatever the server holds, only the old item's manifest opens with the
    # published key to show a note (a limit of vaults armed before disclosures).
    opened = []
    for blob in sorted(p for p in config.blob_root.rglob("*") if p.is_file()):
        out = io.BytesIO()
        try:
            age.decrypt(io.BytesIO(blob.read_bytes()), out, [release])
        except Exception:  # noqa: BLE001, S112 — not an age file, or not the release key's
            continue
        opened.append(out.getvalue())
    assert len(opened) == 4  # the three disclosures and the old manifest: whole age files
    # The released files open too (header and payload are apart in storage).
    data = client.get(f"/release/{who.vault}/items/{memo}.age").get_data()
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, [release])
    assert out.getvalue() == b"memo"
    assert not any(NOTE.encode() in plain for plain in opened)
    assert not any(b"call-with-K" in plain for plain in opened)
    assert [plain for plain in opened if OLD.encode() in plain] != []


def _report_files(report: bytes) -> list[dict[str, object]]:
    from vault import canonical

    value = canonical.loads(report)
    assert isinstance(value, dict)
    files = value["files"]
    assert isinstance(files, list)
    return files
