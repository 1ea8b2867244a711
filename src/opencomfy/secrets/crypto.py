"""AES-256-GCM sealing with a keyring: the first key seals, every key opens (rotation).

The keyring comes from configuration as "id:base64key,id:base64key" (32-byte keys). Each
ciphertext records which key sealed it, and is bound to its owner (workspace and secret id)
as associated data, so a sealed value copied onto another row does not open."""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12


class KeyringError(ValueError):
    """The configured keyring cannot be used."""


class Keyring:
    def __init__(self, spec: str) -> None:
        self._keys: dict[str, AESGCM] = {}
        self.current_id = ""
        for part in (p.strip() for p in spec.split(",") if p.strip()):
            key_id, sep, encoded = part.partition(":")
            if not sep or not key_id:
                raise KeyringError("each secrets key is written id:base64key")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except ValueError:
                raise KeyringError(f"secrets key {key_id} is not base64") from None
            if len(raw) != 32:
                raise KeyringError(f"secrets key {key_id} must be 32 bytes")
            self._keys[key_id] = AESGCM(raw)
            self.current_id = self.current_id or key_id
        if not self._keys:
            raise KeyringError("no secrets key configured")

    def seal(self, plaintext: str, *, bound_to: str) -> tuple[str, str]:
        """(key id, base64(nonce || ciphertext+tag))."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self.current_id].encrypt(nonce, plaintext.encode(), bound_to.encode())
        return self.current_id, base64.b64encode(nonce + sealed).decode()

    def open(self, key_id: str, blob: str, *, bound_to: str) -> str:
        aead = self._keys.get(key_id)
        if aead is None:
            raise KeyringError(f"secrets key {key_id} is no longer configured")
        raw = base64.b64decode(blob)
        try:
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], bound_to.encode()).decode()
        except InvalidTag:
            raise KeyringError("a sealed secret does not open (tampered or wrong key)") from None
