"""Issue 14: what getMeetings costs to *render*, in process, with and without its caches.

    python bench/getmeetings_render.py [--meetings 1000 --participants 5 --repeat 30]

``bench/xmlapi_bench.py --cases getMeetings1000,...`` measures the served answer while the
registry does not change, so after the first request it measures the whole-answer cache.
This script measures the other states, in one process (no sockets, no Twisted reactor
running), through the product's own ``MeetingCalls.get_meetings`` handler:

``uncached``       every meeting rendered again (a fresh ``MeetingRenderer`` per call): what
                   any request cost before the caches;
``unchanged``      nothing changed since the previous call (the whole answer is reused);
``one-changed``    one participant's media changed before each call (one meeting rendered
                   again, the answer joined from the other meetings' cached bytes);
``all-changed``    every meeting changed before each call (the worst case with caches).

For XML and JSON. Prints one JSON line per (format, state) with the median milliseconds
per call and appends them to bench/results/getmeetings-render-*.jsonl. CPU only; run it on
an idle core (or compare states of the same run).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import common as C


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--meetings", type=int, default=1000)
    parser.add_argument("--participants", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from twisted.internet.task import Clock

    from meetplatform.config import Settings
    from meetplatform.model import Role
    from meetplatform.registry import Registry
    from meetplatform.xmlapi import params as P
    from meetplatform.xmlapi.meeting_calls import MeetingCalls
    from meetplatform.xmlapi.meeting_xml import MeetingRenderer
    from meetplatform.xmlapi.pipeline import CallContext, Prerendered

    clock = Clock()
    clock.advance(1_700_000_000)
    url = "http://127.0.0.1:1"
    registry = Registry(clock, url)
    settings = Settings(secret="s" * 40, public_url=url, listen=(), data_dir=Path("/tmp"),
                        secret_file=Path("/tmp/none"))
    people = []
    for i in range(args.meetings):
        spec = P.parse_create(P.Params([
            ("name", f"Bench Meeting {i}"), ("meetingID", f"bench-{i}"), ("attendeePW", "ap"),
            ("moderatorPW", "mp"), ("record", "false")]), default_logout_url=url + "/")
        meeting, _ = registry.create_meeting(spec)
        for j in range(args.participants):
            seat = registry.issue_seat(meeting, full_name=f"Bench User {i}-{j}",
                                       role=Role.MODERATOR if j == 0 else Role.VIEWER)
            people.append(registry.connect(seat))

    renderer = MeetingRenderer(registry)
    calls = MeetingCalls(settings, registry, renderer, lambda meeting, token: None)
    cold = MeetingRenderer(registry)
    cold_calls = MeetingCalls(settings, registry, cold, lambda meeting, token: None)
    out = Path(args.out) if args.out else C.results_file("getmeetings-render")

    def change_one() -> None:
        registry.update_media(people[0], joined_voice=not people[0].joined_voice)

    def change_all() -> None:
        for p in people[::args.participants or 1]:
            registry.update_media(p, joined_voice=not p.joined_voice)

    for fmt in ("xml", "json"):
        ctx = CallContext(None, "getMeetings", P.Params([]), None, fmt, None)  # type: ignore[arg-type]

        def clear() -> None:
            # The bench reaches into the renderer: empty caches, as before the first call.
            for cache in (cold._xml, cold._json, cold._lists, cold._fixed, cold._fixed_json):
                cache.clear()

        states: dict[str, tuple[Any, Any]] = {
            "uncached": (clear, cold_calls),
            "unchanged": (None, calls),
            "one-changed": (change_one, calls),
            "all-changed": (change_all, calls),
        }
        size = 0
        for state, (before, handler_owner) in states.items():
            times = []
            for _ in range(args.repeat):
                owner = handler_owner
                if before is not None:
                    before()
                started = time.perf_counter()
                answer = owner.get_meetings(ctx)
                times.append((time.perf_counter() - started) * 1000)
                assert isinstance(answer, Prerendered)
                size = len(answer.body)
            record = {"bench": "getmeetings-render", "format": fmt, "state": state,
                      "meetings": args.meetings, "participants": args.participants,
                      "repeat": args.repeat, "median_ms": round(statistics.median(times), 3),
                      "min_ms": round(min(times), 3), "bytes": size,
                      "product": C.product_fingerprint()}
            C.append_jsonl(out, record)
            print(record, flush=True)
    print(f"raw results: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
