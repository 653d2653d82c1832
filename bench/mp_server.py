"""The system under test: meetplatform's site, built from the product's own classes.

    python bench/mp_server.py --port 28080 --secret S [--meetings 20 --participants 5]
                              [--ws-rooms 1 --ws-room-size 1000 --tokens-out FILE]

It does what ``twistd -n meetplatform`` does (``tap.MeetplatformService._bound``): a
``Registry`` on the reactor, a ``Store`` in a temporary data directory, ``tap.build_site``
for the resource tree, served by
``tap.MeetplatformSite`` (the same input limits, no access log), listening with the same
endpoint type (``tcp:PORT:interface=127.0.0.1``; Twisted's default backlog of 50), and
logging to a file through ``twisted.logger`` as twistd does. If ``build_site`` does not
mount the signalling socket at ``/ws`` yet, the ``SignallingService`` is mounted there (as
``tests/browser/serve.py`` does). Nothing in the product's behaviour is changed.

Preloading (before ``READY`` is printed, i.e. before anything is measured) goes through the
registry directly, which is what the XML API and the signalling surface call:

* ``--meetings M --participants P``: M meetings ``bench-0`` .. (specs built by the XML API's
  own ``parse_create`` from ``name``/``meetingID``/``attendeePW=ap``/``moderatorPW=mp``),
  each with P connected participants (seat issued, then ``registry.connect``, exactly what
  a browser's socket does; the first is a moderator).
* ``--ws-rooms R --ws-room-size S --tokens-out FILE``: R more meetings ``room-0`` .. with S
  seats each (not connected), and a JSON file listing, per room, the WebSocket URL of every
  seat (``ws://127.0.0.1:PORT/ws?sessionToken=...``) plus the Origin to send.

Prints ``READY <port>`` on stdout once listening. Stops on SIGTERM (the reactor's default
handler). ``--experiment NAME`` switches on a proposed optimisation (not the product's
behaviour; only for measuring what a fix would gain). ``--cprofile FILE`` writes cProfile statistics (CPU time) of the whole run on exit.
"""

from __future__ import annotations

import argparse
import inspect
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _spec(meeting_id: str, name: str, public_url: str) -> Any:
    """A MeetingSpec exactly as the XML API's ``create`` would build it."""
    from meetplatform.xmlapi import params as P

    pairs = [("name", name), ("meetingID", meeting_id), ("attendeePW", "ap"),
             ("moderatorPW", "mp"), ("record", "false")]
    return P.parse_create(P.Params(pairs), default_logout_url=public_url + "/")


def _meeting_xml_cache(registry: Any) -> None:
    """Cache each meeting's ``<meeting>`` XML until an event concerning it arrives.

    The optimisation proposed for getMeetings in docs/performance.md, applied from outside
    (``XmlApi._meeting_xml`` wrapped) to measure what it would gain. Every registry change
    that getMeetings shows is announced by an event naming the meeting, a participant or a
    seat of it; any such event drops that meeting's cached XML.
    """
    import weakref

    from meetplatform.xmlapi.app import XmlApi

    original = XmlApi._meeting_xml
    cache: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def cached(self: Any, meeting: Any) -> str:
        xml = cache.get(meeting)
        if xml is None:
            xml = cache[meeting] = original(self, meeting)
        return xml

    def invalidate(event: Any) -> None:
        for holder in (event, getattr(event, "participant", None), getattr(event, "seat", None),
                       getattr(event, "message", None)):
            meeting = getattr(holder, "meeting", None)
            if meeting is not None:
                cache.pop(meeting, None)

    registry.subscribe(invalidate)
    XmlApi._meeting_xml = cached  # type: ignore[method-assign]


def _direct_send(registry: Any) -> None:
    """Write each signalling frame straight to the socket when Twisted has nothing queued.

    The optimisation proposed for the steady fan-out latency in docs/performance.md, applied
    from outside (``SignallingProtocol.write_frame`` wrapped) to measure what it would gain:
    when the transport is a plain (non-TLS) TCP connection whose Twisted write buffer is
    empty, ``socket.send`` is called directly, which skips registering the socket with
    epoll, the reactor's doWrite dispatch and unregistering it again (two ``epoll_ctl``
    calls and ~15 µs of Python per delivery). Whatever the kernel does not take at once
    (or any error) goes through ``transport.write`` as before, so ordering, back-pressure
    and error handling stay Twisted's.
    """
    from autobahn.websocket.protocol import WebSocketProtocol

    from meetplatform.signalling.protocol import SignallingProtocol

    original = SignallingProtocol.write_frame
    is_open = WebSocketProtocol.STATE_OPEN

    def write_frame(self: Any, data: bytes) -> None:
        t = self.transport
        if (self.state == is_open and not self._paused and getattr(t, "TLS", True) is False
                and t.connected and not t.disconnecting and not t._tempDataBuffer
                and len(t.dataBuffer) == t.offset):
            try:
                sent = t.socket.send(data)
            except OSError:
                sent = 0
            if sent == len(data):
                return
            data = data[sent:]
        original(self, data)

    SignallingProtocol.write_frame = write_frame  # type: ignore[method-assign]


