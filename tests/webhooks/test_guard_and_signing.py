"""Pure parts: where requests may go (SSRF guard), and the signatures receivers check."""

from __future__ import annotations

import base64
import hashlib
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from meetplatform.webhooks import signing
from meetplatform.webhooks.guard import OPEN, AddressPolicy, UrlRefused, check_url

PUBLIC = AddressPolicy()


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
    "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.2.1",
    "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1",
    "::ffff:10.0.0.1", "2002:7f00:1::1", "2001:db8::1", "not an address",
])
def test_non_public_addresses_are_refused(address: str) -> None:
    """Loopback, private, link-local, shared, multicast, reserved and documentation
    ranges (also inside IPv6) are refused by default."""
    assert not PUBLIC.allows(address)


@pytest.mark.parametrize("address", [
    "::127.0.0.1", "::10.0.0.1", "::169.254.169.254",  # IPv4-compatible
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b::10.1.2.3",  # NAT64 well-known
    "64:ff9b:1::7f00:1",  # NAT64 local use
    "::ffff:0:7f00:1",  # IPv4-translated
    "::ffff:169.254.169.254", "::ffff:100.64.0.1",  # IPv4-mapped
    "2002:a00:1::1", "2002:c0a8:101::1",  # 6to4 of 10.0.0.1, 192.168.1.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
])
def test_ipv6_addresses_are_judged_by_the_ipv4_address_they_embed(address: str) -> None:
    """An IPv6 address carrying a non-public IPv4 address is refused like that address,
    even where ``ipaddress`` calls the IPv6 address itself global."""
    assert not PUBLIC.allows(address)


@pytest.mark.parametrize("address", ["64:ff9b::5db8:d822", "2002:5db8:d822::1"])
def test_ipv6_addresses_embedding_a_public_ipv4_address_are_allowed(address: str) -> None:
    """NAT64 and 6to4 addresses of a public IPv4 address stay deliverable."""
    assert PUBLIC.allows(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    """Globally routable addresses are allowed."""
    assert PUBLIC.allows(address)


def test_the_operator_can_allow_ranges() -> None:
    """--allow-webhook-network opens exactly the ranges given (IPv4-mapped too)."""
    policy = AddressPolicy(["127.0.0.0/8", "fd00::/8"])
    assert policy.allows("127.0.0.1") and policy.allows("::ffff:127.0.0.5")
    assert policy.allows("fd12::1")
    assert not policy.allows("10.0.0.1") and not policy.allows("::1")
    assert OPEN.allows("10.0.0.1") and OPEN.allows("::1")


@pytest.mark.parametrize(("url", "reason"), [
    ("ftp://example.org/x", "http:// or https://"),
    ("https://", "no host"),
    ("https://user:pw@example.org/", "credentials"),
    ("https://example.org/#frag", "fragment"),
    ("https://example.org/a b", "spaces"),
    ("https://example.org:0/", "port"),
    ("https://example.org:99999/", "malformed"),
    ("https://" + "a" * 2048 + ".org/", "longer"),
    ("", "empty"),
])
def test_malformed_urls_are_refused(url: str, reason: str) -> None:
    """A webhook URL must be a plain http(s) URL with a host."""
    with pytest.raises(UrlRefused, match=reason):
        check_url(url)


def test_ipv6_zone_indexes_are_refused() -> None:
    """A link-local zone (``%25eth0``) names an interface of this machine: refused even
    for BBB hooks, which could never be delivered to it."""
    with pytest.raises(UrlRefused, match="zone"):
        check_url("http://[fe80::1%25lo]:9/x", OPEN)


@pytest.mark.parametrize("url", ["http://[::127.0.0.1]:8080/", "http://[64:ff9b::7f00:1]/x",
                                 "http://[::ffff:127.0.0.1]/x"])
def test_embedded_loopback_literals_are_refused_at_creation(url: str) -> None:
    """Space endpoint URLs with an IPv6 literal carrying 127.0.0.1 are refused at once."""
    with pytest.raises(UrlRefused, match="not a public"):
        check_url(url, PUBLIC)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/", "http://[::1]/x",
                                 "http://10.0.0.7/hook", "https://localhost/hook",
                                 "http://printer.local/", "http://169.254.169.254/latest"])
