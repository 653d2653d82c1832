"""Media nodes in the store: sealed secrets, states, uniqueness."""

from __future__ import annotations

from pathlib import Path

import pytest

from meetplatform.store import nodes_db as ndb
from meetplatform.store import open_database

SECRETS = ndb.NodeSecrets("api", "admin", "key", "events")


def test_nodes_round_trip_with_sealed_secrets(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    node = ndb.add_node(db, "sfu-1", admin_url="http://10.0.0.5:7088/admin",
                        ws_url="ws://10.0.0.5:8188", secrets=SECRETS, capacity=300, now=5)
    assert node.state == "enabled" and node.capacity == 300 and node.created_at == 5
    assert ndb.get_node(db, "sfu-1") == node
    raw = db.connection.execute("SELECT secrets_box FROM media_nodes").fetchone()[0]
    assert b"admin" not in raw and b"api" not in raw  # sealed, not stored in the clear
    assert "api" not in repr(node)
    with pytest.raises(ndb.NodeExists):
        ndb.add_node(db, "sfu-1", admin_url="http://x/admin", ws_url="ws://x", secrets=SECRETS,
                     capacity=1, now=6)
    assert ndb.set_state(db, "sfu-1", "draining", 7).state == "draining"  # type: ignore[union-attr]
    assert ndb.set_state(db, "nope", "disabled", 7) is None
    with pytest.raises(ValueError):
        ndb.set_state(db, "sfu-1", "broken", 7)
    db.close()
    db = open_database(tmp_path)  # durable, and the secrets open again
    assert [n.name for n in ndb.list_nodes(db)] == ["sfu-1"]
    assert ndb.get_node(db, "sfu-1").secrets == SECRETS  # type: ignore[union-attr]
    assert ndb.remove_node(db, "sfu-1") and not ndb.remove_node(db, "sfu-1")


def test_put_node_keeps_the_state(tmp_path: Path) -> None:
    db = open_database(tmp_path)
    ndb.put_node(db, "local", admin_url="http://127.0.0.1:1/admin", ws_url="ws://127.0.0.1:2",
                 secrets=SECRETS, capacity=10, now=1)
    ndb.set_state(db, "local", "disabled", 2)
    node = ndb.put_node(db, "local", admin_url="http://127.0.0.1:3/admin",
                        ws_url="ws://127.0.0.1:4", secrets=SECRETS, capacity=20, now=3)
    assert (node.state, node.admin_url, node.capacity, node.created_at) == (
        "disabled", "http://127.0.0.1:3/admin", 20, 1)
