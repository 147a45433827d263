"""``ObjectStore`` decorator: client-side encryption of every data object of a backup.

Writes: with an active key, every object but ``manifest.json`` is encrypted (format in
``format.py``) while it streams; the manifest stays plain, because it is the commit marker and
what a catalog rebuild reads (it records the key id; its sizes and SHA-256s are of the
plaintext). Without an active key nothing is encrypted.

Reads: any object whose first bytes are an encryption header is decrypted with the key its
header names (so a backup stays readable after the active key changed, as long as its key is
still in the keyring); any other object (a manifest, a backup from before encryption) is
returned as stored. ``head`` reports the plaintext size, so size checks against the manifest
keep working; it reads the object's first bytes to find out (one small ranged read). ``list``
reports the stored sizes (it would otherwise read every object).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

from bbr_orchestrator.adapters.encryption.format import (
    DEFAULT_CHUNK,
    FIXED,
    SALT,
    Header,
    associated_data,
    check_chunk_size,
    make_header,
    object_cipher,
)
from bbr_orchestrator.adapters.encryption.keyring import Keyring
from bbr_orchestrator.adapters.encryption.reader import (
    DecryptingStream,
    PrefixedStream,
    close_quietly,
    read_header,
)
from bbr_orchestrator.adapters.encryption.writer import EncryptingUpload, SealedBuffers, Sealer
from bbr_orchestrator.core.layout import MANIFEST_NAME
from bbr_orchestrator.ports import MultipartUpload, ObjectStore, ReadStream, StoredObject


class EncryptingStore:
    """Encrypts data objects with ``active_key_id`` (None: writes stay plain) on their way to
    ``inner``; decrypts any encrypted object with the key of ``keyring`` its header names.

    Objects are bound to their key relative to ``prefix`` (the store's configured prefix), so
    moving a whole prefix keeps backups readable while renaming or copying one object does
    not. Raises ``EncryptionKeyUnavailable`` at once when the active key cannot be loaded."""

    def __init__(
        self,
        inner: ObjectStore,
        keyring: Keyring,
        active_key_id: str | None,
        *,
        prefix: str = "",
        chunk_size: int = DEFAULT_CHUNK,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.inner = inner
        self.keyring = keyring
        self.active_key_id = active_key_id
        self._prefix = prefix.strip("/")
        self._chunk_size = check_chunk_size(chunk_size)
        self._random = random_bytes
        self._buffers = SealedBuffers()
        if active_key_id is not None:
            keyring.key(active_key_id, "encrypting new backups")

    def __repr__(self) -> str:
        return f"EncryptingStore({self.inner!r}, active_key_id={self.active_key_id!r})"

    # -- writing -------------------------------------------------------------------------------

    def _new_sealer(self, key: str) -> Sealer | None:
        """The sealer of a new object at ``key``; None when it is stored plain."""
        if self.active_key_id is None or key.rpartition("/")[2] == MANIFEST_NAME:
            return None
        header = make_header(self.active_key_id, self._random(SALT), self._chunk_size)
        return self._sealer(header, key, "encrypting new backups")

    def _sealer(self, header: Header, key: str, needed_for: str) -> Sealer:
        secret = self.keyring.key(header.key_id, needed_for)
        name = key[len(self._prefix) + 1 :] if key.startswith(self._prefix + "/") else key
        return Sealer(object_cipher(secret, header.salt), header, associated_data(header, name))

    def start_upload(self, key: str) -> MultipartUpload:
        sealer = self._new_sealer(key)
        upload = self.inner.start_upload(key)
        return upload if sealer is None else EncryptingUpload(upload, sealer, buffers=self._buffers)

    def put(self, key: str, data: bytes) -> None:
        sealer = self._new_sealer(key)
        self.inner.put(key, data if sealer is None else sealer.seal_object(data))

    # -- reading -------------------------------------------------------------------------------

    def open_read(self, key: str, offset: int = 0) -> ReadStream:
        """The plaintext from ``offset``: an encrypted object is read from the chunk holding
        that byte, every chunk authenticated before its bytes are returned."""
        if offset < 0:
            raise ValueError(f"read offset {offset} is negative")
        stream = self.inner.open_read(key, 0)
        try:
            prefix, header = read_header(stream, key)
            if header is None:
                if offset == 0:
                    return PrefixedStream(prefix, stream)
                close_quietly(stream)
                return self.inner.open_read(key, offset)
            sealer = self._sealer(header, key, f"reading {key}")
            index, skip = divmod(offset, header.chunk_size)
            if index:
                close_quietly(stream)
                stream = self.inner.open_read(key, header.chunk_offset(index))
            return DecryptingStream(stream, sealer, key, index, skip)
        except BaseException:
            close_quietly(stream)
            raise

    def head(self, key: str) -> StoredObject | None:
        """The object with its plaintext size (an encrypted object's first bytes are read)."""
        found = self.inner.head(key)
        if found is None or found.size < FIXED or key.rpartition("/")[2] == MANIFEST_NAME:
            return found
        stream = self.inner.open_read(key, 0)
        try:
            _, header = read_header(stream, key)
        finally:
            close_quietly(stream)
        if header is None:
            return found
        return replace(found, size=header.plaintext_size(found.size))

    # -- passed through ------------------------------------------------------------------------

    def list(self, prefix: str) -> Iterator[StoredObject]:
        return self.inner.list(prefix)

    def delete(self, keys: Sequence[str]) -> None:
        self.inner.delete(keys)

    def abort_incomplete_uploads(self, prefix: str) -> int:
        return self.inner.abort_incomplete_uploads(prefix)
