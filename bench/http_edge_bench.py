"""Issue 13: latency of ``GET /healthz`` while other clients send 2 MB form bodies of ``&``.

    python bench/http_edge_bench.py [--seconds 10] [--attackers 4] [--path /healthz ...]

Starts the product (``bench/mp_server.py``: the real site on 127.0.0.1), then, for
``--seconds``, ``--attackers`` threads each POST a 2 MB ``application/x-www-form-urlencoded``
body of ``&`` to the ``--path`` values in turn (a new connection each time, the whole body
sent whatever the server answers), while one prober sends ``GET /healthz`` every 20 ms on a
new connection and records how long each answer took. Prints the prober's p50 / p99 / max
in milliseconds and what the attack requests were answered (status counts); the issue's
bar is p99 < 50 ms. The server's stderr goes to a temporary directory. A timing figure for the report, deliberately not a test (the tests
assert the mechanism: ``tests/test_site.py``).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

BODY = b"&" * (2 * 1024 * 1024)


def _status(sock: socket.socket) -> str:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/") else "none"


def attack(port: int, paths: list[str], stop: threading.Event, counts: Counter[str]) -> None:
    i = 0
    while not stop.is_set():
        path = paths[i % len(paths)]
        i += 1
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(
                    f"POST {path} HTTP/1.1\r\nHost: bench\r\n"
                    "Content-Type: application/x-www-form-urlencoded\r\n"
                    f"Content-Length: {len(BODY)}\r\n\r\n".encode())
                try:
                    sock.sendall(BODY)
                except OSError:
                    pass  # refused early and closed: what the fix does
                counts[f"{path} {_status(sock)}"] += 1
        except OSError as error:
            counts[f"{path} {type(error).__name__}"] += 1


def probe(port: int, stop: threading.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: bench\r\n"
                             b"Connection: close\r\n\r\n")
                status = _status(sock)
        except OSError as error:
            status = type(error).__name__
        latencies.append((time.perf_counter() - started) * 1000)
        if status != "200":
            print(f"probe answered {status}", file=sys.stderr)
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--attackers", type=int, default=4)
    parser.add_argument("--path", action="append", default=None,
                        help="path the form bodies go to; repeatable (default: /healthz, "
                             "/bigbluebutton/api/create, /api/v2/oauth/token)")
    args = parser.parse_args()
    paths = args.path or ["/healthz", "/bigbluebutton/api/create", "/api/v2/oauth/token"]
    port = common.free_port()
    server = common.start("mp_server", [sys.executable, str(common.BENCH_DIR / "mp_server.py"),
                                        "--port", str(port), "--secret", "bench-secret"],
                          cpu=None, log_dir=Path(tempfile.mkdtemp(prefix="http-edge-")))
    try:
        common.expect_ready(server)
        for label, attackers in (("idle", 0), ("attack", args.attackers)):
            stop = threading.Event()
            counts: Counter[str] = Counter()
            latencies: list[float] = []
            threads = [threading.Thread(target=attack, args=(port, paths, stop, counts))
                       for _ in range(attackers)]
            threads.append(threading.Thread(target=probe, args=(port, stop, latencies)))
            for thread in threads:
                thread.start()
            time.sleep(args.seconds)
            stop.set()
            for thread in threads:
                thread.join()
            ordered = sorted(latencies)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            print(f"{label}: /healthz n={len(ordered)} p50={statistics.median(ordered):.1f} ms "
                  f"p99={p99:.1f} ms max={ordered[-1]:.1f} ms; attack answers: "
                  f"{dict(sorted(counts.items()))}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
