"""The WSGI entry point for production servers: ``gunicorn server.wsgi:app``.

The application is built from ``EVAULT_*`` environment variables (see
``.env.example``). Gunicorn writes no access log unless asked to; do not
enable one that records client addresses. Its error log names the client
address of a malformed request at WARNING, so run it with
``--log-level error``. Files the server creates are private to its user.
"""

from __future__ import annotations

import os

from server.app import create_app
from server.config import Config

os.umask(0o077)
app = create_app(Config.from_env())
