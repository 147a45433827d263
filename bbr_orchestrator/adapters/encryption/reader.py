"""Decrypting while reading: each chunk is authenticated before any of its bytes is returned.

The stream is trustworthy only once it ended without an error: a chunk dropped from the end
shows only there (the object then ends on a chunk that is not the final one). Bytes appended
after the final chunk make it read as longer than it is, so it fails authentication. Readers of the
store (fetch, verify) read every object to its end and discard it on any error.
"""

from __future__ import annotations

import contextlib
from typing import NoReturn

from cryptography.exceptions import InvalidTag

from bbr_orchestrator.adapters.encryption.format import (
    FIXED,
    TAG,
    FormatError,
    Header,
    is_encrypted,
    nonce,
    parse_header,
    rest_of_header,
)
from bbr_orchestrator.adapters.encryption.writer import Sealer
from bbr_orchestrator.errors import ArtifactCorrupt, OrchestratorError
from bbr_orchestrator.ports import ReadStream


def fill(stream: ReadStream, view: memoryview) -> int:
    """Read into ``view`` until it is full or the stream ends; returns the bytes read."""
    got = 0
    while got < len(view):
        n = stream.readinto(view[got:])
        if n == 0:
            break
        got += n
    return got


def read_header(stream: ReadStream, key: str) -> tuple[bytes, Header | None]:
    """The first bytes of the object and, when it is encrypted, its header (the bytes read
    are then exactly the header). ``ArtifactCorrupt`` naming ``key`` for a damaged header."""
    fixed = bytearray(FIXED)
    got = fill(stream, memoryview(fixed))
    prefix = bytes(fixed[:got])
    if got < FIXED or not is_encrypted(prefix):
        return prefix, None
    try:
        rest = bytearray(rest_of_header(prefix))
        if fill(stream, memoryview(rest)) != len(rest):
            raise FormatError("the object ends inside its encryption header")
        raw = prefix + bytes(rest)
        return raw, parse_header(raw)
    except FormatError as exc:
        raise ArtifactCorrupt(key, None, str(exc)) from exc


class PrefixedStream:
    """A plain object whose first bytes were already read (to look for a header)."""

    def __init__(self, prefix: bytes, rest: ReadStream) -> None:
        self._prefix, self._rest = memoryview(prefix), rest

    def readinto(self, buffer: memoryview) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        return self._rest.readinto(buffer)

    def close(self) -> None:
        self._rest.close()


class DecryptingStream:
    """The plaintext of an encrypted object from ``skip`` bytes into chunk ``index``;
    ``inner`` is positioned at that chunk. Damage is ``ArtifactCorrupt`` naming ``key``."""

    def __init__(self, inner: ReadStream, sealer: Sealer, key: str, index: int, skip: int) -> None:
        self._inner, self._sealer, self._key = inner, sealer, key
        self._index, self._skip = index, skip
        cs = sealer.chunk_size
        self._sealed = memoryview(bytearray(cs + TAG))
        self._plain = memoryview(bytearray(cs))
        self._pos = self._len = 0
        self._done = False
        self._failed: ArtifactCorrupt | None = None

    def readinto(self, buffer: memoryview) -> int:
        """Fill ``buffer`` with as many authenticated chunks as fit (a chunk is decrypted into
        a buffer of our own and copied out only once its tag checked)."""
        if self._failed is not None:
            raise self._failed
        got = 0
        while got < len(buffer):
            if self._pos == self._len:
                if self._done:
                    break
                try:
                    self._next_chunk()
                except ArtifactCorrupt as exc:
                    if not got:
                        raise
                    self._failed = exc  # the good bytes first; the fault on the next read
                    break
                continue
            n = min(len(buffer) - got, self._len - self._pos)
            buffer[got : got + n] = self._plain[self._pos : self._pos + n]
            self._pos += n
            got += n
        return got

    def _next_chunk(self) -> None:
        cs, index = self._sealer.chunk_size, self._index
        got = fill(self._inner, self._sealed)
        if got == 0:
            self._corrupt(
                f"ends after chunk {index - 1} without its final chunk (truncated)"
                if index
                else "has no chunk after its header (truncated)"
            )
        if got < TAG:
            self._corrupt(f"chunk {index} is cut short ({got} bytes)")
        final = got < cs + TAG
        try:
            self._sealer.cipher.decrypt_into(
                nonce(index, final), self._sealed[:got], self._sealer.aad, self._plain[: got - TAG]
            )
        except InvalidTag:
            self._corrupt(
                f"chunk {index} (plaintext bytes from {index * cs}) fails authentication: "
                "altered, reordered, truncated, or copied from another object"
            )
        length = got - TAG
        if self._skip > length:
            raise ValueError(f"{self._key}: offset past the end of the object")
        self._pos, self._len, self._skip = self._skip, length, 0
        self._index, self._done = index + 1, final

    def _corrupt(self, reason: str) -> NoReturn:
        raise ArtifactCorrupt(self._key, None, f"encrypted object {reason}")

    def close(self) -> None:
        self._inner.close()


def close_quietly(stream: ReadStream) -> None:
    with contextlib.suppress(OrchestratorError):
        stream.close()
