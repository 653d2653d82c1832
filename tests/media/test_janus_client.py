"""The Janus client against a real Janus on loopback: sessions, handles, VideoRoom rooms,
the Admin API, and the errors an operator gets for a wrong secret or a dead URL."""

from __future__ import annotations

import time
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred

from meetplatform.media.janus import (
    VIDEOROOM,
    JanusAdmin,
    JanusAuthError,
    JanusConnection,
    JanusPluginError,
    JanusTimeout,
    JanusUnreachable,
    VideoRoom,
)
from tests.media.janus_process import JanusProcess, free_port, needs_janus

pytestmark = needs_janus


def reactor() -> Any:
    from twisted.internet import reactor as r

    return r


@pytest_twisted.ensureDeferred
async def test_session_handle_and_room_lifecycle(janus: JanusProcess) -> None:
    """A session attaches a VideoRoom handle; a room is created with lock_record, listed,
    and destroyed; a participant event reaches the handle's subscriber."""
    conn = await JanusConnection.connect(reactor(), janus.ws_url, "api-secret")
    try:
        session = await conn.create_session(keepalive_interval=0.5)
        handle = await session.attach(VIDEOROOM)
        rooms = VideoRoom.over_handle(handle, "admin-key")
        assert await rooms.create_room(4242, secret="room-secret", publishers=10) == 4242
        listed = {r.room: r for r in await rooms.list_rooms()}
        assert listed[4242].lock_record is True
        assert listed[4242].max_publishers == 10
        assert await rooms.exists(4242)

        seen: list[dict[str, Any]] = []
        handle.subscribe(seen.append)
        other = await session.attach(VIDEOROOM)
        joined = await other.message({"request": "join", "ptype": "publisher", "room": 4242,
                                      "display": "Alice"})
        assert joined.data["videoroom"] == "joined"
        # the first handle also joins and hears Alice's handle leave when it detaches
        await handle.message({"request": "join", "ptype": "publisher", "room": 4242,
                              "display": "Bob"})
        await other.detach()
        for _ in range(50):
            if any((m.get("plugindata") or {}).get("data", {}).get("leaving") for m in seen):
                break
            await sleep(0.05)
        assert any((m.get("plugindata") or {}).get("data", {}).get("leaving") for m in seen)

        # keepalives keep the session alive past several intervals
        await sleep(1.2)
        assert not session.lost
        await rooms.destroy_room(4242, secret="room-secret")
        assert not await rooms.exists(4242)
        await session.destroy()
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_rooms_over_the_admin_api(janus: JanusProcess) -> None:
    admin = JanusAdmin(reactor(), janus.admin_url, "admin-secret")
    await admin.ping()
    assert (await admin.info())["version_string"] == "1.1.2"
    assert "session_timeout" in await admin.get_status()
    assert await admin.list_sessions() == []
    rooms = VideoRoom.over_admin(admin, "admin-key")
    await rooms.create_room(77, secret="s")
    assert [r.room for r in await rooms.list_rooms()] == [77]
    with pytest.raises(JanusPluginError, match="427"):
        await rooms.create_room(77, secret="s")  # exists already
    with pytest.raises(JanusAuthError):
        await rooms.destroy_room(77, secret="wrong room secret")
    await rooms.destroy_room(77, secret="s")
    with pytest.raises(JanusPluginError, match="426"):
        await rooms.destroy_room(77, secret="s")


@pytest_twisted.ensureDeferred
async def test_wrong_secrets_are_clear_errors(janus: JanusProcess) -> None:
    admin = JanusAdmin(reactor(), janus.admin_url, "not the admin secret")
    await admin.ping()  # liveness needs no secret
    with pytest.raises(JanusAuthError, match="refused the secret"):
        await admin.list_sessions()
    with pytest.raises(JanusAuthError):
        await VideoRoom.over_admin(JanusAdmin(reactor(), janus.admin_url, "admin-secret"),
                                   "wrong admin key").create_room(5, secret="s")
    conn = await JanusConnection.connect(reactor(), janus.ws_url, "not the api secret")
    try:
        with pytest.raises(JanusAuthError, match="refused the secret"):
            await conn.create_session()
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_unreachable_urls_fail_fast_and_clearly() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(JanusUnreachable, match="refused the connection"):
        await JanusAdmin(reactor(), f"http://127.0.0.1:{port}/admin", "x", timeout=2).ping()
    with pytest.raises(JanusUnreachable, match="refused the connection"):
        await JanusConnection.connect(reactor(), f"ws://127.0.0.1:{port}", "x", timeout=2)
    assert time.monotonic() - started < 3
    with pytest.raises(JanusUnreachable, match="not a ws"):
        await JanusConnection.connect(reactor(), "http://127.0.0.1:1", "x")


