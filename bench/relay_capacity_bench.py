"""Relay capacity of one Janus media node: one publisher, as many subscribers as fit.

One Janus (Debian's 1.1.2, VideoRoom, configuration from
:mod:`meetplatform.media.janus_config`) relays one publisher's video (VP8, and Opus audio
with ``--audio``) to N real WebRTC subscribers. Publisher and subscribers are aiortc
peer connections (a complete WebRTC stack in Python: ICE, DTLS, SRTP, RTCP) driven
through :mod:`meetplatform.media.janus` (the service's own Janus client), all in this
process on one asyncio loop (Twisted's asyncio reactor carries the Janus client).

N grows in steps (``--steps 5,10,20``); after each step settles, a window of
``--window`` seconds measures

- Janus's CPU time from ``/proc/<pid>/stat`` (in cores),
- loss: the subscribers' RTCP receiver statistics (``packetsLost`` against
  ``packetsReceived`` over the window, summed over all subscribers),
- this harness's own CPU (the subscribers decode, so on a small machine they, not Janus,
  run out of CPU first: a step whose harness uses more than ``--harness-limit`` cores
  ends the run).

The run also stops when the harness falls behind (its measuring window runs late, or the
streams' rate drops below 80 % of the first step's: the publisher's sending starves on a
busy machine). The result: the largest step with loss < 1 % where the harness kept up,
and its streams (media streams forwarded to subscribers) per core of Janus CPU. Janus ignores loopback ICE candidates, so the bench
runs in its own network namespace with a veth pair (it adds the pair itself and refuses
any namespace with an interface besides ``lo``)::

    unshare --net sh -c 'ip link set lo up && exec python3 bench/relay_capacity_bench.py'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.netns import VethPair, only_loopback

JANUS = shutil.which("janus") or "/usr/bin/janus"
CLK_TCK = os.sysconf("SC_CLK_TCK")
JANUS_IP, CLIENT_IP = "10.99.2.1", "10.99.2.2"
#: The pair the tests use too (tests/netns.py): Janus on one end, the subscribers on the other.
VETH = VethPair("mpbench0", "mpbench1", JANUS_IP, CLIENT_IP)
ROOM = 4242
ROOM_SECRET = "bench-room-secret"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _proc_cpu(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Step:
    subscribers: int
    streams: int
    window_s: float
    janus_cores: float
    harness_cores: float
    packets_received: int
    packets_lost: int
    kbps_per_stream: float
    loss_pct: float
    streams_per_janus_core: float | None
    load_average: float
    #: The harness kept up: its loop was not late and every stream still got at least
    #: 80 % of the first step's rate (else the publisher's sending starved, not Janus).
    harness_kept_up: bool


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        from twisted.internet import reactor

        from meetplatform.media.janus_config import JanusConfig, write_config

        self.args = args
        self.reactor = reactor
        self.config = JanusConfig(
            name="bench", api_secret="bench-api-secret-0123", admin_secret="bench-admin-0123",
            admin_key="bench-admin-key-0123", ws_host="127.0.0.1", ws_port=_free_port(),
            admin_host="127.0.0.1", admin_port=_free_port(), events_url=None,
            event_secret="unused", configs_folder=workdir, recordings_dir=workdir / "rec",
            rtp_port_range="30000-39999", ice_enforce_list=VETH.name, debug_level=2)
        write_config(self.config, workdir)
        self.workdir = workdir
        self.janus: subprocess.Popen[bytes] | None = None
        self.pcs: list[Any] = []
        self.drains: list[asyncio.Task[None]] = []

    # --- Twisted from asyncio ------------------------------------------------------------

    def tw(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Future[Any]:
        from twisted.internet.defer import Deferred

        return Deferred.fromCoroutine(coro).asFuture(asyncio.get_running_loop())

    # --- Janus ---------------------------------------------------------------------------

    def spawn_janus(self) -> None:
        with (self.workdir / "janus.log").open("ab") as log:
            self.janus = subprocess.Popen(
                [JANUS, "-F", str(self.workdir), "-C", str(self.workdir / "janus.jcfg")],
                stdout=log, stderr=subprocess.STDOUT)

    async def start_janus(self) -> None:
        self.spawn_janus()
        from meetplatform.media.janus import JanusAdmin, JanusError, VideoRoom

        admin = JanusAdmin(self.reactor, f"http://127.0.0.1:{self.config.admin_port}/admin",
                           self.config.admin_secret)
        last: Exception | None = None
        for _ in range(100):
            try:
                await self.tw(admin.ping(timeout=1))
                break
            except JanusError as error:
                last = error
                await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"Janus did not answer ({last}): "
                               + (self.workdir / "janus.log").read_text()[-2000:])
        rooms = VideoRoom.over_admin(admin, self.config.admin_key)
        await self.tw(rooms.create_room(ROOM, secret=ROOM_SECRET, videocodec="vp8",
                                        bitrate=self.args.bitrate, publishers=3))

    async def connect(self) -> None:
        from meetplatform.media.janus import JanusConnection

        self.connection = await self.tw(JanusConnection.connect(
            self.reactor, f"ws://127.0.0.1:{self.config.ws_port}", self.config.api_secret))
        self.session = await self.tw(self.connection.create_session())

    # --- peers ---------------------------------------------------------------------------

    def _track(self) -> Any:
        import av
        import numpy
        from aiortc import VideoStreamTrack

        width, height = self.args.width, self.args.height
        fps = self.args.fps

        class Pattern(VideoStreamTrack):  # type: ignore[misc]
            """A moving gradient (so VP8 has something to encode) at ``fps``."""

            def __init__(self) -> None:
                super().__init__()
                self.n = 0
                base = numpy.add.outer(numpy.arange(height), numpy.arange(width)) % 256
                self.base = numpy.repeat(base[:, :, None], 3, axis=2).astype(numpy.uint8)

            async def recv(self) -> Any:
                self.n += 1
                await asyncio.sleep(1 / fps)
                frame = av.VideoFrame.from_ndarray(self.base + numpy.uint8(self.n % 256),
                                                   format="rgb24")
                frame.pts = self.n * (90000 // fps)
                frame.time_base = Fraction(1, 90000)
                return frame

        return Pattern()

    async def publish(self) -> int:
        from aiortc import RTCPeerConnection, RTCSessionDescription
        from aiortc.mediastreams import AudioStreamTrack

        handle = await self.tw(self.session.attach())
        joined = await self.tw(handle.message({"request": "join", "ptype": "publisher",
                                               "room": ROOM, "display": "publisher"}))
        pc = RTCPeerConnection()
        self.pcs.append(pc)
        pc.addTrack(self._track())
        if self.args.audio:
            pc.addTrack(AudioStreamTrack())
        await pc.setLocalDescription(await pc.createOffer())
        reply = await self.tw(handle.message(
            {"request": "publish", "audio": self.args.audio, "video": True},
            {"type": "offer", "sdp": pc.localDescription.sdp}))
        assert reply.jsep is not None, reply.data
        await pc.setRemoteDescription(RTCSessionDescription(reply.jsep["sdp"], "answer"))
        for _ in range(300):  # the feed exists once its media is up
            if pc.connectionState == "connected":
                break
            if pc.connectionState == "failed":
                raise RuntimeError("the publisher's connection to Janus failed")
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("the publisher did not connect to Janus within 30 s")
        return int(joined.data["id"])

    async def subscribe(self, feed: int) -> None:
        from aiortc import RTCPeerConnection, RTCSessionDescription

        from meetplatform.media.janus import JanusPluginError

        handle = await self.tw(self.session.attach())
        for attempt in range(50):
            try:
                reply = await self.tw(handle.message({
                    "request": "join", "ptype": "subscriber", "room": ROOM,
                    "streams": [{"feed": feed}]}))
                break
            except JanusPluginError:  # 428: the feed's media is not up yet
                if attempt == 49:
                    raise
                await asyncio.sleep(0.2)
        assert reply.jsep is not None, reply.data
        pc = RTCPeerConnection()
        self.pcs.append(pc)

        @pc.on("track")  # type: ignore[misc]
        def on_track(track: Any) -> None:
            self.drains.append(asyncio.ensure_future(self._drain(track)))

        await pc.setRemoteDescription(RTCSessionDescription(reply.jsep["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        await self.tw(handle.message({"request": "start"},
                                     {"type": "answer", "sdp": pc.localDescription.sdp}))

    @staticmethod
    async def _drain(track: Any) -> None:
        """Take the received frames off the queue (aiortc's receiver decodes them anyway)."""
        from aiortc.mediastreams import MediaStreamError

        try:
            while True:
                await track.recv()
        except MediaStreamError:
            return

    async def inbound(self) -> tuple[int, int, int, int]:
        """(packets received, packets lost, inbound streams, bytes received) over every
        subscriber."""
        received = lost = streams = octets = 0
        for pc in self.pcs[1:]:
            report = await pc.getStats()
            for stats in report.values():
                if stats.type == "inbound-rtp":
                    received += stats.packetsReceived
                    lost += max(0, stats.packetsLost)
                    streams += 1
                elif stats.type == "transport":  # aiortc counts bytes per transport
                    octets += stats.bytesReceived
        return received, lost, streams, octets

    # --- the run -------------------------------------------------------------------------

    async def run(self) -> list[Step]:
        await self.start_janus()
        await self.connect()
        feed = await self.publish()
        assert self.janus is not None
        steps: list[Step] = []
        count = 0
        first_kbps: float | None = None
        for target in self.args.steps:
            while count < target:
                await self.subscribe(feed)
                count += 1
            await asyncio.sleep(self.args.settle)
            received0, lost0, _, bytes0 = await self.inbound()
            janus0, self0, t0 = _proc_cpu(self.janus.pid), _self_cpu(), time.monotonic()
            await asyncio.sleep(self.args.window)
            received1, lost1, streams, bytes1 = await self.inbound()
            janus1, self1, t1 = _proc_cpu(self.janus.pid), _self_cpu(), time.monotonic()
            window = t1 - t0
            got, missed = received1 - received0, lost1 - lost0
            loss = 100.0 * missed / (got + missed) if got + missed else 100.0
            janus_cores = (janus1 - janus0) / window
            kbps = (bytes1 - bytes0) * 8 / 1000 / window / max(1, streams)
            first_kbps = kbps if first_kbps is None else first_kbps
            kept_up = window < 1.1 * self.args.window and kbps >= 0.8 * first_kbps
            step = Step(
                subscribers=count, streams=streams, window_s=round(window, 1),
                janus_cores=round(janus_cores, 3),
                harness_cores=round((self1 - self0) / window, 2),
                packets_received=got, packets_lost=missed, loss_pct=round(loss, 2),
                kbps_per_stream=round(kbps, 1),
                streams_per_janus_core=round(streams / janus_cores) if janus_cores else None,
                load_average=round(os.getloadavg()[0], 1), harness_kept_up=kept_up)
            steps.append(step)
            print(json.dumps(asdict(step)), flush=True)
            if step.harness_cores > self.args.harness_limit or loss >= 1.0 or not kept_up:
                break
        return steps

    async def close(self) -> None:
        for task in self.drains:
            task.cancel()
        for pc in self.pcs:
            await pc.close()
        if self.janus is not None and self.janus.poll() is None:
            self.janus.terminate()
            self.janus.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="2,4,8,12,16,24,32",
                        type=lambda s: [int(x) for x in s.split(",")],
                        help="subscriber counts to measure at (default: %(default)s)")
    parser.add_argument("--window", type=float, default=15.0, help="seconds measured per step")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds after adding subscribers before measuring")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=15)
    parser.add_argument("--bitrate", type=int, default=300_000,
                        help="the room's bitrate cap for the publisher (bps)")
    parser.add_argument("--audio", action="store_true", help="publish Opus audio too")
    parser.add_argument("--harness-limit", type=float, default=1.6,
                        help="stop when this process uses more cores than this")
    parser.add_argument("--output", type=Path, help="write the steps as JSON here")
    args = parser.parse_args(argv)

    if not only_loopback():
        parser.error("run inside an isolated network namespace: unshare --net sh -c "
                     "'ip link set lo up && exec python3 bench/relay_capacity_bench.py'")
    VETH.up()

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    workdir = Path(tempfile.mkdtemp(prefix="mp-relay-bench-"))
    bench = Bench(args, workdir)

    async def go() -> list[Step]:
        try:
            return await bench.run()
        finally:
            await bench.close()

    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    outcome: list[Any] = []

    def start() -> None:
        done = Deferred.fromFuture(asyncio.ensure_future(go()))
        done.addBoth(outcome.append)
        done.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(start)
    try:
        reactor.run()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = outcome[0] if outcome else RuntimeError("the run did not finish")
    if not isinstance(result, list):
        if hasattr(result, "raiseException"):
            result.raiseException()
        raise result
    steps: list[Step] = result
    good = [s for s in steps if s.loss_pct < 1.0 and s.harness_kept_up]
    summary = {
        "machine": {"cpus": os.cpu_count(), "load_average_end": os.getloadavg()[0]},
        "video": f"VP8 {args.width}x{args.height}@{args.fps}",
        "steps": [asdict(s) for s in steps],
        "best_under_1pct_loss": asdict(good[-1]) if good else None,
    }
    print(json.dumps(summary["best_under_1pct_loss"]))
    if args.output:
        args.output.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
