"""The treq sender's per-request shortcuts change nothing on the wire: URLs are sent as
treq would send them, and cookies are neither kept nor sent."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from hyperlink import EncodedURL
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from meetplatform.webhooks import AddressPolicy, default_clients
from meetplatform.webhooks.http import ReadyURLs, ready_url

URLS = [
    "http://127.0.0.1:8080/hook",
    "http://127.0.0.1:8080/hook?checksum=0123456789abcdef",
    "http://127.0.0.1:8080/hook?site=a&checksum=0123456789abcdef",
    "https://lms.example.org/bbb?x=%C3%A9&y=a+b&checksum=1",
    "https://ايران.com/foo⇧bar/?checksum=12",
    "https://user:pw@example.org/p?checksum=12",
    "http://h.example/p?&checksum=x",
    "http://h.example/p&checksum=x",
    "http://h.example/p?a b=1&checksum=x",
    "http://h.example/p#frag&checksum=x",
    "HTTP://EXAMPLE.org:80/A?checksum=1",
    "http://h.example/p?a=1&a=2&checksum=",
    "http://127.0.0.1:9/end?meetingID=m1&recordingmarks=false",
    "https://app.example.com/hooks/meet",
]


@pytest.mark.parametrize("url", URLS)
def test_ready_urls_are_what_treq_would_send(url: str) -> None:
    """treq sends ``EncodedURL.from_text(url).to_uri().to_text()``; a ready URL (cached,
    or the cached URL before a hook's checksum with the checksum appended) is that URL and
    has that text, the first time and from the cache."""
    expected = EncodedURL.from_text(url).to_uri()
    urls = ReadyURLs()
    for _ in range(2):
        ready = urls.get(url)
        assert ready == expected
        assert ready.to_uri().to_text() == expected.to_text()
        assert ready.to_text(with_password=True) == expected.to_text(with_password=True)


def test_hook_urls_share_the_cached_url_before_the_checksum() -> None:
    urls = ReadyURLs()
    for n in range(50):
        urls.get(f"http://127.0.0.1:8080/hook?site=a&checksum={n:040x}")
    assert len(urls._urls) == 1


def test_the_cache_is_bounded() -> None:
    urls = ReadyURLs(size=4)
    for n in range(10):
        urls.get(f"https://app{n}.example.com/hooks")
    assert len(urls._urls) == 4
    assert urls.get("https://app9.example.com/hooks").to_text() == "https://app9.example.com/hooks"


def test_urls_derived_from_a_ready_url_are_encoded_again() -> None:
    ready = ready_url("https://example.org/a")
    changed = ready.replace(path=("ä",))
    assert changed.to_uri().to_text() == "https://example.org/%C3%A4"


class CookieSetter(Resource):
    """Sets a cookie on every answer and records the Cookie header it was sent."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.cookies: list[bytes | None] = []

    def render(self, request: Request) -> bytes:  # type: ignore[override]
        self.cookies.append(request.getHeader(b"cookie"))
        request.addCookie(b"session", b"abc", path=b"/")
        request.setResponseCode(204)
        return b""


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_cookies_are_never_kept_nor_sent() -> None:
    from twisted.internet import reactor

    resource = CookieSetter()
    site = Site(resource)
    site.noisy = False
    tcp: Any = reactor
    port = tcp.listenTCP(0, site, interface="127.0.0.1")
    sender = default_clients(reactor, AddressPolicy(["127.0.0.0/8"]))
    try:
        url = f"http://127.0.0.1:{port.getHost().port}/x"
        for guarded in (False, True, False):
            status = await sender.send("POST", url, {}, b"{}", guarded=guarded)
            assert status == 204
        assert resource.cookies == [None, None, None]
    finally:
        await sender.close()
        await port.stopListening()
