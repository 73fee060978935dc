"""Migrations on SQLite and PostgreSQL: every revision up and down, models equal head, data.

The data tests write rows as the older server did, then upgrade: uploads
and shares across 0004, a log across 0006 (the key history).
"""

from __future__ import annotations

import io
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, select, update

from server import migrate
from server.app import create_app
from server.config import Config
from server.db import make_engine, transaction
from server.key_rotation import rotate
from server.keyfile import create_key_file, load_key_file
from server.models import (
    Account,
    Base,
    Item,
    ItemShare,
    LogCheckpoint,
    LogEntry,
    LogHead,
    LogSubtree,
    UploadSession,
    utcnow,
)
from server.services import log
from server.services.accounts import new_id
from server.services.items import UPLOAD_LIFETIME
from server.storage import new_upload_id
from server.storage.local import LocalBlobStore
from tests.server._helpers import bearer, identity, log_in
from tests.server._items import User, age_parts, commit, put_chunk, sha256, start
from tests.server.conftest import ORIGIN
from tests.server.test_openapi import check_response
from vault import canonical, merkle
from vault.keys import PersonalIdentity
from vault.note import Checkpoint, sign_checkpoint


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return set(inspect(connection).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_every_revision_up_and_down(db_url: str) -> None:
    revisions = migrate.revisions()
    assert revisions[-1] == migrate.head()
    for revision in revisions:
        migrate.upgrade(db_url, revision)
    assert _tables(db_url) == set(Base.metadata.tables)
    for _ in reversed(revisions):
        migrate.downgrade(db_url, "-1")
    assert _tables(db_url) == set()
    migrate.upgrade(db_url)
    assert _tables(db_url) == set(Base.metadata.tables)


def test_models_equal_the_head_migration(migrated_url: str) -> None:
    engine = make_engine(migrated_url)
    try:
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            head = connection.execute(select(LogHead.id, LogHead.size)).all()
    finally:
        engine.dispose()
    assert diff == []
    assert head == [(1, 0)]


def _config(db_url: str, tmp_path: Path) -> Config:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    config = Config(data_dir=data_dir, database_url=db_url, key_file=data_dir / "server.key")
    create_key_file(config.key_file, ORIGIN)
    return config


def _account_row(person: PersonalIdentity, role: str) -> dict[str, object]:
    card = person.card()
    return {
        "id": new_id(),
        "role": role,
        "card": card.to_json(),
        "signing_key": card.signing_key,
        "vault_id": new_id() if role == "reporter" else None,
        "created_at": utcnow(),
    }


def test_uploads_and_shares_from_before_0004_survive_it(db_url: str, tmp_path: Path) -> None:
    """Rows written by a 0003 server: an upload half-way, a shared item; then the upgrade."""
    migrate.upgrade(db_url, "0003")
    config = _config(db_url, tmp_path)
    store = LocalBlobStore(config.blob_root)
    ana, eve = identity("Ana"), identity("Eve")
    reporter, editor = _account_row(ana, "reporter"), _account_row(eve, "editor")
    old_header, old_payload = age_parts(b"shared before the upgrade")
    header, payload = age_parts(b"uploading across the upgrade " * 40)
    upload_id, item_id, now = new_upload_id(), new_id(), utcnow()
    # Only the columns a 0003 server knew: an insert names no others.
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Account.__table__), [reporter, editor])
            connection.execute(
                insert(UploadSession.__table__).values(
                    id=upload_id,
                    account_id=reporter["id"],
                    size=len(payload),
                    sha256=sha256(payload),
                    header=header,
                    created_at=now,
                    expires_at=now + UPLOAD_LIFETIME,
                )
            )
            connection.execute(
                insert(Item.__table__).values(
                    id=item_id,
                    account_id=reporter["id"],
                    vault_id=reporter["vault_id"],
                    header_key=store.put(io.BytesIO(old_header)),
                    header_size=len(old_header),
                    payload_key=store.put(io.BytesIO(old_payload)),
                    payload_size=len(old_payload),
                    release_set=False,
                    created_at=now,
                )
            )
            connection.execute(
                insert(ItemShare.__table__).values(item_id=item_id, editor_id=editor["id"])
            )
    finally:
        engine.dispose()
    store.begin(upload_id, len(payload))
    store.write_at(upload_id, 0, io.BytesIO(payload[:100]), 100)

    migrate.upgrade(db_url)
    app = create_app(config)
    try:
        client = app.test_client()
        ana_headers = bearer(log_in(client, ana, str(reporter["id"]))["token"])
        eve_headers = bearer(log_in(client, eve, str(editor["id"]))["token"])
        # The share survived (SQLite did not copy the items table and cascade).
        seen = client.get("/api/v1/items", headers=eve_headers).json["items"]
        assert [item["id"] for item in seen] == [item_id]
        assert (seen[0]["manifest_sha256"], seen[0]["manifest_size"]) == (None, None)
        assert seen[0]["owner"] == reporter["id"]
        content = client.get(f"/api/v1/items/{item_id}/content", headers=eve_headers)
        assert content.get_data() == old_header + old_payload
        manifest = client.get(f"/api/v1/items/{item_id}/manifest", headers=eve_headers)
        assert manifest.json["error"] == "no_manifest"
        # The upload resumes and commits; its item gets a new id, none was reserved.
        state = client.get(f"/api/v1/uploads/{upload_id}", headers=ana_headers)
        assert state.status_code == 200
        check_response("/api/v1/uploads/{upload_id}", "get", state)
        assert state.json["upload"]["item"] is None
        assert state.json["upload"]["sha256"] == sha256(payload)
        assert state.json["upload"]["received"] == [[0, 100]]
        user = User(id=str(reporter["id"]), role="reporter", headers=ana_headers)
        assert put_chunk(client, user, upload_id, 100, payload[100:]).status_code == 200
        done = commit(client, user, upload_id)
        assert done.status_code == 201, done.json
        new_item = done.json["item"]
        assert len(new_item["id"]) == 32
        assert new_item["id"] != item_id
        assert new_item["sha256"] == sha256(payload)
        got = client.get(f"/api/v1/items/{new_item['id']}/content", headers=ana_headers)
        assert got.get_data() == header + payload
        # A new session reserves an id and may leave its digest for the commit.
        fresh = start(client, user, header, len(payload), None)
        assert fresh.status_code == 201, fresh.json
        assert len(fresh.json["upload"]["item"]) == 32
        assert fresh.json["upload"]["sha256"] is None
    finally:
        app.extensions["evault"].engine.dispose()


