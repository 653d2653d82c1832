"""Issue 12: recording processing time per recorded second, and reactor lag meanwhile.

For each participant count (default 2 and 4): a real Janus and that many headless
Chromium publishers (fake 320x240 camera and microphone, ``tests/recording/media.py``)
record one segment of ``--seconds``; then the product's job runner
(:class:`~meetplatform.recording.jobs.RecordingJobs`, inside a
:class:`~meetplatform.recording.service.RecordingService`) on the real reactor processes
the ``.mjr`` files in its worker process (move, ``janus-pp-rec``, ffmpeg composition,
preview), while a ``LoopingCall`` every 10 ms measures how late the reactor runs it.
Reported per run:

- ``recorded_s``: the composed video's length; ``processing_s``: from the job's start to
  the recording being published; ``ratio``: processing / recorded (target ≤ 0.5 for 2);
- ``lag_ms``: p50 / p99 / max of the reactor lag during processing, and ``idle_lag_ms``
  just before it (target p99 < 20 ms);
- ``child_cpu_s``: CPU of the worker and its tools; ``loadavg`` before and after (the
  machine is shared: other sessions' tests may run at the same time).

Needs its own network namespace (Janus offers no loopback ICE candidates)::

    unshare --net sh -c 'ip link set lo up && python3 bench/recording_bench.py'
    ... python3 bench/recording_bench.py --participants 2 --seconds 20 --rounds 1

Results go to stdout and ``bench/results/recording-<time>.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

import common
from documents_bench import idle_lags, lag_meter, lag_summary

from meetplatform.config import Settings
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.store import recordings_db as rdb
from tests.recording.media import ROOM, make_recording


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def process_once(reactor: Any, node_dir: Path, segments: list[list[int]],
                       idle_seconds: float) -> dict[str, Any]:
    from twisted.internet.task import deferLater

    from meetplatform.recording.service import RecordingService

    idle = await idle_lags(reactor, idle_seconds)
    with tempfile.TemporaryDirectory(prefix="recording-bench-") as data:
        data_dir = Path(data)
        source = data_dir / "node"
        shutil.copytree(node_dir, source)
        settings = Settings(secret="bench-secret-0123456789", data_dir=data_dir)
        store = Store.open(reactor, data_dir)
        service = RecordingService(reactor, settings, Registry(reactor), store)
        service.startService()
        load_before = os.getloadavg()[0]
        cpu_before = children_cpu()
        loop, lags = lag_meter(reactor)
        start = time.monotonic()
        await service.add(rdb.RecordingRow(
            "bench-1", "bench", "bench-1", "Bench", False, "processing", True,
            segments[0][0], segments[-1][1], 0, node="bench", source_dir=str(source),
            room=str(ROOM), segments=tuple((a, b) for a, b in segments)))
        row = None
        while True:
            row = await store.run(lambda db: rdb.get_recording(db, "bench-1"))
            if row is not None and row.state in ("published", "failed"):
                break
            await deferLater(reactor, 0.05, lambda: None)
        end = time.monotonic()
        loop.stop()
        cpu = children_cpu() - cpu_before
        await service.stopService()
        await store.close()
    if row.state != "published" or row.length_ms is None:
        raise RuntimeError(f"processing failed: {row.failure}")
    recorded = row.length_ms / 1000
    return {
        "recorded_s": round(recorded, 2), "processing_s": round(end - start, 2),
        "worker_compose_s": round((row.processing_ms or 0) / 1000, 2),
        "ratio": round((end - start) / recorded, 3),
        "child_cpu_s": round(cpu, 2), "size": row.size,
        "lag_ms": lag_summary(lags), "idle_lag_ms": lag_summary(idle),
        "loadavg": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--participants", default="2,4")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3,
                        help="processing rounds per recording (the recording is made once)")
    parser.add_argument("--idle", type=float, default=3.0)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="recording-bench-media-"))
    made: dict[int, Any] = {}
    for count in (int(c) for c in args.participants.split(",")):
        common.log(f"recording {count} publishers for {args.seconds:g} s")
        made[count] = make_recording(work / f"p{count}", count, [args.seconds])

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    out = common.results_file("recording")
    common.append_jsonl(out, {"machine": common.machine(), "args": vars(args)})
    results: list[dict[str, Any]] = []

    async def run_all() -> None:
        for _ in range(args.rounds):
            for count, recording in made.items():
                result = {"bench": "recording", "participants": count,
                          **await process_once(reactor, recording.node_dir,
                                               recording.segments, args.idle)}
                results.append(result)
                common.append_jsonl(out, result)
                print(result, flush=True)

    def stop(outcome: Any) -> Any:
        reactor.stop()  # type: ignore[attr-defined]
        return outcome

    reactor.callWhenRunning(  # type: ignore[attr-defined]
        lambda: Deferred.fromCoroutine(run_all()).addBoth(stop))
    reactor.run()  # type: ignore[attr-defined]
    shutil.rmtree(work, ignore_errors=True)
    if len(results) != args.rounds * len(made):
        sys.exit("the bench did not finish")
    common.log(f"results in {out}")


if __name__ == "__main__":
    main()
