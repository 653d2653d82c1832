"""Rendering of XML API answers: one node tree, written out as BBB's XML or as JSON / JSONP.

Handlers build a list of ``(element name, value)`` pairs; a value is

- ``str`` (escaped text), ``int``, ``bool`` (``true``/``false``), ``None`` (an empty element),
- a ``list`` of pairs (an element with children; a JSON object),
- :class:`Items` (a container of repeated elements, e.g. ``<meetings><meeting>..``; a JSON
  array),
- :class:`Attrs` (text with attributes, e.g. a preview ``<image width=..>``),
- :class:`Fragment` (pairs rendered once and reused, e.g. a meeting's fixed fields; its
  element name in the pair is ignored),
- :class:`Raw` (XML a handler wrote itself on a hot path; XML answers only).

XML is written by escaping and joining strings, which is several times cheaper than building
an lxml tree for the same document. Element names come from this code or from names that
were validated on input (metadata and custom-data keys), never from raw input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Union

Value = Union[str, int, bool, None, list, "Items", "Attrs", "Fragment", "Raw"]
Node = tuple[str, Value]

XML_CONTENT_TYPE = b"text/xml;charset=utf-8"
JSON_CONTENT_TYPE = b"application/json;charset=utf-8"
JSONP_CONTENT_TYPE = b"application/javascript;charset=utf-8"

_SPECIAL = re.compile('[&<>"\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]')
_NOT_XML = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]')
#: A JSONP callback: a dotted JavaScript identifier path, nothing that could run code.
_CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]{0,63}(?:\.[A-Za-z_$][A-Za-z0-9_$]{0,63}){0,7}")


def escape(text: str) -> str:
    """Escape text for an XML element or attribute; drop characters XML 1.0 cannot carry."""
    if _SPECIAL.search(text) is None:
        return text
    text = _NOT_XML.sub("", text)
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def valid_callback(name: str) -> bool:
    """True if ``name`` may be used as a JSONP callback."""
    return _CALLBACK.fullmatch(name) is not None


class Items:
    """A container element of repeated ``item`` elements (a JSON array)."""

    __slots__ = ("item", "values")

    def __init__(self, item: str, values: Sequence[Value]) -> None:
        self.item = item
        self.values = values


class Attrs:
    """An element with attributes and text: ``<image width="1">url</image>``."""

    __slots__ = ("attrs", "text")

    def __init__(self, attrs: Sequence[tuple[str, str]], text: str) -> None:
        self.attrs = attrs
        self.text = text


class Raw:
    """XML written by a handler's fast path, spliced in place (XML answers only)."""

    __slots__ = ("xml",)

    def __init__(self, xml: str) -> None:
        self.xml = xml


class Fragment:
    """Pairs rendered to XML once; spliced in place (its own pair name is ignored)."""

    __slots__ = ("pairs", "xml")

    def __init__(self, pairs: list[Node]) -> None:
        self.pairs = pairs
        out: list[str] = []
        write_xml(pairs, out)
        self.xml = "".join(out)


def write_xml(nodes: Iterable[Node], out: list[str]) -> None:
    """Append the XML of ``nodes`` to ``out``."""
    append = out.append
    for name, value in nodes:
        kind = type(value)
        if kind is str:
            append(f"<{name}>{escape(value)}</{name}>")  # type: ignore[arg-type]
        elif kind is bool:
            append(f"<{name}>true</{name}>" if value else f"<{name}>false</{name}>")
        elif kind is int:
            append(f"<{name}>{value}</{name}>")
        elif kind is Fragment or kind is Raw:
            append(value.xml)  # type: ignore[union-attr]
        elif kind is list:
            if value:
                append(f"<{name}>")
                write_xml(value, out)  # type: ignore[arg-type]
                append(f"</{name}>")
            else:
                append(f"<{name}/>")
        elif kind is Items:
            items: Items = value  # type: ignore[assignment]
            if items.values:
                append(f"<{name}>")
                write_xml([(items.item, v) for v in items.values], out)
                append(f"</{name}>")
            else:
                append(f"<{name}/>")
        elif value is None:
            append(f"<{name}></{name}>")
        elif kind is Attrs:
            attrs: Attrs = value  # type: ignore[assignment]
            text = "".join(f' {k}="{escape(v)}"' for k, v in attrs.attrs)
            append(f"<{name}{text}>{escape(attrs.text)}</{name}>")
        else:
            raise TypeError(f"cannot render {kind.__name__} in <{name}>")


def to_json(nodes: Iterable[Node]) -> dict[str, Any]:
    """The JSON object for ``nodes``: same names, lists for repeated elements."""
    result: dict[str, Any] = {}
    for name, value in nodes:
        kind = type(value)
        if kind is Fragment:
            result.update(to_json(value.pairs))  # type: ignore[union-attr]
        else:
            result[name] = _json_value(value)
    return result


def _json_value(value: Value) -> Any:
    kind = type(value)
    if kind is list:
        return to_json(value)  # type: ignore[arg-type]
    if kind is Items:
        return [_json_value(v) for v in value.values]  # type: ignore[union-attr]
    if kind is Attrs:
        out: dict[str, Any] = dict(value.attrs)  # type: ignore[union-attr]
        out["value"] = value.text  # type: ignore[union-attr]
        return out
    if kind is Fragment:
        return to_json(value.pairs)  # type: ignore[union-attr]
    if kind is Raw:
        raise TypeError("Raw XML has no JSON form")
    if value is None:
        return ""
    return value


def xml_body(nodes: Iterable[Node]) -> bytes:
    """A complete ``<response>`` document."""
    out = ["<response>"]
    write_xml(nodes, out)
    out.append("</response>")
    return "".join(out).encode("utf-8")


def json_body(nodes: Iterable[Node], callback: str | None = None) -> bytes:
    """``{"response": {...}}``, or for JSONP ``/**/callback({...});``."""
    text = json.dumps({"response": to_json(nodes)}, separators=(",", ":"))
    if callback is not None:
        return f"/**/{callback}({text});".encode("ascii")
    return text.encode("ascii")
