"""Issue 5: webhook deliveries per second while 1,000 participants join and leave, and what
webhooks add to the join path (webhooks on vs off, interleaved in the same run).

    python bench/webhooks_bench.py [--rounds 3] [--participants 1000] [--rate 250]
                                   [--meetings 20] [--nice -10]

Each run starts two processes, pinned with taskset:

* a **receiver** (CPU 1): a bare twisted.web server on 127.0.0.1 answering 204 to every
  POST and counting them (``GET /count``);
* the **server** (CPU 0): the product's own ``Registry``, ``Store`` (SQLite in a
  temporary data directory, on its worker thread), ``History`` and, in mode ``on``, the
  ``WebhookService`` with its real treq clients, one BBB hook (``hooks/create``'s store
  call) and one space endpoint (Standard Webhooks signatures), both to the receiver.
  Mode ``off`` builds no ``WebhookService`` at all; everything else is the same.

The server drives the workload itself, on its reactor, as the signalling socket would:
``--participants`` users spread over ``--meetings`` meetings of a client's space get a
seat and connect (``registry.connect``: where ``ParticipantJoined`` is emitted and every
subscriber, history and webhooks included, runs synchronously) at ``--rate`` per second;
then they all leave at the same rate, and the meetings end. It measures

* **join time**: the wall time of each ``issue_seat`` + ``connect`` (what a join costs
  the reactor, everything the subscribers do synchronously included); **the webhook
  subscriber's own time per join** (``WebhookService._on_event`` timed for each
  ``ParticipantJoined``: what webhooks add to the join path itself); and **reactor
  lag**: how late a 10 ms probe timer fires (what any request waiting on the reactor
  sees, the deliveries' work included);
* **deliveries/s**: events acknowledged by the receiver from the first event to the last
  (the outbox drained), and during the churn itself; checked against the receiver's count.

Each round runs ``off`` and ``on`` at ``--rate`` (their order alternating between rounds),
then ``burst``: mode ``on`` with joins and leaves at ``--burst-rate``, faster than
deliveries can follow, which measures how fast the outbox drains. Medians over the rounds
are reported (bench/common.py: pinning, the "other CPU" guard, results in bench/results/).
All traffic stays on 127.0.0.1; every process is stopped by its PID.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import common

# --- the receiver ---------------------------------------------------------------------------


def receive(port: int) -> None:
    """Serve 204 to every POST on 127.0.0.1:port; ``GET /count`` answers the counts."""
    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import Site

    counts: dict[str, int] = {}

    class Counter(Resource):
        isLeaf = True

        def render_POST(self, request: Any) -> bytes:
            path = request.path.decode()
            counts[path] = counts.get(path, 0) + 1
            request.setResponseCode(204)
            return b""

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"application/json")
            return json.dumps(counts).encode()

    site = Site(Counter())
    site.noisy = False
    reactor.listenTCP(port, site, backlog=512, interface="127.0.0.1")  # type: ignore[attr-defined]
    print(f"READY {port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]


# --- the server -----------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": round(pick(0.50), 4), "p90": round(pick(0.90), 4),
            "p99": round(pick(0.99), 4), "max": round(ordered[-1], 4),
            "mean": round(statistics.fmean(ordered), 4)}


def serve(mode: str, receiver_port: int, participants: int, meetings: int,
          rate: float) -> None:
    """Run the workload once in this process; print ``RESULT <json>`` and exit."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred
    from twisted.internet.task import LoopingCall, deferLater

    # What the webhook service itself does on the join path: its registry subscriber
    # (``WebhookService._on_event``), timed for every ParticipantJoined. Wrapped on the
    # class before the service subscribes, so the subscription is the timed method.
    from meetplatform import events as ev
    from meetplatform.config import Settings
    from meetplatform.history import History
    from meetplatform.model import EndReason, MeetingSpec, Role
    from meetplatform.registry import Registry
    from meetplatform.store import Store
    from meetplatform.store import webhooks_db as wdb
    from meetplatform.webhooks import WebhookService
    from meetplatform.webhooks.service import WebhookService as _Service

    subscriber_us: list[float] = []
    untimed = _Service._on_event

    def timed_on_event(self: Any, event: Any) -> None:
        t0 = time.perf_counter()
        untimed(self, event)
        if type(event) is ev.ParticipantJoined:
            subscriber_us.append((time.perf_counter() - t0) * 1e6)

    _Service._on_event = timed_on_event  # type: ignore[method-assign]

    data_dir = Path(tempfile.mkdtemp(prefix="mp-webhooks-bench-"))
    settings = Settings(secret="bench-secret-" + "x" * 20, public_url="http://127.0.0.1:1",
                        data_dir=data_dir, allow_webhook_networks=("127.0.0.0/8",))
    registry = Registry(reactor)
    store = Store.open(reactor, data_dir)
    history = History(reactor, settings, registry, store)
    history.startService()
    webhooks: WebhookService | None = None

    async def run() -> dict[str, Any]:
        nonlocal webhooks
        now = int(time.time() * 1000)
        _, space, _ = await store.create_client("bench", now)
        if mode == "on":
            webhooks = WebhookService(reactor, settings, registry, store)
            webhooks.startService()
            await webhooks.receivers.create_hook(
                callback_url=f"http://127.0.0.1:{receiver_port}/hook", meeting_id=None,
                event_ids=None, get_raw=False, checksum_algorithm="sha1", now=now)
            await webhooks.receivers.create_endpoint(
                space_id=space.id, url=f"http://127.0.0.1:{receiver_port}/space",
                description="bench", event_types=[], now=now)
        rooms = [registry.create_meeting(MeetingSpec(f"{space.id}/bench-{n}", f"Bench {n}",
                                                     expire_when_last_user_left_minutes=0))[0]
                 for n in range(meetings)]
        await deferLater(reactor, 0.5, lambda: None)  # creations delivered, store idle

        join_ms: list[float] = []
        leave_ms: list[float] = []
        lag_ms: list[float] = []
        people: list[Any] = []
        tick = 0.02
        per_tick = max(1, round(rate * tick))
        t_start = time.perf_counter()
        delivered_start = webhooks.dispatcher.delivered if webhooks else 0
        backlog: list[int] = []

        probing = True

        def probe(expected: float) -> None:
            # how late the reactor runs a timer: what any request waiting on it would see
            now = time.perf_counter()
            lag_ms.append(max(0.0, (now - expected) * 1000))
            if probing:
                reactor.callLater(0.01, probe, now + 0.01)  # type: ignore[attr-defined]

        reactor.callLater(0.01, probe, time.perf_counter() + 0.01)  # type: ignore[attr-defined]

        async def paced(work: Any, total: int) -> None:
            done = 0
            finished: Deferred[None] = Deferred()

            def step() -> None:
                nonlocal done
                for _ in range(per_tick):
                    if done >= total:
                        break
                    work(done)
                    done += 1
                if webhooks is not None:
                    backlog.append(webhooks.dispatcher.pending_targets())
                if done >= total:
                    loop.stop()
                    finished.callback(None)

            loop = LoopingCall(step)
            loop.clock = reactor
            loop.start(tick, now=True)
            await finished

        def join(n: int) -> None:
            meeting = rooms[n % meetings]
            t0 = time.perf_counter()
            seat = registry.issue_seat(meeting, full_name=f"User {n}",
                                       role=Role.MODERATOR if n < meetings else Role.VIEWER)
            people.append(registry.connect(seat))
            join_ms.append((time.perf_counter() - t0) * 1000)

        def leave(n: int) -> None:
            t0 = time.perf_counter()
            registry.disconnect(people[n])
            leave_ms.append((time.perf_counter() - t0) * 1000)

        await paced(join, participants)
        await paced(leave, participants)
        for meeting in rooms:
            registry.end_meeting(meeting, EndReason.ENDED_FROM_API)
        t_churn = time.perf_counter() - t_start
        probing = False
        delivered_in_churn = (webhooks.dispatcher.delivered - delivered_start) if webhooks else 0
        result: dict[str, Any] = {
            "mode": mode, "participants": participants, "meetings": meetings, "rate": rate,
            "join_ms": percentiles(join_ms), "leave_ms": percentiles(leave_ms),
            "reactor_lag_ms": percentiles(lag_ms), "churn_seconds": round(t_churn, 3),
        }
        if webhooks is not None:
            result["webhooks_subscriber_us_per_join"] = percentiles(subscriber_us)
            await webhooks.settle()
            t_done = time.perf_counter() - t_start
            delivered = webhooks.dispatcher.delivered - delivered_start
            result.update({
                "delivered": delivered, "failed": webhooks.dispatcher.failed,
                "delivered_during_churn": delivered_in_churn,
                "drain_seconds": round(t_done, 3),
                "deliveries_per_s": round(delivered / t_done, 1),
                "deliveries_per_s_during_churn": round(delivered_in_churn / t_churn, 1),
                "max_targets_busy": max(backlog) if backlog else 0,
                "outbox_left": await store.run(wdb.outbox_size),
            })
        await history.flush()
        return result

    async def close() -> None:
        if webhooks is not None and webhooks.running:
            await webhooks.stopService()
        if history.running:
            await history.stopService()
        await store.close()

    reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
        "before", "shutdown", lambda: Deferred.fromCoroutine(close()))

    def done(result: Any) -> None:
        print("RESULT " + json.dumps(result), flush=True)
        reactor.stop()  # type: ignore[attr-defined]

    def failed(failure: Any) -> None:
        failure.printTraceback(file=sys.stderr)
        reactor.stop()  # type: ignore[attr-defined]

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: Deferred.fromCoroutine(run()).addCallbacks(done, failed))
    print("READY", flush=True)
    reactor.run()  # type: ignore[attr-defined]


