"""--janus-local: a supervised Janus with a generated config, registered as node 'local'."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest_twisted

from meetplatform.media.local import LocalJanus
from meetplatform.media.nodes import MediaNodes, NodeEvent, NodeRestarted
from meetplatform.store import Store
from meetplatform.store import nodes_db as ndb
from meetplatform.store.nodes_db import NodeSecrets
from tests.media.janus_process import JANUS, needs_janus
from tests.media.test_nodes import real_reactor, wait_for

pytestmark = needs_janus


@pytest_twisted.ensureDeferred
async def test_local_janus_is_started_supervised_and_stopped(tmp_path: Path) -> None:
    reactor = real_reactor()
    store = Store.open_inline(tmp_path)

    async def register(name: str, admin_url: str, ws_url: str, secrets: NodeSecrets,
                       capacity: int) -> object:
        return await store.run(lambda db: ndb.put_node(
            db, name, admin_url=admin_url, ws_url=ws_url, secrets=secrets, capacity=capacity,
            now=1))

    async def load() -> list[ndb.NodeRecord]:
        return await store.run(ndb.list_nodes)

    local = LocalJanus(reactor, Path(JANUS), tmp_path / "janus", register)
    events: list[NodeEvent] = []
    nodes = MediaNodes(reactor, load)
    nodes.subscribe(events.append)
    local.startService()
    try:
        await local.registered
        assert (tmp_path / "janus" / "janus.jcfg").exists()
        assert (tmp_path / "janus" / "secret").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "janus").stat().st_mode & 0o777 == 0o700
        nodes.startService()
        await wait_for(lambda: [s.online for s in nodes.status()] == [True], 15)
        placement = nodes.place("m1", "72000")
        assert placement is not None and placement.node.name == "local"
        await nodes.create_room(placement)

        pid = local.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)  # a crash: the supervisor starts it again
        await wait_for(lambda: local.starts == 2, 10)
        await wait_for(lambda: NodeRestarted("local", (placement,)) in events, 15)
        assert nodes.status()[0].online
    finally:
        nodes.stopService()
        pid = local.pid
        await local.stopService()
        await store.close()
    assert local.pid is None
    if pid is not None:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()
