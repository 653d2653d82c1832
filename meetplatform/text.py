"""The one rule for text that enters the service: valid Unicode, or refused at the edge.

Every surface (the BBB XML API, the JSON:API, the embed and invitation pages, the
WebSocket) decodes what it receives through this module, and maps :class:`BadText` to its
own error format: a BBB ``FAILED`` answer, a JSON:API ``errors[]`` entry, an HTML error
page, a WebSocket error frame. Text is **refused, not repaired**: replacing a broken
character with U+FFFD would make two different inputs equal (two meeting ids, two display
names), and a client that sends broken text has a bug it should hear about.

What counts as broken:

* bytes that are not UTF-8 (including UTF-8-encoded surrogates, ``ED A0 80``, which
  Python's strict decoder already refuses);
* a JSON string holding a lone UTF-16 surrogate (``"\\ud800"``): :func:`json.loads`
  accepts it and returns a ``str`` that cannot be encoded again, so it would fail later,
  far from the request: in a snapshot sent to every joiner, in a batch of database
  writes, in a webhook body. Paired surrogates (``"\\ud83d\\ude00"``) are a valid
  character and are accepted.

Checks are cheap on the common path: a JSON text without a ``\\u`` escape cannot hold a
surrogate (strict UTF-8 decoding has excluded the other way), so nothing is walked.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl


class BadText(ValueError):
    """Text that is not valid Unicode. ``where`` names the field when it is known."""

    def __init__(self, message: str, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def is_valid(text: str) -> bool:
    """True when ``text`` holds no lone surrogate (can be encoded as UTF-8)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check(text: str, where: str | None = None) -> str:
    """``text`` unchanged, or :class:`BadText` if it holds a lone surrogate."""
    if not is_valid(text):
        raise BadText(_message(where), where)
    return text


def decode(data: bytes, where: str | None = None) -> str:
    """Strict UTF-8 decoding; :class:`BadText` for anything else."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadText(_message(where), where) from None


def parse_form(data: bytes, *, max_num_fields: int | None = None,
               strict_parsing: bool = False) -> list[tuple[str, str]]:
    """The fields of an ``application/x-www-form-urlencoded`` body, in order.

    The body and every percent-decoded name and value must be UTF-8 (``parse_qsl`` on its
    own would replace other bytes with U+FFFD): :class:`BadText` otherwise, whose
    ``where`` is the name of the field whose value is broken (``None`` when the body
    itself or a field name is). :class:`ValueError` for a body ``parse_qsl`` refuses (too
    many fields, or malformed with ``strict_parsing``).
    """
    try:
        body = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadText(_message("the form"), None) from None
    pairs = parse_qsl(body, keep_blank_values=True, strict_parsing=strict_parsing,
                      max_num_fields=max_num_fields, encoding="utf-8",
                      errors="surrogateescape")
    for name, value in pairs:
        if not is_valid(name):
            raise BadText(_message("a field name"), None)
        check(value, name)
    return pairs


def loads_json(data: bytes | str, where: str | None = None) -> Any:
    """Parse JSON that must be valid Unicode throughout (keys and values).

    Raises :class:`BadText` for bad UTF-8 or a lone surrogate, and :class:`ValueError`
    (``json.JSONDecodeError`` included) for text that is not JSON; ``NaN`` and
    ``Infinity`` are refused as they are not JSON.
    """
    text = decode(data, where) if isinstance(data, bytes) else check(data, where)
    value = json.loads(text, parse_constant=_refuse_constant)
    if "\\u" in text:
        check_value(value, where)
    return value


def check_value(value: Any, where: str | None = None) -> None:
    """Walk a decoded JSON value; :class:`BadText` naming the first broken string's path."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not is_valid(item):
                raise BadText(_message(_join(where, path)), _join(where, path) or None)
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}/{_pointer(key)}"
                if not is_valid(key):
                    raise BadText(_message(_join(where, path) or "a member name"),
                                  _join(where, path) or None)
                stack.append((child, child_path))
        elif isinstance(item, list):
            stack.extend((child, f"{path}/{i}") for i, child in enumerate(item))


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1") if is_valid(key) else "?"


def _join(where: str | None, path: str) -> str:
    return f"{where or ''}{path}"


def _message(where: str | None) -> str:
    field = f" in {where}" if where else ""
    return (f"The text{field} is not valid Unicode (bad UTF-8 or a lone UTF-16 "
            "surrogate such as \\ud800).")
