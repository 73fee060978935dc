"""Encrypted manifests: reserved item ids, digests at commit, download, sharing that keeps them."""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from server.app import create_app
from server.config import Config
from server.db import transaction
from server.models import Item, UploadSession
from server.services.items import MAX_MANIFEST_SIZE
from tests.server._helpers import verify_logged
from tests.server._items import (
    User,
    age_file,
    age_parts,
    commit,
    header_of,
    manifest_file,
    put_chunk,
    rewrapped,
    sha256,
    start,
    user,
)
from tests.server._switch import add_item, duress_login, reporter
from tests.server.test_openapi import check_response
from vault._base64 import b64encode
from vault.age import X25519Identity, rewrap_header
from vault.age.format import Source, parse_header


def _staged(config: Config) -> list[str]:
    root = config.blob_root / "staging"
    return sorted(os.listdir(root)) if root.exists() else []


def _blobs(config: Config) -> set[str]:
    root = config.blob_root / "blobs"
    return {name for _, _, files in os.walk(root) for name in files}


def _count(app: Flask, model: type[Any]) -> int:
    with transaction(app.extensions["evault"].sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _item_header(client: FlaskClient, who: User, item: dict[str, Any]) -> bytes:
    """The item's current age header, from its download."""
    content = client.get(f"/api/v1/items/{item['id']}/content", headers=who.headers)
    return content.get_data()[: item["header_size"]]


def _rewrap_header(header: bytes, identity: X25519Identity, add: X25519Identity) -> bytes:
    parsed = parse_header(Source(io.BytesIO(header)))
    return rewrap_header(parsed, identity, [add.recipient()]).marshal()


@dataclasses.dataclass(frozen=True)
class Upload:
    """An upload whose payload has fully arrived, not yet committed."""

    id: str
    item: str
    header: bytes
    payload: bytes


def _uploaded(
    client: FlaskClient, who: User, owner: X25519Identity, *, declare: bool = False
) -> Upload:
    """Open an upload (without its SHA-256 unless ``declare``) and send the whole payload."""
    data = age_file(os.urandom(3000), [owner.recipient()])
    header = header_of(data)
    payload = data[len(header) :]
    created = start(client, who, header, len(payload), sha256(payload) if declare else None)
    assert created.status_code == 201, created.json
    check_response("/api/v1/uploads", "post", created)
    upload = created.json["upload"]
    assert upload["sha256"] == (sha256(payload) if declare else None)
    assert len(upload["item"]) == 32
    for offset in range(0, len(payload), 1000):
        chunk = payload[offset : offset + 1000]
        assert put_chunk(client, who, upload["id"], offset, chunk).status_code == 200
    return Upload(id=upload["id"], item=upload["item"], header=header, payload=payload)


def _item(
    app: Flask, client: FlaskClient, config: Config, owner_key: X25519Identity
) -> tuple[User, dict[str, Any], bytes]:
    """A reporter and one of their items with a manifest: ``(reporter, item, manifest)``."""
    owner = user(app, config, client, "reporter", "Ana")
    upload = _uploaded(client, owner, owner_key)
    manifest = manifest_file(owner_key, upload.item)
    done = commit(
        client, owner, upload.id, sha256=sha256(upload.payload), manifest=b64encode(manifest)
    )
    assert done.status_code == 201, done.json
    return owner, done.json["item"], manifest


def test_commit_with_digest_and_manifest(app: Flask, client: FlaskClient, config: Config) -> None:
    reporter = user(app, config, client, "reporter")
    mine = X25519Identity.generate()
    upload = _uploaded(client, reporter, mine)
    # The id is reserved at the start, so the manifest can name it before the commit.
    manifest = manifest_file(mine, upload.item, note="signed before the commit")
    status = client.get(f"/api/v1/uploads/{upload.id}", headers=reporter.headers)
    assert status.json["upload"]["item"] == upload.item
    done = commit(
        client, reporter, upload.id, sha256=sha256(upload.payload), manifest=b64encode(manifest)
    )
    assert done.status_code == 201, done.json
    check_response("/api/v1/uploads/{upload_id}/commit", "post", done)
    item = done.json["item"]
    assert item["id"] == upload.item
    assert item["owner"] == reporter.id
    assert item["sha256"] == sha256(upload.payload)
    assert (item["manifest_sha256"], item["manifest_size"]) == (sha256(manifest), len(manifest))
    event = verify_logged(client, config, done.json)
    assert event == {
        "type": "item.uploaded",
        "item": upload.item,
        "account": reporter.id,
        "vault": item["vault"],
        "sha256": sha256(upload.payload),
        "size": len(upload.payload),
        "header_sha256": sha256(upload.header),
        "header_size": len(upload.header),
        "manifest_sha256": sha256(manifest),
        "manifest_size": len(manifest),
        "time": event["time"],
    }
    assert sha256(manifest) in _blobs(config)
    # Listing and metadata show the same.
    assert client.get(f"/api/v1/items/{upload.item}", headers=reporter.headers).json == {
        "item": item
    }
    listed = client.get("/api/v1/items", headers=reporter.headers).json["items"]
    assert listed == [item]


def test_old_style_upload_and_commit_still_work(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    upload = _uploaded(client, reporter, X25519Identity.generate(), declare=True)
    done = commit(client, reporter, upload.id)  # no body at all
    assert done.status_code == 201, done.json
    item = done.json["item"]
    assert item["id"] == upload.item
    assert (item["manifest_sha256"], item["manifest_size"]) == (None, None)
    event = verify_logged(client, config, done.json)
    assert "manifest_sha256" not in event
    # An empty object, the same digest again, or nulls are as good as no body.
    for body in ({}, {"sha256": None, "manifest": None}, "same"):
        again = _uploaded(client, reporter, X25519Identity.generate(), declare=True)
        if body == "same":
            answer = commit(client, reporter, again.id, sha256=sha256(again.payload))
        else:
            assert isinstance(body, dict)
            answer = commit(client, reporter, again.id, **body)
        assert answer.status_code == 201, (body, answer.json)
        assert answer.json["item"]["id"] == again.item


def test_a_commit_without_any_digest_is_refused_and_the_session_stays(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    reporter = user(app, config, client, "reporter")
    upload = _uploaded(client, reporter, X25519Identity.generate())
    for body in ({}, {"sha256": None}):
        refused = commit(client, reporter, upload.id, **body)
        assert refused.status_code == 400
        assert refused.json["error"] == "missing_digest"
        check_response("/api/v1/uploads/{upload_id}/commit", "post", refused)
    refused = commit(client, reporter, upload.id)
    assert refused.json["error"] == "missing_digest"
    assert _count(app, Item) == 0
    state = client.get(f"/api/v1/uploads/{upload.id}", headers=reporter.headers)
    assert state.status_code == 200
    assert state.json["upload"]["missing"] == []
    done = commit(client, reporter, upload.id, sha256=sha256(upload.payload))
    assert done.status_code == 201, done.json
    assert done.json["item"]["id"] == upload.item


@pytest.mark.parametrize("declare", [True, False])
def test_a_wrong_digest_at_commit_ends_the_session_and_stores_nothing(
    app: Flask, client: FlaskClient, config: Config, declare: bool
) -> None:
    reporter = user(app, config, client, "reporter")
    mine = X25519Identity.generate()
    upload = _uploaded(client, reporter, mine, declare=declare)
    manifest = b64encode(manifest_file(mine, upload.item))
    response = commit(client, reporter, upload.id, sha256="0" * 64, manifest=manifest)
    assert response.status_code == 422
    assert response.json["error"] == "digest_mismatch"
    check_response("/api/v1/uploads/{upload_id}/commit", "post", response)
    gone = client.get(f"/api/v1/uploads/{upload.id}", headers=reporter.headers)
    assert gone.status_code == 404
    assert _count(app, Item) == 0
    assert _count(app, UploadSession) == 0
    assert _staged(config) == []
    assert _blobs(config) == set()


@pytest.fixture
def roomy_app(config: Config) -> Iterator[tuple[Flask, Config]]:
    """The app taking request bodies of up to 1 MiB, as a real server does."""
    roomy = dataclasses.replace(config, max_content_length=1024 * 1024)
    app = create_app(roomy)
    app.config["TESTING"] = True
    yield app, roomy
    app.extensions["evault"].engine.dispose()


def _sized_manifest(owner: X25519Identity, size: int) -> bytes:
    """A real encrypted manifest of exactly ``size`` bytes."""
    overhead = len(age_file(b"", [owner.recipient()]))
    data = age_file(b"m" * (size - overhead), [owner.recipient()])
    assert len(data) == size
    return data


def test_a_bad_or_large_manifest_is_refused_and_the_session_stays(
    roomy_app: tuple[Flask, Config],
) -> None:
    app, config = roomy_app
    client = app.test_client()
    reporter = user(app, config, client, "reporter")
    mine = X25519Identity.generate()
    upload = _uploaded(client, reporter, mine)
    digest = sha256(upload.payload)
    good = manifest_file(mine, upload.item)
    header = header_of(good)
    armored = age_file(b"x", [mine.recipient()])
    cases: list[tuple[object, int, str]] = [
        (b64encode(b"not an age file"), 400, "invalid_manifest"),
        (b64encode(header), 400, "invalid_manifest"),  # a header alone
        (b64encode(good[: len(header) + 31]), 400, "invalid_manifest"),  # nonce, half a tag
        (b64encode(header[:-1] + good[len(header) :]), 400, "invalid_manifest"),  # MAC runs on
        (b64encode(b"-----BEGIN AGE ENCRYPTED FILE-----\n" + armored), 400, "invalid_manifest"),
        ("bm90IGNhbm9uaWNhbA", 400, "bad_request"),  # unpadded
        (12, 400, "bad_request"),
        (b64encode(_sized_manifest(mine, MAX_MANIFEST_SIZE + 1)), 413, "manifest_too_large"),
        ("A" * (4 * (MAX_MANIFEST_SIZE // 3 + 2)), 413, "manifest_too_large"),
    ]
    for manifest, status, code in cases:
        refused = commit(client, reporter, upload.id, sha256=digest, manifest=manifest)
        assert refused.status_code == status, (code, refused.json)
        assert refused.json["error"] == code
        check_response("/api/v1/uploads/{upload_id}/commit", "post", refused)
    for body in ({"sha256": digest, "extra": 1}, {"sha256": "ABC"}):
        refused = commit(client, reporter, upload.id, **body)
        assert refused.status_code == 400
        assert refused.json["error"] == "bad_request"
    wrong_type = client.post(
        f"/api/v1/uploads/{upload.id}/commit", data=b"{}", headers=reporter.headers
    )
    assert wrong_type.status_code == 415
    assert _count(app, Item) == 0
    assert _blobs(config) == set()
    state = client.get(f"/api/v1/uploads/{upload.id}", headers=reporter.headers)
    assert state.status_code == 200
    # The client retries with a good manifest of exactly the largest size.
    largest = _sized_manifest(mine, MAX_MANIFEST_SIZE)
    done = commit(client, reporter, upload.id, sha256=digest, manifest=b64encode(largest))
    assert done.status_code == 201, done.json
    assert done.json["item"]["manifest_size"] == MAX_MANIFEST_SIZE
    url = f"/api/v1/items/{upload.item}/manifest"
    assert client.get(url, headers=reporter.headers).get_data() == largest


def test_who_may_download_a_manifest(app: Flask, client: FlaskClient, config: Config) -> None:
    mine = X25519Identity.generate()
    owner, item, manifest = _item(app, client, config, mine)
    editor = user(app, config, client, "editor", "Eve")
    outsider = user(app, config, client, "editor", "Fay")
    other = user(app, config, client, "reporter", "Ben")
    operator = user(app, config, client, "operator", "Oli")
    theirs = X25519Identity.generate()
    url = f"/api/v1/items/{item['id']}/manifest"
    path = "/api/v1/items/{item_id}/manifest"

    size = client.get("/api/v1/log/entries?start=0").json["size"]
    response = client.get(url, headers=owner.headers)
    assert response.status_code == 200
    assert response.mimetype == "application/octet-stream"
    assert response.get_data() == manifest
    assert response.headers["ETag"] == '"' + sha256(manifest)[:32] + '"'
    check_response(path, "get", response)
    # Not logged: metadata of an item whose downloads are logged.
    assert client.get("/api/v1/log/entries?start=0").json["size"] == size

    assert client.get(url, headers=editor.headers).status_code == 404
    shared = client.post(
        f"/api/v1/items/{item['id']}/share",
        json={
            "header": b64encode(_rewrap_header(_item_header(client, owner, item), mine, theirs)),
            "editors": [editor.id],
            "manifest": b64encode(rewrapped(manifest, mine, [theirs.recipient()])),
        },
        headers=owner.headers,
    )
    assert shared.status_code == 200, shared.json
    new_manifest = client.get(url, headers=editor.headers)
    assert new_manifest.status_code == 200
    assert new_manifest.get_data() == client.get(url, headers=owner.headers).get_data()
    assert new_manifest.headers["ETag"] != response.headers["ETag"]
    for who in (outsider, other):
        refused = client.get(url, headers=who.headers)
        assert refused.status_code == 404
        assert refused.json == {"error": "not_found", "message": "no such item"}
        check_response(path, "get", refused)
    assert client.get(url, headers=operator.headers).status_code == 403
    assert client.get(url).status_code == 401
    missing = client.get("/api/v1/items/" + "0" * 32 + "/manifest", headers=owner.headers)
    assert missing.json == {"error": "not_found", "message": "no such item"}
    assert client.get(f"{url}?x=1", headers=owner.headers).status_code == 400

    # An item without a manifest says so, to those who may see it.
    header, payload = age_parts()
    bare = start(client, owner, header, len(payload), sha256(payload)).json["upload"]
    put_chunk(client, owner, bare["id"], 0, payload)
    assert commit(client, owner, bare["id"]).status_code == 201
    none = client.get(f"/api/v1/items/{bare['item']}/manifest", headers=owner.headers)
    assert none.status_code == 404
    assert none.json["error"] == "no_manifest"
    check_response(path, "get", none)
    hidden = client.get(f"/api/v1/items/{bare['item']}/manifest", headers=other.headers)
    assert hidden.json == {"error": "not_found", "message": "no such item"}


def test_sharing_re_wraps_the_manifest_and_never_changes_it(
    roomy_app: tuple[Flask, Config],
) -> None:
    app, config = roomy_app
    client = app.test_client()
    mine = X25519Identity.generate()
    owner, item, manifest = _item(app, client, config, mine)
    editor = user(app, config, client, "editor", "Eve")
    theirs, stranger = X25519Identity.generate(), X25519Identity.generate()
    url = f"/api/v1/items/{item['id']}/share"
    header = _rewrap_header(_item_header(client, owner, item), mine, theirs)
    good = rewrapped(manifest, mine, [theirs.recipient()])
    body = {"header": b64encode(header), "editors": [editor.id], "manifest": b64encode(good)}
    # Another manifest's payload under the good header: what it says changed.
    other_text = manifest_file(mine, item["id"], note="rewritten")
    changed = rewrapped(other_text, mine, [theirs.recipient()])
    changed = header_of(good) + changed[len(header_of(changed)) :]
    # The same payload under a header that drops the owner's stanza.
    dropped = rewrapped(manifest, mine, [theirs.recipient()])
    only_theirs = header_of(age_file(b"", [theirs.recipient()]))
    dropped = only_theirs + dropped[len(header_of(dropped)) :]
    blobs_before = _blobs(config)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({**body, "manifest": None}, 400, "missing_manifest"),
        ({"header": body["header"], "editors": body["editors"]}, 400, "missing_manifest"),
        ({**body, "manifest": b64encode(changed)}, 400, "manifest_changed"),
        ({**body, "manifest": b64encode(dropped)}, 400, "invalid_manifest"),
        ({**body, "manifest": b64encode(b"junk")}, 400, "invalid_manifest"),
        ({**body, "manifest": b64encode(good[:-1])}, 400, "manifest_changed"),
        ({**body, "manifest": "A" * 90000}, 413, "manifest_too_large"),
    ]
    for bad, status, code in cases:
        response = client.post(url, json=bad, headers=owner.headers)
        assert response.status_code == status, (code, response.json)
        assert response.json["error"] == code, (code, response.json)
        check_response("/api/v1/items/{item_id}/share", "post", response)
    # Nothing was stored, nobody gained access.
    assert _blobs(config) == blobs_before
    assert client.get(f"/api/v1/items/{item['id']}", headers=editor.headers).status_code == 404

    response = client.post(url, json=body, headers=owner.headers)
    assert response.status_code == 200, response.json
    check_response("/api/v1/items/{item_id}/share", "post", response)
    shared = response.json["item"]
    assert (shared["manifest_sha256"], shared["manifest_size"]) == (sha256(good), len(good))
    assert shared["owner"] == owner.id
    event = verify_logged(client, config, response.json)
    assert event["type"] == "item.shared"
    assert (event["manifest_sha256"], event["manifest_size"]) == (sha256(good), len(good))
    # The old manifest is kept, like the old header; the editor sees the new one and owner.
    assert sha256(manifest) in _blobs(config)
    seen = client.get(f"/api/v1/items/{item['id']}", headers=editor.headers).json["item"]
    assert (seen["owner"], seen["manifest_sha256"]) == (owner.id, sha256(good))
    # Sharing again with one more reader builds on the current manifest, not the first.
    again = rewrapped(good, mine, [stranger.recipient()])
    stale = rewrapped(manifest, mine, [stranger.recipient()])
    newer_header = _rewrap_header(header, mine, stranger)
    refused = client.post(
        url,
        json={**body, "header": b64encode(newer_header), "manifest": b64encode(stale)},
        headers=owner.headers,
    )
    assert refused.json["error"] == "invalid_manifest"  # it lacks the editor's stanza
    accepted = client.post(
        url,
        json={**body, "header": b64encode(newer_header), "manifest": b64encode(again)},
        headers=owner.headers,
    )
    assert accepted.status_code == 200, accepted.json


def test_an_item_without_a_manifest_takes_none_in_a_share(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    owner = user(app, config, client, "reporter", "Ana")
    editor = user(app, config, client, "editor", "Eve")
    mine, theirs = X25519Identity.generate(), X25519Identity.generate()
    upload = _uploaded(client, owner, mine, declare=True)
    assert commit(client, owner, upload.id).status_code == 201
    url = f"/api/v1/items/{upload.item}/share"
    header = _rewrap_header(upload.header, mine, theirs)
    body = {"header": b64encode(header), "editors": [editor.id]}
    manifest = b64encode(manifest_file(mine, upload.item))
    refused = client.post(url, json={**body, "manifest": manifest}, headers=owner.headers)
    assert refused.status_code == 400
    assert refused.json["error"] == "unexpected_manifest"
    done = client.post(url, json={**body, "manifest": None}, headers=owner.headers)
    assert done.status_code == 200, done.json
    assert done.json["item"]["manifest_sha256"] is None
    event = verify_logged(client, config, done.json)
    assert "manifest_sha256" not in event


def _listed(client: FlaskClient, headers: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    """Every item of ``GET /items?with=manifest`` (and ``query``), page after page."""
    found: list[dict[str, Any]] = []
    after = None
    while True:
        url = "/api/v1/items?with=manifest" + query + (f"&after={after}" if after else "")
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.json
        check_response("/api/v1/items", "get", response)
        found += response.json["items"]
        after = response.json["next"]
        if after is None:
            return found


def _one_by_one(client: FlaskClient, headers: dict[str, str], ids: list[str]) -> dict[str, Any]:
    """What the single-item calls give each of ``ids``: metadata and manifest in base64."""
    seen: dict[str, Any] = {}
    for item_id in ids:
        meta = client.get(f"/api/v1/items/{item_id}", headers=headers).json["item"]
        got = client.get(f"/api/v1/items/{item_id}/manifest", headers=headers)
        meta["manifest"] = b64encode(got.get_data()) if got.status_code == 200 else None
        seen[item_id] = meta
    return seen


def test_a_list_with_manifests_holds_what_each_item_gives_alone(
    app: Flask, client: FlaskClient, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = X25519Identity.generate()
    owner, first, _ = _item(app, client, config, mine)
    editor = user(app, config, client, "editor", "Eve")
    other = user(app, config, client, "reporter", "Ben")
    operator = user(app, config, client, "operator", "Oli")
    made = [first["id"]]
    for _ in range(4):
        upload = _uploaded(client, owner, mine)
        done = commit(
            client,
            owner,
            upload.id,
            sha256=sha256(upload.payload),
            manifest=b64encode(manifest_file(mine, upload.item)),
        )
        made.append(done.json["item"]["id"])
    # One item without a manifest: listed with null, as its own fetch says no_manifest.
    header, payload = age_parts()
    bare = start(client, owner, header, len(payload), sha256(payload)).json["upload"]
    put_chunk(client, owner, bare["id"], 0, payload)
    assert commit(client, owner, bare["id"]).status_code == 201
    made.append(bare["item"])
    theirs = X25519Identity.generate()
    shared = made[1]
    meta = client.get(f"/api/v1/items/{shared}", headers=owner.headers).json["item"]
    sealed = client.get(f"/api/v1/items/{shared}/manifest", headers=owner.headers).get_data()
    answer = client.post(
        f"/api/v1/items/{shared}/share",
        json={
            "header": b64encode(_rewrap_header(_item_header(client, owner, meta), mine, theirs)),
            "editors": [editor.id],
            "manifest": b64encode(rewrapped(sealed, mine, [theirs.recipient()])),
        },
        headers=owner.headers,
    )
    assert answer.status_code == 200, answer.json

    size = client.get("/api/v1/log/entries?start=0").json["size"]
    listed = _listed(client, owner.headers)
    assert [entry["id"] for entry in listed] == [
        entry["id"] for entry in client.get("/api/v1/items", headers=owner.headers).json["items"]
    ]
    assert sorted(entry["id"] for entry in listed) == sorted(made)
    assert {entry["id"]: entry for entry in listed} == _one_by_one(client, owner.headers, made)
    assert next(entry for entry in listed if entry["id"] == bare["item"])["manifest"] is None
    # The editor gets the one item shared with them, seeing only themselves in it.
    as_editor = _listed(client, editor.headers)
    assert [entry["id"] for entry in as_editor] == [shared]
    assert as_editor == list(_one_by_one(client, editor.headers, [shared]).values())
    assert as_editor[0]["shared_with"] == [editor.id]
    # Nobody else gets anything; the operator and strangers get no list at all.
    assert _listed(client, other.headers) == []
    assert client.get("/api/v1/items?with=manifest", headers=operator.headers).status_code == 403
    assert client.get("/api/v1/items?with=manifest").status_code == 401
    # Listing is not logged, like fetching a manifest alone.
    assert client.get("/api/v1/log/entries?start=0").json["size"] == size

    # Pages: by count, and cut early past the bound on manifest bytes.
    assert _listed(client, owner.headers, "&limit=2") == listed
    monkeypatch.setattr("server.api.items.MAX_PAGE_MANIFEST_BYTES", 1)
    one = client.get("/api/v1/items?with=manifest&limit=1000", headers=owner.headers).json
    assert [entry["id"] for entry in one["items"]] == [listed[0]["id"]]
    assert one["next"] == listed[0]["id"]
    assert _listed(client, owner.headers) == listed
    for bad in ("with=manifests", "with=manifest&with=manifest", "with="):
        response = client.get(f"/api/v1/items?{bad}", headers=owner.headers)
        assert response.status_code == 400, bad
        check_response("/api/v1/items", "get", response)


def test_a_session_under_duress_lists_the_decoy_vault_as_its_single_calls_show_it(
    app: Flask, client: FlaskClient, config: Config
) -> None:
    ana = reporter(app, config, client)
    real = [add_item(client, ana, b"real %d" % n) for n in range(2)]
    decoys = [add_item(client, ana, b"decoy %d" % n, decoy=True) for n in range(2)]
    coerced = duress_login(client, ana)

    # The real session: its items, and with decoys=1 the decoy vault, each as fetched alone.
    assert sorted(e["id"] for e in _listed(client, ana.headers)) == sorted(real)
    free_decoys = _listed(client, ana.headers, "&decoys=1")
    assert {e["id"]: e for e in free_decoys} == _one_by_one(client, ana.headers, decoys)
    # Under duress the decoy vault is the whole vault, exactly as the single calls show it.
    shown = _listed(client, coerced)
    assert {e["id"]: e for e in shown} == _one_by_one(client, coerced, decoys)
    assert {e["id"]: e for e in shown} == {e["id"]: e for e in free_decoys}
    assert _listed(client, coerced, "&decoys=1") == []
    for item_id in real:
        assert client.get(f"/api/v1/items/{item_id}/manifest", headers=coerced).status_code == 404
    refused = client.get(f"/api/v1/items?with=manifest&after={real[0]}", headers=coerced)
    assert refused.status_code == 400
