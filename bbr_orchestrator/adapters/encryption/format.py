"""The stored format of an encrypted object (version 1) and the arithmetic over it.

An encrypted object is a header followed by AES-256-GCM sealed chunks::

    header   "BBRENC"                 6 bytes  magic
             version                  1 byte   1
             chunk size               4 bytes  plaintext bytes per chunk, big-endian
             key id length n          1 byte   1..64
             key id                   n bytes  UTF-8: which key of the keyring
             salt                     32 bytes random, per object
    chunk i  ciphertext || GCM tag    (plaintext length + 16) bytes

Every chunk but the last holds exactly ``chunk size`` plaintext bytes; the last holds fewer
(0 .. chunk size - 1), so every object, the empty one included, ends with one short final
chunk. Chunk ``i`` is sealed under the object key ``HKDF-SHA256(key, salt)`` (a fresh key
per object: nonces never repeat under a key) with the nonce ``i (8 bytes) || final (1 byte)
|| 0 0 0`` and the associated data ``header || object name`` (the key relative to the store's
prefix). So a flipped byte, a chunk moved or swapped, a chunk dropped at the end (the object
then ends on a non-final chunk), bytes appended after the final chunk, and an object copied
under another name all fail authentication. The plaintext size follows from the stored size
and the header alone (no key needed).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"BBRENC"
VERSION = 1
TAG = 16
"""Bytes of the GCM tag after each chunk."""
SALT = 32
KEY_BYTES = 32
MAX_KEY_ID = 64
FIXED = len(MAGIC) + 1 + 4 + 1
"""The header's bytes before the key id: enough to tell an encrypted object from a plain one."""
MAX_HEADER = FIXED + MAX_KEY_ID + SALT
DEFAULT_CHUNK = 64 * 1024
"""64 KiB: AES-GCM runs at full speed from here (about 2.3 GB/s on one core, 16 KiB chunks
reach half that), the tags cost 0.02 %, a random read decrypts at most 64 KiB it does not
return, and it divides 1 MiB, so the upload pipeline's parts (whole MiB) are whole chunks."""
MIN_CHUNK = 4 * 1024
MAX_CHUNK = 16 * 1024 * 1024
_INFO = b"bbr-orchestrator object key v1"


class FormatError(ValueError):
    """Internal: a header that is not a valid version-1 header (the caller names the object)."""


@dataclass(frozen=True)
class Header:
    """The parsed header of one encrypted object."""

    key_id: str
    salt: bytes
    chunk_size: int
    raw: bytes
    """The header's bytes as stored (authenticated with every chunk)."""

    @property
    def size(self) -> int:
        return len(self.raw)

    def chunk_offset(self, index: int) -> int:
        """Where chunk ``index`` starts in the stored object."""
        return self.size + index * (self.chunk_size + TAG)

    def plaintext_size(self, stored_size: int) -> int:
        """The plaintext bytes of an object of ``stored_size`` bytes with this header.

        A stored size no complete object can have (cut inside a chunk's tag) maps to the bytes
        of its complete chunks only, so that it differs from any size a manifest records."""
        body = max(stored_size - self.size, 0)
        full, rest = divmod(body, self.chunk_size + TAG)
        return full * self.chunk_size + max(rest - TAG, 0)


def stored_size(header_size: int, plaintext: int, chunk_size: int) -> int:
    """Bytes of the stored object holding ``plaintext`` bytes."""
    return header_size + plaintext + TAG * (plaintext // chunk_size + 1)


def check_chunk_size(chunk_size: int) -> int:
    if not MIN_CHUNK <= chunk_size <= MAX_CHUNK or chunk_size & (chunk_size - 1):
        raise ValueError(
            f"chunk size must be a power of two in {MIN_CHUNK} .. {MAX_CHUNK}, got {chunk_size}"
        )
    return chunk_size


def make_header(key_id: str, salt: bytes, chunk_size: int) -> Header:
    raw_id = key_id.encode()
    if not 1 <= len(raw_id) <= MAX_KEY_ID:
        raise ValueError(f"a key id must be 1 .. {MAX_KEY_ID} bytes, got {len(raw_id)}")
    if len(salt) != SALT:
        raise ValueError(f"the salt must be {SALT} bytes")
    raw = MAGIC + struct.pack(">BIB", VERSION, chunk_size, len(raw_id)) + raw_id + salt
    return Header(key_id, salt, check_chunk_size(chunk_size), raw)


def is_encrypted(prefix: bytes) -> bool:
    """Whether an object's first bytes are an encryption header (of any version)."""
    return prefix.startswith(MAGIC)


def rest_of_header(fixed: bytes) -> int:
    """How many header bytes follow the fixed part ``fixed`` (``FIXED`` bytes)."""
    version, chunk_size, id_length = struct.unpack(">BIB", fixed[len(MAGIC) : FIXED])
    if version != VERSION:
        raise FormatError(f"encryption format version {version} is not supported (only 1)")
    try:
        check_chunk_size(chunk_size)
    except ValueError as exc:
        raise FormatError(f"the encryption header is damaged: {exc}") from exc
    if not 1 <= id_length <= MAX_KEY_ID:
        raise FormatError(f"the encryption header is damaged: key id length {id_length}")
    return int(id_length) + SALT


def parse_header(raw: bytes) -> Header:
    """The header in ``raw`` (exactly the header's bytes)."""
    rest_of_header(raw[:FIXED])
    _, chunk_size, id_length = struct.unpack(">BIB", raw[len(MAGIC) : FIXED])
    try:
        key_id = raw[FIXED : FIXED + id_length].decode()
    except UnicodeDecodeError as exc:
        raise FormatError("the encryption header is damaged: the key id is not UTF-8") from exc
    return Header(key_id, raw[FIXED + id_length :], chunk_size, raw)


def nonce(index: int, final: bool) -> bytes:
    return struct.pack(">QB3x", index, 1 if final else 0)


def object_cipher(key: bytes, salt: bytes) -> AESGCM:
    """AES-256-GCM under the object's own key, derived from the keyring key and its salt."""
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_INFO)
    return AESGCM(derived.derive(key))


def associated_data(header: Header, name: str) -> bytes:
    return header.raw + name.encode()
