"""Issue 11 figures: media through a Janus node (SFU) against mesh, in the same run.

Run it inside an isolated network namespace (Janus needs a non-loopback interface; the
environment adds a veth pair inside the namespace, as the browser tests do)::

    unshare --net sh -c 'ip link set lo up && exec python3 bench/sfu_bench.py'

What it measures (one service, one Janus node, headless Chromium with a 320x240 fake
camera; everything on one machine, so the numbers are relative, not absolute):

1. **Upstream bytes per participant at 6 participants** (camera + microphone each):
   the bytes each browser sends over 15 s (``outbound-rtp`` of every PeerConnection),
   SFU meeting then mesh meeting.
2. **Time from opening the join URL to the first decoded remote frame**: a 7th browser
   (no camera) opens a fresh join URL while the 6 are in the meeting and presses Join on
   the pre-join screen at once; 3 samples per mode.
3. **Controller CPU per join** and **reactor lag while 100 participants join**, with
   signalling-only clients (``websocket-client`` threads; no media): each SFU client
   joins and sends ``media.publish`` with an offer captured from Chromium (so every join
   includes the Janus session, both handles, the publisher join and the publish round
   trips); each mesh client joins and reports its media. CPU is the service process's
   utime+stime delta (``/proc``) over the joins plus 3 s; the reactor lag is read as the
   round trip of an app-level ``ping`` a probe socket sends every 20 ms during the joins
   (an upper bound: it includes the probe's own loopback round trip).

Results go to ``bench/results/sfu_bench-<UTC time>.json`` and are printed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from lxml import etree

from tests.browser.helpers import enter, prejoin
from tests.browser.sfu_env import Env, chromium, running_env

RESULTS = REPO / "bench" / "results"
PARTICIPANTS = 6
JOINS = 100
WINDOW = 15.0
TIMEOUT = 120.0

STATS = """
const done = arguments[arguments.length - 1];
const pcs = [];
const s = window.meetplatform && window.meetplatform.sfu;
if (!s) { done(null); return; }
if (s.publisher) pcs.push(s.publisher);
if (s.subscriber) pcs.push(s.subscriber);
for (const pc of window.meetplatform.peers.values()) if (pc.getStats) pcs.push(pc);
const out = {sent: 0, videos: 0, frames: 0, mode: s.mode};
Promise.all(pcs.map((pc) => pc.getStats().then((r) => r.forEach((x) => {
  if (x.type === 'outbound-rtp') out.sent += x.bytesSent || 0;
  if (x.type === 'inbound-rtp' && x.kind === 'video' && x.framesDecoded > 0) {
    out.videos += 1; out.frames += x.framesDecoded;
  }
})).catch(() => null))).then(() => done(out), () => done(out));
"""

#: The reactor-lag probe (its own process): joins with the first token, then sends an
#: app-level ping every 20 ms and prints each round trip (ms) until terminated.
PROBE = """
import json, signal, sys, time, websocket
ws = websocket.create_connection(sys.argv[1], origin=sys.argv[2], timeout=30)
while json.loads(ws.recv())["type"] != "joined":
    pass
