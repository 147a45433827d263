"""Per-request integrity headers, and a zero-copy request body over a memoryview."""

from __future__ import annotations

import base64
import hashlib
import io
import zlib
from enum import StrEnum
from typing import IO, cast


class ChecksumMode(StrEnum):
    """Which integrity header each part and object carries.

    ``crc32``: ``x-amz-checksum-crc32`` (checked by the store, recorded per part and
    re-sent on completion). ``md5``: only the classic ``Content-MD5``, for stores that reject
    the newer checksum headers (config ``request_checksums: when_required``).
    """

    CRC32 = "crc32"
    MD5 = "md5"


def integrity_params(data: memoryview, mode: ChecksumMode) -> dict[str, str]:
    """The boto3 parameters carrying ``data``'s checksum (computed once, reused on retries)."""
    if mode is ChecksumMode.CRC32:
        crc = zlib.crc32(data).to_bytes(4, "big")
        return {"ChecksumCRC32": base64.b64encode(crc).decode("ascii")}
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return {"ContentMD5": base64.b64encode(digest).decode("ascii")}


def byte_view(data: memoryview | bytes) -> memoryview:
    """A flat, byte-sized, read-only view of ``data`` (no copy)."""
    view = memoryview(data)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view.toreadonly()


def request_body(view: memoryview) -> bytes | IO[bytes]:
    """The cheapest body boto3 accepts for ``view``, still without a copy.

    A view of a whole ``bytes``/``bytearray`` (a full part buffer) goes as that object: botocore
    hashes it in one call and http.client sends it in one ``sendall`` (no ``Expect:
    100-continue`` round trip). Any other view (the last, shorter part) goes as a
    :class:`ViewReader`, which http.client reads in small blocks.
    """
    owner = view.obj
    if isinstance(owner, bytes | bytearray) and view.c_contiguous and len(view) == len(owner):
        return cast("bytes", owner)  # botocore takes a bytearray too; its stubs say bytes
    return cast("IO[bytes]", ViewReader(view))


class ViewReader(io.RawIOBase):
    """A seekable file over a memoryview, so a part is sent without copying it into ``bytes``."""

    def __init__(self, view: memoryview) -> None:
        super().__init__()
        self._view = view
        self._pos = 0

    def __len__(self) -> int:
        return len(self._view)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._view)}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._view[self._pos : self._pos + len(buffer)]
        buffer[: len(chunk)] = chunk
        self._pos += len(chunk)
        return len(chunk)

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._pos + size
        chunk = self._view[self._pos : end]
        self._pos += len(chunk)
        return bytes(chunk)
