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
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

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


_SIGNED_KEPT = 10_000


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
        # Signs with the newest key; MACs made under an older key of the keyring still verify,
        # so that pages opened before a rotation keep working until the old key is pruned.
        self._signing_keys = [_derive(k, b"medianest signing") for k in keys]
        # MACs made under the current key, by message: a session's CSRF token is asked for on
        # every page and every /api/v1/auth/me, and stays the same until the key changes.
        self._signed: dict[str, str] = {}

    def reload(self) -> bool:
        """Re-read the keyring (a rotation may have put a new key first); True if it changed."""
        if self._reload is None:
            return False
        try:
            keys = self._reload()
        except OSError as exc:
            log.warning("could not re-read the keyring, keeping the keys in use: %s", exc)
            return False
        if not keys or [key_id(k) for k in keys] == list(self._keys):
            return False
        self._load(keys)
        return True

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    def encrypt(self, plaintext: str, *, associated: str = "") -> str:
        """Encrypt ``plaintext``; ``associated`` binds it to where it is stored (not secret)."""
        # After a rotation by another process, encrypt under the new key, not the one this
        # process started with (encrypting is rare: reading the key file each time is cheap).
        self.reload()
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
        if kid not in self._keys:
            self.reload()
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
        mac = self._signed.get(message)
        if mac is None:
            mac = self._mac(self._signing_keys[0], message)
            if len(self._signed) >= _SIGNED_KEPT:
                self._signed.clear()
            self._signed[message] = mac
        return mac

    def verify(self, message: str, mac: str) -> bool:
        """Whether ``mac`` was made by :meth:`sign` under any key of the keyring."""
        if self._verify(message, mac):
            return True
        # Another process may have signed under a key this one has not read yet.
        return self.reload() and self._verify(message, mac)

    def _verify(self, message: str, mac: str) -> bool:
        return any(hmac.compare_digest(self._mac(k, message), mac) for k in self._signing_keys)

    @staticmethod
    def _mac(key: bytes, message: str) -> str:
        # The one-call form: same MAC, without building an HMAC object (CSRF tokens are made
        # and checked on many requests).
        return _b64(hmac.digest(key, message.encode(), "sha256"))


def write_keyring(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically, readable by its owner only."""
    tmp = path.with_name(path.name + ".new")
    # A leftover file would keep its own mode: start afresh so the mode is 0600.
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(keys) + "\n")
        # On disk before anything is encrypted under a new key: losing it loses the secrets.
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
