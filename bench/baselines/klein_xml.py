"""Baseline for issue 2: a bare Klein route returning a fixed XML body.

    python bench/baselines/klein_xml.py --port 28081 [--body-file FILE]

Served exactly like the product (``meetplatform.tap.MeetplatformSite``: same request and
channel classes, same limits, no access log; ``tcp:PORT:interface=127.0.0.1`` endpoint;
``twisted.logger`` to a file) and mounted at the same path, ``/bigbluebutton/api/<call>``,
through a Klein ``<path:call>`` route like the XML API's. The handler sets the same
headers as the XML API and returns the fixed body: no checksum, no parameter parsing, no
registry. The default body is a BBB ``create`` answer (the size of a typical reply);
``--body-file`` serves given bytes instead (the harness passes a real ``getMeetings``
answer so that both sides move the same number of bytes).

Prints ``READY <port>`` on stdout once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path
from typing import Any

from klein import Klein

DEFAULT_BODY = (
    b"<response><returncode>SUCCESS</returncode><meetingID>bench-1</meetingID>"
    b"<internalMeetingID>3f2d6a7c1b0e9d8f7a6b5c4d3e2f1a0b9c8d7e6f-1700000000000"
    b"</internalMeetingID><parentMeetingID>bbb-none</parentMeetingID>"
    b"<attendeePW>ap</attendeePW><moderatorPW>mp</moderatorPW>"
    b"<createTime>1700000000000</createTime><voiceBridge>70757</voiceBridge>"
    b"<dialNumber></dialNumber><createDate>Tue Nov 14 22:13:20 UTC 2023</createDate>"
    b"<hasUserJoined>false</hasUserJoined><duration>0</duration>"
    b"<hasBeenForciblyEnded>false</hasBeenForciblyEnded>"
    b"<messageKey>duplicateWarning</messageKey><message>This conference was already in "
    b"existence and may currently be in progress.</message></response>"
)


class BareXml:
    """One Klein route answering every ``/api/<call>`` with the same bytes."""

    app = Klein()

    def __init__(self, body: bytes) -> None:
        self._body = body

    def resource(self) -> Any:
        return self.app.resource()

    @app.route("/api/<path:call>")
    def call(self, request: Any, call: str) -> bytes:
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"content-type", b"text/xml;charset=utf-8")
        return self._body


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body-file", default=None)
    parser.add_argument("--log", default=None)
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import globalLogBeginner, textFileLogObserver
    from twisted.web.resource import Resource

    from meetplatform.tap import MeetplatformSite

    log_file = open(args.log, "a") if args.log else sys.stderr  # noqa: SIM115 - for the process lifetime
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log_file)],
                                     redirectStandardIO=False)
    body = Path(args.body_file).read_bytes() if args.body_file else DEFAULT_BODY
    root = Resource()
    root.putChild(b"bigbluebutton", BareXml(body).resource())
    site = MeetplatformSite(root, clock=reactor, max_query_bytes=64 * 1024,
                            max_body_bytes=2 * 1024 * 1024)

    def ready(port: Any) -> None:
        sys.stdout.write(f"READY {port.getHost().port}\n")
        sys.stdout.flush()

    def failed(failure: Any) -> None:
        sys.stderr.write(f"klein_xml: cannot listen: {failure.getErrorMessage()}\n")
        reactor.stop()

    serverFromString(reactor, f"tcp:{args.port}:interface=127.0.0.1").listen(site).addCallbacks(
        ready, failed)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
