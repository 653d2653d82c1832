"""Media nodes in the store: the ``media_nodes`` table, as plain blocking queries.

A node's secrets (Janus ``api_secret``, ``admin_secret``, VideoRoom ``admin_key`` and the
secret Janus's event handler presents to the service) are kept together as one JSON object
sealed with AES-256-GCM under the data directory's ``store.key`` (as webhook secrets are),
bound to the node's name: a copy of the database alone reveals none of them.

Validation of names and URLs is the caller's (:mod:`meetplatform.media.node_settings`);
these functions run on the store's thread or in the operator CLI; ``now`` is milliseconds.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field

from meetplatform.store.database import Database

STATES = ("enabled", "disabled", "draining")


class NodeExists(Exception):
    """A node with this name exists already."""


@dataclass(frozen=True)
class NodeSecrets:
    """What the service must know to control a node (never shown to browsers)."""

    api_secret: str
    admin_secret: str
    admin_key: str
    event_secret: str

    def as_json(self) -> dict[str, str]:
        return {"api_secret": self.api_secret, "admin_secret": self.admin_secret,
                "admin_key": self.admin_key, "event_secret": self.event_secret}


@dataclass(frozen=True)
class NodeRecord:
    name: str
    admin_url: str
    ws_url: str
    capacity: int
    state: str
    created_at: int
    updated_at: int
    secrets: NodeSecrets = field(repr=False)


def _context(name: str) -> bytes:
    return b"media node " + name.encode("utf-8")


def _seal(db: Database, name: str, secrets: NodeSecrets) -> bytes:
    return db.box.seal(json.dumps(secrets.as_json(), sort_keys=True).encode(), _context(name))


def _node(db: Database, row: sqlite3.Row) -> NodeRecord:
    raw = json.loads(db.box.open(row["secrets_box"], _context(row["name"])))
    return NodeRecord(name=row["name"], admin_url=row["admin_url"], ws_url=row["ws_url"],
                      capacity=row["capacity"], state=row["state"],
                      created_at=row["created_at"], updated_at=row["updated_at"],
                      secrets=NodeSecrets(**raw))


def add_node(db: Database, name: str, *, admin_url: str, ws_url: str, secrets: NodeSecrets,
             capacity: int, now: int, state: str = "enabled") -> NodeRecord:
    """Insert a node; :class:`NodeExists` if the name is taken."""
    try:
        with db.transaction() as c:
            c.execute(
                "INSERT INTO media_nodes (name, admin_url, ws_url, secrets_box, capacity,"
                " state, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (name, admin_url, ws_url, _seal(db, name, secrets), capacity, state, now, now))
    except sqlite3.IntegrityError as e:
        if "UNIQUE" in str(e) or "PRIMARY KEY" in str(e):
            raise NodeExists(name) from None
        raise
    node = get_node(db, name)
    assert node is not None
    return node


def put_node(db: Database, name: str, *, admin_url: str, ws_url: str, secrets: NodeSecrets,
             capacity: int, now: int) -> NodeRecord:
    """Insert or replace a node's addresses, secrets and capacity, keeping its state
    and creation time (the service's own local node, rewritten at every start)."""
    with db.transaction() as c:
        c.execute(
            "INSERT INTO media_nodes (name, admin_url, ws_url, secrets_box, capacity, state,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'enabled', ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET admin_url = excluded.admin_url,"
            " ws_url = excluded.ws_url, secrets_box = excluded.secrets_box,"
            " capacity = excluded.capacity, updated_at = excluded.updated_at",
            (name, admin_url, ws_url, _seal(db, name, secrets), capacity, now, now))
    node = get_node(db, name)
    assert node is not None
    return node


def get_node(db: Database, name: str) -> NodeRecord | None:
    row = db.connection.execute("SELECT * FROM media_nodes WHERE name = ?", (name,)).fetchone()
    return _node(db, row) if row else None


def list_nodes(db: Database) -> list[NodeRecord]:
    rows = db.connection.execute("SELECT * FROM media_nodes ORDER BY name").fetchall()
    return [_node(db, row) for row in rows]


def set_state(db: Database, name: str, state: str, now: int) -> NodeRecord | None:
    """Enable, disable or drain a node; None if there is no such node."""
    if state not in STATES:
        raise ValueError(f"unknown node state {state!r}")
    with db.transaction() as c:
        c.execute("UPDATE media_nodes SET state = ?, updated_at = ? WHERE name = ?",
                  (state, now, name))
    return get_node(db, name)


def remove_node(db: Database, name: str) -> bool:
    with db.transaction() as c:
        return c.execute("DELETE FROM media_nodes WHERE name = ?", (name,)).rowcount > 0
