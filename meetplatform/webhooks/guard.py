"""Where outgoing webhook requests may go: URL checks and the SSRF guard.

Client apps (tenants, not operators) choose the URLs of their spaces' webhook endpoints.
Without a guard they could make the server call its own admin ports, the cloud metadata
service or anything on the private network. So requests to those endpoints go through a
:class:`GuardedEndpointFactory`: the host name is resolved first, every address is checked
(:meth:`AddressPolicy.allows`) and the connection goes to an address that passed the
check, never to whatever the name resolves to a moment later (no DNS rebinding).

Refused: loopback, private (RFC 1918, ULA), link-local, multicast, reserved, unspecified,
shared (CGNAT) and documentation ranges, i.e. everything that is not globally routable
(``ipaddress``'s ``is_global``). An IPv6 address that carries an IPv4 address (mapped
``::ffff:a.b.c.d``, compatible ``::a.b.c.d``, translated ``::ffff:0:a.b.c.d``, NAT64
``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo ``2001::/32``) is
judged by that IPv4 address as well: ``[::127.0.0.1]`` and ``[64:ff9b::7f00:1]`` are
loopback, whatever ``is_global`` of the IPv6 address says. The operator can allow ranges
(``--allow-webhook-network 127.0.0.0/8``; tests and on-premises setups).

A refusal after resolution says only that delivery to the host's address is not allowed:
the addresses a name resolves to go to the operator's log, never into the endpoint's
``lastError``, or tenants could read the internal DNS through it.

BigBlueButton hooks and ``meta_endCallbackUrl`` are set by callers that hold the server's
secret: like BigBlueButton, they may reach any address (:data:`OPEN`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.error import ConnectError, DNSLookupError
from twisted.internet.interfaces import (
    IHostResolution,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.logger import Logger
from twisted.web.iweb import IAgentEndpointFactory
from zope.interface import implementer

_log = Logger()

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


class UrlRefused(ValueError):
    """A webhook URL that cannot be used; the message says why."""


class AddressRefused(ConnectError):
    """The host resolved only to addresses the policy refuses; ``str()`` is the reason
    alone, as it goes into the endpoint's ``lastError``."""

    def __init__(self, reason: str) -> None:
        super().__init__(string=reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


class AddressPolicy:
    """Which addresses a request may connect to."""

    def __init__(self, allowed: Iterable[str | IPNetwork] = (), *, restricted: bool = True
                 ) -> None:
        self.restricted = restricted
        self.allowed: tuple[IPNetwork, ...] = tuple(
            n if not isinstance(n, str) else ipaddress.ip_network(n, strict=False)
            for n in allowed)

    def allows(self, address: str | IPAddress) -> bool:
        """True if a request may connect to ``address``."""
        if not self.restricted:
            return True
        try:
            ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        except ValueError:
            return False
        candidates: list[IPAddress] = [ip]
        if isinstance(ip, ipaddress.IPv6Address):
            candidates.extend(embedded_ipv4(ip))
        for candidate in candidates:
            if any(candidate.version == net.version and candidate in net
                   for net in self.allowed):
                return True
        return all(c.is_global and not c.is_multicast for c in candidates)

    def describe(self) -> str:
        if not self.restricted:
            return "any address"
        if not self.allowed:
            return "public addresses only"
        return "public addresses and " + ", ".join(str(n) for n in self.allowed)


#: IPv6 ranges whose last 32 bits are an IPv4 address (besides 6to4 and Teredo, which
#: ``ipaddress`` decodes itself): IPv4-compatible (RFC 4291, deprecated; also ``::``
#: and ``::1``, whose IPv4 reading is not global either), IPv4-mapped, IPv4-translated
#: (RFC 2765) and the NAT64 prefixes (RFC 6052 well-known, RFC 8215 local use, where the
#: usual /96 inside the /48 puts the IPv4 address last).
_LAST_32_BITS_IPV4 = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48"))


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (a packet to it may reach them)."""
    found: list[ipaddress.IPv4Address] = []
    if any(ip in net for net in _LAST_32_BITS_IPV4):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)  # (server, client)
    return found


#: No restriction (BBB hooks, end callbacks).
OPEN = AddressPolicy(restricted=False)


def check_url(url: str, policy: AddressPolicy = OPEN) -> str:
    """Validate a webhook URL: http(s), a host, no credentials, not too long.

    When the host is an IP address (or ``localhost``) the policy is applied now; other
    names are checked at every delivery, once resolved. Returns the URL unchanged.
    """
    if not isinstance(url, str) or not url:
        raise UrlRefused("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ord(ch) <= 32 or ord(ch) == 127 for ch in url):
        raise UrlRefused("the URL contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlRefused(f"the URL is malformed: {error}") from None
    if parts.scheme not in ("http", "https"):
        raise UrlRefused("the URL must start with http:// or https://")
    host = parts.hostname
    if not host:
        raise UrlRefused("the URL has no host")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused("the URL must not carry credentials (user:password@)")
    if parts.fragment:
        raise UrlRefused("the URL must not have a fragment (#...)")
    if port == 0:
        raise UrlRefused("the URL's port must be between 1 and 65535")
    if "%" in host:  # an IPv6 zone (fe80::1%25eth0): local to this machine, not sendable
        raise UrlRefused("the URL's host must not carry a zone index (%...)")
    if policy.restricted:
        literal = _literal_address(host)
        if literal is not None and not policy.allows(literal):
            raise UrlRefused(f"{host} is not a public address ({policy.describe()})")
        local_name = host == "localhost" or host.endswith((".localhost", ".local"))
        if literal is None and local_name and not policy.allows("127.0.0.1"):
            raise UrlRefused(f"{host} is not a public host ({policy.describe()})")
    return url


def _literal_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


# --- the guarded connection ------------------------------------------------------------------


@implementer(IResolutionReceiver)
class _Collect:
    def __init__(self) -> None:
        self.addresses: list[IPv4Address | IPv6Address] = []
        self.done: Deferred[list[IPv4Address | IPv6Address]] = Deferred()

    def resolutionBegan(self, resolutionInProgress: IHostResolution) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        if isinstance(address, (IPv4Address, IPv6Address)):
            self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


@implementer(IStreamClientEndpoint)
class GuardedEndpoint:
    """Resolve ``host``, keep the addresses the policy allows, connect to the first."""

    def __init__(self, reactor: Any, host: str, port: int, *, tls: bool,
                 policy: AddressPolicy, connect_timeout: float) -> None:
        self._reactor = reactor
        self._host = host
        self._port = port
        self._tls = tls
        self._policy = policy
        self._timeout = connect_timeout

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._connect(protocolFactory))

    async def _connect(self, protocolFactory: Any) -> Any:
        literal = _literal_address(self._host)
        if literal is not None:
            candidates: Sequence[str] = [str(literal)]
        else:
            receiver = _Collect()
            self._reactor.nameResolver.resolveHostName(receiver, self._host, self._port)
            addresses = await receiver.done
            if not addresses:
                raise DNSLookupError(self._host)
            candidates = list(dict.fromkeys(a.host for a in addresses))
        allowed = [a for a in candidates if self._policy.allows(a)]
        if not allowed:
            if literal is None:
                _log.info("webhooks: {host} resolves to {addresses}: not allowed "
                          "({policy})", host=self._host, addresses=", ".join(candidates),
                          policy=self._policy.describe())
            # What the tenant sees (lastError): no resolved address, no allowed ranges.
            raise AddressRefused(f"delivery to the address of {self._host} is not allowed")
        address = allowed[0]
        endpoint: Any
        if ":" in address:
            endpoint = TCP6ClientEndpoint(self._reactor, address, self._port,
                                          timeout=self._timeout)
        else:
            endpoint = TCP4ClientEndpoint(self._reactor, address, self._port,
                                          timeout=self._timeout)
        if self._tls:
            from twisted.internet.ssl import optionsForClientTLS

            endpoint = wrapClientTLS(optionsForClientTLS(self._host), endpoint)
        return await endpoint.connect(protocolFactory)


@implementer(IAgentEndpointFactory)
class GuardedEndpointFactory:
    """For ``Agent.usingEndpointFactory``: every connection goes through the policy."""

    def __init__(self, reactor: Any, policy: AddressPolicy, *,
                 connect_timeout: float = 5.0) -> None:
        self._reactor = reactor
        self._policy = policy
        self._timeout = connect_timeout

    def endpointForURI(self, uri: Any) -> GuardedEndpoint:
        scheme = uri.scheme.decode("ascii")
        if scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {scheme}")
        host = uri.host.decode("ascii") if isinstance(uri.host, bytes) else uri.host
        return GuardedEndpoint(self._reactor, host.strip("[]"), uri.port,
                               tls=scheme == "https", policy=self._policy,
                               connect_timeout=self._timeout)
