"""The age v1 header: stanzas, parsing and serialisation (age.md, "Header").

The parser is strict: anything that would not be written back byte for byte
is refused, so the header MAC is computed over exactly what was read. Every
line has a length limit and the header as a whole has a size limit, so a
hostile file cannot make the parser hold unbounded memory.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from hashlib import sha256
from typing import BinaryIO

from vault.age import _b64
from vault.age._crypto import hkdf_sha256
from vault.errors import HeaderError

__all__ = [
    "MAX_HEADER_SIZE",
    "MAX_LINE_LENGTH",
    "MAX_STANZAS",
    "Header",
    "Source",
    "Stanza",
    "parse_header",
]

VERSION_LINE = b"age-encryption.org/v1\n"
_VERSION_PREFIX = b"age-encryption.org/"
_COLUMNS = 64
MAX_LINE_LENGTH = 8192
"""Longest header line accepted; the longest native argument line is ~1.5 KiB."""
MAX_HEADER_SIZE = 4 * 1024 * 1024
"""Largest header accepted, room for thousands of recipients."""
MAX_STANZAS = 10_000
"""Most stanzas accepted in one header."""
_ARGUMENT = re.compile(rb"[\x21-\x7e]+")
_MAC_LINE = re.compile(rb"--- ([A-Za-z0-9+/]{43})\n")


@dataclass(frozen=True)
class Stanza:
    """One recipient stanza: a type, its further arguments and a binary body."""

    type: str
    args: tuple[str, ...]
    body: bytes

    def marshal(self) -> bytes:
        """Serialise the stanza with its body wrapped at 64 columns."""
        out = [b"-> " + " ".join((self.type, *self.args)).encode("ascii") + b"\n"]
        encoded = _b64.encode(self.body)
        for i in range(0, len(encoded), _COLUMNS):
            out.append(encoded[i : i + _COLUMNS] + b"\n")
        if len(encoded) % _COLUMNS == 0:
            out.append(b"\n")
        return b"".join(out)


@dataclass(frozen=True)
class Header:
    """A parsed header: the stanzas and the MAC that closes it."""

    stanzas: tuple[Stanza, ...]
    mac: bytes

    def marshal_without_mac(self) -> bytes:
        """The bytes the MAC covers: everything up to and including ``---``."""
        return VERSION_LINE + b"".join(s.marshal() for s in self.stanzas) + b"---"

    def marshal(self) -> bytes:
        """Serialise the whole header, MAC line included."""
        return self.marshal_without_mac() + b" " + _b64.encode(self.mac) + b"\n"

    @classmethod
    def seal(cls, stanzas: Sequence[Stanza], file_key: bytes) -> Header:
        """Build a header over ``stanzas`` with the MAC keyed by ``file_key``."""
        unsigned = cls(stanzas=tuple(stanzas), mac=b"")
        return cls(stanzas=tuple(stanzas), mac=compute_mac(unsigned, file_key))

    def verify_mac(self, file_key: bytes) -> bool:
        """Whether the MAC matches ``file_key`` (compared in constant time)."""
        return hmac.compare_digest(compute_mac(self, file_key), self.mac)


def compute_mac(header: Header, file_key: bytes) -> bytes:
    """HMAC-SHA-256 of the header up to ``---`` under the header key."""
    key = hkdf_sha256(file_key, b"", b"header")
    return hmac.new(key, header.marshal_without_mac(), sha256).digest()


class Source:
    """A byte source with a small look-ahead buffer over a binary file object.

    The header is read line by line and the payload continues right after it,
    on streams that cannot seek (pipes, sockets), so the bytes read ahead are
    kept here and handed out first.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._buf = bytearray()
        self._eof = False

    def _fill(self, size: int = 65536) -> bool:
        if self._eof:
            return False
        data = self._raw.read(size)
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    def readline(self, limit: int) -> bytes:
        """Read through the next ``\\n``; at most ``limit`` bytes, or less at EOF."""
        start = 0
        while True:
            end = self._buf.find(b"\n", start, limit)
            if end >= 0:
                line = bytes(self._buf[: end + 1])
                del self._buf[: end + 1]
                return line
            if len(self._buf) >= limit:
                raise HeaderError("malformed header: line too long")
            start = len(self._buf)
            if not self._fill(4096):
                line = bytes(self._buf)
                self._buf.clear()
                return line

    def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes ahead, without consuming them."""
        while len(self._buf) < size and self._fill(size - len(self._buf)):
            pass
        return bytes(self._buf[:size])

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes, fewer only at EOF."""
        if size < 0:
            raise RuntimeError("internal error: unbounded read")
        while len(self._buf) < size and self._fill(size - len(self._buf)):
            pass
        data = bytes(self._buf[:size])
        del self._buf[:size]
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Fill ``buffer`` as far as the data goes; returns 0 only at EOF."""
        view = memoryview(buffer).cast("B")
        filled = 0
        if self._buf:
            filled = min(len(self._buf), len(view))
            view[:filled] = self._buf[:filled]
            del self._buf[:filled]
        readinto = getattr(self._raw, "readinto", None)
        while filled < len(view) and not self._eof:
            if readinto is not None:
                n = readinto(view[filled:])
            else:
                data = self._raw.read(len(view) - filled)
                n = len(data)
                view[filled : filled + n] = data
            if not n:
                self._eof = True
                break
            filled += n
        return filled


def _parse_stanza(arg_line: bytes, source: Source, budget: int) -> tuple[Stanza, int]:
    """Parse one stanza; returns it and the number of body bytes read."""
    text = arg_line[3:-1]
    args = text.split(b" ")
    if not text or not all(_ARGUMENT.fullmatch(a) for a in args):
        raise HeaderError("malformed stanza: invalid or empty argument")
    body = []
    read = 0
    while True:
        line = source.readline(_COLUMNS + 1)
        if not line.endswith(b"\n"):
            raise HeaderError("malformed stanza: unexpected end of header")
        chunk = line[:-1]
        if len(chunk) > _COLUMNS:
            raise HeaderError("malformed stanza: body line longer than 64 columns")
        read += len(line)
        if read > budget:
            raise HeaderError("malformed header: header too large")
        body.append(chunk)
        if len(chunk) < _COLUMNS:
            break
    decoded = _b64.decode(b"".join(body))
    if decoded is None:
        raise HeaderError("malformed stanza: body is not canonical base64")
    names = [a.decode("ascii") for a in args]
    return Stanza(type=names[0], args=tuple(names[1:]), body=decoded), read


def parse_header(source: Source) -> Header:
    """Parse an age v1 header from ``source``, leaving it at the payload.

    Raises:
        HeaderError: the input is not an age v1 header or breaks a rule of it.
    """
    first = source.readline(MAX_LINE_LENGTH)
    if first != VERSION_LINE:
        if not first:
            raise HeaderError("empty input: not an age file")
        if first.startswith(_VERSION_PREFIX) and first.endswith(b"\n"):
            raise HeaderError(
                "unsupported age format version",
                hint="the file was made by a newer program; only age v1 is supported",
            )
        raise HeaderError("not an age file: invalid version line")
    stanzas: list[Stanza] = []
    size = len(first)
    while True:
        line = source.readline(MAX_LINE_LENGTH)
        size += len(line)
        if size > MAX_HEADER_SIZE:
            raise HeaderError("malformed header: header too large")
        if line.startswith(b"-> "):
            if len(stanzas) >= MAX_STANZAS:
                raise HeaderError("malformed header: too many stanzas")
            stanza, body_size = _parse_stanza(line, source, MAX_HEADER_SIZE - size)
            stanzas.append(stanza)
            size += body_size
            continue
        if line.startswith(b"---"):
            match = _MAC_LINE.fullmatch(line)
            mac = _b64.decode(match.group(1)) if match else None
            if mac is None:
                raise HeaderError("malformed header: invalid MAC line")
            if not stanzas:
                raise HeaderError("malformed header: no recipient stanzas")
            return Header(stanzas=tuple(stanzas), mac=mac)
        if not line.endswith(b"\n"):
            raise HeaderError("malformed header: unexpected end of header")
        raise HeaderError("malformed header: unexpected line")
