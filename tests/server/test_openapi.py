"""The OpenAPI document is complete and truthful.

Every endpoint the app serves is described, every described path is served,
and real responses match the documented status codes, media types and
schemas. A new endpoint therefore cannot ship undocumented.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from server.api.openapi import DOCUMENT
from server.config import Config
from server.db import transaction
from server.keyfile import load_key_file
from server.services import log

_IGNORED_METHODS = {"HEAD", "OPTIONS"}


def _openapi_path(rule: str) -> str:
    """Flask's ``/items/<int:item_id>`` is OpenAPI's ``/items/{item_id}``."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


# The public HTML pages (server.web) are not the JSON API; tests/server/test_pages.py covers them.
_NOT_API = {"static", "pages"}


def _served(app: Flask) -> set[tuple[str, str]]:
    return {
        (_openapi_path(rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.split(".")[0] not in _NOT_API
        for method in (rule.methods or set()) - _IGNORED_METHODS
    }


def _documented() -> set[tuple[str, str]]:
    return {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}


def test_every_endpoint_is_documented_and_every_documented_path_served(app: Flask) -> None:
    served, documented = _served(app), _documented()
    assert served - documented == set(), "endpoints missing from the OpenAPI document"
    assert documented - served == set(), "documented paths the app does not serve"


def test_the_document_is_served_and_well_formed(client: FlaskClient) -> None:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json == DOCUMENT
    assert DOCUMENT["openapi"].startswith("3.1.")
    operation_ids = [
        op["operationId"] for item in DOCUMENT["paths"].values() for op in item.values()
    ]
    assert len(operation_ids) == len(set(operation_ids))
    for item in DOCUMENT["paths"].values():
        for operation in item.values():
            assert operation["responses"], operation["operationId"]
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    # Each schema must itself be a valid JSON Schema (2020-12).
                    jsonschema.Draft202012Validator.check_schema(_with_components(media["schema"]))


def _with_components(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema whose ``#/components/...`` references resolve against the document."""
    return {**schema, "components": DOCUMENT["components"]}


def check_response(path: str, method: str, response: TestResponse) -> None:
    """Fail unless ``response`` is one the document describes for ``method path``."""
    operation = DOCUMENT["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method} {path}: undocumented status {response.status_code}"
    content = documented.get("content", {})
    assert response.mimetype in content, f"{method} {path}: undocumented {response.mimetype}"
    schema = content[response.mimetype]["schema"]
    if response.mimetype == "application/octet-stream":
        # Opaque bytes: a JSON Schema can only say it is a binary string.
        assert schema.get("contentMediaType") == "application/octet-stream"
        assert isinstance(response.get_data(), bytes)
        return
    body = response.json if response.mimetype == "application/json" else response.text
    jsonschema.validate(body, _with_components(schema), cls=jsonschema.Draft202012Validator)


def test_real_responses_match_the_document(app: Flask, client: FlaskClient, config: Config) -> None:
    requests = [
        ("/healthz", "/healthz"),
        ("/api/v1/openapi.json", "/api/v1/openapi.json"),
        ("/api/v1/log/checkpoint", "/api/v1/log/checkpoint"),  # 404: empty log
        ("/api/v1/log/entries", "/api/v1/log/entries?start=x"),
        ("/api/v1/log/keys", "/api/v1/log/keys"),  # the key file's key alone
        ("/api/v1/log/keys", "/api/v1/log/keys?x=1"),
    ]
    for path, url in requests:
        check_response(path, "get", client.get(url))

    signer = load_key_file(config.key_file).log_signer
    for n in range(5):
        with transaction(app.extensions["evault"].sessions) as session:
            log.append(session, {"type": "test", "n": n}, signer)
    requests = [
        ("/api/v1/log/checkpoint", "/api/v1/log/checkpoint"),
        ("/api/v1/log/checkpoint", "/api/v1/log/checkpoint?x=1"),
        ("/api/v1/log/entries", "/api/v1/log/entries?start=0"),
        ("/api/v1/log/entries", "/api/v1/log/entries?start=1&end=3"),
        ("/api/v1/log/entries", "/api/v1/log/entries?start=4&end=9"),
        ("/api/v1/log/proof/inclusion", "/api/v1/log/proof/inclusion?index=2&size=5"),
        ("/api/v1/log/proof/inclusion", "/api/v1/log/proof/inclusion?index=5&size=5"),
        ("/api/v1/log/proof/consistency", "/api/v1/log/proof/consistency?old=2&new=5"),
        ("/api/v1/log/proof/consistency", "/api/v1/log/proof/consistency?old=0&new=5"),
        ("/api/v1/log/keys", "/api/v1/log/keys"),
    ]
    statuses = set()
    for path, url in requests:
        response = client.get(url)
        statuses.add(response.status_code)
        check_response(path, "get", response)
    assert statuses == {200, 400}
