"""Playback URLs, and the signed short-lived links of protected playback.

Every recording is played back at ``<public URL>/playback/video/<recordID>/`` (a page with
a ``<video>``), its file at ``.../video.webm`` and its preview at ``.../preview.png``, as
BigBlueButton's ``video`` format.

With ``--protected-recordings SECONDS`` (Scalelite's "protected recordings", beyond
BigBlueButton), the URLs getRecordings hands out carry ``?expires=<unix s>&sig=<hex>``:
an HMAC-SHA256 over ``<recordID>:<expires>`` with a key derived from the shared secret
(so rotating the secret voids every link). The page passes its own signature on to the
file and preview it embeds. A request without a valid, unexpired signature gets 403.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from twisted.internet.interfaces import IReactorTime

#: Derivation label: the playback key is HMAC(secret, label), never the secret itself.
_KEY_LABEL = b"meetplatform playback links v1"


class PlaybackLinks:
    """Builds playback URLs and checks their signatures."""

    def __init__(self, clock: IReactorTime, public_url: str, secret: str,
                 protected_seconds: int = 0) -> None:
        self._clock = clock
        self._base = public_url.rstrip("/") + "/playback/video/"
        self._key = hmac.new(secret.encode("utf-8"), _KEY_LABEL, hashlib.sha256).digest()
        self.protected_seconds = protected_seconds

    @property
    def protected(self) -> bool:
        return self.protected_seconds > 0

    def signature(self, record_id: str, expires: int) -> str:
        message = f"{record_id}:{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def query(self, record_id: str) -> str:
        """``?expires=..&sig=..`` for a new link (empty when playback is not protected)."""
        if not self.protected:
            return ""
        expires = int(self._clock.seconds()) + self.protected_seconds
        return f"?expires={expires}&sig={self.signature(record_id, expires)}"

    def page(self, record_id: str) -> str:
        return f"{self._base}{quote(record_id, safe='')}/{self.query(record_id)}"

    def preview(self, record_id: str) -> str:
        return f"{self._base}{quote(record_id, safe='')}/preview.png{self.query(record_id)}"

    def check(self, record_id: str, expires: str | None, sig: str | None) -> str | None:
        """None when access is allowed, else why not (for the log and the 403)."""
        if not self.protected:
            return None
        if not expires or not sig:
            return "this recording needs a signed link"
        if not expires.isdigit() or len(expires) > 12:
            return "the link's expiry is malformed"
        if not hmac.compare_digest(self.signature(record_id, int(expires)), sig.lower()):
            return "the link's signature is wrong"
        if int(expires) < self._clock.seconds():
            return "the link has expired"
        return None
