"""The JSON API under ``/api/v1``: one blueprint per area."""

from __future__ import annotations

from flask import Flask

from server.api.accounts import accounts_api
from server.api.health import health
from server.api.items import items_api
from server.api.log import log_api
from server.api.login import login_api
from server.api.openapi import openapi
from server.api.peer import peer_api
from server.api.switch import switch_api, trustee_api
from server.api.uploads import uploads_api
from server.api.witness import witness_api
from server.web import pages

__all__ = ["API_PREFIX", "register_blueprints"]

API_PREFIX = "/api/v1"


def register_blueprints(app: Flask) -> None:
    """Mount every blueprint of the API on ``app``."""
    app.register_blueprint(health)
    app.register_blueprint(log_api, url_prefix=f"{API_PREFIX}/log")
    app.register_blueprint(accounts_api, url_prefix=f"{API_PREFIX}/accounts")
    app.register_blueprint(login_api, url_prefix=f"{API_PREFIX}/auth")
    app.register_blueprint(uploads_api, url_prefix=f"{API_PREFIX}/uploads")
    app.register_blueprint(items_api, url_prefix=f"{API_PREFIX}/items")
    app.register_blueprint(switch_api, url_prefix=f"{API_PREFIX}/switch")
    app.register_blueprint(trustee_api, url_prefix=f"{API_PREFIX}/trustee")
    app.register_blueprint(peer_api, url_prefix=f"{API_PREFIX}/peer")
    app.register_blueprint(witness_api, url_prefix=f"{API_PREFIX}/witness")
    app.register_blueprint(openapi, url_prefix=API_PREFIX)
    app.register_blueprint(pages)
