"""Outgoing HTTP for webhooks: two treq clients, a timeout, a bounded read of the answer.

:class:`TreqSender` sends one request and returns the status code. It holds two treq
``HTTPClient``s: an *open* one (BBB hooks, end callbacks: any address, as in
BigBlueButton) and a *guarded* one for client apps' endpoints, whose connections go
through :class:`~meetplatform.webhooks.guard.GuardedEndpointFactory`. Both are injected,
so tests can use ``treq.testing.StubTreq`` (in memory) or real clients against a real
receiver on ``127.0.0.1:0``; :func:`default_clients` builds the real ones.

Redirects are not followed (a redirect to a private address would bypass the guard; a
3xx counts as a failure), cookies are never kept, the answer's body is read up to 64 KiB
and dropped. The timeout covers the whole exchange and runs on the injected clock.

What treq does per request is kept to what must be done per request: the URL is handed
over already parsed and URI-encoded (:class:`_ReadyURL`, made once per target and
cached; IDNA and percent-encoding cost 0.1-0.2 ms each time otherwise), and the cookie
jar is one that keeps nothing and looks at nothing (:class:`_NoCookies`), passed along
with each request so that treq does not build a jar per request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http.cookiejar import Cookie, CookieJar
from typing import Any, Protocol

from hyperlink import EncodedURL
from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from meetplatform import __version__
from meetplatform.webhooks.guard import OPEN, AddressPolicy, GuardedEndpointFactory

USER_AGENT = f"meetplatform/{__version__} (webhooks)"
MAX_RESPONSE_BYTES = 64 * 1024


class Sender(Protocol):
    """What the dispatcher needs: send a request, get the status code."""

    def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes, *,
             guarded: bool) -> Deferred[int]: ...

    def close(self) -> Deferred[None]: ...


@implementer(IBodyProducer)
class ImmediateBody:
    """A request body written at once (treq's default producer needs a cooperator)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self._data)
        return succeed(None)

    def stopProducing(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass


class _Drain(TwistedProtocol):
    """Reads a response body up to a limit, then lets the connection go."""

    def __init__(self, limit: int, done: Deferred[None]) -> None:
        self._limit = limit
        self._size = 0
        self._done = done

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        transport: Any = self.transport
        if self._size > self._limit and transport is not None:
            transport.stopProducing()

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self._done.called:
            self._done.callback(None)


class _NoCookies(CookieJar):
    """A cookie jar that never sends, keeps or even parses a cookie (treq's cookie agent
    asks it on every request and every answer)."""

    def add_cookie_header(self, request: Any) -> None:
        pass

    def extract_cookies(self, response: Any, request: Any) -> None:
        pass

    def set_cookie(self, cookie: Cookie) -> None:
        pass

    def set_cookie_if_ok(self, cookie: Cookie, request: Any) -> None:
        pass


def _no_cookies() -> CookieJar:
    return _NoCookies()


class _ReadyURL(EncodedURL):
    """An :class:`~hyperlink.EncodedURL` that is a URI already and knows its text.

    treq's ``HTTPClient.request`` sends ``url.to_uri().to_text()`` of the URL it gets;
    for a string that means parsing it, IDNA-encoding the host and percent-encoding every
    part, each time. A ready URL is made from that very result (:func:`ready_url`), so
    ``to_uri()`` is itself and ``to_text()`` the text computed then. Whatever is derived
    from it (``replace``, ``child``...) is an ordinary URL again (``_text`` empty)."""

    _text = ""

    def to_uri(self) -> EncodedURL:
        return self if self._text else super().to_uri()

    def to_text(self, with_password: bool = False) -> str:
        if self._text and not with_password:
            return self._text
        return super().to_text(with_password)  # type: ignore[no-any-return]


def _as_ready(uri: EncodedURL, text: str, query: Any = None) -> _ReadyURL:
    ready = _ReadyURL(scheme=uri.scheme, host=uri.host, path=uri.path,
                      query=uri.query if query is None else query,
                      fragment=uri.fragment, port=uri.port, rooted=uri.rooted,
                      userinfo=uri.userinfo, uses_netloc=uri.uses_netloc)
    ready._text = text
    return ready


def ready_url(url: str) -> _ReadyURL:
    """``url`` parsed and URI-encoded as treq would do it (no cache).

    One difference: hyperlink's ``to_uri`` IDNA-encodes the host even when it is an IPv6
    literal (``http://[::1]:9104/h``), which raises (``'::1' not allowed``), so treq
    cannot send to such a URL at all. An IPv6 literal is kept as it is instead (it is
    ASCII already); everything else is encoded by hyperlink as before."""
    parsed = EncodedURL.from_text(url)
    if ":" in parsed.host:  # only an IPv6 literal has a colon in hyperlink's host
        uri = parsed.replace(host="ipv6.invalid").to_uri().replace(host=parsed.host)
    else:
        uri = parsed.to_uri()
    return _as_ready(uri, uri.to_text())


#: A last query parameter made of characters a URI keeps as they are (a BBB hook's
#: ``checksum=<hex>``): it is appended to the cached URL before it, not parsed again.
_PLAIN_LAST_PARAM = re.compile(r"[?&]([A-Za-z0-9._~-]+)=([A-Za-z0-9._~-]*)\Z")


class ReadyURLs:
    """A bounded cache of :class:`_ReadyURL` by URL string.

    Space endpoints and end callbacks use the same URL for every request: a hit. A BBB
    hook's URL ends with a different ``checksum=`` each time: the URL before it is the
    cache's key, and the checksum is appended to the ready URL's parts and text (the same
    result as parsing the whole, which the tests check)."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._urls: dict[str, _ReadyURL] = {}

    def get(self, url: str) -> _ReadyURL:
        ready = self._urls.get(url)
        if ready is not None:
            return ready
        plain = _PLAIN_LAST_PARAM.search(url)
        if plain is not None and "#" not in url:
            base = url[:plain.start()]
            # "?" starts the query, "&" continues it (not in a path)
            if (url[plain.start()] == "?") == ("?" not in base):
                before = self._urls.get(base) or self._add(base)
                if before.to_text() == base:  # canonical already: appending is exact
                    query = (*before.query, (plain.group(1), plain.group(2)))
                    return _as_ready(before, url, query)
                return ready_url(url)  # (not kept: the next checksum differs)
        return self._add(url)

    def _add(self, url: str) -> _ReadyURL:
        ready = ready_url(url)
        if len(self._urls) >= self._size:
            del self._urls[next(iter(self._urls))]  # the oldest
        self._urls[url] = ready
        return ready


class TreqSender:
    """Sends webhook requests with treq clients (see the module's docstring)."""

    def __init__(self, clock: IReactorTime, open_client: Any, guarded_client: Any, *,
                 timeout: float = 5.0, pools: tuple[HTTPConnectionPool, ...] = ()) -> None:
        self._clock = clock
        self._open = open_client
        self._guarded = guarded_client
        self.timeout = timeout
        self._pools = pools
        self._urls = ReadyURLs()
        self._cookies = _NoCookies()

    def send(self, method: str, url: str, headers: Mapping[str, str], body: bytes, *,
             guarded: bool) -> Deferred[int]:
        return Deferred.fromCoroutine(self._send(method, url, headers, body, guarded))

    async def _send(self, method: str, url: str, headers: Mapping[str, str], body: bytes,
                    guarded: bool) -> int:
        client = self._guarded if guarded else self._open
        all_headers = {"User-Agent": USER_AGENT, **headers}
        request: Deferred[Any] = client.request(
            method, self._urls.get(url), headers=all_headers,
            data=ImmediateBody(body) if body else None, cookies=self._cookies,
            allow_redirects=False, unbuffered=True)
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            request.cancel()

        deadline = self._clock.callLater(self.timeout, expire)
        try:
            response = await request
        except Exception:
            if timed_out:
                raise TimeoutError(f"no answer within {self.timeout:g} s") from None
            raise
        finally:
            if deadline.active():
                deadline.cancel()
        drained: Deferred[None] = Deferred()
        response.deliverBody(_Drain(MAX_RESPONSE_BYTES, drained))
        try:
            await drained.addTimeout(self.timeout, self._clock)
        except TimeoutError:
            pass  # the status is known; a slow body does not make the delivery fail
        return int(response.code)

    def close(self) -> Deferred[None]:
        """Close kept-alive connections."""
        from twisted.internet.defer import gatherResults

        return gatherResults([pool.closeCachedConnections() for pool in self._pools]
                             ).addCallback(lambda _: None)


def default_clients(reactor: Any, policy: AddressPolicy, *, timeout: float = 5.0,
                    per_host: int = 8, clock: IReactorTime | None = None) -> TreqSender:
    """The real clients: an open one and one guarded by ``policy``, over kept-alive
    connection pools. Timeouts run on ``clock`` (default: the reactor)."""
    import treq

    senders = []
    pools = []
    for guard in (OPEN, policy):
        pool = HTTPConnectionPool(reactor, persistent=True)
        pool.maxPersistentPerHost = per_host
        pool.cachedConnectionTimeout = 60
        pools.append(pool)
        agent = Agent.usingEndpointFactory(
            reactor, GuardedEndpointFactory(reactor, guard, connect_timeout=timeout),
            pool=pool)
        senders.append(treq.client.HTTPClient(agent, cookiejar=_no_cookies()))  # type: ignore[arg-type]
    return TreqSender(clock or reactor, senders[0], senders[1], timeout=timeout,
                      pools=tuple(pools))


def describe_failure(failure: Failure) -> str:
    """A short reason for the delivery log and the API (``lastError``)."""
    from twisted.internet import error as net
    from twisted.web import _newclient

    from meetplatform.webhooks.guard import AddressRefused

    if failure.check(TimeoutError, net.TimeoutError):
        return "timed out"
    if failure.check(AddressRefused):
        return str(failure.value)
    if failure.check(net.ConnectionRefusedError):
        return "connection refused"
    if failure.check(net.DNSLookupError):
        return "host name not found"
    if failure.check(_newclient.ResponseNeverReceived, _newclient.RequestTransmissionFailed,
                     _newclient.ResponseFailed):
        reasons = getattr(failure.value, "reasons", None) or []
        inner = "; ".join(r.getErrorMessage() for r in reasons) if reasons else ""
        return f"connection failed: {inner}" if inner else "connection failed"
    message = failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]
    return message[:300]
