"""Declarative value schemas: one definition validates input AND documents it (OpenAPI).

A :class:`Schema` checks a decoded JSON value (``check``) and describes itself as JSON
Schema 2020-12 (``json_schema``), the dialect OpenAPI 3.1 uses. Because the request
validators and the published document come from the same objects, the document cannot
drift from what the code accepts. Validation errors carry a JSON pointer to the value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

_ISO_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")


class Invalid(Exception):
    """A value does not match its schema; ``pointer`` locates it (RFC 6901)."""

    def __init__(self, pointer: str, detail: str) -> None:
        super().__init__(f"{pointer}: {detail}")
        self.pointer = pointer
        self.detail = detail


def pointer_join(pointer: str, key: str | int) -> str:
    token = str(key).replace("~", "~0").replace("/", "~1")
    return f"{pointer}/{token}"


def format_time(ms: int | None) -> str | None:
    """ISO 8601 in UTC with milliseconds, e.g. ``2012-01-01T12:00:00.000Z``."""
    if ms is None:
        return None
    return _iso_second(ms // 1000) + f"{ms % 1000:03d}Z"


@lru_cache(maxsize=4096)
def _iso_second(seconds: int) -> str:
    """``2012-01-01T12:00:00.`` for a Unix second (cached: every resource of a response
    carries several times, mostly the same few, and ``strftime`` is not cheap)."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.")


def parse_time(text: str) -> int:
    """Milliseconds since the epoch from an ISO 8601 date-time with a UTC offset."""
    if not _ISO_RE.match(text):
        raise ValueError("not an ISO 8601 date-time with a time zone "
                         "(e.g. 2030-01-31T12:00:00.000Z)")
    moment = datetime.fromisoformat(text)
    return round(moment.timestamp() * 1000)


@dataclass
class Schema:
    """Base class. ``nullable`` admits JSON ``null`` (returned as ``None``)."""

    description: str = ""
    nullable: bool = False
    example: Any = None

    def check(self, value: Any, pointer: str) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise Invalid(pointer, "must not be null")
        return self._check(value, pointer)

    def _check(self, value: Any, pointer: str) -> Any:
        raise NotImplementedError

    def _base(self) -> dict[str, Any]:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        out = self._base()
        if self.nullable:
            if "type" in out:
                out["type"] = [out["type"], "null"]
            else:
                out = {"anyOf": [out, {"type": "null"}]}
        if self.description:
            out["description"] = self.description
        if self.example is not None:
            out["examples"] = [self.example]
        return out


#: Characters no text value may hold: C0 controls other than tab, line feed and carriage
#: return. The same class serves Python's check and the published JSON Schema pattern
#: (``\\uXXXX`` is understood by both ECMA-262 and Python regular expressions).
TEXT_FORBIDDEN = "\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f"
#: Characters no one-line value (a name) may hold: every control character (C0, DEL, C1
#: with NEL) and the line and paragraph separators U+2028/U+2029.
LINE_FORBIDDEN = "\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029"
_TEXT_BAD = re.compile(f"[{TEXT_FORBIDDEN}]")
_LINE_BAD = re.compile(f"[{LINE_FORBIDDEN}]")


