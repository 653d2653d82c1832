"""Start the real service (``twistd -n meetplatform``) as a subprocess on 127.0.0.1.

The service runs the checkout's code (the repository root is put first on PYTHONPATH).
Readiness is read from its log, line by line: no sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Upper bound for the service to start or stop; reached only when something is broken.
DEADLINE_SECONDS = 60.0


def twistd_command() -> list[str]:
    script = Path(sys.executable).with_name("twistd")
    if script.exists():
        return [sys.executable, str(script)]
    return [sys.executable, "-c",
            "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"]


def service_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEETPLATFORM_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


class ServiceProcess:
    """A running ``twistd -n meetplatform`` whose output is read line by line."""

    def __init__(self, args: list[str], cwd: Path, env: dict[str, str]) -> None:
        self.output: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self.process = subprocess.Popen(
            [*twistd_command(), "-n", "--pidfile=", "meetplatform", *args],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.url = ""

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @staticmethod
    def message(line: str) -> str:
        """A log line without twistd's timestamp and namespace prefix."""
        return re.sub(r"^\S+ \[[^\]]*\] ", "", line)

    def messages(self) -> list[str]:
        return [self.message(line) for line in self.output]

    def wait_for(self, text: str) -> str:
        """The first (new) log message containing ``text``; fails if the process ends first."""
        deadline = time.monotonic() + DEADLINE_SECONDS
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {text!r} within {DEADLINE_SECONDS}s:\n" + "\n".join(self.output)
                ) from None
            if line is None:
                self._lines.put(None)
                raise AssertionError(
                    f"service exited ({self.process.wait()}) before {text!r}:\n"
                    + "\n".join(self.output)
                )
            self.output.append(line)
            if text in line:
                return self.message(line)

    def started(self) -> ServiceProcess:
        """Wait for the startup lines; set ``url`` to the public URL."""
        line = self.wait_for("BBB API URL: ")
        self.url = line.split("BBB API URL: ", 1)[1].removesuffix("/bigbluebutton/api/")
        self.wait_for("Shared secret: stored in ")
        return self

    def finish(self) -> int:
        """Wait for the process to exit on its own; collect the rest of its output."""
        while (line := self._lines.get(timeout=DEADLINE_SECONDS)) is not None:
            self.output.append(line)
        self._lines.put(None)
        return self.process.wait(timeout=DEADLINE_SECONDS)

    def stop(self) -> int:
        """SIGTERM, as systemd stops it; return the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish()


@pytest.fixture
def run_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``twistd -n meetplatform ARGS`` in ``tmp_path``; stopped after the test."""
    processes: list[ServiceProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(list(args), tmp_path, service_environment(**(env or {})))
        processes.append(service)
        return service

    yield start
    for service in processes:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait(timeout=DEADLINE_SECONDS)
