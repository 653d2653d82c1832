"""Issue 10: document conversion throughput, time to first page and reactor lag.

One process: the product's :class:`~meetplatform.documents.DocumentService` on the real
reactor converts a generated 100-page PDF (text pages, letter size; made by
``tests/documents/pdfs.py``, no network) with real poppler processes, while a
``LoopingCall`` every 10 ms measures how late the reactor runs it (lag = actual - due
time). Reported per run:

- ``first_page_s``: from ``add()`` to the first page image written;
- ``pages_per_s``: pages / (``add()`` to ``ready``);
- ``child_cpu_ms_per_page``: CPU of the converter processes (user + system) per page;
- ``lag_ms``: p50 / p99 / max of the reactor lag during the conversion, and
  ``idle_lag_ms`` the same over the seconds just before it, nothing converting (what the
  machine's other load alone costs the reactor);
- ``loadavg``: the machine's 1-minute load before and after (the machine is shared; a
  high load means the figures are pessimistic).

Results go to stdout (one line per run) and ``bench/results/documents-<time>.jsonl``.

    python bench/documents_bench.py                      # png and jpeg, 3 rounds each
    python bench/documents_bench.py --formats png --rounds 1 --pages 100
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import common

from meetplatform.documents import DocumentLimits, DocumentService, State
from meetplatform.model import Document
from tests.documents.pdfs import make_pdf

MEETING = "bench-meeting"
TICK = 0.010


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def lag_summary(lags: list[float]) -> dict[str, float]:
    return {"p50": round(1000 * percentile(lags, 0.5), 2),
            "p99": round(1000 * percentile(lags, 0.99), 2),
            "max": round(1000 * max(lags, default=0.0), 2), "samples": len(lags)}


def lag_meter(reactor: Any) -> tuple[Any, list[float]]:
    """A started LoopingCall recording how late each tick runs."""
    from twisted.internet.task import LoopingCall

    lags: list[float] = []
    due = [0.0]

    def tick() -> None:
        now = time.monotonic()
        if due[0]:
            lags.append(max(0.0, now - due[0]))
        due[0] = now + TICK

    loop = LoopingCall(tick)
    loop.clock = reactor
    loop.start(TICK)
    return loop, lags


async def idle_lags(reactor: Any, seconds: float) -> list[float]:
    from twisted.internet.task import deferLater

    loop, lags = lag_meter(reactor)
    await deferLater(reactor, seconds, lambda: None)
    loop.stop()
    return lags


async def one_run(reactor: Any, data: bytes, page_format: str, pages: int,
                  idle_seconds: float) -> dict[str, Any]:
    idle = await idle_lags(reactor, idle_seconds)

    with tempfile.TemporaryDirectory(prefix="documents-bench-") as data_dir:
        service = DocumentService(reactor, Path(data_dir),
                                  limits=DocumentLimits(page_format=page_format))
        first_page = [0.0]

        def progress(doc: Any) -> None:
            if doc.pages_done >= 1 and not first_page[0]:
                first_page[0] = time.monotonic()

        service.subscribe(progress)
        load_before = os.getloadavg()[0]
        cpu_before = children_cpu()
        loop, lags = lag_meter(reactor)
        start = time.monotonic()
        [doc] = service.add(MEETING, [Document(filename="bench.pdf", content=data)])
        await service.wait(doc)
        end = time.monotonic()
        loop.stop()
        cpu = children_cpu() - cpu_before
        if doc.state is not State.READY:
            raise RuntimeError(f"conversion failed: {doc.error}")
        await service.purge(MEETING)
    return {
        "bench": "documents", "format": page_format, "pages": pages,
        "first_page_s": round(first_page[0] - start, 3),
        "total_s": round(end - start, 3),
        "pages_per_s": round(pages / (end - start), 2),
        "child_cpu_ms_per_page": round(1000 * cpu / pages, 1),
        "lag_ms": lag_summary(lags),
        "idle_lag_ms": lag_summary(idle),
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--formats", default="png,jpeg")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0,
                        help="seconds of reactor lag measured before each conversion")
    args = parser.parse_args()

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    data = make_pdf(args.pages)
    out = common.results_file("documents")
    common.append_jsonl(out, {"machine": common.machine(), "args": vars(args)})
    results: list[dict[str, Any]] = []

    async def run_all() -> None:
        for _ in range(args.rounds):
            for page_format in args.formats.split(","):
                result = await one_run(reactor, data, page_format, args.pages,
                                       args.idle)
                results.append(result)
                common.append_jsonl(out, result)
                print(result, flush=True)

    def stop(outcome: Any) -> Any:
        reactor.stop()  # type: ignore[attr-defined]
        return outcome

    def start() -> None:
        Deferred.fromCoroutine(run_all()).addBoth(stop)

    reactor.callWhenRunning(start)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    if len(results) != args.rounds * len(args.formats.split(",")):
        sys.exit("the bench did not finish")
    common.log(f"results in {out}")


if __name__ == "__main__":
    main()
