"""Secrets as the store keeps them: hashes for what clients present, sealed boxes for keys.

Client secrets, access tokens and invitation secrets are stored only as SHA-256 hashes.
They are 256-bit random values, so a fast hash is enough (there is nothing to brute-force)
and lookups stay cheap. Request signing (HMAC-SHA256) needs a key that the server can
read, so the per-client signing key is stored sealed with AES-256-GCM under a key kept
in a separate file of the data directory (``store.key``, mode 0600). A copy of the
database alone grants nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

#: What a client signs with: ``HMAC-SHA256(key=client_secret, msg=SIGNING_KEY_LABEL)``.
SIGNING_KEY_LABEL = b"meetplatform request signing v1"

KEY_FILE_NAME = "store.key"

_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # no 0/o, 1/l: readable in logs and URLs


#: RFC 4648 base32 digits -> :data:`_ALPHABET` (both have 32 characters).
_FROM_BASE32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _ALPHABET.encode("ascii"))


def new_id(prefix: str, length: int = 16) -> str:
    """A random identifier such as ``rm_k3x9...`` (5 random bits per character).

    Each base32 digit of random bytes is 5 independent uniform bits, so mapping the digits
    onto the 32-letter alphabet gives the same distribution as drawing every character
    with :func:`secrets.choice`, at a tenth of the cost (ids are made on every activation).
    """
    raw = secrets.token_bytes((length + 7) // 8 * 5)
    return prefix + base64.b32encode(raw)[:length].translate(_FROM_BASE32).decode("ascii")


def new_secret(prefix: str) -> str:
    """A 256-bit random bearer secret with a recognisable prefix (``mpat_...``)."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a secret, as stored."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def signing_key_for(client_secret: str) -> bytes:
    """The HMAC key a client derives from its secret to sign requests."""
    return hmac.new(client_secret.encode("utf-8"), SIGNING_KEY_LABEL, hashlib.sha256).digest()


class KeyBox:
    """Seals and opens small secrets with the data directory's key (AES-256-GCM)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("the store key must be 32 bytes")
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, data_dir: Path) -> KeyBox:
        """Read ``<data_dir>/store.key``, creating it (atomically, mode 0600) if missing."""
        path = Path(data_dir) / KEY_FILE_NAME
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, base64.b64encode(os.urandom(32)) + b"\n")
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)  # fails if another process created it meanwhile
            except FileExistsError:
                pass
            finally:
                temp.unlink(missing_ok=True)
        raw = path.read_bytes().strip()
        try:
            key = base64.b64decode(raw, validate=True)
        except ValueError as e:
            raise ValueError(f"{path} is not a base64-encoded key") from e
        return cls(key)

    def seal(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context)

    def open(self, box: bytes, context: bytes) -> bytes:
        """The sealed bytes; raises ``cryptography.exceptions.InvalidTag`` if tampered."""
        return self._aead.decrypt(box[:12], box[12:], context)
