"""Secrets at rest: AES-256-GCM with a key id on every value, so keys can be rotated live.

A stored secret reads ``enc:v1:<key id>:<nonce>:<ciphertext>`` (URL-safe base64). The first key
of the keyring encrypts; every key of the keyring decrypts. ``medianest rotate-key`` puts a new
key first, re-encrypts every stored secret under it, and leaves the old key in the keyring
until ``--prune``; a running process that meets a key id it does not know re-reads the keyring,
so rotation needs no restart.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "enc:v1:"


class DecryptionError(Exception):
    """A stored secret cannot be decrypted with any key of the keyring."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode()
    )


def key_id(secret: str) -> str:
    """A short, stable, non-reversible name of a key."""
    return hashlib.sha256(_derive(secret, b"medianest key id")).hexdigest()[:12]


def generate_key() -> str:
    return secrets.token_urlsafe(32)


def is_encrypted(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


class SecretBox:
    """Encrypts and decrypts stored secrets with a keyring (newest key first)."""

    def __init__(self, keys: list[str], reload: Callable[[], list[str]] | None = None) -> None:
        if not keys:
            raise ValueError("a keyring needs at least one key")
        self._reload = reload
        self._load(keys)

    def _load(self, keys: list[str]) -> None:
        self._keys = {key_id(k): AESGCM(_derive(k, b"medianest secrets")) for k in keys}
        self.current_id = key_id(keys[0])
        self._signing_key = _derive(keys[0], b"medianest signing")

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: str, *, associated: str = "") -> str:
        """Encrypt ``plaintext``; ``associated`` binds it to where it is stored (not secret)."""
        nonce = os.urandom(12)
        sealed = self._keys[self.current_id].encrypt(nonce, plaintext.encode(), associated.encode())
        return f"{PREFIX}{self.current_id}:{_b64(nonce)}:{_b64(sealed)}"

    def decrypt(self, stored: str, *, associated: str = "") -> str:
        if not is_encrypted(stored):
            raise DecryptionError("the value is not an encrypted secret")
        try:
            kid, nonce, sealed = stored[len(PREFIX) :].split(":")
        except ValueError:
            raise DecryptionError("the encrypted secret is malformed") from None
        if kid not in self._keys and self._reload is not None:
            self._load(self._reload())
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptionError(f"no key {kid} in the keyring; was the key file replaced?")
        try:
            return aead.decrypt(_unb64(nonce), _unb64(sealed), associated.encode()).decode()
        except Exception:
            raise DecryptionError(f"the secret does not decrypt with key {kid}") from None

    def needs_rotation(self, stored: str) -> bool:
        return is_encrypted(stored) and not stored.startswith(f"{PREFIX}{self.current_id}:")

    def sign(self, message: str) -> str:
        """A MAC of ``message`` under the current key (CSRF tokens, pending sign-ins)."""
        return _b64(hmac.new(self._signing_key, message.encode(), hashlib.sha256).digest())

    def hash_token(self, token: str) -> str:
        """The stored form of a session or API token: a keyed hash, useless without the key."""
        return hashlib.sha256(token.encode()).hexdigest()


def read_keyring(path: Path) -> list[str]:
    """Keys of a key file, newest first: one per line."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def write_keyring(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
    os.replace(tmp, path)