@pytest_twisted.ensureDeferred
async def test_a_silent_peer_times_out() -> None:
    """A server that accepts connections but never answers: a timeout, not a hung call."""
    from twisted.internet.protocol import Factory, Protocol

    class Silent(Protocol):
        pass

    port = reactor().listenTCP(0, Factory.forProtocol(Silent), interface="127.0.0.1")
    try:
        number = port.getHost().port
        started = time.monotonic()
        with pytest.raises(JanusTimeout, match="within 0.5 s"):
            await JanusAdmin(reactor(), f"http://127.0.0.1:{number}/admin", "x",
                             timeout=0.5).ping()
        with pytest.raises(JanusTimeout):
            await JanusConnection.connect(reactor(), f"ws://127.0.0.1:{number}", "x",
                                          timeout=0.5)
        assert time.monotonic() - started < 2.5
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_killed_janus_closes_the_connection_and_loses_sessions(
        janus: JanusProcess) -> None:
    conn = await JanusConnection.connect(reactor(), janus.ws_url, "api-secret")
    session = await conn.create_session()
    closed: list[str] = []
    lost: list[str] = []
    conn.on_close(closed.append)
    session.on_lost(lost.append)
    janus.kill()
    for _ in range(100):
        if closed:
            break
        await sleep(0.05)
    assert closed and lost
    with pytest.raises(Exception, match="closed"):
        await session.attach()


async def sleep(seconds: float) -> None:
    d: Deferred[None] = Deferred()
    reactor().callLater(seconds, d.callback, None)
    await d


def run_cli(tmp_path: Any, *argv: str) -> Any:
    """``meetplatform ARGS`` in a process of its own (``nodes check`` runs a reactor)."""
    import subprocess
    import sys

    from tests.integration.conftest import service_environment

    return subprocess.run([sys.executable, "-m", "meetplatform.cli", *argv], cwd=tmp_path,
                          env=service_environment(), capture_output=True, text=True,
                          timeout=60, check=False)


def add_node(tmp_path: Any, name: str, janus: JanusProcess, secrets: str) -> None:
    (tmp_path / f"{name}.secret").write_text(secrets)
    result = run_cli(tmp_path, "nodes", "--data-dir", "data", "add", name,
                     "--admin-url", janus.admin_url, "--ws-url", janus.ws_url,
                     "--secret-file", str(tmp_path / f"{name}.secret"))
    assert result.returncode == 0, result.stderr


def test_nodes_check_contacts_the_node(janus: JanusProcess, tmp_path: Any) -> None:
    """`meetplatform nodes check` tells a working node, a wrong secret and a dead URL apart."""
    good = "api_secret = api-secret\nadmin_secret = admin-secret\nadmin_key = admin-key\n"
    add_node(tmp_path, "good", janus, good)
    result = run_cli(tmp_path, "nodes", "--data-dir", "data", "check", "good")
    assert result.returncode == 0, result.stderr
    assert "ok: VideoRoom admin key accepted" in result.stdout
    assert "node good works with the stored secrets" in result.stdout

    for name, secrets, message in (
            ("admin", good.replace("admin_secret = admin-secret", "admin_secret = x"),
             "refused the admin secret"),
            ("api", good.replace("api_secret = api-secret", "api_secret = x"),
             "refused the API secret"),
            ("key", good.replace("admin_key = admin-key", "admin_key = x"),
             "refused the admin key")):
        add_node(tmp_path, name, janus, secrets)
        result = run_cli(tmp_path, "nodes", "--data-dir", "data", "check", name)
        assert result.returncode == 1 and message in result.stderr, result.stderr
        assert result.stderr.startswith(f"meetplatform nodes check: node {name}: ")

    janus.stop()
    started = time.monotonic()
    result = run_cli(tmp_path, "nodes", "--data-dir", "data", "check", "good",
                     "--timeout", "2")
    assert result.returncode == 1 and "refused the connection" in result.stderr
    assert time.monotonic() - started < 20