def _lazy_autobahn_debug_args(registry: Any) -> None:
    """Make Autobahn's eagerly computed debug-log arguments lazy.

    Autobahn evaluates the arguments of its ``log.debug`` calls even though txaio drops the
    events (debug is off): a ``pprint.pformat`` of 29 protocol options in every
    ``_connectionMade`` and ``click.style``-coloured ``hltype``/``hlval`` strings on every
    handshake and every ``sendData``. Here those helpers return an object that formats to
    the same text only if a log observer ever formats it. Nothing else changes.
    """
    import autobahn.twisted.websocket as tw
    import autobahn.websocket.protocol as wp
    from autobahn import util

    class Lazy:
        __slots__ = ("args", "fn")

        def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
            self.fn, self.args = fn, args

        def __format__(self, spec: str) -> str:
            return format(self.fn(*self.args), spec)

        def __str__(self) -> str:
            return str(self.fn(*self.args))

        __repr__ = __str__

    def lazy(fn: Any) -> Any:
        return lambda *args: Lazy(fn, args)

    for module in (wp, tw):
        for name in ("hl", "hltype", "hlval"):
            if hasattr(module, name):
                setattr(module, name, lazy(getattr(util, name)))
    real_pformat = wp.pformat  # type: ignore[attr-defined]
    wp.pformat = lazy(real_pformat)  # type: ignore[attr-defined]
    # The one non-logging use of pformat must keep returning a str.
    wp.Timings.__str__ = lambda self: real_pformat(self._timings)  # type: ignore[method-assign]


def _batched_send(registry: Any) -> None:
    """Collect the frames written in one reactor turn; send each socket's batch once, directly.

    ``direct-send`` without giving up Twisted's coalescing: ``write_frame`` appends the frame
    to a per-socket list and schedules one flush (``callLater(0)``) for the whole hub; the
    flush joins each socket's frames and calls ``socket.send`` once when Twisted's buffer
    is empty (else, or for a remainder or an error, ``transport.write``). One syscall per
    socket per turn, no epoll registration. (A real implementation must also flush a
    socket's pending frames before Autobahn writes to it directly, e.g. a close frame; the
    benchmark's traffic does not need that.)
    """
    from autobahn.websocket.protocol import WebSocketProtocol
    from twisted.internet import reactor

    from meetplatform.signalling.protocol import SignallingProtocol

    original = SignallingProtocol.write_frame
    is_open = WebSocketProtocol.STATE_OPEN
    pending: dict[Any, list[bytes]] = {}
    scheduled = [False]

    def flush() -> None:
        scheduled[0] = False
        batches = list(pending.items())
        pending.clear()
        for conn, frames in batches:
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            t = conn.transport
            if (conn.state == is_open and not conn._paused and getattr(t, "TLS", True) is False
                    and t.connected and not t.disconnecting and not t._tempDataBuffer
                    and len(t.dataBuffer) == t.offset):
                try:
                    sent = t.socket.send(data)
                except OSError:
                    sent = 0
                if sent == len(data):
                    continue
                data = data[sent:]
            original(conn, data)

    def write_frame(self: Any, data: bytes) -> None:
        if self.state != is_open:
            return
        frames = pending.get(self)
        if frames is None:
            pending[self] = [data]
        else:
            frames.append(data)
        if not scheduled[0]:
            scheduled[0] = True
            reactor.callLater(0, flush)  # type: ignore[attr-defined]

    SignallingProtocol.write_frame = write_frame  # type: ignore[method-assign]


def _class_level_options(registry: Any) -> None:
    """Keep Autobahn's 29 protocol options on a class instead of on every connection.

    ``WebSocketProtocol._connectionMade`` copies every option from the factory onto the
    protocol instance unless the instance already has it (``hasattr``). Setting the
    factory's values on a per-factory protocol subclass, once, makes ``hasattr`` true, so
    no connection gets 29 instance attributes of its own. Same values, same behaviour.
    """
    from meetplatform.signalling.protocol import SignallingFactory

    original_init = SignallingFactory.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        options = {name: getattr(self, name) for name in self.protocol.CONFIG_ATTRS}
        self.protocol = type(self.protocol.__name__, (self.protocol,), options)

    SignallingFactory.__init__ = __init__  # type: ignore[method-assign]


