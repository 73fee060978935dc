"""Opening a notice: the details a server sent encrypted to this person's key.

A notice e-mail carries ``notice.age``, an ASCII-armored age file encrypted
to the recipient's card (a webhook carries the same armor in its ``"age"``
field). The details inside are text (an e-mail's) or a JSON document (a
webhook's), padded with spaces so every notice is the same size on the wire.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

from vault import age
from vault.errors import DecryptError, FormatError

__all__ = ["MAX_NOTICE", "OpenedNotice", "open_notice"]

MAX_NOTICE = 1 << 20
"""Largest notice file read (the server sends a few kilobytes)."""


@dataclass(frozen=True, kw_only=True)
class OpenedNotice:
    """A notice's details: its title and text, and the whole document of a webhook's."""

    title: str
    text: str
    document: dict[str, Any] | None = None


def open_notice(data: bytes, identities: list[age.Identity]) -> OpenedNotice:
    """Decrypt a notice file (armored or binary age) with the first identity that opens it.

    Raises:
        FormatError: too large, not an age file, or not a notice inside.
        DecryptError: no identity opens it.
    """
    if len(data) > MAX_NOTICE:
        raise FormatError("this file is too large to be a notice")
    out = io.BytesIO()
    age.decrypt(io.BytesIO(data), out, identities)
    try:
        text = out.getvalue().decode("utf-8").rstrip(" ")
    except UnicodeDecodeError:
        raise DecryptError("this file is not a notice") from None
    if text.startswith("{"):
        try:
            document = json.loads(text)
        except ValueError:
            raise FormatError("this notice's details are malformed") from None
        if not isinstance(document, dict):
            raise FormatError("this notice's details are malformed")
        return OpenedNotice(
            title=str(document.get("subject", "")),
            text=str(document.get("text", "")),
            document=document,
        )
    title, _, body = text.partition("\n\n")
    return OpenedNotice(title=title, text=body.rstrip("\n"))
