"""A document service on the real reactor (real poppler processes) and a file server on
127.0.0.1:0 for URL downloads. Waits carry a generous deadline only so that a broken test
fails instead of hanging."""

from __future__ import annotations

import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from meetplatform.documents import ConvertedDocument, DocumentService, State

DEADLINE = 120.0


def reactor() -> Any:
    from twisted.internet import reactor as real

    return real


def finished(service: DocumentService, doc: ConvertedDocument) -> Deferred[ConvertedDocument]:
    return service.wait(doc).addTimeout(DEADLINE, reactor())


def first_page(service: DocumentService, doc: ConvertedDocument) -> Deferred[None]:
    """Fires once ``doc`` has a page (or is done, whatever the outcome)."""
    d: Deferred[None] = Deferred()

    def check(changed: ConvertedDocument) -> None:
        if changed is doc and (doc.pages_done >= 1 or doc.done) and not d.called:
            unsubscribe()
            d.callback(None)

    unsubscribe = service.subscribe(check)
    check(doc)
    return d.addTimeout(DEADLINE, reactor())


@dataclass
class Changes:
    """Records every notification: (document id, state, pages done, pages total)."""

    seen: list[tuple[str, State, int, int]] = field(default_factory=list)

    def __call__(self, doc: ConvertedDocument) -> None:
        self.seen.append((doc.id, doc.state, doc.pages_done, doc.pages_total))

    def of(self, doc: ConvertedDocument) -> list[tuple[State, int, int]]:
        return [(state, done, total) for i, state, done, total in self.seen if i == doc.id]


@dataclass
class Files(Resource):
    """Serves ``paths[path]``: bytes, or a callable that writes the answer itself."""

    isLeaf = True
    paths: dict[str, bytes | Callable[[Request], Any]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        Resource.__init__(self)

    def render_GET(self, request: Request) -> Any:
        path = request.path.decode()
        self.requests.append(path)
        answer = self.paths.get(path)
        if answer is None:
            request.setResponseCode(404)
            return b"not found"
        if callable(answer):
            return answer(request)
        request.setHeader(b"content-type", b"text/plain")  # not trusted anyway
        return answer


def redirect(to: str) -> Callable[[Request], Any]:
    def answer(request: Request) -> bytes:
        request.setResponseCode(302)
        request.setHeader(b"location", to.encode())
        return b""

    return answer


def endless(chunk: int = 256 * 1024) -> Callable[[Request], Any]:
    """Streams without a Content-Length until the client goes away."""

    def answer(request: Request) -> Any:
        gone: list[bool] = []
        request.notifyFinish().addBoth(lambda _: gone.append(True))

        def more() -> None:
            if not gone:
                request.write(bytes(chunk))
                reactor().callLater(0, more)

        more()
        return NOT_DONE_YET

    return answer


class FileServer:
    def __init__(self, interface: str = "127.0.0.1") -> None:
        self.files = Files()
        site = Site(self.files)
        site.noisy = False
        self.interface = interface
        self.port = reactor().listenTCP(0, site, interface=interface)

    def url(self, path: str) -> str:
        return f"http://{self.interface}:{self.port.getHost().port}{path}"

    def stop(self) -> Deferred[None]:
        result: Deferred[None] = self.port.stopListening()
        return result


def fake_soffice(directory: Path, pdf: bytes) -> tuple[Path, Path]:
    """A stand-in for LibreOffice: writes ``pdf`` as ``<outdir>/<stem>.pdf`` and touches a
    marker file (the tests check whether it ran). Returns (program, marker)."""
    source = directory / "converted.pdf"
    source.write_bytes(pdf)
    marker = directory / "soffice-ran"
    program = directory / "soffice"
    program.write_text(f"""#!/bin/sh
touch '{marker}'
outdir=""
while [ $# -gt 1 ]; do
  if [ "$1" = "--outdir" ]; then outdir="$2"; fi
  shift
done
name=$(basename "$1")
cp '{source}' "$outdir/${{name%.*}}.pdf"
""")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return program, marker


class NamedReactor:
    """The real reactor, except that its name resolver maps every name to 127.0.0.1 (a
    public-looking name that resolves to loopback: the guard must refuse it after the
    lookup, as it would for DNS rebinding)."""

    def __init__(self) -> None:
        self._real = reactor()
        self.nameResolver = self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def resolveHostName(self, receiver: Any, hostName: str, portNumber: int = 0,
                        *args: Any, **kwargs: Any) -> Any:
        from twisted.internet.address import IPv4Address

        receiver.resolutionBegan(None)
        receiver.addressResolved(IPv4Address("TCP", "127.0.0.1", portNumber))
        receiver.resolutionComplete()
        return receiver