#: Proposed optimisations that can be switched on for a measurement (never by default).
EXPERIMENTS = {"meeting-xml-cache": _meeting_xml_cache, "direct-send": _direct_send,
               "lazy-autobahn-log": _lazy_autobahn_debug_args, "batched-send": _batched_send,
               "class-level-options": _class_level_options}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--log", default=None, help="log file (default: stderr)")
    parser.add_argument("--meetings", type=int, default=0)
    parser.add_argument("--participants", type=int, default=0)
    parser.add_argument("--ws-rooms", type=int, default=0)
    parser.add_argument("--ws-room-size", type=int, default=0)
    parser.add_argument("--tokens-out", default=None)
    parser.add_argument("--cprofile", default=None)
    parser.add_argument("--experiment", action="append", default=[], choices=list(EXPERIMENTS),
                        help="NOT the product: try a proposed optimisation (see EXPERIMENTS)")
    args = parser.parse_args(argv)
    _raise_nofile()

    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from meetplatform import tap
    from meetplatform.config import Settings
    from meetplatform.registry import Registry, Role

    log_file = open(args.log, "a") if args.log else sys.stderr  # noqa: SIM115 - for the process lifetime
    globalLogBeginner.beginLoggingTo([textFileLogObserver(log_file)],
                                     redirectStandardIO=False)

    public_url = f"http://127.0.0.1:{args.port}"
    listen = f"tcp:{args.port}:interface=127.0.0.1"
    data_dir = Path(tempfile.mkdtemp(prefix="mp-bench-"))
    settings = Settings(secret=args.secret, public_url=public_url, listen=(listen,),
                        data_dir=data_dir, secret_file=data_dir / "secret")
    registry = Registry(reactor, public_url)
    for name in args.experiment:
        EXPERIMENTS[name](registry)
        sys.stderr.write(f"mp_server: EXPERIMENT {name} active (not the product's behaviour)\n")
    if "store" in inspect.signature(tap.build_site).parameters:
        from twisted.internet.defer import Deferred

        from meetplatform.store import Store

        store = Store.open(reactor, data_dir)  # type: ignore[arg-type]
        reactor.addSystemEventTrigger(
            "before", "shutdown", lambda: Deferred.fromCoroutine(store.close()))
        root = tap.build_site(reactor, settings, registry, store)
    else:
        root = tap.build_site(reactor, settings, registry)  # type: ignore[call-arg]
    if b"ws" not in root.children:
        from meetplatform.signalling import SignallingService

        signalling = SignallingService(reactor, settings, registry)
        root.putChild(b"ws", signalling.resource())
        sys.stderr.write("mp_server: tap.build_site has no /ws yet; mounted SignallingService\n")
    site = tap.MeetplatformSite(root, clock=reactor, max_query_bytes=settings.max_query_bytes,
                                max_body_bytes=settings.max_body_bytes)

    for i in range(args.meetings):
        meeting, _ = registry.create_meeting(
            _spec(f"bench-{i}", f"Bench Meeting {i}", public_url))
        for j in range(args.participants):
            seat = registry.issue_seat(meeting, full_name=f"Bench User {i}-{j}",
                                       role=Role.MODERATOR if j == 0 else Role.VIEWER)
            registry.connect(seat)

    if args.ws_rooms:
        rooms: list[list[str]] = []
        for r in range(args.ws_rooms):
            meeting, _ = registry.create_meeting(_spec(f"room-{r}", f"Bench Room {r}", public_url))
            urls = []
            for j in range(args.ws_room_size):
                seat = registry.issue_seat(meeting, full_name=f"Participant {r}-{j}",
                                           role=Role.MODERATOR if j == 0 else Role.VIEWER)
                urls.append(f"ws://127.0.0.1:{args.port}/ws?sessionToken={seat.token}")
            rooms.append(urls)
        assert args.tokens_out, "--tokens-out is required with --ws-rooms"
        Path(args.tokens_out).write_text(json.dumps({"origin": public_url, "rooms": rooms}))

    def ready(port: Any) -> None:
        sys.stdout.write(f"READY {port.getHost().port}\n")
        sys.stdout.flush()

    def failed(failure: Any) -> None:
        sys.stderr.write(f"mp_server: cannot listen: {failure.getErrorMessage()}\n")
        reactor.stop()

    serverFromString(reactor, listen).listen(site).addCallbacks(ready, failed)

    reactor.addSystemEventTrigger(
        "after", "shutdown", lambda: shutil.rmtree(data_dir, ignore_errors=True))

    if args.cprofile:
        import cProfile
        import time

        # CPU time, not wall time: the figures stay meaningful on a shared, busy machine.
        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        try:
            reactor.run()
        finally:
            profiler.disable()
            profiler.dump_stats(args.cprofile)
    else:
        reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
