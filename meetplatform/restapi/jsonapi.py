"""JSON:API 1.1 plumbing: errors, documents, encoding, content negotiation, cursors.

Pure functions and values, no Twisted: tested on their own.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from json.encoder import encode_basestring as _escape  # the C escaper when available
from typing import Any

from meetplatform.text import BadText, loads_json

MEDIA_TYPE = "application/vnd.api+json"
JSON_TYPE = "application/json"
JSONAPI_VERSION = {"version": "1.1"}

_TITLES = {
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
    405: "Method Not Allowed", 406: "Not Acceptable", 409: "Conflict", 410: "Gone",
    413: "Content Too Large", 414: "URI Too Long", 415: "Unsupported Media Type",
    422: "Unprocessable Content", 429: "Too Many Requests", 500: "Internal Server Error",
    503: "Service Unavailable",
}


def status_title(status: int) -> str:
    return _TITLES.get(status, "Error")


@dataclass
class ApiError(Exception):
    """A refusal, rendered as a JSON:API error object (and an OAuth error where relevant)."""

    status: int
    code: str
    detail: str
    title: str = ""
    pointer: str | None = None
    parameter: str | None = None
    header: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    #: RFC 6749 §5.2 ``error`` value for the OAuth endpoints.
    oauth_error: str | None = None

    def __post_init__(self) -> None:
        super().__init__(f"{self.status} {self.code}: {self.detail}")
        if not self.title:
            self.title = status_title(self.status)

    def error_object(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": str(self.status),
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
        }
        source = {}
        if self.pointer is not None:
            source["pointer"] = self.pointer
        if self.parameter is not None:
            source["parameter"] = self.parameter
        if self.header is not None:
            source["header"] = self.header
        if source:
            out["source"] = source
        if self.meta:
            out["meta"] = self.meta
        return out

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"errors": [self.error_object()], "jsonapi": JSONAPI_VERSION}
        if self.oauth_error is not None:
            doc = {"error": self.oauth_error, "error_description": self.detail, **doc}
        return doc


#: The values the ``pretty`` query parameter takes (exactly these, as documented).
PRETTY_VALUES = ("true", "false", "1", "0", "yes", "no")


def encode(document: Mapping[str, Any], *, pretty: bool = True) -> bytes:
    """JSON bytes, indented by two spaces unless ``pretty`` is false.

    Indented output is what every response gets by default, and the standard library
    writes it with its pure-Python encoder (its C encoder does not indent): a third of
    a read's CPU. :func:`_indented` writes the same bytes (strings escaped by the C
    escaper) for the plain types documents are made of, and leaves anything else to
    :func:`json.dumps`."""
    if pretty:
        try:
            text = _indented(document, "")
        except _Unusual:
            text = json.dumps(document, indent=2, ensure_ascii=False, default=_plain)
        return (text + "\n").encode("utf-8")
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False,
                      default=_plain).encode("utf-8")


class Encoded:
    """A JSON value (a resource object) whose indented text is kept once written, per
    indentation: a resource that many responses repeat unchanged (a room polled by a
    dashboard) is encoded once. Anywhere in a document it encodes as ``value`` would;
    the value must not change afterwards (make a new one)."""

    __slots__ = ("_texts", "value")

    def __init__(self, value: Mapping[str, Any]) -> None:
        self.value = value
        self._texts: dict[str, str] = {}

    def text(self, indent: str) -> str:
        text = self._texts.get(indent)
        if text is None:
            text = self._texts[indent] = _indented(self.value, indent)
        return text


def _plain(value: Any) -> Any:
    """``json.dumps``' ``default``: an :class:`Encoded` is its value."""
    if isinstance(value, Encoded):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


class _Unusual(Exception):
    """A value :func:`_indented` does not write exactly as :func:`json.dumps` would."""


_INFINITY = float("inf")


def _indented(value: Any, indent: str) -> str:
    """``json.dumps(value, indent=2, ensure_ascii=False)`` for str, int, finite float,
    bool, None, list, tuple and dict with str keys (exact types); raises :class:`_Unusual`
    on anything else (subclasses included: their ``json.dumps`` form may differ)."""
    kind = type(value)
    if kind is str:
        return _escape(value)
    if kind is dict:
        if not value:
            return "{}"
        inner = indent + "  "
        parts = []
        for key, item in value.items():
            if type(key) is not str:
                raise _Unusual
            parts.append(_escape(key) + ": " + _indented(item, inner))
        return "{\n" + inner + (",\n" + inner).join(parts) + "\n" + indent + "}"
    if kind is list or kind is tuple:
        if not value:
            return "[]"
        inner = indent + "  "
        return ("[\n" + inner + (",\n" + inner).join([_indented(v, inner) for v in value])
                + "\n" + indent + "]")
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and -_INFINITY < value < _INFINITY:
        return float.__repr__(value)
    if kind is Encoded:
        return value.text(indent)  # type: ignore[no-any-return]
    raise _Unusual


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def accepts_gzip(header: str | None) -> bool:
    """True when an ``Accept-Encoding`` value allows gzip (q > 0)."""
    if not header:
        return False
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        coding = pieces[0].lower()
        if coding not in ("gzip", "x-gzip", "*"):
            continue
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            return True
    return False


def _media_params(value: str) -> tuple[str, dict[str, str]]:
    pieces = [p.strip() for p in value.split(";")]
    params = {}
    for piece in pieces[1:]:
        if not piece:
            continue
        name, _, val = piece.partition("=")
        params[name.strip().lower()] = val.strip().strip('"')
    return pieces[0].lower(), params


