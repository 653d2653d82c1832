"""Who a request is from: the peer, or behind trusted proxies the rightmost untrusted hop."""

from __future__ import annotations

from typing import cast

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.iweb import IRequest
from twisted.web.test.requesthelper import DummyRequest

from meetplatform.clientaddr import client_address, forwarded_https, from_trusted_proxy

PROXIES = ("10.0.0.0/8", "fd00::/8")


def request(peer: str = "10.0.0.5", **headers: str) -> IRequest:
    made = DummyRequest([b""])
    if peer == "unix":
        made.client = UNIXAddress(b"/run/mp.sock")
    elif ":" in peer:
        made.client = IPv6Address("TCP", peer, 40000)
    else:
        made.client = IPv4Address("TCP", peer, 40000)
    for name, value in headers.items():
        made.requestHeaders.addRawHeader(name.replace("_", "-"), value.encode())
    return cast(IRequest, made)


def test_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    spoofed = request("203.0.113.9", x_forwarded_for="198.51.100.1",
                      forwarded="for=198.51.100.2")
    assert client_address(spoofed, PROXIES) == "203.0.113.9"
    assert client_address(request("10.0.0.5", x_forwarded_for="198.51.100.1"), ()) == "10.0.0.5"


def test_rightmost_untrusted_hop_of_x_forwarded_for() -> None:
    """Hops a client wrote (left of its real address) are ignored."""
    chain = request(x_forwarded_for="1.1.1.1, 198.51.100.7")
    assert client_address(chain, PROXIES) == "198.51.100.7"
    through_two = request(x_forwarded_for="6.6.6.6, 198.51.100.7, 10.1.2.3")
    assert client_address(through_two, PROXIES) == "198.51.100.7"
    with_port = request(x_forwarded_for="198.51.100.7:5555")
    assert client_address(with_port, PROXIES) == "198.51.100.7"
    all_trusted = request(x_forwarded_for="10.9.9.9, 10.1.1.1")
    assert client_address(all_trusted, PROXIES) == "10.9.9.9"
    assert client_address(request(), PROXIES) == "10.0.0.5"


def test_forwarded_header_when_there_is_no_x_forwarded_for() -> None:
    forwarded = request(forwarded='for=1.1.1.1, for="[2001:db8::7]:4711";proto=https')
    assert client_address(forwarded, PROXIES) == "2001:db8::7"
    assert forwarded_https(forwarded, PROXIES)


def test_ipv6_proxy_and_unix_socket_are_trusted_peers() -> None:
    assert client_address(request("fd00::1", x_forwarded_for="2001:db8::1"),
                          PROXIES) == "2001:db8::1"
    assert from_trusted_proxy(request("unix"), ())
    assert client_address(request("unix", x_forwarded_for="198.51.100.3"), ()) == "198.51.100.3"


def test_forwarded_proto_only_from_a_trusted_proxy() -> None:
    assert forwarded_https(request(x_forwarded_proto="https"), PROXIES)
    assert not forwarded_https(request(x_forwarded_proto="http"), PROXIES)
    assert not forwarded_https(request("203.0.113.9", x_forwarded_proto="https"), PROXIES)
