"""The WSGI entry point for production servers: ``gunicorn server.wsgi:app``.

The application is built from ``EVAULT_*`` environment variables (see
``.env.example``). Gunicorn writes no access log unless asked to, which
keeps client addresses out of the logs; do not enable one that records them.
"""

from __future__ import annotations

from server.app import create_app
from server.config import Config

app = create_app(Config.from_env())
