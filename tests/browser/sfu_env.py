"""The environment of the media-node browser tests and benchmarks (issue 11).

Janus never offers loopback candidates, so :func:`running_env` adds a veth pair *inside*
the caller's isolated network namespace (``unshare --net``; refused when the namespace
has an interface besides ``lo``), runs Janus nodes with ``ice_enforce_list`` on it and
the service (``twistd -n meetplatform`` from this checkout) with the nodes added through
``meetplatform nodes add``, as an operator does. Signalling stays on 127.0.0.1. Fake
cameras play a 320x240 clip (:func:`fake_video`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
import wave
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.browser.conftest import (
    CHROMEDRIVER,
    CHROMIUM,
    CHROMIUM_FLAGS,
    WAIT,
    Bbb,
    _free_port,
    checkout_env,
    start_service,
    stop_process,
)
from tests.media.janus_process import JanusProcess
from tests.netns import NOT_ISOLATED, VethPair, only_loopback

VETH = VethPair("mpsfu0", "mpsfu0p", "10.98.0.1", "10.98.0.2")
FRAME_W, FRAME_H, FPS = 320, 240, 15


# --- the private link, the nodes and the service ------------------------------------------


def fake_video(path: Path) -> None:
    """A 2-second 320x240 Y4M clip with a moving bar (Chromium loops it)."""
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{FRAME_W} H{FRAME_H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(FPS * 2):
            luma = bytearray(b"\x40" * (FRAME_W * FRAME_H))
            x0 = (n * 10) % FRAME_W
            for y in range(FRAME_H):
                row = y * FRAME_W
                luma[row + x0:row + min(FRAME_W, x0 + 20)] = b"\xe0" * (min(FRAME_W, x0 + 20)
                                                                         - x0)
            out.write(b"FRAME\n" + bytes(luma) + b"\x80" * (FRAME_W * FRAME_H // 2))


def loud_voice(path: Path, seconds: float = 8.0, rate: int = 48_000) -> None:
    """A loud, voice-like WAV (48 kHz mono 16-bit) for a fake microphone that Janus hears
    talking: Chromium's own fake microphone beeps too briefly to cross VideoRoom's
    threshold (``audio_level_average`` 25 over ``audio_active_packets``).

    Harmonics of a gliding 120-220 Hz fundamental under a syllable-rate envelope that
    never falls below half: a steady tone or noise would be taken for background noise by
    the browser's noise suppression, and gaps would count as silence in Janus's average.
    """
    samples = bytearray()
    phase = 0.0
    for n in range(int(seconds * rate)):
        t = n / rate
        f0 = 170 + 50 * math.sin(2 * math.pi * 0.7 * t)
        phase += 2 * math.pi * f0 / rate
        voice = sum(math.sin(k * phase) / k for k in range(1, 9)) / 2.0
        envelope = 0.75 + 0.25 * math.sin(2 * math.pi * 3.3 * t)
        value = max(-1.0, min(1.0, 0.9 * envelope * voice))
        samples += int(value * 32_000).to_bytes(2, "little", signed=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(samples))


@dataclass
class Env:
    base_url: str
    secret: str
    data_dir: Path
    process: subprocess.Popen[str]
    nodes: dict[str, JanusProcess]
    video: Path
    log_lines: list[str] = field(default_factory=list)

    @property
    def bbb(self) -> Bbb:
        return Bbb(self.base_url, self.secret)

    def log(self) -> str:
        return "".join(self.log_lines)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-c",
                   "import sys; from meetplatform.cli import main; sys.exit(main())",
                   *args, f"--data-dir={self.data_dir}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=60,
                                check=False, env=checkout_env())
        if check:
            assert result.returncode == 0, result.stdout + result.stderr
        return result

    def servers(self) -> dict[str, dict[str, str]]:
        root = self.bbb.call("getServers")
        return {s.findtext("name"): {child.tag: child.text or "" for child in s}
                for s in root.iter("server")}

    def wait_online(self, *names: str, online: bool = True, timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            servers = self.servers()
            if all(servers.get(n, {}).get("online") == ("true" if online else "false")
                   for n in names):
                return
            assert time.monotonic() < deadline, f"nodes {names} online={online}: {servers}"
            time.sleep(0.3)

    def server_of(self, meeting: str) -> str:
        root = self.bbb.call("getMeetingInfo", meetingID=meeting)
        return str(root.findtext("server/name"))


def _admin(node: JanusProcess, request: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps({"janus": "message_plugin", "transaction": "t",
                       "admin_secret": node.config.admin_secret,
                       "plugin": "janus.plugin.videoroom", "request": request}).encode()
    with urllib.request.urlopen(node.admin_url, body, timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
    return answer.get("response") or {}


def room_exists(node: JanusProcess, room: int) -> bool:
    """Janus's own answer (VideoRoom ``exists``): is ``room`` on the node?"""
    return _admin(node, {"request": "exists", "room": room}).get("exists") is True


