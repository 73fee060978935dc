"""ASCII armor for age files (age.md, "ASCII armor"; RFC 7468 strict PEM).

Reading is strict, as the format recommends, because lax armor makes files
malleable: whitespace is allowed only before and after the PEM block, lines
end in LF or CRLF, every body line but the last is exactly 64 columns, the
base64 is canonical and padded, and nothing but whitespace may follow.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import BinaryIO

from vault.errors import ArmorError

__all__ = ["BEGIN", "END", "ArmorReader", "ArmorWriter", "is_armored"]

BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
END = b"-----END AGE ENCRYPTED FILE-----"
_COLUMNS = 64
_WHITESPACE = b" \t\r\n"
_MAX_TRAILING = 1024
_BODY_LINE = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
# Full 64-column lines without padding: the bulk of a file, decoded in blocks.
_FULL_LINES = re.compile(rb"(?:[A-Za-z0-9+/]{64}\r?\n)+")


def is_armored(prefix: bytes) -> bool:
    """Whether a file starting with ``prefix`` is meant to be armored.

    A binary age file starts with its version line, so anything that starts
    with a PEM-style dash line is treated, and strictly checked, as armor.
    """
    return prefix.lstrip(_WHITESPACE).startswith(b"-----")


class ArmorReader:
    """A binary reader that decodes armored input as it is read."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = bytearray()  # raw bytes read but not yet split into lines
        self._decoded = bytearray()
        self._started = False
        self._done = False
        self._eof = False

    def _line(self) -> bytes:
        """The next line without its ending; raises if it is too long."""
        limit = _COLUMNS + 2
        while True:
            end = self._pending.find(b"\n", 0, max(limit, len(BEGIN) + 2))
            if end >= 0:
                line = bytes(self._pending[:end])
                del self._pending[: end + 1]
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._pending) > max(limit, len(BEGIN) + 2) or self._eof:
                line = bytes(self._pending)
                self._pending.clear()
                if not self._eof:
                    raise ArmorError("invalid armor: line too long")
                return line
            data = self._raw.read(16384)
            if not data:
                self._eof = True
            self._pending += data

    def _start(self) -> None:
        self._started = True
        # Skip whitespace before the PEM block (bounded, so a stream of
        # spaces cannot keep us reading forever).
        skipped = 0
        while True:
            if not self._pending and not self._eof:
                data = self._raw.read(4096)
                if not data:
                    self._eof = True
                self._pending += data
            stripped = self._pending.lstrip(_WHITESPACE)
            skipped += len(self._pending) - len(stripped)
            self._pending = bytearray(stripped)
            if self._pending or self._eof:
                break
            if skipped > _MAX_TRAILING:
                raise ArmorError("invalid armor: no PEM header")
        if self._line() != BEGIN:
            raise ArmorError("invalid armor: missing or wrong PEM header")

    def _decode_more(self) -> None:
        if len(self._pending) < 16384 and not self._eof:
            data = self._raw.read(16384)
            if not data:
                self._eof = True
            self._pending += data
        match = _FULL_LINES.match(self._pending)
        if match:
            # Whole lines of 64 characters are 48 bytes each, never padded,
            # so their concatenation is canonical base64.
            block = match.group()
            del self._pending[: len(block)]
            self._decoded += binascii.a2b_base64(block)
            return
        line = self._line()
        if line == END:
            self._finish()
            return
        if len(line) > _COLUMNS or not line or not _BODY_LINE.fullmatch(line):
            if self._eof and not line:
                raise ArmorError("invalid armor: missing PEM footer")
            raise ArmorError("invalid armor: malformed line")
        if len(line) < _COLUMNS or line.endswith(b"="):
            # The short (or padded) line must be the last one: the footer follows.
            if self._line() != END:
                raise ArmorError("invalid armor: short line before the end")
            self._decode_line(line)
            self._finish()
            return
        self._decode_line(line)

    def _decode_line(self, line: bytes) -> None:
        if len(line) % 4:
            raise ArmorError("invalid armor: base64 without padding")
        try:
            data = base64.b64decode(line, validate=True)
        except binascii.Error:
            raise ArmorError("invalid armor: invalid base64") from None
        if base64.b64encode(data) != line:
            raise ArmorError("invalid armor: non-canonical base64")
        self._decoded += data

    def _finish(self) -> None:
        self._done = True
        # Only whitespace may follow, and not endlessly: read at most a
        # little more than the allowance, never "the rest of the stream".
        trailing = bytes(self._pending)
        self._pending.clear()
        if len(trailing) <= _MAX_TRAILING:
            trailing += self._raw.read(_MAX_TRAILING + 1 - len(trailing))
        if len(trailing) > _MAX_TRAILING or trailing.strip(_WHITESPACE):
            raise ArmorError("invalid armor: data after the PEM footer")

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` decoded bytes (all of them if negative)."""
        if not self._started:
            self._start()
        while (size < 0 or len(self._decoded) < size) and not self._done:
            self._decode_more()
        if size < 0:
            size = len(self._decoded)
        data = bytes(self._decoded[:size])
        del self._decoded[:size]
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)


class ArmorWriter:
    """A binary writer that armors what is written to it.

    :meth:`close` writes the footer; it does not close the underlying file.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._pending = bytearray()
        self._closed = False
        raw.write(BEGIN + b"\n")

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._pending += data
        # Whole lines only: 48 bytes make one 64-column line.
        whole = len(self._pending) - len(self._pending) % 48
        if whole >= 48 * 256:
            self._emit(whole)
        return len(data)

    def _emit(self, size: int) -> None:
        block = bytes(self._pending[:size])
        del self._pending[:size]
        lines = [base64.b64encode(block[i : i + 48]) for i in range(0, len(block), 48)]
        self._raw.write(b"\n".join(lines) + b"\n")

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending:
            self._emit(len(self._pending))
        self._raw.write(END + b"\n")
