"""The system under test: meetplatform's site, built from the product's own classes.

    python bench/mp_server.py --port 28080 --secret S [--meetings 20 --participants 5]
                              [--ws-rooms 1 --ws-room-size 1000 --tokens-out FILE]

It does what ``twistd -n meetplatform`` does (``tap.MeetplatformService._bound``): a
``Registry`` on the reactor, a ``Store`` in a temporary data directory, the parts built,
mounted and started as services (``meetplatform.build``: ``build_parts``, ``mount``,
``attach``; ``build_site`` with nothing started in checkouts without ``attach``, and
``tap.build_site`` in older versions still) for the resource tree, served by
``tap.MeetplatformSite`` (the same input limits, no access log), listening with the same
endpoint type and listen queue (``tcp:PORT:interface=127.0.0.1`` through
``config.with_backlog`` when the checkout has it; Twisted's default of 50 before), and
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
handler). ``--experiment NAME`` changes the product for one measurement (never the
product's behaviour): a proposed optimisation, the product's earlier behaviour for a
before/after figure (``transport-write``, ``default-gc``), or a diagnostic (``gc-log``).
``--cprofile FILE`` writes cProfile statistics (CPU time) of the whole run on exit.
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C


def _spec(meeting_id: str, name: str, public_url: str) -> Any:
    """A MeetingSpec exactly as the XML API's ``create`` would build it."""
    from meetplatform.xmlapi import params as P

    pairs = [("name", name), ("meetingID", meeting_id), ("attendeePW", "ap"),
             ("moderatorPW", "mp"), ("record", "false")]
    return P.parse_create(P.Params(pairs), default_logout_url=public_url + "/")


def _meeting_xml_cache(registry: Any) -> None:
    """Cache each meeting's ``<meeting>`` XML until an event concerning it arrives.

    The optimisation proposed for getMeetings in docs/performance.md, applied from outside
    (``MeetingRenderer.xml`` wrapped) to measure what it would gain. Every registry change
    that getMeetings shows is announced by an event naming the meeting, a participant or a
    seat of it; any such event drops that meeting's cached XML.
    """
    import weakref

    from meetplatform.xmlapi.meeting_xml import MeetingRenderer

    original = MeetingRenderer.xml
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
    MeetingRenderer.xml = cached  # type: ignore[method-assign]


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


def _gc_log(registry: Any) -> None:
    """Log every garbage collection of generation 2 that takes over 5 ms to stderr."""
    import gc
    import time

    started = [0.0]

    def callback(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        elif info["generation"] == 2:
            ms = (time.perf_counter() - started[0]) * 1000
            if ms > 5:
                print(f"GC gen2 {ms:.1f} ms collected={info['collected']}",
                      file=sys.stderr, flush=True)

    gc.callbacks.append(callback)


def _transport_write(registry: Any) -> None:
    """The write path before the turn sender: every frame through ``transport.write``.

    (``SignallingProtocol`` then never gets a ``_DirectSocket``; Twisted registers the
    socket for writing and sends on its next turn, per frame.) For the before/after figure.
    """
    from meetplatform.signalling import protocol

    protocol._DirectSocket.for_transport = classmethod(  # type: ignore[method-assign]
        lambda cls, transport, sender: None)


def _default_gc(registry: Any) -> None:
    """The interpreter's garbage collector settings (no ``gc.freeze()`` after start-up,
    the default thresholds). For the before/after figure."""
    from meetplatform import tap

    tap.settle_garbage_collector = lambda: None  # type: ignore[method-assign]


def _compact_cards(registry: Any) -> None:
    """Proposed: participant cards without their false and null members (a client reads
    a missing member as false/null), so that a 1,000-room's roster is about half the
    bytes. NOT the product's protocol."""
    from meetplatform.signalling import messages

    full = messages.participant_json

    def compact(p: Any, reconnecting: bool = False) -> Any:
        return {k: v for k, v in full(p, reconnecting).items()
                if v is not False and v is not None}

    messages.participant_json = compact  # type: ignore[assignment]


#: Changes for one measurement (never by default): proposed optimisations, earlier
#: behaviour for before/after figures, diagnostics.
EXPERIMENTS = {"meeting-xml-cache": _meeting_xml_cache,
               "lazy-autobahn-log": _lazy_autobahn_debug_args,
               "gc-log": _gc_log,
               "transport-write": _transport_write, "default-gc": _default_gc,
               "compact-cards": _compact_cards}


def _build_site() -> Any:
    """The product's ``build_site``, wherever this version keeps it (the benchmarks run
    against earlier commits too, for a same-run comparison)."""
    from meetplatform import tap

    if hasattr(tap, "build_site"):
        return tap.build_site
    from meetplatform.build import build_site

    return build_site


def _running_services(reactor: Any, settings: Any, registry: Any, store: Any
                      ) -> tuple[Any, Any] | None:
    """The resource tree with its parts started as ``twistd`` starts them
    (``build.attach``: the history, the webhook service, the signalling, documents, media
    and recording services), or ``None`` for a checkout without ``build.attach``, which is
    served by its ``build_site`` with nothing started."""
    from meetplatform import build

    if not hasattr(build, "attach"):
        return None
    from twisted.application.service import MultiService

    parts = build.build_parts(reactor, settings, registry, store)
    root = build.mount(parts)
    services = MultiService()
    build.attach(parts, services)
    services.startService()
    return root, services


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
                        help="NOT the product: a proposed optimisation, earlier behaviour or a "
                             "diagnostic for one measurement (see EXPERIMENTS)")
    args = parser.parse_args(argv)
    C.raise_nofile()

    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import globalLogBeginner

    from meetplatform import tap
    from meetplatform.config import Settings
    from meetplatform.model import Role
    from meetplatform.registry import Registry

    log_file = open(args.log, "a") if args.log else sys.stderr  # noqa: SIM115 - for the process lifetime
    globalLogBeginner.beginLoggingTo([C.product_log_observer(log_file)],
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
    build_site = _build_site()
    if "store" in inspect.signature(build_site).parameters:
        from twisted.internet.defer import Deferred

        from meetplatform.store import Store

        store = Store.open(reactor, data_dir)  # type: ignore[arg-type]
        running = _running_services(reactor, settings, registry, store)
        if running is None:
            reactor.addSystemEventTrigger(
                "before", "shutdown", lambda: Deferred.fromCoroutine(store.close()))
            root = build_site(reactor, settings, registry, store)
        else:
            root, services = running

            async def stop() -> None:
                await services.stopService()
                await store.close()

            reactor.addSystemEventTrigger(
                "before", "shutdown", lambda: Deferred.fromCoroutine(stop()))
    else:
        root = build_site(reactor, settings, registry)
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
        # As MeetplatformService does once it has started (twistd).
        if hasattr(tap, "settle_garbage_collector"):
            tap.settle_garbage_collector()
        sys.stdout.write(f"READY {port.getHost().port}\n")
        sys.stdout.flush()

    def failed(failure: Any) -> None:
        sys.stderr.write(f"mp_server: cannot listen: {failure.getErrorMessage()}\n")
        reactor.stop()

    serverFromString(reactor, C.product_listen(listen)).listen(site).addCallbacks(ready, failed)

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