def room_participants(node: JanusProcess) -> dict[int, list[dict[str, Any]]]:
    """Every room of the node (but the service's marker) and its participants."""
    rooms = _admin(node, {"request": "list", "admin_key": node.config.admin_key})
    out = {}
    for room in rooms.get("list") or []:
        if room["room"] >= 9_007_199_254_739_000:
            continue
        out[room["room"]] = _admin(node, {"request": "listparticipants",
                                          "room": room["room"]}).get("participants") or []
    return out


@contextmanager
def running_env(node_names: tuple[str, ...] = ("node-a", "node-b"), *,
                check_log: bool = True) -> Iterator[Env]:
    """A veth pair in this (isolated) namespace, Janus nodes on it, the service with the
    nodes added through the CLI; everything stopped and removed at the end."""
    if not only_loopback():
        raise RuntimeError(NOT_ISOLATED)
    VETH.up()
    workdir = Path(tempfile.mkdtemp(prefix="mp-sfu-"))
    nodes = {}
    process = None
    try:
        for index, name in enumerate(node_names):
            ports = f"{42000 + 1000 * index}-{42999 + 1000 * index}"
            nodes[name] = JanusProcess(
                workdir / name, name, api_secret=f"{name}-api-secret-0123456789",
                admin_secret=f"{name}-admin-secret-0123456789",
                admin_key=f"{name}-admin-key-0123456789", ice_enforce_list=VETH.name,
                rtp_port_range=ports).start()
        secret = hashlib.sha256(os.urandom(16)).hexdigest()[:40]
        secret_file = workdir / "secret"
        secret_file.write_text(secret + "\n")
        port = _free_port()
        data_dir = workdir / "data"
        process, lines = start_service(workdir, [
            f"--listen=tcp:{port}:interface=127.0.0.1", f"--data-dir={data_dir}",
            f"--secret-file={secret_file}", "--resume-grace-seconds=20",
            "--server-name=meetplatform-test"])
        video = workdir / "camera.y4m"
        fake_video(video)
        environment = Env(f"http://127.0.0.1:{port}", secret, data_dir, process, nodes, video,
                          lines)
        for name, node in nodes.items():
            secrets_file = workdir / f"{name}.secrets"
            secrets_file.write_text(f"api_secret = {node.config.api_secret}\n"
                                    f"admin_secret = {node.config.admin_secret}\n"
                                    f"admin_key = {node.config.admin_key}\n")
            secrets_file.chmod(0o600)
            environment.cli("nodes", "add", name, "--admin-url", node.admin_url,
                            "--ws-url", node.ws_url, "--secret-file", str(secrets_file))
        environment.wait_online(*nodes)
        yield environment
        failures = [line for line in lines if "Traceback" in line or "Unhandled" in line]
        assert not check_log or not failures, "the service logged errors:\n" + "".join(lines[-300:])
    finally:
        if process is not None:
            stop_process(process)
        for node in nodes.values():
            node.stop()
        VETH.down()
        shutil.rmtree(workdir, ignore_errors=True)


# --- reading the page ---------------------------------------------------------------------

SFU_STATS = """
const done = arguments[arguments.length - 1];
const s = window.meetplatform.sfu;
const out = {mode: s.mode, inbound: {}, outbound: {}, streams: s.streams,
             meshPeers: window.meetplatform.peers.size, renegotiations: s.renegotiations,
             moderated: s.moderated};
const jobs = [];
if (s.subscriber) jobs.push(s.subscriber.getStats().then((r) => r.forEach((x) => {
  if (x.type === 'inbound-rtp') out.inbound[x.mid] = {kind: x.kind, bytes: x.bytesReceived || 0,
                                                      frames: x.framesDecoded || 0};
})));
if (s.publisher) jobs.push(s.publisher.getStats().then((r) => r.forEach((x) => {
  if (x.type === 'outbound-rtp') {
    const o = out.outbound[x.mid] || {kind: x.kind, bytes: 0, encodings: 0};
    o.bytes += x.bytesSent || 0; o.encodings += 1; out.outbound[x.mid] = o;
  }
})));
Promise.all(jobs).then(() => done(out), () => done(out));
"""


def sfu_stats(driver: Any) -> dict[str, Any]:
    result: dict[str, Any] = driver.execute_async_script(SFU_STATS)
    return result




def chromium(video: Path | None, profile: str, flags: Sequence[str] = ()) -> Any:
    """Headless Chromium with ``video`` (or its own pattern) as its fake camera, host
    candidates not hidden behind mDNS (Janus must see them), the WebSocket frames in the
    performance log, and ``flags`` added to its command line (e.g.
    ``--use-file-for-fake-audio-capture=...`` for a microphone that Janus hears talk)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as DriverService

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    if video is not None:  # else Chromium's own fake camera, at the size asked for
        options.add_argument(f"--use-file-for-fake-video-capture={video}")
    options.add_argument("--disable-features=WebRtcHideLocalIpsWithMdns")
    options.add_argument("--window-size=800,600")
    options.add_argument(f"--user-data-dir={profile}")
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=DriverService(CHROMEDRIVER))
    driver.set_script_timeout(WAIT)
    driver.set_page_load_timeout(WAIT)
    return driver
