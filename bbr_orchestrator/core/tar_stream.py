"""Incremental tar verifier: hash every regular-file member of a tar while it streams past.

Bytes arrive in chunks of any size through :meth:`TarHasher.feed`; headers are parsed as they
complete (POSIX ustar, GNU long names ``L``/``K``, PAX ``x``/``g`` with ``path=``/``size=``,
GNU base-256 sizes), member content goes straight from the chunk into SHA-256 without copies,
and :meth:`TarHasher.close` checks that the archive ended properly. Memory is O(1) in member
size: at most one 512-byte header plus pending extended-header data (capped) is held.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NoReturn

from bbr_orchestrator.errors import TarStreamError

BLOCK = 512
DEFAULT_MAX_EXTENDED_HEADER = 1 << 20
"""Cap on the data of one PAX / GNU long-name header (and on all global PAX records)."""

_ZERO_BLOCK = bytes(BLOCK)
_OCTAL_DIGITS = b"01234567"
_REGULAR = {b"0": "file", b"\0": "file", b"7": "contiguous"}
_NO_DATA = frozenset({b"1", b"2", b"3", b"4", b"5", b"6"})  # links, devices, dirs, fifos
_UNSUPPORTED = {b"S": "GNU sparse member", b"M": "GNU multi-volume continuation"}
_HEADER, _DATA, _PADDING, _END = range(4)


@dataclass(frozen=True)
class TarMember:
    """One regular-file member: its normalised name (``./dir/file``), size and content SHA-256."""

    name: str
    size: int
    sha256: str
    type: str = "file"
    """``file`` (typeflag ``0`` or NUL) or ``contiguous`` (typeflag ``7``)."""


def normalise_member_name(name: str) -> str:
    """Name a member the way bbr's metadata does: ``dump.sql``, ``./dump.sql`` -> ``./dump.sql``.

    Empty and ``.`` path components are dropped (so ``./``, ``.`` and ``/`` become ``./`` and a
    directory's trailing slash goes); ``..`` is kept as is, never resolved.
    """
    parts = [p for p in name.split("/") if p not in ("", ".")]
    return "./" + "/".join(parts)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _cstring(field: bytes) -> bytes:
    return field.split(b"\0", 1)[0]


class TarHasher:
    """Parse a tar fed in chunks and hash each regular file's content with SHA-256.

    ``file`` names the tar in errors. With ``require_end_marker`` (the default; GNU tar and
    Python's tarfile always write it) the stream must end with the two zero blocks of the
    end-of-archive marker; without it, EOF at any block boundary between members is accepted,
    so a tar cut off between two members can only be caught by comparing the member list.
    """

    def __init__(
        self,
        file: str = "<tar stream>",
        *,
        require_end_marker: bool = True,
        max_extended_header: int = DEFAULT_MAX_EXTENDED_HEADER,
    ) -> None:
        self._file = file
        self._require_end = require_end_marker
        self._max_ext = max_extended_header
        self._offset = 0
        self._state = _HEADER
        self._header = bytearray()
        self._remaining = 0
        self._padding = 0
        self._zero_blocks = 0
        self._kind = b""  # typeflag of the member whose data is streaming
        self._name = ""
        self._size = 0
        self._type = ""
        self._hash: hashlib._Hash | None = None
        self._collect: bytearray | None = None
        self._global_pax: dict[str, str] = {}
        self._pax: dict[str, str] | None = None
        self._longname: str | None = None
        self._members: list[TarMember] = []
        self._closed = False
        self._failure: TarStreamError | None = None

    @property
    def bytes_seen(self) -> int:
        """How many bytes have been fed so far."""
        return self._offset

    def _error(self, reason: str, member: str | None = None, offset: int | None = None) -> NoReturn:
        """Raise (and remember: every later call raises it again) a :class:`TarStreamError`."""
        at = self._offset if offset is None else offset
        self._failure = TarStreamError(self._file, at, reason, member)
        self._closed = True
        raise self._failure

    def feed(self, chunk: bytes | bytearray | memoryview) -> None:
        """Consume the next bytes of the tar; raises :class:`TarStreamError` on malformed input."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise ValueError("TarHasher.feed() after close()")
        mv = memoryview(chunk)
        if mv.ndim != 1 or mv.itemsize != 1:
            mv = mv.cast("B")
        end = len(mv)
        pos = 0
        while pos < end:
            state = self._state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                if self._hash is not None:
                    self._hash.update(mv[pos : pos + take])
                elif self._collect is not None:
                    self._collect += mv[pos : pos + take]
                pos += take
                self._offset += take
                self._remaining -= take
                if not self._remaining:
                    self._finish_data()
            elif state == _PADDING:
                take = min(self._padding, end - pos)
                pos += take
                self._offset += take
                self._padding -= take
                if not self._padding:
                    self._state = _HEADER
            elif state == _HEADER:
                if not self._header and end - pos >= BLOCK:
                    block = mv[pos : pos + BLOCK].tobytes()
                    pos += BLOCK
                    self._offset += BLOCK
                else:
                    take = min(BLOCK - len(self._header), end - pos)
                    self._header += mv[pos : pos + take]
                    pos += take
                    self._offset += take
                    if len(self._header) < BLOCK:
                        continue
                    block = bytes(self._header)
                    self._header.clear()
                self._on_header(block)
            else:  # after the end-of-archive marker only zero padding may follow
                rest = mv[pos:end].tobytes()
                if rest.count(0) != len(rest):
                    start = self._offset + len(rest) - len(rest.lstrip(b"\0"))
                    self._error("non-zero data after the end-of-archive marker", offset=start)
                self._offset += len(rest)
                pos = end

    def _on_header(self, block: bytes) -> None:
        start = self._offset - BLOCK
        if block == _ZERO_BLOCK:
            if self._pax is not None or self._longname is not None:
                self._error("extended header not followed by a member", offset=start)
            self._zero_blocks += 1
            if self._zero_blocks == 2:
                self._state = _END
            return
        if self._zero_blocks:
            self._error("archive continues after an end-of-archive block", offset=start)
        self._check_checksum(block, start)
        kind = block[156:157]
        size = self._number(block[124:136], "size", start)
        if kind in (b"L", b"x", b"X", b"g"):
            if size > self._max_ext:
                self._error(f"extended header of {size} bytes exceeds the cap", offset=start)
            self._begin_data(kind, "", size, collect=True)
            return
        if kind == b"K":  # GNU long link name: not needed to verify content
            self._begin_data(kind, "", size)
            return
        if kind in _UNSUPPORTED:
            self._error(f"unsupported tar member type: {_UNSUPPORTED[kind]}", offset=start)
        raw = _cstring(block[0:100])
        if block[257:263] == b"ustar\0":
            prefix = _cstring(block[345:500])
            if prefix:
                raw = prefix + b"/" + raw
        name = _decode(raw)
        if self._longname is not None:
            name = self._longname
        pax = self._global_pax if self._pax is None else self._pax
        if any(key.startswith("GNU.sparse.") for key in pax):
            self._error("unsupported tar member type: PAX sparse member", offset=start)
        name = pax.get("path") or name
        if "size" in pax:
            size = self._pax_size(pax["size"], start)
        self._pax = None
        self._longname = None
        member = normalise_member_name(name)
        if kind in _REGULAR and not (kind == b"\0" and name.endswith("/")):
            self._hash = hashlib.sha256()
            self._type = _REGULAR[kind]
            self._begin_data(kind, member, size)
        elif kind in _NO_DATA or kind == b"\0":  # size is ignored for these, as tarfile does
            self._state = _HEADER
        else:  # unknown type (e.g. GNU volume label 'V'): skip its data
            self._begin_data(kind, member, size)

    def _begin_data(self, kind: bytes, name: str, size: int, *, collect: bool = False) -> None:
        self._kind, self._name, self._size = kind, name, size
        self._collect = bytearray() if collect else None
        self._remaining = size
        self._padding = -size % BLOCK
        self._state = _DATA
        if not size:
            self._finish_data()

    def _finish_data(self) -> None:
        kind = self._kind
        if self._hash is not None:
            digest = self._hash.hexdigest()
            self._members.append(TarMember(self._name, self._size, digest, self._type))
            self._hash = None
        elif self._collect is not None:
            data = bytes(self._collect)
            self._collect = None
            if kind == b"L":
                self._longname = _decode(_cstring(data))
            elif kind == b"g":
                self._global_pax = self._merge_pax(self._global_pax, data)
                if sum(len(k) + len(v) for k, v in self._global_pax.items()) > self._max_ext:
                    self._error("global PAX headers exceed the cap")
            else:
                base = self._global_pax if self._pax is None else self._pax
                self._pax = self._merge_pax(base, data)
        self._state = _PADDING if self._padding else _HEADER

    def _merge_pax(self, base: dict[str, str], data: bytes) -> dict[str, str]:
        """Parse PAX records (``"<len> <key>=<value>\\n"``); an empty value unsets the key."""
        merged = dict(base)
        pos, end = 0, len(data.rstrip(b"\0"))
        while pos < end:
            space = data.find(b" ", pos, end)
            digits = data[pos:space] if space > pos else b""
            length = int(digits) if digits.isdigit() else 0
            record = data[space + 1 : pos + length - 1]
            equals = record.find(b"=")
            if length <= 0 or pos + length > end or data[pos + length - 1] != 0x0A or equals < 1:
                self._error("malformed PAX extended header record")
            key, value = _decode(record[:equals]), _decode(record[equals + 1 :])
            if value:
                merged[key] = value
            else:
                merged.pop(key, None)
            pos += length
        return merged

    def _pax_size(self, value: str, start: int) -> int:
        if not value.isascii() or not value.isdigit():
            self._error(f"invalid PAX size {value!r}", offset=start)
        return int(value)

    def _check_checksum(self, block: bytes, start: int) -> None:
        field = _cstring(block[148:156]).strip(b" ")
        if not field or field.strip(_OCTAL_DIGITS):
            self._error("not a tar header (bad checksum field)", offset=start)
        stored = int(field, 8)
        unsigned = sum(block) - sum(block[148:156]) + 8 * 0x20
        if stored == unsigned:
            return
        high = sum(1 for b in block[:148] + block[156:] if b & 0x80)  # historic signed sum
        if stored != unsigned - 256 * high:
            self._error("not a tar header (checksum mismatch)", offset=start)

    def _number(self, field: bytes, what: str, start: int) -> int:
        if field[0] == 0x80:  # GNU base-256, used for sizes of 8 GiB and more
            return int.from_bytes(field[1:], "big")
        if field[0] & 0x80:
            self._error(f"invalid {what} field (negative or unknown encoding)", offset=start)
        digits = _cstring(field).strip(b" ")
        if digits.strip(_OCTAL_DIGITS):
            self._error(f"invalid {what} field {field!r}", offset=start)
        return int(digits, 8) if digits else 0

    def close(self) -> list[TarMember]:
        """Check the archive ended properly; return the regular-file members in archive order.

        Raises :class:`TarStreamError` if the stream stopped inside a header, a member's data or
        its padding, after an extended header, or (with ``require_end_marker``) before the
        two-zero-block end-of-archive marker.
        """
        if self._failure is not None:
            raise self._failure
        if not self._closed:
            self._closed = True
            if self._state == _DATA:
                what = f"member data ({self._remaining} bytes missing)"
                self._error(f"truncated inside {what}", self._name or None)
            if self._state == _PADDING:
                self._error("truncated inside the padding after a member", self._name or None)
            if self._header:
                self._error("truncated inside a header")
            if self._pax is not None or self._longname is not None:
                self._error("ends after an extended header, without its member")
            if self._offset == 0:
                self._error("empty stream: not a tar")
            if self._require_end and self._state != _END:
                self._error("no end-of-archive marker (truncated?)")
        return list(self._members)