# --- the harness ----------------------------------------------------------------------------


def one_run(mode: str, args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    rate = args.burst_rate if mode == "burst" else args.rate
    serve_mode = "on" if mode == "burst" else mode
    port = common.free_port()
    receiver = common.start("receiver", [sys.executable, __file__, "--receive", str(port)],
                            cpu=1, log_dir=log_dir)
    server: common.Proc | None = None
    try:
        common.expect_ready(receiver)
        server = common.start(f"server-{mode}", [
            sys.executable, __file__, "--serve", serve_mode, "--receiver-port", str(port),
            "--participants", str(args.participants), "--meetings", str(args.meetings),
            "--rate", str(rate)], cpu=0, log_dir=log_dir)
        common.expect_ready(server)
        pids = {"server": server.pid, "receiver": receiver.pid}
        before = common.sample(pids)
        deadline = time.monotonic() + args.max_seconds
        result: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            line = server.readline(max(deadline - time.monotonic(), 0.1))
            if line is None or line == "":
                break
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
                break
        after = common.sample(pids)
        if result is None:
            tail = server.log_path.read_text()[-3000:]
            raise RuntimeError(f"server ({mode}) gave no result:\n{tail}")
        result["cpu"] = common.usage(before, after)
        result["run"] = mode
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/count", timeout=10) as answer:
            result["receiver_counts"] = json.loads(answer.read())
        return result
    finally:
        if server is not None:
            server.stop()
        receiver.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--participants", type=int, default=1000)
    parser.add_argument("--meetings", type=int, default=20)
    parser.add_argument("--rate", type=float, default=250.0,
                        help="joins (then leaves) per second")
    parser.add_argument("--burst-rate", type=float, default=5000.0,
                        help="joins (then leaves) per second of the throughput run")
    parser.add_argument("--max-seconds", type=float, default=120.0)
    parser.add_argument("--quiet-wait", type=float, default=20.0)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--serve", choices=("on", "off"))
    parser.add_argument("--receive", type=int)
    parser.add_argument("--receiver-port", type=int)
    args = parser.parse_args()
    if args.receive is not None:
        receive(args.receive)
        return
    if args.serve is not None:
        serve(args.serve, args.receiver_port, args.participants, args.meetings, args.rate)
        return

    common.raise_nofile()
    common.NICE = args.nice
    log_dir = Path(tempfile.mkdtemp(prefix="mp-webhooks-bench-logs-"))
    out = common.results_file("webhooks")
    common.append_jsonl(out, {"machine": common.machine(),
                              "product": common.product_fingerprint(), "args": vars(args)})
    common.log(f"logs in {log_dir}, results in {out}")
    rows: list[dict[str, Any]] = []
    for round_no in range(args.rounds):
        pair: dict[str, dict[str, Any]] = {}
        for mode in (("off", "on") if round_no % 2 == 0 else ("on", "off")) + ("burst",):
            quiet = common.wait_quiet(args.quiet_wait)
            result = one_run(mode, args, log_dir)
            result.update({"round": round_no, "quiet_before": quiet})
            common.append_jsonl(out, result)
            pair[mode] = result
            common.log(f"round {round_no} {mode}: join p50 {result['join_ms']['p50']} ms "
                       f"p99 {result['join_ms']['p99']} ms, lag p99 "
                       f"{result['reactor_lag_ms']['p99']} ms"
                       + (f", {result['deliveries_per_s']} deliveries/s "
                          f"({result['delivered']} in {result['drain_seconds']} s)"
                          if mode != "off" else "")
                       + f", other CPU {result['cpu']['other']}")
        rows.append(pair)

    def med(mode: str, *path: str) -> float:
        values = []
        for pair in rows:
            value: Any = pair[mode]
            for key in path:
                value = value[key]
            values.append(float(value))
        return common.median(values)

    summary = {
        "summary": True,
        "join_ms_p50": {"off": med("off", "join_ms", "p50"), "on": med("on", "join_ms", "p50")},
        "join_ms_p99": {"off": med("off", "join_ms", "p99"), "on": med("on", "join_ms", "p99")},
        "reactor_lag_ms_p50": {"off": med("off", "reactor_lag_ms", "p50"),
                               "on": med("on", "reactor_lag_ms", "p50")},
        "reactor_lag_ms_p99": {"off": med("off", "reactor_lag_ms", "p99"),
                               "on": med("on", "reactor_lag_ms", "p99")},
        "webhooks_subscriber_us_per_join": {
            "p50": med("on", "webhooks_subscriber_us_per_join", "p50"),
            "p99": med("on", "webhooks_subscriber_us_per_join", "p99")},
        "deliveries_per_s_paced": med("on", "deliveries_per_s"),
        "deliveries_per_s_burst": med("burst", "deliveries_per_s"),
        "burst_drain_seconds": med("burst", "drain_seconds"),
        "delivered": med("on", "delivered"),
        "server_cores_on": med("on", "cpu", "server", "cores"),
        "server_cores_off": med("off", "cpu", "server", "cores"),
    }
    common.append_jsonl(out, summary)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