def check_content_type(value: str | None, *, allowed: Iterable[str] = (MEDIA_TYPE, JSON_TYPE)
                       ) -> str:
    """The request body's media type, or an :class:`ApiError` (415) per JSON:API."""
    if not value:
        raise ApiError(415, "request.unsupportedMediaType",
                       f"send the body as {MEDIA_TYPE}", header="Content-Type")
    media, params = _media_params(value)
    allowed = tuple(allowed)
    if media not in allowed:
        raise ApiError(415, "request.unsupportedMediaType",
                       f"the body must be {' or '.join(allowed)}, not {media}",
                       header="Content-Type")
    if media == MEDIA_TYPE and set(params) - {"ext", "profile"}:
        raise ApiError(415, "request.unsupportedMediaType",
                       f"{MEDIA_TYPE} takes no parameters but ext and profile",
                       header="Content-Type")
    if media == MEDIA_TYPE and params.get("ext"):
        raise ApiError(415, "request.unsupportedExtension",
                       "no JSON:API extensions are supported", header="Content-Type")
    if media == JSON_TYPE and params.get("charset", "utf-8").lower() not in ("utf-8", "utf8"):
        raise ApiError(415, "request.unsupportedCharset", "send the body in UTF-8",
                       header="Content-Type")
    return media


def check_accept(value: str | None, produces: str = MEDIA_TYPE) -> None:
    """Raise 406 when ``Accept`` rules out what the endpoint produces."""
    if not value or not value.strip():
        return
    json_api_seen = False
    for part in value.split(","):
        if not part.strip():
            continue
        media, params = _media_params(part)
        q = params.pop("q", "1")
        try:
            if float(q) <= 0:
                continue
        except ValueError:
            continue
        if media == MEDIA_TYPE:
            json_api_seen = True
            if produces == MEDIA_TYPE and not (set(params) - {"ext", "profile"}) and not (
                    params.get("ext")):
                return
            continue
        if media in ("*/*", "application/*", JSON_TYPE, produces):
            return
    if json_api_seen:
        detail = f"{MEDIA_TYPE} is served without media type parameters"
    else:
        detail = f"this endpoint answers with {produces}"
    raise ApiError(406, "request.notAcceptable", detail, header="Accept")


def parse_json(body: bytes) -> Any:
    """Decode a request body; 400 with a clear reason when it is not JSON.

    Text that is not valid Unicode (bad UTF-8, a lone surrogate such as ``"\\ud800"``)
    is refused as :mod:`meetplatform.text` decides, with the JSON pointer of the string
    in ``source.pointer`` when it is inside the document."""
    try:
        return loads_json(body)
    except BadText as e:
        raise ApiError(400, "request.invalidEncoding", e.message, pointer=e.where) from None
    except (ValueError, RecursionError) as e:
        raise ApiError(400, "request.invalidJson", f"the body is not valid JSON: {e}") from None


# --- documents ----------------------------------------------------------------------------


def resource(type_: str, id_: str, attributes: Mapping[str, Any], *,
             relationships: Mapping[str, Any] | None = None,
             links: Mapping[str, str] | None = None,
             meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type_, "id": id_, "attributes": dict(attributes)}
    if relationships:
        out["relationships"] = dict(relationships)
    if links:
        out["links"] = dict(links)
    if meta:
        out["meta"] = dict(meta)
    return out


def to_one(type_: str, id_: str | None, related: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"data": None if id_ is None else {"type": type_, "id": id_}}
    if related:
        out["links"] = {"related": related}
    return out


def single(data: Mapping[str, Any] | Encoded, *, self_link: str | None = None,
           meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"data": data if isinstance(data, Encoded) else dict(data)}
    if self_link:
        doc["links"] = {"self": self_link}
    if meta:
        doc["meta"] = dict(meta)
    doc["jsonapi"] = JSONAPI_VERSION
    return doc


def collection(items: list[Mapping[str, Any] | Encoded], *, self_link: str, next_link: str | None,
               meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    links: dict[str, Any] = {"self": self_link, "next": next_link}
    doc: dict[str, Any] = {"data": [i if isinstance(i, Encoded) else dict(i) for i in items],
                           "links": links}
    if meta:
        doc["meta"] = dict(meta)
    doc["jsonapi"] = JSONAPI_VERSION
    return doc


# --- cursor pagination --------------------------------------------------------------------

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


#: A ``page[after]`` cursor: the sort key of the last item, ``<number>.<hex of the id's
#: UTF-8>``. Every string of this form is a position in a list (keyset pagination: "the
#: items after this key"), so the published pattern says exactly what is accepted.
CURSOR_PATTERN = r"[0-9]{1,15}\.(?:[0-9a-f]{2}){0,142}"
#: The cursor of a list whose ids are numbers (attendances): the id's digits in hex.
NUMERIC_CURSOR_PATTERN = r"[0-9]{1,15}\.(?:3[0-9]){1,18}"
_CURSOR = re.compile(CURSOR_PATTERN)


def encode_cursor(key: tuple[int, str]) -> str:
    return f"{key[0]}.{key[1].encode('utf-8').hex()}"


def decode_cursor(text: str) -> tuple[int, str]:
    """The position a ``page[after]`` cursor stands for; 400 if it is not a cursor."""
    if _CURSOR.fullmatch(text) is None:
        raise ApiError(400, "page.invalidCursor",
                       "page[after] is not a cursor this API gave out",
                       parameter="page[after]")
    number, _, key = text.partition(".")
    # (hand-made hex need not be UTF-8; any string is a position all the same)
    return int(number), bytes.fromhex(key).decode("utf-8", "replace")


def page_size(value: str | None) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE_SIZE:
        raise ApiError(400, "page.invalidSize",
                       f"page[size] must be an integer from 1 to {MAX_PAGE_SIZE}",
                       parameter="page[size]")
    return int(value)
