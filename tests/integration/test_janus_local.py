"""The real service with --janus-local: it starts Janus, lists it in getServers and
/healthz, places meetings on it and stops it on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from lxml import etree

from tests.integration.conftest import ServiceProcess
from tests.integration.test_service import LOOPBACK, Start, get, signed
from tests.media.janus_process import JANUS, needs_janus

pytestmark = [pytest.mark.integration, needs_janus]


def wait_until(check: object, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def servers(service: ServiceProcess, secret: str) -> list[dict[str, str | None]]:
    _, _, body = get(signed(service, "getServers", "", secret))
    xml = etree.fromstring(body)
    assert xml.findtext("returncode") == "SUCCESS"
    return [{e.tag: e.text for e in s} for s in xml.findall("servers/server")]


def test_janus_local_runs_a_supervised_node(run_service: Start, tmp_path: Path) -> None:
    service = run_service("--listen", LOOPBACK, "--janus-local", JANUS).started()
    secret = (tmp_path / "meetplatform-data" / "secret").read_text().strip()
    wait_until(lambda: [s["online"] for s in servers(service, secret)] == ["true"])
    (local,) = servers(service, secret)
    assert (local["name"], local["status"], local["isDisabled"]) == ("local", "2", "false")
    assert (tmp_path / "meetplatform-data" / "janus" / "janus.jcfg").exists()

    get(signed(service, "create", "meetingID=m1&name=One&voiceBridge=73333", secret))
    _, _, health = get(service.url + "/healthz")
    assert json.loads(health)["mediaNodes"]["local"]["meetings"] == 1
    assert "janus.jcfg" in service.wait_for("starting local Janus")
    assert service.wait_for("placed on media node local (room 73333)")
    assert not any("Starting factory" in line for line in service.output)
    # Janus's event handler reached /janus-events/local with the node's credentials
    assert "media node local: Janus core started" in service.messages()
    assert not any("refused Janus events" in line for line in service.output)

    janus_pids = [int(p) for p in os.listdir("/proc")
                  if p.isdigit() and _is_janus(int(p), tmp_path)]
    assert len(janus_pids) == 1
    assert service.stop() == -signal.SIGTERM
    assert not any("Traceback" in line for line in service.output)
    assert not any("is offline" in line for line in service.output)  # a stop is no failure
    assert not Path(f"/proc/{janus_pids[0]}").exists() or not _is_janus(janus_pids[0], tmp_path)


def _is_janus(pid: int, tmp_path: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (bool(cmdline) and cmdline[0].endswith(b"janus")
            and str(tmp_path).encode() in b" ".join(cmdline))
