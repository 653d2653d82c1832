"""TURN with a real coturn: relay-only browsers get media through minted credentials, and
coturn refuses expired ones.

coturn (Debian ``coturn``) runs with ``use-auth-secret`` and the secret the service mints
with, on a veth pair added *inside* the suite's isolated network namespace (TURN servers
and browsers do not relay over loopback; media still never leaves the namespace). The
service hands ``iceTransportPolicy: "relay"`` to the pages (``--ice-transport-policy
relay``), so the two Chromium participants of a mesh meeting can only reach each other
through coturn. The fixture refuses to touch a namespace that has an interface besides
``lo``: run it through ``scripts/test`` or ``unshare --net``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from meetplatform.media.turn import mint
from tests.browser import turn_client
from tests.browser.conftest import Service, _free_port, start_service, stop_process
from tests.browser.helpers import (
    enter,
    meeting_id,
    start_camera,
    wait_for,
    wait_media_flowing,
)
from tests.netns import VethPair, skip_unless_only_loopback

TURNSERVER = os.environ.get("MEETPLATFORM_TURNSERVER", "/usr/bin/turnserver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(TURNSERVER), reason=f"needs {TURNSERVER} (coturn)"),
]

#: The veth pair's addresses; coturn listens and relays on the first.
TURN_IP = "10.99.1.1"
PEER_IP = "10.99.1.2"
REALM = "meet.test"

SELECTED_PAIR = """
const done = arguments[arguments.length - 1];
const pc = window.meetplatform.peers.get(arguments[0]);
if (!pc) { done(null); return; }
pc.getStats().then((report) => {
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) report.forEach((s) => { if (s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s; });
  if (!pair) { done(null); return; }
  const local = report.get(pair.localCandidateId), remote = report.get(pair.remoteCandidateId);
  done({local: local && local.candidateType, remote: remote && remote.candidateType,
        localAddress: local && (local.address || local.ip), relayProtocol: local && local.relayProtocol});
}, () => done(null));
"""

PAGE_ICE = "return {servers: window.meetplatform.iceServers, policy: window.meetplatform.iceTransportPolicy}"


@pytest.fixture(scope="module")
def turn_link() -> Iterator[None]:
    """A veth pair (10.99.1.1/24 ↔ 10.99.1.2/24) inside this isolated namespace."""
    skip_unless_only_loopback()
    with VethPair("mpturn0", "mpturn1", TURN_IP, PEER_IP):
        yield


class Coturn:
    def __init__(self, port: int, secret: str, log: Path) -> None:
        self.port = port
        self.secret = secret
        self.log = log

    @property
    def uri(self) -> str:
        return f"turn:{TURN_IP}:{self.port}?transport=udp"


@pytest.fixture(scope="module")
def coturn(turn_link: None) -> Iterator[Coturn]:
    """coturn as docs/media.md configures it: use-auth-secret, the secret in the config
    file (mode 0600), private peers denied but for the relay address itself."""
    workdir = Path(tempfile.mkdtemp(prefix="mp-coturn-"))
    secret = hashlib.sha256(os.urandom(16)).hexdigest()
    port = _free_port()
    log = workdir / "turn.log"
    conf = workdir / "turnserver.conf"
    conf.write_text("\n".join([
        f"listening-ip={TURN_IP}",
        f"relay-ip={TURN_IP}",
        f"listening-port={port}",
        "min-port=49200",
        "max-port=49400",
        "use-auth-secret",
        f"static-auth-secret={secret}",
        f"realm={REALM}",
        "no-tls",
        "no-dtls",
        "no-cli",
        "no-multicast-peers",
        "denied-peer-ip=10.0.0.0-10.255.255.255",
        f"allowed-peer-ip={TURN_IP}",
        f"log-file={log}",
        "simple-log",
        "no-stdout-log",
        f"pidfile={workdir / 'turnserver.pid'}",
        "",
    ]))
    conf.chmod(0o600)
    process = subprocess.Popen([TURNSERVER, "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    server = Coturn(port, secret, log)
    try:
        deadline = time.monotonic() + 30
        while True:  # up once it answers an Allocate (with a 401: no credentials)
            try:
                answer = turn_client.allocate(TURN_IP, port, "probe", "probe", timeout=0.5)
                if answer.error == 401:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("coturn did not start:\n" + _read(log))
        yield server
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-5000:]
    except OSError:
        return ""


@pytest.fixture(scope="module")
def relay_service(coturn: Coturn) -> Iterator[Service]:
    """The service with minted TURN credentials and the relay-only ICE policy."""
    workdir = Path(tempfile.mkdtemp(prefix="mp-turn-"))
    secret = hashlib.sha256(os.urandom(16)).hexdigest()[:40]
    (workdir / "secret").write_text(secret + "\n")
    (workdir / "turn.secret").write_text(coturn.secret + "\n")
    for name in ("secret", "turn.secret"):
        (workdir / name).chmod(0o600)
    port = _free_port()
    options = [
        f"--listen=tcp:{port}:interface=127.0.0.1",
        f"--data-dir={workdir / 'data'}",
        f"--secret-file={workdir / 'secret'}",
        f"--turn-uri={coturn.uri}",
        f"--turn-secret-file={workdir / 'turn.secret'}",
        "--turn-ttl=600",
        "--ice-transport-policy=relay",
    ]
    process, lines = start_service(workdir, options)
    try:
        yield Service(base_url=f"http://127.0.0.1:{port}", secret=secret, process=process,
                      log_lines=lines)
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)
        log = "".join(lines)
        assert coturn.secret not in log, "the TURN secret was logged"
        assert "Traceback" not in log and "Unhandled" not in log, log


def _selected_pair(peer_id: str) -> Callable[[Any], Any]:
    def read(driver: Any) -> Any:
        return driver.execute_async_script(SELECTED_PAIR, peer_id)
    return read


def test_relay_only_browsers_get_media_through_coturn(
        relay_service: Service, coturn: Coturn, new_browser: Callable[..., Any]) -> None:
    """Two Chromium participants under the relay policy: audio and video bytes rise, and
    the selected candidate pair is a relay one through coturn's address."""
    bbb = relay_service.bbb
    mid = meeting_id("turn")
    bbb.create(mid, "Through TURN")
    ada, bob = new_browser(), new_browser()
    ada_id = enter(ada, bbb.join_url(mid, "Ada", "MODERATOR"), audio="join-microphone")
    bob_id = enter(bob, bbb.join_url(mid, "Bob", "VIEWER"), audio="join-microphone")
    for driver in (ada, bob):
        start_camera(driver)

    ice = ada.execute_script(PAGE_ICE)
    assert ice["policy"] == "relay"
    [turn] = [s for s in ice["servers"] if s["urls"] == [coturn.uri]]
    expiry, _, user = turn["username"].partition(":")
    assert user == ada_id and 0 < int(expiry) - time.time() <= 600
    assert coturn.secret not in str(ice)

    wait_media_flowing(ada, bob_id)
    wait_media_flowing(bob, ada_id)
    for driver, other in ((ada, bob_id), (bob, ada_id)):
        pair = wait_for(driver, _selected_pair(other), "a selected candidate pair")
        assert pair["local"] == "relay", pair
        assert pair["localAddress"] == TURN_IP, pair

    # the page's iceRefresh gets fresh credentials, which coturn accepts too
    refreshed = ada.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.meetplatform.refreshIceServers().then("
        "  () => done(window.meetplatform.iceServers), (e) => done(String(e)));")
    [fresh] = [s for s in refreshed if s["urls"] == [coturn.uri]]
    answer = turn_client.allocate(TURN_IP, coturn.port, fresh["username"], fresh["credential"])
    assert answer.kind == turn_client.ALLOCATE_SUCCESS, (answer, _read(coturn.log))


def test_coturn_refuses_expired_and_forged_credentials(coturn: Coturn) -> None:
    """Credentials minted like the service's: valid ones get an allocation; an expiry in
    the past, or a credential from another secret, gets 401."""
    now = int(time.time())
    user, password = mint(coturn.secret, "w_valid", now + 600)
    granted = turn_client.allocate(TURN_IP, coturn.port, user, password)
    assert granted.kind == turn_client.ALLOCATE_SUCCESS, (granted, _read(coturn.log))

    user, password = mint(coturn.secret, "w_expired", now - 60)
    expired = turn_client.allocate(TURN_IP, coturn.port, user, password)
    assert (expired.kind, expired.error) == (turn_client.ALLOCATE_ERROR, 401)

    user, password = mint("another-secret-0123456789", "w_forged", now + 600)
    forged = turn_client.allocate(TURN_IP, coturn.port, user, password)
    assert (forged.kind, forged.error) == (turn_client.ALLOCATE_ERROR, 401)
