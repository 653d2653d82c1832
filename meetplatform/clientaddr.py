"""The client address of a request, behind trusted reverse proxies or not.

Every rate limit keyed on an address (the JSON:API's anonymous bucket, the invitation and
embed pages) asks :func:`client_address`, so that one rule decides who a client is:

* a request whose connecting peer is not a trusted proxy (``--trusted-proxy CIDR``, none
  by default) is from that peer; whatever ``X-Forwarded-For`` or ``Forwarded`` it carries
  is ignored (anyone can write those headers);
* a request from a trusted proxy is from the **rightmost hop that is not itself a trusted
  proxy** in ``X-Forwarded-For`` (or, when that header is absent, in the ``for=`` values of
  ``Forwarded``, RFC 7239). Proxies append the address they received a connection from,
  so the hops right of the first untrusted one were written by proxies the operator
  trusts, and the hops left of it by the client (they may be lies);
* a connection on a UNIX socket comes from a local process, which can only be a proxy on
  this host: it is treated as trusted.

The proxy must append to (or overwrite) ``X-Forwarded-For``; a proxy that writes only
``Forwarded`` must drop ``X-Forwarded-For`` sent by clients (docs/operations.md).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from twisted.internet.address import UNIXAddress
from twisted.web.iweb import IRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Hops read from forwarding headers at most (a longer chain is cut on the left).
MAX_HOPS = 30
#: Longest text kept of a hop that is not an address (an RFC 7239 obfuscated name).
MAX_HOP_TEXT = 64


@lru_cache(maxsize=16)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def _hop(text: str) -> str:
    """One hop as written by a proxy: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``"::1"``."""
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:  # IPv4 with a port; a bare IPv6 has more colons
        return text.split(":", 1)[0]
    return text


def _header_values(request: IRequest, name: bytes) -> list[str] | None:
    raw = request.requestHeaders.getRawHeaders(name)
    if raw is None:
        return None
    return [value.decode("latin-1") if isinstance(value, bytes) else value for value in raw]


def _forwarded_hops(request: IRequest) -> list[str]:
    """The client-to-proxy chain, leftmost first, from X-Forwarded-For or Forwarded."""
    values = _header_values(request, b"x-forwarded-for")
    if values is not None:
        return [_hop(item) for value in values for item in value.split(",") if item.strip()]
    hops: list[str] = []
    for value in _header_values(request, b"forwarded") or []:
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, found = pair.partition("=")
                if name.strip().lower() == "for" and found.strip():
                    hops.append(_hop(found))
    return hops


def _peer(request: IRequest) -> tuple[str, bool]:
    """The connecting peer's address text, and whether it is a local (UNIX socket) one."""
    peer = request.getClientAddress()
    if isinstance(peer, UNIXAddress):
        return "unix", True
    return str(getattr(peer, "host", "unknown")), False


def from_trusted_proxy(request: IRequest, trusted_proxies: Sequence[str]) -> bool:
    """Whether the connecting peer is a proxy whose forwarding headers are believed."""
    host, local = _peer(request)
    if local or not trusted_proxies:  # the common case without proxies: no parsing
        return local
    return _trusted(_address(host), _networks(tuple(trusted_proxies)))


def client_address(request: IRequest, trusted_proxies: Sequence[str]) -> str:
    """The address of the client this request is from, as text (see the module's rule)."""
    host, _ = _peer(request)
    if not from_trusted_proxy(request, trusted_proxies):
        return host
    networks = _networks(tuple(trusted_proxies))
    hops = _forwarded_hops(request)[-MAX_HOPS:]
    for hop in reversed(hops):
        address = _address(hop)
        if not _trusted(address, networks):
            return str(address) if address is not None else hop[:MAX_HOP_TEXT]
    # Every hop is a trusted proxy (or there is none): the leftmost is the client.
    if hops:
        first = _address(hops[0])
        return str(first) if first is not None else hops[0][:MAX_HOP_TEXT]
    return host


def forwarded_https(request: IRequest, trusted_proxies: Sequence[str]) -> bool:
    """Whether a trusted proxy says the client's connection was HTTPS
    (``X-Forwarded-Proto: https`` or ``Forwarded: proto=https``)."""
    if not from_trusted_proxy(request, trusted_proxies):
        return False
    protos = _header_values(request, b"x-forwarded-proto")
    if protos is not None:
        last = protos[-1].split(",")[-1]
        return last.strip().lower() == "https"
    for value in reversed(_header_values(request, b"forwarded") or []):
        for element in reversed(value.split(",")):
            for pair in element.split(";"):
                name, _, found = pair.partition("=")
                if name.strip().lower() == "proto":
                    return found.strip().strip('"').lower() == "https"
    return False
