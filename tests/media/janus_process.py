"""A real Janus (Debian's ``janus`` package) on loopback, for control-plane tests.

Janus's API transports work on 127.0.0.1 (only ICE media needs another interface), so
these tests need no network namespace. Each :class:`JanusProcess` gets free ports, its own
generated configuration (:mod:`meetplatform.media.janus_config`) in a temporary folder and
is killed at the end.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from meetplatform.media.janus_config import JanusConfig, write_config

JANUS = shutil.which("janus") or "/usr/bin/janus"

needs_janus = pytest.mark.skipif(
    not Path(JANUS).exists(), reason="Janus is not installed (apt-get install janus)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JanusProcess:
    """One Janus started with generated secrets; :meth:`stop` or :meth:`kill` it."""

    def __init__(self, folder: Path, name: str = "test", *, api_secret: str = "api-secret",
                 admin_secret: str = "admin-secret", admin_key: str = "admin-key",
                 ice_enforce_list: str | None = None,
                 rtp_port_range: str = "41000-41999") -> None:
        self.folder = folder
        self.config = JanusConfig(
            name=name, api_secret=api_secret, admin_secret=admin_secret, admin_key=admin_key,
            ws_host="127.0.0.1", ws_port=free_port(), admin_host="127.0.0.1",
            admin_port=free_port(), events_url=None, event_secret="unused",
            configs_folder=folder, recordings_dir=folder / "recordings",
            rtp_port_range=rtp_port_range, ice_enforce_list=ice_enforce_list)
        write_config(self.config, folder)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.config.ws_port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.config.admin_port}/admin"

    def start(self, timeout: float = 15.0) -> JanusProcess:
        log = (self.folder / "janus.log").open("ab")
        self.process = subprocess.Popen(
            [JANUS, "-F", str(self.folder), "-C", str(self.folder / "janus.jcfg")],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"janus exited: {(self.folder / 'janus.log').read_text()}")
            if self.answers():
                return self
            time.sleep(0.1)
        raise RuntimeError("janus did not start in time")

    def answers(self) -> bool:
        body = json.dumps({"janus": "ping", "transaction": "t"}).encode()
        try:
            with urllib.request.urlopen(self.admin_url, body, timeout=1) as response:
                return b"pong" in response.read()
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a crashed node."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