print("joined", flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
n = 0
while True:
    n += 1
    sent = time.monotonic()
    ws.send(json.dumps({"type": "ping", "id": f"p{n}", "data": {}}))
    while json.loads(ws.recv()).get("id") != f"p{n}":
        pass
    print((time.monotonic() - sent) * 1000, flush=True)
    time.sleep(0.02)
"""

OFFER = """
const done = arguments[arguments.length - 1];
navigator.mediaDevices.getUserMedia({video: true, audio: true}).then(async (stream) => {
  const pc = new RTCPeerConnection();
  for (const t of stream.getTracks()) pc.addTransceiver(t, {direction: 'sendonly'});
  await pc.setLocalDescription(await pc.createOffer());
  done(pc.localDescription.sdp);
}, (e) => done(null));
"""


def stats(driver: Any) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_async_script(STATS) or {}
    return result


def wait(condition: Any, what: str, timeout: float = TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.25)


def join_browser(driver: Any, url: str) -> None:
    """Open the join URL and pass the pre-join screen with microphone and camera."""
    enter(driver, url, "join-microphone", camera=True)
    wait(lambda: driver.execute_script("return window.meetplatform.media.camera"), "camera")


def media_run(env: Env, mode: str, workdir: Path) -> dict[str, Any]:
    """6 participants with cameras in a meeting of ``mode``; upstream bytes and the first
    frame time of newcomers."""
    meeting = f"bench-{mode}-{int(time.time())}"
    if mode == "mesh":
        env.cli("nodes", "disable", "node-a")
        time.sleep(2.5)
    env.bbb.create(meeting, f"Bench {mode}")
    drivers: list[Any] = []
    try:
        for n in range(PARTICIPANTS):
            driver = chromium(env.video, tempfile.mkdtemp(prefix="mp-bench-", dir=workdir))
            drivers.append(driver)
            join_browser(driver, env.bbb.join_url(meeting, f"P{n}",
                                                  "MODERATOR" if n == 0 else "VIEWER"))
            if mode == "mesh" and n == 0:
                env.cli("nodes", "enable", "node-a")
        modes = {stats(d).get("mode") for d in drivers}
        assert modes == {mode}, modes
        for driver in drivers:
            wait(lambda d=driver: stats(d).get("videos", 0) >= PARTICIPANTS - 1,
                 f"{PARTICIPANTS - 1} remote videos ({mode})")
        before = [stats(d)["sent"] for d in drivers]
        started = time.monotonic()
        time.sleep(WINDOW)
        after = [stats(d)["sent"] for d in drivers]
        elapsed = time.monotonic() - started
        upstream = [(b - a) / elapsed for a, b in zip(before, after, strict=True)]
        newcomer = chromium(env.video, tempfile.mkdtemp(prefix="mp-bench-", dir=workdir))
        drivers.append(newcomer)
        first_frames = []
        for n in range(3):
            url = env.bbb.join_url(meeting, f"New{n}", "VIEWER")
            opened = time.monotonic()
            newcomer.get(url)
            prejoin(newcomer)  # join without camera or audio: the pre-join screen's Join
            wait(lambda: (stats(newcomer).get("videos") or 0) >= 1, "a first remote frame")
            first_frames.append(time.monotonic() - opened)
        return {"upstream_bytes_per_s": upstream,
                "upstream_median": statistics.median(upstream),
                "first_frame_s": first_frames,
                "first_frame_median": statistics.median(first_frames)}
    finally:
        for driver in drivers:
            try:
                driver.quit()
            except Exception as error:  # noqa: BLE001 - a browser that is already gone
                print(f"quitting a browser failed: {error}", file=sys.stderr)
        env.cli("nodes", "enable", "node-a")
        env.bbb.end(meeting)


def capture_offer(env: Env, workdir: Path) -> str:
    driver = chromium(env.video, tempfile.mkdtemp(prefix="mp-bench-", dir=workdir))
    try:
        driver.get(env.base_url + "/")
        offer: str = driver.execute_async_script(OFFER)
        assert offer and "m=video" in offer
        return offer
    finally:
        driver.quit()


def session_token(env: Env, meeting: str, name: str) -> str:
    url = env.bbb.join_url(meeting, name, "VIEWER", redirect="false")
    with urllib.request.urlopen(url, timeout=30) as response:
        root = etree.fromstring(response.read(), etree.XMLParser(resolve_entities=False))
    return str(root.findtext("session_token"))


def cpu_seconds(pid: int) -> float:
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def joins_run(env: Env, mode: str, offer: str) -> dict[str, Any]:
    """``JOINS`` signalling-only participants join a meeting of ``mode``."""
    import websocket

    meeting = f"bench-joins-{mode}-{int(time.time())}"
    if mode == "mesh":
        env.cli("nodes", "disable", "node-a")
        time.sleep(2.5)
    env.bbb.create(meeting, f"Joins {mode}")
    tokens = [session_token(env, meeting, f"J{n}") for n in range(JOINS + 1)]
    ws_base = env.base_url.replace("http://", "ws://") + "/ws?sessionToken="
    # The probe runs in its own process: the 100 client threads here would delay its
    # own reads (the GIL) and inflate what it measures.
    prober = subprocess.Popen(
        [sys.executable, "-c", PROBE, ws_base + tokens[0], env.base_url],
        stdout=subprocess.PIPE, text=True)
    assert prober.stdout is not None
    assert prober.stdout.readline().strip() == "joined"
    if mode == "mesh":
        env.cli("nodes", "enable", "node-a")
    errors: list[str] = []
    sockets: list[Any] = []
    done = threading.Semaphore(0)

    def client(token: str) -> None:
        try:
            ws = websocket.create_connection(ws_base + token, origin=env.base_url, timeout=60)
            sockets.append(ws)
            while json.loads(ws.recv())["type"] != "joined":
                pass
            if mode == "sfu":
                ws.send(json.dumps({"type": "media.publish", "id": "pub", "data": {
                    "sdp": offer, "sources": {"0": "mic", "1": "camera"}}}))
            else:
                ws.send(json.dumps({"type": "media", "id": "pub", "data": {
                    "joinedVoice": True, "muted": False}}))
            while True:
                message = json.loads(ws.recv())
                if message.get("id") == "pub":
                    if message["type"] != "ack":
                        errors.append(str(message))
                    break
        except Exception as error:  # noqa: BLE001 - counted and reported
            errors.append(repr(error))
        finally:
            done.release()

    pid = env.process.pid
    time.sleep(1.0)
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    for token in tokens[1:]:
        threading.Thread(target=client, args=(token,), daemon=True).start()
        time.sleep(0.01)
    for _ in tokens[1:]:
        done.acquire(timeout=TIMEOUT)
    joined_in = time.monotonic() - started
    time.sleep(3.0)
    cpu = cpu_seconds(pid) - cpu_before
    prober.terminate()
    out, _ = prober.communicate(timeout=30)
    rtts = [float(line) for line in out.split()]
    for ws in sockets:
        try:
            ws.close()
        except Exception as error:  # noqa: BLE001 - closing anyway
            print(f"closing a client failed: {error}", file=sys.stderr)
    env.bbb.end(meeting)
    rtts.sort()
    return {"joins": JOINS, "errors": errors[:5], "error_count": len(errors),
            "joined_in_s": joined_in, "cpu_s": cpu, "cpu_ms_per_join": cpu * 1000 / JOINS,
            "ping_rtt_ms_p50": statistics.median(rtts) if rtts else None,
            "ping_rtt_ms_p99": rtts[int(len(rtts) * 0.99) - 1] if rtts else None,
            "ping_samples": len(rtts)}


def main() -> int:
    workdir = Path(tempfile.mkdtemp(prefix="mp-sfu-bench-"))
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "participants": PARTICIPANTS, "joins": JOINS}
    only_joins = "--joins-only" in sys.argv[1:]
    with running_env(("node-a",), check_log=False) as env:
        for mode in () if only_joins else ("sfu", "mesh"):
            results[f"media_{mode}"] = media_run(env, mode, workdir)
            print(mode, json.dumps(results[f"media_{mode}"]), flush=True)
        offer = capture_offer(env, workdir)
        for mode in ("sfu", "mesh"):
            results[f"joins_{mode}"] = joins_run(env, mode, offer)
            print(mode, json.dumps(results[f"joins_{mode}"]), flush=True)
            time.sleep(25)  # the resume grace: the clients leave before the next run
    ratios: dict[str, float] = {}
    if not only_joins:
        sfu, mesh = results["media_sfu"], results["media_mesh"]
        ratios["upstream_sfu_over_mesh"] = sfu["upstream_median"] / mesh["upstream_median"]
        ratios["first_frame_sfu_over_mesh"] = (sfu["first_frame_median"]
                                               / mesh["first_frame_median"])
    results["ratios"] = {
        **ratios,
        "join_cpu_sfu_over_mesh": results["joins_sfu"]["cpu_ms_per_join"]
        / results["joins_mesh"]["cpu_ms_per_join"],
    }
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"sfu_bench-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results["ratios"], indent=2))
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
