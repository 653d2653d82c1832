"""What ``meetplatform check`` says about media nodes, without creating anything.

:func:`inspect_media` reads the stored nodes read-only (only if the store and its key
exist), checks each node's URLs and that its sealed secrets open with this data
directory's key, and reports ``--janus-local``. It never contacts a node: ``check``
works offline.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag

from meetplatform.config import ServiceConfig
from meetplatform.media import node_settings as ns
from meetplatform.store import DB_FILE_NAME, Database
from meetplatform.store import nodes_db as ndb
from meetplatform.store.keys import KEY_FILE_NAME, KeyBox


@dataclass
class MediaReport:
    #: ``(label, value)`` lines for the check's summary.
    lines: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def inspect_media(config: ServiceConfig) -> MediaReport:
    report = MediaReport()
    if config.janus_local is not None:
        where = config.data_dir / "janus"
        report.lines.append(("local Janus", f"{config.janus_local} (node 'local', {where})"))
    db_path = config.data_dir / DB_FILE_NAME
    key_path = config.data_dir / KEY_FILE_NAME
    if not db_path.exists() or not key_path.exists():
        report.lines.append(("media nodes", "none (meetings are browser-to-browser: mesh)"
                             if config.janus_local is None else "local only"))
        return report
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        conn.row_factory = sqlite3.Row
        db = Database(conn, KeyBox.load_or_create(config.data_dir))
        try:
            has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'"
                                     " AND name = 'media_nodes'").fetchone()
            rows = conn.execute("SELECT name FROM media_nodes ORDER BY name").fetchall() \
                if has_table else []
            described = []
            for row in rows:
                name = row["name"]
                try:
                    node = ndb.get_node(db, name)
                except InvalidTag:
                    report.problems.append(
                        f"media node {name}: its secrets do not open with {key_path} (was "
                        "the key replaced?): remove and add the node again")
                    continue
                assert node is not None
                for check, value in ((ns.check_name, node.name),
                                     (ns.check_admin_url, node.admin_url),
                                     (ns.check_ws_url, node.ws_url)):
                    try:
                        check(value)
                    except ns.NodeSettingError as error:
                        report.problems.append(f"media node {name}: {error}")
                described.append(f"{name} ({node.state}, capacity {node.capacity})")
        finally:
            conn.close()
    except (sqlite3.Error, ValueError, OSError) as error:
        report.problems.append(f"cannot read the media nodes in {db_path}: {error}")
        return report
    if not described and config.janus_local is None:
        report.lines.append(("media nodes", "none (meetings are browser-to-browser: mesh)"))
    else:
        report.lines.append(("media nodes", ", ".join(described) or "local only"))
    usable = [d for d in described if "(enabled" in d]
    if described and not usable and config.janus_local is None:
        report.notes.append("no media node is enabled: new meetings run mesh")
    return report
