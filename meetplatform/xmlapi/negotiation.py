"""XML or JSON: the one rule that picks an XML API answer's format from ``Accept``.

BBB answers XML, and clients written for it expect XML even when their HTTP library sends
a broad ``Accept``: axios (used by bigbluebutton-js) sends
``Accept: application/json, text/plain, */*`` and then fails on a JSON answer. So JSON is
an opt-in for clients that want JSON *instead of* XML:

- the answer is **JSON** when ``application/json`` is acceptable (q > 0) and neither
  ``text/xml`` nor ``application/xml`` is;
- otherwise it is **XML** (no ``Accept``, ``*/*``, ``text/*``, ``application/*``,
  ``text/xml``, ``application/xml``, or nothing we can produce).

Whether a type is acceptable follows RFC 9110 §12.5.1: the most specific matching range
decides its q-value (``text/xml`` over ``text/*`` over ``*/*``; parameters other than ``q``
are ignored), and q=0 means "not acceptable". So
``application/json, application/xml;q=0`` gets JSON, and
``application/json, */*;q=0.1`` gets XML (it accepts XML). A JSONP ``callback`` parameter
overrides this (the pipeline handles it).

Clients send few distinct headers, so decisions are cached by the header's bytes.
"""

from __future__ import annotations

from functools import lru_cache

XML = "xml"
JSON = "json"

#: ``(type, subtype)`` pairs the rule asks about.
_XML_TYPES = (("text", "xml"), ("application", "xml"))
_JSON_TYPE = ("application", "json")


def answer_format(accept: bytes | None) -> str:
    """``"xml"`` or ``"json"`` for a request's ``Accept`` header (``None`` when absent)."""
    if accept is None:
        return XML
    return _decide(accept)


@lru_cache(maxsize=256)
def _decide(accept: bytes) -> str:
    ranges = _parse(accept.decode("latin-1"))
    if any(_quality(ranges, wanted) > 0 for wanted in _XML_TYPES):
        return XML
    return JSON if _quality(ranges, _JSON_TYPE) > 0 else XML


def _parse(header: str) -> list[tuple[str, str, float]]:
    """``Accept`` as ``(type, subtype, q)`` triples; malformed ranges are skipped."""
    ranges: list[tuple[str, str, float]] = []
    for item in header.lower().split(","):
        media, *params = item.split(";")
        kind, slash, sub = media.strip().partition("/")
        kind, sub = kind.strip(), sub.strip()
        if not slash or not kind or not sub or (kind == "*" and sub != "*"):
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0  # an unreadable weight accepts nothing rather than guess
                if not 0.0 <= quality <= 1.0:  # also refuses nan
                    quality = 0.0
        ranges.append((kind, sub, quality))
    return ranges


def _quality(ranges: list[tuple[str, str, float]], wanted: tuple[str, str]) -> float:
    """The q-value of ``wanted`` under the most specific matching range (0 if none)."""
    kind, sub = wanted
    best_rank, best_q = -1, 0.0
    for r_kind, r_sub, quality in ranges:
        if r_kind == kind and r_sub == sub:
            rank = 2
        elif r_kind == kind and r_sub == "*":
            rank = 1
        elif r_kind == "*" and r_sub == "*":
            rank = 0
        else:
            continue
        if rank > best_rank or (rank == best_rank and quality > best_q):
            best_rank, best_q = rank, quality
    return best_q
