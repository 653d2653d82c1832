"""WebSocket upgrades handed to their protocol before twisted.web parses them.

The signalling socket is a resource of the site (``/ws``,
:class:`meetplatform.site.UpgradeOnly`). Through twisted.web an upgrade is parsed twice:
the ``HTTPChannel`` parses the request line and headers into a ``Request``, the resource
tree is walked, and Autobahn's ``WebSocketResource`` rebuilds the raw request from that
object for Autobahn to parse again: about a fifth of a join's CPU in a room filling up
to 1,000 (docs/performance.md, issue 14).

The site's channel (:class:`meetplatform.site.BoundedChannel`) therefore looks at the
first bytes of each connection with :func:`sniff`. A request that is an upgrade to a path
the site routes to a protocol factory, and whose head both twisted.web and Autobahn read
the same way, is given whole (with anything that followed it) to a protocol of that
factory (:func:`attach`), which parses and answers it exactly as it does behind
twisted.web (Origin and token checks, refusals, the 101). Everything else goes to
twisted.web with every byte, unchanged: other paths and methods, a ``GET /ws`` without
``Upgrade: websocket`` (its 426), a later request on a kept-alive connection, and any
head twisted.web would refuse or treat specially, so the site's limits and answers
(400, 408, 413, 414, 431) stay its own. Neither path writes an access log line or a
request metric for an upgrade (twisted.web never finishes the request it hands over).

A head is routed directly only if it is, all of:

- ``GET <target> HTTP/1.1`` with a target of visible ASCII whose path (before ``?``) is
  exactly a routed one (``/ws``; ``/ws/``, ``/%77s`` and the like take the long way);
- CRLF line ends, no folded lines, header names that are tokens, values of visible
  characters, space, tab and obs-text (what both parsers accept alike);
- no header twice (twisted.web joins repeated headers into one line of the request it
  rebuilds; Autobahn counts them), no ``Content-Length``, ``Transfer-Encoding`` or
  ``Expect`` (a body, or a ``100 Continue``, is twisted.web's business);
- one ``Upgrade`` header naming ``websocket`` as ``UpgradeOnly`` tests it;
- complete within the site's line limit (``max_bytes``: so no line, and no head, exceeds
  what twisted.web would accept) and with at most ``max_headers`` headers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Literal, TypeVar

from twisted.internet.interfaces import IProtocol, ITransport
from twisted.protocols.policies import ProtocolWrapper

T = TypeVar("T")

#: :func:`sniff`: the head is not complete yet and may still be a routed upgrade.
MORE: Literal["more"] = "more"
#: :func:`sniff`: twisted.web's request (every byte goes to the HTTP channel).
HTTP: Literal["http"] = "http"

_START = b"GET /"
_END_OF_HEAD = b"\r\n\r\n"
_REQUEST_LINE = re.compile(rb"GET (/[\x21-\x7e]*) HTTP/1\.1")
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER_BLOCK = re.compile(rb"(?:" + _TOKEN + rb":[\t\x20-\x7e\x80-\xff]*\r\n)*")
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\r]*?)[ \t]*\r\n")
#: Headers that make a request twisted.web's: a body to read, a 100 Continue to send.
_HTTP_ONLY = frozenset({b"content-length", b"transfer-encoding", b"expect"})


def sniff(buffered: bytes, route: Callable[[bytes], T | None], *, max_bytes: int,
          max_headers: int) -> T | Literal["more", "http"]:
    """What the first bytes of a connection are: :data:`MORE`, :data:`HTTP`, or the
    factory ``route(path)`` names for a routed upgrade (see the module doc)."""
    if not buffered.startswith(_START):
        return MORE if _START.startswith(buffered) else HTTP
    line_end = buffered.find(b"\r\n")
    if line_end < 0:
        return MORE if len(buffered) <= max_bytes else HTTP
    line = _REQUEST_LINE.fullmatch(buffered, 0, line_end)
    if line is None:
        return HTTP
    factory = route(line.group(1).split(b"?", 1)[0])
    if factory is None:
        return HTTP
    head_end = buffered.find(_END_OF_HEAD, line_end)
    if head_end < 0:
        return MORE if len(buffered) <= max_bytes else HTTP
    if head_end + 4 > max_bytes:
        return HTTP
    if _HEADER_BLOCK.fullmatch(buffered, line_end + 2, head_end + 2) is None:
        return HTTP
    fields = _HEADER.findall(buffered, line_end + 2, head_end + 2)
    if len(fields) > max_headers:
        return HTTP
    headers = {name.lower(): value for name, value in fields}
    if len(headers) != len(fields) or not _HTTP_ONLY.isdisjoint(headers):
        return HTTP
    if b"websocket" not in headers.get(b"upgrade", b"").lower().split(b","):
        return HTTP
    return factory


def attach(transport: ITransport, protocol: IProtocol) -> None:
    """Make ``protocol`` receive what ``transport`` reads from now on, as Autobahn's
    ``WebSocketResource`` does when it takes a connection over from twisted.web: over
    TLS the transport (or the TCP transport's protocol) is the TLS wrapper whose wrapped
    protocol changes; on plain TCP the transport's protocol."""
    if isinstance(transport, ProtocolWrapper):
        transport.wrappedProtocol = protocol
        return
    current = getattr(transport, "protocol", None)
    if isinstance(current, ProtocolWrapper):
        current.wrappedProtocol = protocol
    else:
        transport.protocol = protocol  # type: ignore[attr-defined]