@dataclass(kw_only=True)
class Str(Schema):
    """A string. Control characters are refused (documented as a ``pattern``): in every
    string those of :data:`TEXT_FORBIDDEN`, in a ``single_line`` one (names) also line
    breaks, DEL, C1 controls and U+2028/U+2029."""

    min_length: int = 0
    max_length: int = 1000
    pattern: str | None = None
    enum: tuple[str, ...] | None = None
    format: str | None = None
    single_line: bool = False
    #: Values starting with this are refused (JSON Schema ``not``), e.g. reserved ids.
    reserved_prefix: str | None = None

    def _check(self, value: Any, pointer: str) -> Any:
        if not isinstance(value, str):
            raise Invalid(pointer, "must be a string")
        if self.enum is not None and value not in self.enum:
            raise Invalid(pointer, "must be one of " + ", ".join(self.enum))
        if len(value) < self.min_length:
            raise Invalid(pointer, f"must be at least {self.min_length} characters long")
        if len(value) > self.max_length:
            raise Invalid(pointer, f"must be at most {self.max_length} characters long")
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise Invalid(pointer, f"must match {self.pattern}")
        if self.reserved_prefix is not None and value.startswith(self.reserved_prefix):
            raise Invalid(pointer, f"must not start with {self.reserved_prefix}")
        if self.single_line and _LINE_BAD.search(value) is not None:
            raise Invalid(pointer, "must be one line without control characters")
        if _TEXT_BAD.search(value) is not None:
            raise Invalid(pointer, "must not contain control characters")
        return value

    def _base(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            out["enum"] = list(self.enum)
        else:
            if self.min_length:
                out["minLength"] = self.min_length
            out["maxLength"] = self.max_length
            forbidden = f"^[^{LINE_FORBIDDEN if self.single_line else TEXT_FORBIDDEN}]*$"
            if self.pattern is not None:
                out["pattern"] = f"^(?:{self.pattern})$"
                out["allOf"] = [{"pattern": forbidden}]
            else:
                out["pattern"] = forbidden
        if self.format is not None:
            out["format"] = self.format
        if self.reserved_prefix is not None:
            out["not"] = {"pattern": f"^{re.escape(self.reserved_prefix)}"}
        return out


@dataclass(kw_only=True)
class Int(Schema):
    minimum: int = 0
    maximum: int = 2**31 - 1

    def _check(self, value: Any, pointer: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise Invalid(pointer, "must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise Invalid(pointer, f"must be between {self.minimum} and {self.maximum}")
        return value

    def _base(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(kw_only=True)
class Bool(Schema):
    def _check(self, value: Any, pointer: str) -> Any:
        if not isinstance(value, bool):
            raise Invalid(pointer, "must be true or false")
        return value

    def _base(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(kw_only=True)
class DateTime(Schema):
    """An ISO 8601 date-time string; checked values are milliseconds since the epoch."""

    def _check(self, value: Any, pointer: str) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise Invalid(pointer, "must be an ISO 8601 date-time string")
        try:
            ms = parse_time(value)
        except (ValueError, OverflowError) as e:
            raise Invalid(pointer, str(e)) from None
        if not 0 <= ms < 253402300800000:  # year 10000
            raise Invalid(pointer, "is out of range")
        return ms

    def _base(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time"}


@dataclass(kw_only=True)
class Array(Schema):
    items: Schema = field(default_factory=lambda: Str())
    max_items: int = 100
    unique: bool = False

    def _check(self, value: Any, pointer: str) -> Any:
        if not isinstance(value, list):
            raise Invalid(pointer, "must be an array")
        if len(value) > self.max_items:
            raise Invalid(pointer, f"must have at most {self.max_items} items")
        out = [self.items.check(v, pointer_join(pointer, i)) for i, v in enumerate(value)]
        if self.unique:
            seen: set[str] = set()
            for i, v in enumerate(out):
                key = json.dumps(v, sort_keys=True)
                if key in seen:
                    raise Invalid(pointer_join(pointer, i), "is a duplicate")
                seen.add(key)
        return out

    def _base(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "array", "items": self.items.json_schema(),
                               "maxItems": self.max_items}
        if self.unique:
            out["uniqueItems"] = True
        return out


@dataclass(kw_only=True)
class Obj(Schema):
    """A JSON object with known ``properties`` and/or free keys (``values``)."""

    properties: Mapping[str, Schema] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    #: Schema of values under keys not in ``properties`` (None: no other keys allowed).
    values: Schema | None = None
    key_pattern: str | None = None
    max_properties: int = 100
    #: Largest size of the object as compact JSON, in bytes.
    max_bytes: int | None = None

    def _check(self, value: Any, pointer: str) -> Any:
        if not isinstance(value, dict):
            raise Invalid(pointer, "must be an object")
        if len(value) > self.max_properties:
            raise Invalid(pointer, f"must have at most {self.max_properties} members")
        for name in self.required:
            if name not in value:
                raise Invalid(pointer_join(pointer, name), "is required")
        out: dict[str, Any] = {}
        for key, item in value.items():
            where = pointer_join(pointer, key)
            if key in self.properties:
                out[key] = self.properties[key].check(item, where)
            elif self.values is not None:
                if self.key_pattern is not None and not re.fullmatch(self.key_pattern, key):
                    raise Invalid(where, f"member names must match {self.key_pattern}")
                if _TEXT_BAD.search(key) is not None:
                    raise Invalid(where, "member names must not contain control characters")
                out[key] = self.values.check(item, where)
            else:
                raise Invalid(where, "is not a known member")
        if self.max_bytes is not None:
            size = len(json.dumps(out, separators=(",", ":"), ensure_ascii=False).encode())
            if size > self.max_bytes:
                raise Invalid(pointer, f"must be at most {self.max_bytes} bytes as JSON")
        return out

    def _base(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "object"}
        if self.properties:
            out["properties"] = {k: v.json_schema() for k, v in self.properties.items()}
        if self.required:
            out["required"] = list(self.required)
        if self.values is not None:
            extra = self.values.json_schema()
            if self.key_pattern is not None:
                out["patternProperties"] = {f"^(?:{self.key_pattern})$": extra}
                out["additionalProperties"] = False
            else:
                out["additionalProperties"] = extra
                out["propertyNames"] = {"pattern": f"^[^{TEXT_FORBIDDEN}]*$"}
        else:
            out["additionalProperties"] = False
        out["maxProperties"] = self.max_properties
        return out


# --- JSON:API resource types ---------------------------------------------------------------


@dataclass
class Attr:
    """One attribute of a resource type."""

    schema: Schema
    #: Set by the server only; refused in requests.
    read_only: bool = False
    #: Must be given when creating.
    required: bool = False
    #: May not be changed once created.
    create_only: bool = False
    #: Shown only in the response that creates the resource (secrets).
    once: bool = False
    #: Accepted in requests, never shown in responses.
    write_only: bool = False


@dataclass
class ResourceType:
    """A JSON:API resource type: its attributes, relationships and id."""

    type: str
    description: str
    attributes: Mapping[str, Attr]
    #: Relationship name -> related resource type.
    relationships: Mapping[str, str] = field(default_factory=dict)
    #: Schema of a client-generated id (``None``: the server makes ids; a given id is refused).
    client_id: Schema | None = None
    id_example: str = ""

    def writable(self, mode: str) -> dict[str, Attr]:
        return {name: a for name, a in self.attributes.items()
                if not a.read_only and not (mode == "update" and a.create_only)}

    def parse(self, body: Any, mode: str, url_id: str | None = None) -> tuple[
            str | None, dict[str, Any]]:
        """Check a request document; returns ``(id, attributes)`` with values converted.

        Raises :class:`Invalid` (422), :class:`TypeConflict` (409) or
        :class:`ClientIdRefused` (403).
        """
        if not isinstance(body, dict):
            raise Invalid("", "the document must be a JSON object")
        if "data" not in body:
            raise Invalid("/data", "is required")
        for key in body:
            if key not in ("data", "meta", "jsonapi", "links"):
                raise Invalid(pointer_join("", key), "is not allowed in a request document")
        data = body["data"]
        if not isinstance(data, dict):
            raise Invalid("/data", "must be a single resource object")
        for key in data:
            if key not in ("type", "id", "lid", "attributes", "relationships", "meta",
                           "links"):
                raise Invalid(pointer_join("/data", key), "is not a resource object member")
        kind = data.get("type")
        if not isinstance(kind, str):
            raise Invalid("/data/type", "is required and must be a string")
        if kind != self.type:
            raise TypeConflict("/data/type", f"must be {self.type!r} for this endpoint")
        given_id = data.get("id")
        if mode == "create":
            if self.client_id is None:
                if given_id is not None:
                    raise ClientIdRefused("/data/id", "ids are assigned by the server")
            else:
                if given_id is None:
                    raise Invalid("/data/id", "is required (you choose the id)")
                given_id = self.client_id.check(given_id, "/data/id")
        else:
            if given_id is None:
                raise Invalid("/data/id", "is required")
            if given_id != url_id:
                raise TypeConflict("/data/id", "does not match the id in the URL")
        if data.get("relationships") not in (None, {}):
            raise Invalid("/data/relationships", "relationships cannot be set here")
        attributes = data.get("attributes", {})
        if not isinstance(attributes, dict):
            raise Invalid("/data/attributes", "must be an object")
        allowed = self.writable(mode)
        out: dict[str, Any] = {}
        for name, value in attributes.items():
            where = pointer_join("/data/attributes", name)
            attr = self.attributes.get(name)
            if attr is None:
                raise Invalid(where, "is not an attribute of " + self.type)
            if name not in allowed:
                raise Invalid(where, "is read-only" if attr.read_only else
                              "cannot be changed after creation")
            out[name] = attr.schema.check(value, where)
        if mode == "create":
            for name, attr in allowed.items():
                if attr.required and name not in out:
                    raise Invalid(pointer_join("/data/attributes", name), "is required")
        return given_id, out

    # OpenAPI ----------------------------------------------------------------------------

    def attributes_schema(self, *, include_once: bool) -> dict[str, Any]:
        props = {}
        for name, attr in self.attributes.items():
            if (attr.once and not include_once) or attr.write_only:
                continue
            schema = attr.schema.json_schema()
            if attr.read_only:
                schema["readOnly"] = True
            props[name] = schema
        return {"type": "object", "properties": props,
                "required": [n for n, a in self.attributes.items()
                             if (not a.once or include_once) and not a.write_only],
                "additionalProperties": False}

    def request_schema(self, mode: str) -> dict[str, Any]:
        props = {}
        for name, attr in self.writable(mode).items():
            props[name] = attr.schema.json_schema()
        attrs: dict[str, Any] = {"type": "object", "properties": props,
                                 "additionalProperties": False}
        required = [n for n, a in self.writable(mode).items() if a.required and mode == "create"]
        if required:
            attrs["required"] = required
        # the members parse() lets through: meta, links and lid are not read (any value)
        data: dict[str, Any] = {
            "type": "object",
            "properties": {"type": {"const": self.type}, "attributes": attrs,
                           "lid": {}, "meta": {}, "links": {},
                           "relationships": {"type": ["object", "null"],
                                             "maxProperties": 0}},
            "required": ["type"],
            "additionalProperties": False,
        }
        if mode == "update" or self.client_id is not None:
            data["properties"]["id"] = (self.client_id.json_schema()
                                        if mode == "create" and self.client_id
                                        else {"type": "string"})
            data["required"].append("id")
        if mode == "create" and self.writable(mode) and required:
            data["required"].append("attributes")
        return {"type": "object",
                "properties": {"data": data, "meta": {}, "jsonapi": {}, "links": {}},
                "required": ["data"], "additionalProperties": False}


class TypeConflict(Invalid):
    """The document's type or id contradicts the endpoint (409)."""


class ClientIdRefused(Invalid):
    """The client sent an id for a type whose ids the server assigns (403)."""
