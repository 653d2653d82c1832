"""Issue 10: whiteboard fan-out. One presenter streams strokes at 60 updates/s to a room.

    python bench/whiteboard_bench.py                 # room of 200, 60 updates/s, 20 s, 3 runs
    python bench/whiteboard_bench.py --room 200 --rate 60 --seconds 20 --runs 3 --nice -10

The server is bench/mp_server.py (the product's site with ``/ws``) pinned to CPU 0; the
load generator is bench/ws_client/whiteboard_client.js (Node, only ``raw_ws.js``: no npm
install needed) pinned to CPU 1. The first seat of the room is a moderator and becomes
the presenter; it sends one ``draw`` per update (2 points each, a new pen shape every
``--stroke-updates`` updates); the server fans each out to the other participants in
the same reactor turn.

Figures per run: per-delivery latency p50/p99/max (send → receive, measured by one clock:
every socket is in the client process), deliveries lost, and the server's CPU
(user+sys from /proc) per update and per delivery over the streaming phase. "Other CPU"
(everything else on the machine) is recorded; a run with more than 0.15 core of it is
repeated once and the less disturbed attempt kept. Results: bench/results/whiteboard-*.jsonl
and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C

PY = sys.executable
CLIENT = C.BENCH_DIR / "ws_client" / "whiteboard_client.js"


def run_once(args: argparse.Namespace, work: Path, number: int) -> dict[str, Any]:
    logs = work / "logs"
    busy_before = C.wait_quiet(args.quiet_wait)
    port = C.free_port()
    urls = work / f"urls-{number}.json"
    record: dict[str, Any] = {"bench": "whiteboard", "run": number, "room": args.room,
                              "rate": args.rate, "busy_before": busy_before,
                              "product": C.product_fingerprint(), "load1": C.load_average()}
    srv = C.start(f"server-{number}", [
        PY, str(C.BENCH_DIR / "mp_server.py"), "--port", str(port),
        "--secret", secrets.token_hex(20), "--log", str(logs / f"server-{number}.log"),
        "--ws-rooms", "1", "--ws-room-size", str(args.room), "--tokens-out", str(urls)],
        cpu=0, log_dir=logs)
    client = None
    try:
        C.expect_ready(srv, timeout=120)
        time.sleep(0.5)
        config = {"urls": str(urls), "rate": args.rate, "seconds": args.seconds,
                  "pointsPerUpdate": 2, "strokeUpdates": args.stroke_updates,
                  "settleMs": 1000, "capSeconds": args.seconds + 90}
        client = C.start(f"client-{number}", ["node", str(CLIENT), json.dumps(config)],
                         cpu=1, log_dir=logs)
        pids = {"server": srv.pid, "client": client.pid}
        marks: dict[str, C.Sample] = {}
        result = None
        deadline = time.monotonic() + args.seconds + 120
        while time.monotonic() < deadline:
            line = client.readline(max(deadline - time.monotonic(), 0.1))
            if line is None or line == "":
                break
            if line.startswith("MARK "):
                marks[line.split()[1]] = C.sample(pids)
            elif line.startswith("RESULT "):
                result = json.loads(line[len("RESULT "):])
                break
        if result is None:
            raise RuntimeError(f"the client gave no result; see {client.log_path}")
        record["client"] = result
        if "steady_start" in marks and "steady_end" in marks:
            cpu = C.usage(marks["steady_start"], marks["steady_end"])
            record["cpu"] = cpu
            record["other_cores"] = cpu["other"]
            busy = cpu["server"]["cores"] * cpu["seconds"]
            if result.get("updates"):
                record["server_us_per_update"] = round(busy * 1e6 / result["updates"], 1)
            if result.get("delivered"):
                record["server_us_per_delivery"] = round(busy * 1e6 / result["delivered"], 2)
            record["server_cores"] = round(cpu["server"]["cores"], 3)
        else:
            record["other_cores"] = 0.0
    finally:
        if client is not None:
            client.stop()
        srv.stop()
    return record


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--room", type=int, default=200)
    parser.add_argument("--rate", type=float, default=60.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--stroke-updates", type=int, default=300,
                        help="updates per shape (a shape holds at most 2,000 points)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--retries", type=int, default=1)
    parser.add_argument("--quiet-wait", type=float, default=30.0)
    parser.add_argument("--nice", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if shutil.which("node") is None:
        raise SystemExit("needs node")
    C.NICE = args.nice
    C.raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="whiteboard-bench-"))
    out = Path(args.out) if args.out else C.results_file("whiteboard")
    C.append_jsonl(out, {"bench": "whiteboard", "machine": C.machine(),
                         "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "argv": sys.argv})
    C.log(f"results: {out}; logs: {work / 'logs'}")
    kept = []
    for number in range(1, args.runs + 1):
        best = None
        for attempt in range(1 + args.retries):
            record = run_once(args, work, number)
            record["attempt"] = attempt + 1
            C.append_jsonl(out, {**record, "kept": False})
            if best is None or record["other_cores"] < best["other_cores"]:
                best = record
            if record["other_cores"] <= C.OTHER_CPU_LIMIT:
                break
        assert best is not None
        C.append_jsonl(out, {**best, "kept": True})
        kept.append(best)
        r = best["client"]
        C.log(f"run {number}: p99 {r.get('latencyMs', {}).get('p99')} ms, lost {r.get('lost')}, "
              f"{best.get('server_us_per_update')} µs server CPU/update, other "
              f"{best['other_cores']:.2f}{' ERROR ' + r['error'] if 'error' in r else ''}")
    print(f"\nWhiteboard fan-out: one presenter at {args.rate:g} updates/s, room of "
          f"{args.room}, {args.seconds:g} s per run\n")
    print("| run | updates | deliveries | lost | latency p50 / p99 / max ms | server cores | "
          "server CPU µs/update | µs/delivery | other cores |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in kept:
        c = r["client"]
        lat = c.get("latencyMs", {})
        print(f"| {r['run']} | {c.get('updates')} | {c.get('delivered')} | {c.get('lost')} | "
              f"{lat.get('p50')} / **{lat.get('p99')}** / {lat.get('max')} | "
              f"{r.get('server_cores')} | **{r.get('server_us_per_update')}** | "
              f"{r.get('server_us_per_delivery')} | {r['other_cores']:.2f} |")
    print(f"\nraw results: {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
