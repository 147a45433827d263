"""The keys objects are encrypted with, by id; each loaded when first needed, never shown."""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Callable, Mapping

from bbr_orchestrator.adapters.encryption.format import KEY_BYTES
from bbr_orchestrator.errors import OrchestratorError, SecretError

KeyLoader = Callable[[], bytes]
"""Returns the 32 key bytes (raises ``OrchestratorError``, e.g. ``SecretError``, when it
cannot)."""


class EncryptionKeyUnavailable(OrchestratorError):
    """An encryption key that is needed is not in the keyring, or its secret cannot be read;
    names the key id and what it was needed for (an object key, or new backups)."""

    def __init__(self, key_id: str, needed_for: str, reason: str) -> None:
        self.key_id = key_id
        self.needed_for = needed_for
        self.reason = reason
        super().__init__(f"encryption key {key_id!r} (needed for {needed_for}): {reason}")


def decode_key(text: str, source: str) -> bytes:
    """The key bytes of a secret holding the base64 of 32 random bytes (``SecretError``
    naming ``source`` otherwise; the value is never in the message)."""
    try:
        key = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise SecretError(
            source,
            f"an encryption key must be the base64 of {KEY_BYTES} random bytes "
            "(make one with `head -c 32 /dev/urandom | base64`)",
        )
    return key


class Keyring:
    """Keys by id. Each is loaded (its secret resolved) on first use and kept; ``repr`` shows
    the ids only. Thread-safe."""

    def __init__(self, keys: Mapping[str, bytes | KeyLoader]) -> None:
        self._loaders: dict[str, KeyLoader] = {}
        self._keys: dict[str, bytes] = {}
        for key_id, key in keys.items():
            if isinstance(key, bytes):
                self._keys[key_id] = _checked(key_id, key)
            else:
                self._loaders[key_id] = key
        self._lock = threading.Lock()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(sorted({*self._keys, *self._loaders}))

    def __repr__(self) -> str:
        return f"Keyring(ids={list(self.ids)})"

    def key(self, key_id: str, needed_for: str) -> bytes:
        """The key ``key_id``; ``EncryptionKeyUnavailable`` naming it and ``needed_for``."""
        with self._lock:
            found = self._keys.get(key_id)
            if found is not None:
                return found
            loader = self._loaders.get(key_id)
            if loader is None:
                known = ", ".join(repr(i) for i in self.ids) or "none"
                reason = (
                    f"not in the keyring (configured keys: {known}); add it to "
                    "encryption.keys: old keys must stay there while backups made with them "
                    "are kept"
                )
                raise EncryptionKeyUnavailable(key_id, needed_for, reason)
            try:
                loaded = _checked(key_id, loader())
            except OrchestratorError as exc:
                raise EncryptionKeyUnavailable(key_id, needed_for, str(exc)) from exc
            self._keys[key_id] = loaded
            return loaded


def _checked(key_id: str, key: bytes) -> bytes:
    if len(key) != KEY_BYTES:
        raise ValueError(f"key {key_id!r} must be {KEY_BYTES} bytes (AES-256), got {len(key)}")
    return key
