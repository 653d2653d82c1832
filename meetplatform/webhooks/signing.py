"""Signatures on outgoing webhooks: Standard Webhooks and BigBlueButton's callback checksum.

**Standard Webhooks** (per-space endpoints of the JSON:API). Each request carries

- ``webhook-id``: the event id (the same on every retry: receivers deduplicate by it),
- ``webhook-timestamp``: Unix seconds when this attempt was sent,
- ``webhook-signature``: ``v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>``;
  during a secret rotation two signatures, space-separated (the new key's first).

The secret is shown to the client app as ``whsec_<base64 of 32 random bytes>``; the HMAC
key is the decoded bytes. Receivers verify with any Standard Webhooks library.

**BigBlueButton hooks** (bbb-webhooks): a form POST
``domain=<server>&event=[<event JSON>]&timestamp=<ms>`` to
``callbackURL?checksum=<hex H(callbackURL + body + shared secret)>``, H being the
algorithm of the ``hooks/create`` call that registered the hook.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Sequence

from meetplatform.checksum import digest, java_url_encode

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
#: How far a receiver should accept ``webhook-timestamp`` from its clock (the spec's 5 min).
TOLERANCE_SECONDS = 300


class SignatureInvalid(Exception):
    """A Standard Webhooks request did not verify."""


def new_secret() -> str:
    """A fresh endpoint secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key of a ``whsec_...`` secret."""
    text = secret.removeprefix(SECRET_PREFIX)
    return base64.b64decode(text + "=" * (-len(text) % 4))


def secret_of(key: bytes) -> str:
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64>`` signature."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_header(keys: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per key, space-separated."""
    return " ".join(sign(key, msg_id, timestamp, body) for key in keys)


def standard_headers(keys: Sequence[bytes], msg_id: str, timestamp: int,
                     body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(keys, msg_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: float) -> None:
    """Check a request as a receiver does; raises :class:`SignatureInvalid`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    given = lowered.get("webhook-signature")
    if not (msg_id and stamp and given):
        raise SignatureInvalid("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureInvalid("webhook-timestamp is not an integer") from None
    if abs(now - timestamp) > TOLERANCE_SECONDS:
        raise SignatureInvalid("webhook-timestamp is too far from now")
    expected = sign(key_of(secret), msg_id, timestamp, body).split(",", 1)[1].encode()
    for candidate in given.split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected):
            return
    raise SignatureInvalid("no signature matches")


# --- BigBlueButton hooks -----------------------------------------------------------------------


def bbb_callback_body(domain: str, events_json: str, timestamp_ms: int) -> str:
    """``domain=..&event=[..]&timestamp=..`` encoded as a browser's URLSearchParams does
    (bbb-webhooks' encoding: space as ``+``, only ``*-._`` and alphanumerics kept)."""
    return (f"domain={java_url_encode(domain)}&event={java_url_encode(events_json)}"
            f"&timestamp={timestamp_ms}")


def bbb_checksum(callback_url: str, body: str, secret: str, algorithm: str) -> str:
    """bbb-webhooks' callback checksum: ``H(callbackURL + body + secret)``."""
    return digest(algorithm, (callback_url + body + secret).encode("utf-8"))


def bbb_signed_url(callback_url: str, checksum: str) -> str:
    glue = "&" if "?" in callback_url else "?"
    return f"{callback_url}{glue}checksum={checksum}"
