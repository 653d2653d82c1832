"""Open, create and upgrade the SQLite database file (the magic-wormhole mailbox pattern).

The schema lives in ``schema/vN.sql`` (a fresh database at version N) and
``schema/upgrade-to-vN.sql`` (from N-1 to N). A one-row ``version`` table records the
version of a database file. A new file is built under a temporary name and renamed into
place, so a crash during creation never leaves a half-made database behind. Before an
upgrade the file is copied to ``<name>.backup-v<old>``; each upgrade script runs in one
transaction together with the version bump.

Every connection runs in WAL mode with ``synchronous=FULL``: a transaction that
``COMMIT`` returned for is on disk, so a ``kill -9`` right after an API answered loses
nothing the API acknowledged. Foreign keys are enforced.

These functions block; the :class:`~meetplatform.store.Store` calls them at start-up and
from its worker thread, never from the reactor thread while serving.
"""

from __future__ import annotations

import os
import re
import sqlite3
from importlib import resources
from pathlib import Path

#: The schema version this code reads and writes.
TARGET_VERSION = 5

#: How long a connection waits for another writer (another process, e.g. the CLI).
BUSY_TIMEOUT_MS = 10_000


class DatabaseError(Exception):
    """The database file cannot be used (unknown version, not a database, ...)."""


def schema_text(name: str) -> str:
    """The text of ``schema/<name>`` shipped with the package."""
    return resources.files("meetplatform.store").joinpath("schema", name).read_text("utf-8")


def available_versions() -> list[int]:
    """Versions for which a full ``vN.sql`` schema ships."""
    found = []
    for entry in resources.files("meetplatform.store").joinpath("schema").iterdir():
        match = re.fullmatch(r"v(\d+)\.sql", entry.name)
        if match:
            found.append(int(match.group(1)))
    return sorted(found)


def configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Apply the pragmas every connection needs."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys = ON")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() not in ("wal", "memory"):
        raise DatabaseError(f"cannot switch the database to WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    return conn


def connect(path: Path | str) -> sqlite3.Connection:
    """A configured autocommit connection; callers open transactions explicitly."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    return configure(conn)


def get_version(conn: sqlite3.Connection) -> int:
    try:
        row = conn.execute("SELECT version FROM version").fetchone()
    except sqlite3.DatabaseError as e:
        raise DatabaseError(f"not a meetplatform database: {e}") from e
    if row is None:
        raise DatabaseError("the version table is empty")
    return int(row[0])


def create_schema(conn: sqlite3.Connection, version: int = TARGET_VERSION) -> None:
    """Build the schema of ``version`` into an empty database, in one transaction."""
    script = schema_text(f"v{version}.sql")
    conn.executescript(
        "BEGIN IMMEDIATE;\n" + script
        + f"\nINSERT INTO version (version) VALUES ({int(version)});\nCOMMIT;\n")


def upgrade(conn: sqlite3.Connection, target: int = TARGET_VERSION) -> int:
    """Run the upgrade scripts from the database's version up to ``target``."""
    version = get_version(conn)
    if version > target:
        raise DatabaseError(
            f"the database is at schema version {version}, newer than this code ({target})")
    while version < target:
        script = schema_text(f"upgrade-to-v{version + 1}.sql")
        try:
            conn.executescript(
                "BEGIN IMMEDIATE;\n" + script
                + f"\nUPDATE version SET version = {version + 1};\nCOMMIT;\n")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        version += 1
    problems = conn.execute("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise DatabaseError(f"foreign key violations after upgrade: {len(problems)}")
    return version


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_or_upgrade(path: Path, target: int = TARGET_VERSION) -> None:
    """Make sure ``path`` is a database at ``target``: create it atomically or upgrade it."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        for leftover in (temp, Path(f"{temp}-wal"), Path(f"{temp}-shm"),
                         Path(f"{temp}-journal")):
            leftover.unlink(missing_ok=True)
        conn = sqlite3.connect(str(temp), isolation_level=None)
        try:
            # build in rollback-journal mode so the file is complete on its own
            conn.execute("PRAGMA synchronous = FULL")
            create_schema(conn, target)
        finally:
            conn.close()
        with open(temp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(temp, path)
        _fsync_dir(path.parent)
        conn = connect(path)  # switch the file to WAL once, under its real name
        conn.close()
        return
    conn = connect(path)
    try:
        version = get_version(conn)
        if version == target:
            return
        if version < target:
            backup = path.with_name(f"{path.name}.backup-v{version}")
            dest = sqlite3.connect(str(backup))
            try:
                conn.backup(dest)
            finally:
                dest.close()
        upgrade(conn, target)
    finally:
        conn.close()


# --- comparing databases (tests and the upgrade check) ----------------------------------


def _normalize_sql(sql: str | None) -> str:
    """Schema text without comments, quoting or layout, as SQLite may rewrite it."""
    if sql is None:
        return ""
    text = re.sub(r"--[^\n]*", " ", sql)
    text = text.replace('"', "")
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*([(),])\s*", r"\1", text)
    return text.strip()


def dump(conn: sqlite3.Connection) -> list[str]:
    """A comparable description of a database: its schema objects, columns and rows.

    Two databases dump equal when they have the same tables, indexes, columns (name,
    type, nullability, default, key), foreign keys and contents, whatever the textual
    layout SQLite kept for their ``CREATE`` statements.
    """
    lines: list[str] = []
    objects = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master "
        "WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    for type_, name, table, sql in objects:
        lines.append(f"{type_} {name} on {table}: {_normalize_sql(sql)}")
    tables = [row[1] for row in objects if row[0] == "table"]
    for table in tables:
        for column in conn.execute(f"PRAGMA table_info({table})").fetchall():
            lines.append(f"column {table}: {tuple(column)}")
        for fk in conn.execute(f"PRAGMA foreign_key_list({table})").fetchall():
            lines.append(f"foreign key {table}: {tuple(fk)[2:]}")
        for index in conn.execute(f"PRAGMA index_list({table})").fetchall():
            cols = conn.execute(f"PRAGMA index_info({index[1]})").fetchall()
            lines.append(f"index {table}.{index[1]}: unique={index[2]} "
                         f"cols={[c[2] for c in cols]}")
        columns = [c[1] for c in conn.execute(f"PRAGMA table_info({table})").fetchall()]
        order = ", ".join(columns)
        for row in conn.execute(f"SELECT {order} FROM {table} ORDER BY {order}").fetchall():
            lines.append(f"row {table}: {tuple(row)}")
    return lines
