"""Baseline for issue 3: a bare Autobahn broadcast server (rooms, no application logic).

    python bench/baselines/autobahn_broadcast.py --port 28090 [--relay sendMessage|prepared]

Autobahn's own broadcast example, with rooms: a client connects to
``ws://127.0.0.1:PORT/?room=R&sessionToken=...`` (the token is ignored), is added to room
R when the socket opens and receives ``{"type":"joined","data":{}}``; every text message
it sends is relayed unchanged to every member of its room, itself included (as
meetplatform's ``chat`` is). ``--relay sendMessage`` (default) calls ``sendMessage`` per
member, as Autobahn's broadcast example does; ``--relay prepared`` frames once with
``prepareMessage`` and calls ``sendPreparedMessage`` per member, as Autobahn's
"broadcast prepared" example does. No compression, no keepalive pings, no limits: the
floor under which a Python signalling server on Autobahn cannot go.

It listens with a plain ``WebSocketServerFactory`` on ``tcp:PORT:interface=127.0.0.1``
(no twisted.web in front, Twisted's default backlog of 50) on the default epoll reactor,
logs through twisted.logger to a file, prints ``READY <port>`` once listening and stops
on SIGTERM.
"""

from __future__ import annotations

import argparse
import resource
import sys
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol

JOINED = b'{"type":"joined","data":{}}'


class BroadcastProtocol(WebSocketServerProtocol):
    room: str | None = None

    def onConnect(self, request: Any) -> None:
        self.room = (request.params.get("room") or ["0"])[0]

    def onOpen(self) -> None:
        self.factory.rooms.setdefault(self.room, set()).add(self)
        self.sendMessage(JOINED)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.broadcast(self.room, payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        members = self.factory.rooms.get(self.room)
        if members is not None:
            members.discard(self)
            if not members:
                del self.factory.rooms[self.room]


class BroadcastFactory(WebSocketServerFactory):
    protocol = BroadcastProtocol

    def __init__(self, url: str, relay: str) -> None:
        super().__init__(url)
        self.rooms: dict[str | None, set[BroadcastProtocol]] = {}
        self.broadcast = self._prepared if relay == "prepared" else self._send_message

    def _send_message(self, room: str | None, payload: bytes, is_binary: bool) -> None:
        for member in self.rooms.get(room, ()):
            member.sendMessage(payload, is_binary)

    def _prepared(self, room: str | None, payload: bytes, is_binary: bool) -> None:
        prepared = self.prepareMessage(payload, is_binary)
        for member in self.rooms.get(room, ()):
            member.sendPreparedMessage(prepared)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--relay", choices=["sendMessage", "prepared"], default="sendMessage")
    parser.add_argument("--log", default=None)
    parser.add_argument("--backlog", type=int, default=50,
                        help="listen queue (Twisted's default 50; the product listens with 1024)")
    args = parser.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import globalLogBeginner, textFileLogObserver

    log_file = open(args.log, "a") if args.log else sys.stderr  # noqa: SIM115 - for the process lifetime
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log_file)],
                                     redirectStandardIO=False)
    factory = BroadcastFactory(f"ws://127.0.0.1:{args.port}", args.relay)

    def ready(port: Any) -> None:
        sys.stdout.write(f"READY {port.getHost().port}\n")
        sys.stdout.flush()

    def failed(failure: Any) -> None:
        sys.stderr.write(f"autobahn_broadcast: cannot listen: {failure.getErrorMessage()}\n")
        reactor.stop()

    serverFromString(reactor, f"tcp:{args.port}:interface=127.0.0.1:backlog={args.backlog}").listen(
        factory).addCallbacks(ready, failed)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