def test_downgrading_0004_drops_what_an_older_server_cannot_use(db_url: str) -> None:
    """Sessions without a digest go (an older server cannot commit them); items stay."""
    migrate.upgrade(db_url)
    reporter = _account_row(identity("Ana"), "reporter")
    header, payload = age_parts()
    now = utcnow()
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Account.__table__), [reporter])
            for upload_id, digest in ((new_upload_id(), sha256(payload)), (new_upload_id(), None)):
                connection.execute(
                    insert(UploadSession.__table__).values(
                        id=upload_id,
                        account_id=reporter["id"],
                        item_id=new_id(),
                        size=len(payload),
                        sha256=digest,
                        header=header,
                        created_at=now,
                        expires_at=now + UPLOAD_LIFETIME,
                    )
                )
            connection.execute(
                insert(Item.__table__).values(
                    id=new_id(),
                    account_id=reporter["id"],
                    vault_id=reporter["vault_id"],
                    header_key=sha256(header),
                    header_size=len(header),
                    payload_key=sha256(payload),
                    payload_size=len(payload),
                    manifest_key=sha256(b"manifest"),
                    manifest_size=8,
                    release_set=False,
                    created_at=now,
                )
            )
        migrate.downgrade(db_url, "0003")
        with engine.connect() as connection:
            columns = {c["name"] for c in inspect(connection).get_columns("items")}
            assert "manifest_key" not in columns
            assert connection.execute(select(Item.id)).all() != []
            digests = connection.execute(select(UploadSession.__table__.c.sha256)).scalars()
            assert list(digests) == [sha256(payload)]
        migrate.upgrade(db_url)
    finally:
        engine.dispose()


def test_a_log_from_before_0006_keeps_working_and_rotates(db_url: str, tmp_path: Path) -> None:
    """A log a 0005 server wrote: after the upgrade its key history starts lazily, from size 0."""
    migrate.upgrade(db_url, "0005")
    config = _config(db_url, tmp_path)
    signer = load_key_file(config.key_file).log_signer
    leaves = [canonical.dumps({"type": "test", "n": n, "time": 1_900_000_000}) for n in range(3)]
    store = merkle.MemoryHashStore([merkle.leaf_hash(leaf) for leaf in leaves])
    now = utcnow()
    engine = make_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                insert(LogEntry.__table__),
                [
                    {"idx": i, "data": leaf, "leaf_hash": merkle.leaf_hash(leaf), "created_at": now}
                    for i, leaf in enumerate(leaves)
                ],
            )
            connection.execute(
                insert(LogSubtree.__table__),
                [
                    {"level": level, "idx": idx, "hash": value}
                    for level, hashes in enumerate(store.levels)
                    for idx, value in enumerate(hashes)
                ],
            )
            for size in range(1, 4):
                root = merkle.root(store, size)
                note = sign_checkpoint(Checkpoint(origin=ORIGIN, size=size, root_hash=root), signer)
                connection.execute(
                    insert(LogCheckpoint.__table__).values(
                        size=size, root_hash=root, note=note.decode(), created_at=now
                    )
                )
            connection.execute(update(LogHead.__table__).values(size=3))

        migrate.upgrade(db_url)
        app = create_app(config)
        try:
            client = app.test_client()
            # Nothing recorded yet: the key file's key is shown as the only one.
            keys = client.get("/api/v1/log/keys")
            check_response("/api/v1/log/keys", "get", keys)
            assert [(k["key"], k["first_size"]) for k in keys.json["keys"]] == [
                (str(signer.verifier()), 0)
            ]
            sessions = app.extensions["evault"].sessions
            with transaction(sessions) as session:
                assert log.key_history(session) == []
                log.append(session, {"type": "test", "n": 3}, signer)
            with sessions() as session:
                history = [(r.key, r.first_size, r.last_size) for r in log.key_history(session)]
            assert history == [(str(signer.verifier()), 0, None)]
            assert client.get("/api/v1/log/keys").json == keys.json

            rotated = rotate(config)
            assert (rotated.index, rotated.size) == (4, 5)
            transition = client.get("/api/v1/log/keys").json["keys"][0]["transition"]
            assert transition == client.get("/api/v1/log/checkpoint").text
        finally:
            app.extensions["evault"].engine.dispose()

        # Going back drops the key history, never the log.
        migrate.downgrade(db_url, "0005")
        with engine.connect() as connection:
            assert "log_keys" not in inspect(connection).get_table_names()
            assert connection.execute(select(LogHead.size)).scalar_one() == 5
        migrate.upgrade(db_url)
    finally:
        engine.dispose()
