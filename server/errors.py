"""Errors the server turns into its one JSON error shape.

:class:`ApiError` carries an HTTP status, a short machine-readable ``code`` and
a message a client can act on; the app's error handlers render it as
``{"error": code, "message": text}``. Messages never carry internals: a 500 is
always the same text, whatever failed.
"""

from __future__ import annotations

__all__ = ["ApiError"]


class ApiError(Exception):
    """A request the server refuses, with its HTTP status and error code."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})

    @classmethod
    def bad_request(cls, message: str) -> ApiError:
        return cls(400, "bad_request", message)

    @classmethod
    def forbidden(cls) -> ApiError:
        """The one refusal of a failed login or a role the account lacks."""
        return cls(403, "forbidden", "forbidden")

    @classmethod
    def unauthorized(cls) -> ApiError:
        """No usable bearer token: missing, malformed, unknown, expired or revoked."""
        return cls(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": "Bearer"},
        )

    @classmethod
    def not_found(cls, message: str) -> ApiError:
        return cls(404, "not_found", message)
