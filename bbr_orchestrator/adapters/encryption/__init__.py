"""Client-side encryption of stored backups (AES-256-GCM in authenticated chunks).

- :class:`EncryptingStore` implements ``ports.ObjectStore`` around the real store.
- :class:`Keyring` holds the keys by id (loaded when first needed); :func:`decode_key` reads
  one from its secret (base64 of 32 random bytes).
- ``format.py`` documents the stored format.
"""

from bbr_orchestrator.adapters.encryption.format import DEFAULT_CHUNK
from bbr_orchestrator.adapters.encryption.keyring import (
    EncryptionKeyUnavailable,
    KeyLoader,
    Keyring,
    decode_key,
)
from bbr_orchestrator.adapters.encryption.store import EncryptingStore

__all__ = [
    "DEFAULT_CHUNK",
    "EncryptingStore",
    "EncryptionKeyUnavailable",
    "KeyLoader",
    "Keyring",
    "decode_key",
]
