"""BigBlueButton API checksums: verification of incoming calls and signing of outgoing ones.

A BBB checksum is ``hex(H(callName + queryStringWithoutChecksum + secret))``. ``H`` is chosen
by the length of the hex string the caller sent (40 sha1, 64 sha256, 96 sha384, 128 sha512)
among the algorithms the operator allows; the query string is the raw one, exactly as it was
received, with only the ``checksum=`` pair taken out. Upper- or lower-case hex both verify.

A POST whose query string is empty carries its parameters (and the checksum) in a form body;
bbb-web then checks the checksum over a *rebuilt* string (parameter names sorted, values
re-encoded the way Java's ``URLEncoder`` does). Some load balancers hash the raw body instead;
:func:`verify_form` accepts either.

Everything here is pure and works on bytes; comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Collection, Iterable, Sequence
from urllib.parse import quote_plus

#: Hex length of a checksum -> the hash algorithm that produces it.
ALGORITHM_BY_LENGTH: dict[int, str] = {40: "sha1", 64: "sha256", 96: "sha384", 128: "sha512"}

_CONSTRUCTORS = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha384": hashlib.sha384,
    "sha512": hashlib.sha512,
}

_CHECKSUM_PREFIX = b"checksum="


class ChecksumRefused(Exception):
    """The request's checksum is missing, repeated, malformed or wrong."""


def digest(algorithm: str, data: bytes) -> str:
    """Lower-case hex digest of ``data`` with one of the four BBB algorithms."""
    try:
        constructor = _CONSTRUCTORS[algorithm]
    except KeyError:
        raise ValueError(f"unknown checksum algorithm {algorithm!r}") from None
    return constructor(data).hexdigest()


def checksum(call_name: str, query: str | bytes, secret: str, algorithm: str = "sha256") -> str:
    """The checksum a client sends for ``call_name`` with this (already encoded) query."""
    raw = query.encode("utf-8") if isinstance(query, str) else query
    return digest(algorithm, call_name.encode("utf-8") + raw + secret.encode("utf-8"))


def sign_query(call_name: str, query: str, secret: str, algorithm: str = "sha256") -> str:
    """``query`` with its ``checksum`` appended, ready to put after ``<call>?``."""
    value = checksum(call_name, query, secret, algorithm)
    return f"{query}&checksum={value}" if query else f"checksum={value}"


def split_checksum(raw_query: bytes) -> tuple[bytes, bytes]:
    """Split a raw query string into ``(checksum value, the query without it)``.

    The query keeps every other byte in its original order, so that ``&``-separated parts
    that were empty stay empty (this matches bbb-web's string replacement). Raises
    :class:`ChecksumRefused` when there is no ``checksum`` pair or more than one.
    """
    parts = raw_query.split(b"&")
    found: bytes | None = None
    rest: list[bytes] = []
    for part in parts:
        if part.startswith(_CHECKSUM_PREFIX):
            if found is not None:
                raise ChecksumRefused("more than one checksum parameter")
            found = part[len(_CHECKSUM_PREFIX):]
        else:
            rest.append(part)
    if found is None:
        raise ChecksumRefused("no checksum parameter")
    return found, b"&".join(rest)


def matches(call_name: bytes, signed: bytes, given: bytes, secret: bytes,
            algorithms: Collection[str]) -> bool:
    """True if ``given`` (hex, any case) is the checksum of ``call_name + signed + secret``
    with the algorithm its length names, provided that algorithm is allowed."""
    algorithm = ALGORITHM_BY_LENGTH.get(len(given))
    if algorithm is None or algorithm not in algorithms:
        return False
    expected = _CONSTRUCTORS[algorithm](call_name + signed + secret).hexdigest().encode("ascii")
    return hmac.compare_digest(expected, given.lower())


def verify(call_name: str, raw_query: bytes, secret: str, algorithms: Collection[str]) -> None:
    """Check the checksum of a call whose parameters are in the raw query string.

    Raises :class:`ChecksumRefused` unless exactly one ``checksum`` parameter is present and
    it matches one of ``algorithms`` (chosen by its length).
    """
    given, signed = split_checksum(raw_query)
    if not matches(call_name.encode("utf-8"), signed, given, secret.encode("utf-8"),
                    algorithms):
        raise ChecksumRefused("checksum does not match")


def java_url_encode(value: str) -> str:
    """``java.net.URLEncoder.encode(value, "UTF-8")``: space to ``+``, ``*`` kept, ``~`` encoded."""
    return quote_plus(value, safe="*").replace("~", "%7E")


def rebuilt_form_query(params: Iterable[tuple[str, str]]) -> str:
    """The string bbb-web hashes for a POST form with an empty query string.

    Parameter names in sorted order (repeated names keep their values' order), ``checksum``
    left out, each value re-encoded with :func:`java_url_encode`, joined with ``&``.
    """
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        if name == "checksum":
            continue
        by_name.setdefault(name, []).append(value)
    return "&".join(
        f"{name}={java_url_encode(value)}"
        for name in sorted(by_name)
        for value in by_name[name]
    )


def verify_form(call_name: str, raw_body: bytes, params: Sequence[tuple[str, str]],
                secret: str, algorithms: Collection[str]) -> None:
    """Check the checksum of a POST whose parameters (and checksum) are in a form body.

    ``params`` are the body's decoded ``(name, value)`` pairs. The checksum verifies if it
    matches bbb-web's rebuilt string (:func:`rebuilt_form_query`) or the raw body without
    its ``checksum`` pair, as some load balancers compute it. Raises :class:`ChecksumRefused`.
    """
    values = [value for name, value in params if name == "checksum"]
    if not values:
        raise ChecksumRefused("no checksum parameter")
    if len(values) > 1:
        raise ChecksumRefused("more than one checksum parameter")
    given = values[0].encode("utf-8")
    call = call_name.encode("utf-8")
    key = secret.encode("utf-8")
    rebuilt = rebuilt_form_query(params).encode("utf-8")
    ok = matches(call, rebuilt, given, key, algorithms)
    try:
        raw_given, raw_signed = split_checksum(raw_body)
    except ChecksumRefused:
        raw_given, raw_signed = b"", b""
    # Evaluate both comparisons: the answer must not depend on which one matched first.
    ok_raw = bool(raw_given) and matches(call, raw_signed, raw_given, key, algorithms)
    if not (ok or ok_raw):
        raise ChecksumRefused("checksum does not match")