def test_private_literals_are_refused_for_client_apps(url: str) -> None:
    """IP literals (and localhost names) outside public space are refused at once for
    guarded endpoints; BBB hooks (OPEN) may use them."""
    with pytest.raises(UrlRefused, match="not a public"):
        check_url(url, PUBLIC)
    assert check_url(url, OPEN) == url


def test_allowed_ranges_admit_their_literals() -> None:
    """With 127.0.0.0/8 allowed, loopback URLs (and localhost) are accepted."""
    policy = AddressPolicy(["127.0.0.0/8"])
    assert check_url("http://127.0.0.1:9/x", policy)
    assert check_url("http://localhost:9/x", policy)


def test_host_names_are_checked_when_resolved() -> None:
    """A host name passes the URL check: its addresses are checked at each delivery."""
    assert check_url("https://hooks.example.com/x", PUBLIC)


# --- Standard Webhooks -------------------------------------------------------------------------


def test_signatures_verify_with_the_reference_library() -> None:
    """A request signed here verifies with the Standard Webhooks reference library, as a
    receiver does (id, timestamp and raw body)."""
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(signing.key_of(secret)) == 32
    body = b'{"id":"evt_1","type":"participant.joined","data":{}}'
    now = int(time.time())
    headers = signing.standard_headers([signing.key_of(secret)], "evt_1", now, body)
    assert Webhook(secret).verify(body, headers) == {
        "id": "evt_1", "type": "participant.joined", "data": {}}
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(body, headers)
    signing.verify(secret, headers, body, now)


def test_the_reference_librarys_signature_matches_ours() -> None:
    """Our signature is byte for byte what the reference library computes."""
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    stamp = 1_700_000_000
    ours = signing.sign(signing.key_of(secret), "msg_1", stamp, b"{}")
    theirs = Webhook(secret).sign("msg_1", datetime.fromtimestamp(stamp, tz=UTC), "{}")
    assert ours == theirs


def test_during_rotation_both_secrets_verify() -> None:
    """After a rotation requests carry two signatures: receivers with either secret
    accept them."""
    old, new = signing.new_secret(), signing.new_secret()
    now = int(time.time())
    headers = signing.standard_headers([signing.key_of(new), signing.key_of(old)], "evt_2",
                                       now, b"{}")
    assert headers["webhook-signature"].count("v1,") == 2
    Webhook(old).verify(b"{}", headers)
    Webhook(new).verify(b"{}", headers)


def test_old_timestamps_are_rejected_by_receivers() -> None:
    """A replayed request (timestamp beyond the 5-minute tolerance) does not verify."""
    secret = signing.new_secret()
    stamp = int(time.time()) - 600
    headers = signing.standard_headers([signing.key_of(secret)], "evt_3", stamp, b"{}")
    with pytest.raises(signing.SignatureInvalid, match="too far"):
        signing.verify(secret, headers, b"{}", time.time())
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b"{}", headers)


# --- BigBlueButton hook callbacks ----------------------------------------------------------------


def test_bbb_callback_checksum_is_over_url_body_and_secret() -> None:
    """The checksum a bbb-webhooks receiver recomputes: H(callbackURL + body + secret),
    appended to the callback URL."""
    body = signing.bbb_callback_body("meet.example.org", '[{"a":"b c~*"}]', 1700000000000)
    assert body == ("domain=meet.example.org&event=%5B%7B%22a%22%3A%22b+c%7E*%22%7D%5D"
                    "&timestamp=1700000000000")
    url = "https://lms.example.org/hook?site=1"
    checksum = signing.bbb_checksum(url, body, "s3cr3t", "sha1")
    assert checksum == hashlib.sha1(f"{url}{body}s3cr3t".encode()).hexdigest()
    assert signing.bbb_signed_url(url, checksum) == f"{url}&checksum={checksum}"
    assert signing.bbb_signed_url("https://a/b", "x") == "https://a/b?checksum=x"
