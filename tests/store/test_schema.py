"""The database file: creation, upgrades, durability settings."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from meetplatform.store import sqlite
from meetplatform.store.sqlite import (
    TARGET_VERSION,
    DatabaseError,
    available_versions,
    create_or_upgrade,
    create_schema,
    dump,
    get_version,
    upgrade,
)


def fresh(version: int) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    create_schema(conn, version)
    return conn


def test_every_version_ships_with_an_upgrade_path() -> None:
    """Schemas v1..vN exist, with an upgrade script to each version after the first."""
    versions = available_versions()
    assert versions == list(range(1, TARGET_VERSION + 1))
    for version in versions[1:]:
        assert sqlite.schema_text(f"upgrade-to-v{version}.sql").strip()


@pytest.mark.parametrize("start", range(1, TARGET_VERSION))
def test_upgraded_database_equals_a_fresh_one(start: int) -> None:
    """A database created at an old version and upgraded dumps equal to a fresh latest one."""
    old = fresh(start)
    assert upgrade(old) == TARGET_VERSION
    assert dump(old) == dump(fresh(TARGET_VERSION))


def test_dump_notices_a_schema_difference() -> None:
    """The comparison is not vacuous: v1 and the latest version dump differently."""
    assert dump(fresh(1)) != dump(fresh(TARGET_VERSION))


def test_upgrade_keeps_the_data(tmp_path: Path) -> None:
    """Rows written by an old version are still there, unchanged, after the upgrade."""
    path = tmp_path / "db.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    create_schema(conn, 1)
    conn.execute("INSERT INTO clients VALUES ('mpc_1', 'acme', 'h', x'00', 1, NULL, NULL)")
    conn.execute("INSERT INTO spaces VALUES ('sp_1', 'mpc_1', 'acme', '', 'private', '[]', 1, 1)")
    conn.close()
    create_or_upgrade(path)
    conn = sqlite.connect(path)
    assert get_version(conn) == TARGET_VERSION
    assert conn.execute("SELECT name FROM clients WHERE id = 'mpc_1'").fetchone()[0] == "acme"
    assert (tmp_path / "db.sqlite.backup-v1").exists()
    backup = sqlite3.connect(tmp_path / "db.sqlite.backup-v1")
    assert get_version(backup) == 1


def test_creation_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A new database appears complete under its name; no temporary file remains."""
    path = tmp_path / "data" / "db.sqlite"
    create_or_upgrade(path)
    assert get_version(sqlite.connect(path)) == TARGET_VERSION
    leftovers = [p.name for p in path.parent.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_a_stale_temporary_file_is_replaced(tmp_path: Path) -> None:
    """A half-built file left by a crash during creation does not get in the way."""
    path = tmp_path / "db.sqlite"
    (tmp_path / f"db.sqlite.tmp-{os.getpid()}").write_bytes(b"garbage")
    create_or_upgrade(path)
    assert get_version(sqlite.connect(path)) == TARGET_VERSION


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    """A file written by a newer version is not touched: a clear error instead."""
    path = tmp_path / "db.sqlite"
    create_or_upgrade(path)
    conn = sqlite.connect(path)
    conn.execute("UPDATE version SET version = 99")
    conn.close()
    with pytest.raises(DatabaseError, match="newer"):
        create_or_upgrade(path)


def test_a_file_that_is_no_database_is_refused(tmp_path: Path) -> None:
    """Opening something else than a meetplatform database fails with a clear error."""
    path = tmp_path / "db.sqlite"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises((DatabaseError, sqlite3.DatabaseError)):
        create_or_upgrade(path)


def test_connections_are_durable(tmp_path: Path) -> None:
    """Every connection runs in WAL mode with synchronous=FULL and foreign keys on."""
    path = tmp_path / "db.sqlite"
    create_or_upgrade(path)
    conn = sqlite.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
