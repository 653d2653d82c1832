"""Every query of the store, as plain blocking methods over one SQLite connection.

:class:`Database` is what the store's worker thread (and the operator CLI) runs. Callers
pass ``now`` (milliseconds) explicitly, so the logic is testable without a clock. Each
method is one transaction: it either happened completely or not at all.

Why one module of this size: every query of the core tables, one transaction each; split by
table, the transactions that span tables (an activation, a room's deletion) would have no
home.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from meetplatform.store.keys import KeyBox, hash_secret, new_id, new_secret, signing_key_for
from meetplatform.store.records import (
    AccessTokenRecord,
    ActivationOutcome,
    ClientRecord,
    RoomRecord,
    SpaceRecord,
    UserTokenRecord,
)

CLIENT_ID_PREFIX = "mpc_"
CLIENT_SECRET_PREFIX = "mpcs_"
ACCESS_TOKEN_PREFIX = "mpat_"
USER_ACCESS_TOKEN_PREFIX = "mpua_"
USER_TOKEN_PREFIX = "mput_"

#: Room attributes that :meth:`Database.update_room` may change, and their columns.
ROOM_COLUMNS = {
    "alias": "alias", "name": "name", "type": "type", "visibility": "visibility",
    "lobby": "lobby", "max_participants": "max_participants", "camera": "camera",
    "microphone": "microphone", "screenshare": "screenshare", "not_before": "not_before",
    "expires_at": "expires_at", "metadata": "metadata",
}
SPACE_COLUMNS = {"name": "name", "description": "description", "visibility": "visibility",
                 "embed_origins": "embed_origins"}


class AliasTaken(Exception):
    """Another room already uses this alias."""


# --- rows to records ---------------------------------------------------------------------


def _client(row: sqlite3.Row) -> ClientRecord:
    return ClientRecord(id=row["id"], name=row["name"], created_at=row["created_at"],
                        rotated_at=row["rotated_at"], revoked_at=row["revoked_at"])


def _space(row: sqlite3.Row) -> SpaceRecord:
    return SpaceRecord(id=row["id"], client_id=row["client_id"], name=row["name"],
                       description=row["description"], visibility=row["visibility"],
                       embed_origins=tuple(json.loads(row["embed_origins"])),
                       created_at=row["created_at"], updated_at=row["updated_at"])


def _room(row: sqlite3.Row) -> RoomRecord:
    return RoomRecord(
        id=row["id"], space_id=row["space_id"], alias=row["alias"], name=row["name"],
        type=row["type"], visibility=row["visibility"], lobby=bool(row["lobby"]),
        max_participants=row["max_participants"], camera=bool(row["camera"]),
        microphone=bool(row["microphone"]), screenshare=bool(row["screenshare"]),
        not_before=row["not_before"], expires_at=row["expires_at"],
        metadata=json.loads(row["metadata"]), created_at=row["created_at"],
        updated_at=row["updated_at"])


def _user_token(row: sqlite3.Row) -> UserTokenRecord:
    return UserTokenRecord(
        id=row["id"], space_id=row["space_id"], room_id=row["room_id"], role=row["role"],
        display_name=row["display_name"], external_user_id=row["external_user_id"],
        permissions=json.loads(row["permissions"]), max_uses=row["max_uses"],
        uses=row["uses"], not_before=row["not_before"], expires_at=row["expires_at"],
        created_at=row["created_at"], last_activated_at=row["last_activated_at"],
        revoked_at=row["revoked_at"])


def _access(row: sqlite3.Row) -> AccessTokenRecord:
    keys = row.keys()
    return AccessTokenRecord(
        id=row["id"], client_id=row["client_id"], kind=row["kind"],
        scope=tuple(row["scope"].split()), space_id=row["space_id"],
        issued_at=row["issued_at"], expires_at=row["expires_at"],
        revoked_at=row["revoked_at"], room_id=row["room_id"], role=row["role"],
        user_token_id=row["user_token_id"],
        client_revoked_at=row["client_revoked_at"] if "client_revoked_at" in keys else None)


def _encode(column: str, value: Any) -> Any:
    if column in ("metadata", "permissions"):
        return json.dumps(dict(value), sort_keys=True, separators=(",", ":"))
    if column == "embed_origins":
        return json.dumps(list(value), separators=(",", ":"))
    if isinstance(value, bool):
        return int(value)
    return value



@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on an error), or, when ``conn`` is
    in a transaction already, that transaction (the outermost one commits)."""
    if conn.in_transaction:
        yield conn
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


class Database:
    """The store's queries over one connection (not thread-safe: one thread at a time)."""

    def __init__(self, conn: sqlite3.Connection, box: KeyBox) -> None:
        self._conn = conn
        self._box = box

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn

    @property
    def box(self) -> KeyBox:
        """Seals secrets the server must read back (signing keys, webhook secrets)."""
        return self._box

    def close(self) -> None:
        self._conn.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """One write transaction, taken up front so that it never fails half-way on a lock.

        Inside a transaction already, it joins that one (commits with it, rolls back with
        it): a change and what it causes (the webhook outbox rows) commit together."""
        return write_transaction(self._conn)

    def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> (
            sqlite3.Row | None):
        row: sqlite3.Row | None = self._conn.execute(sql, params).fetchone()
        return row

    # --- clients -------------------------------------------------------------------------

    def _signing_box(self, client_id: str, secret: str) -> bytes:
        return self._box.seal(signing_key_for(secret), client_id.encode())

    def create_client(self, name: str, now: int) -> tuple[ClientRecord, SpaceRecord, str]:
        """A new client with its (private) space; returns the secret, which is not kept."""
        client_id = new_id(CLIENT_ID_PREFIX, 20)
        secret = new_secret(CLIENT_SECRET_PREFIX)
        space_id = new_id("sp_")
        with self.transaction() as c:
            c.execute(
                "INSERT INTO clients (id, name, secret_hash, signing_key_box, created_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (client_id, name, hash_secret(secret), self._signing_box(client_id, secret),
                 now))
            c.execute(
                "INSERT INTO spaces (id, client_id, name, description, visibility,"
                " embed_origins, created_at, updated_at)"
                " VALUES (?, ?, ?, '', 'private', '[]', ?, ?)",
                (space_id, client_id, name, now, now))
        client = self.get_client(client_id)
        space = self.get_space(space_id)
        assert client is not None and space is not None
        return client, space, secret

    def get_client(self, client_id: str) -> ClientRecord | None:
        row = self._one("SELECT * FROM clients WHERE id = ?", (client_id,))
        return _client(row) if row else None

    def list_clients(self) -> list[ClientRecord]:
        rows = self._conn.execute("SELECT * FROM clients ORDER BY created_at, id").fetchall()
        return [_client(r) for r in rows]

    def check_client_secret(self, client_id: str, secret: str) -> ClientRecord | None:
        """The active client if ``secret`` is its current secret (constant-time compare)."""
        row = self._one("SELECT * FROM clients WHERE id = ?", (client_id,))
        expected = row["secret_hash"] if row else hash_secret(secrets.token_hex(16))
        matches = secrets.compare_digest(hash_secret(secret), expected)
        if row is None or not matches or row["revoked_at"] is not None:
            return None
        return _client(row)

    def client_signing_key(self, client_id: str) -> tuple[ClientRecord, bytes] | None:
        """The active client and its request-signing key, unsealed."""
        row = self._one("SELECT * FROM clients WHERE id = ? AND revoked_at IS NULL",
                        (client_id,))
        if row is None:
            return None
        return _client(row), self._box.open(row["signing_key_box"], client_id.encode())

    def revoke_client(self, client_id: str, now: int) -> ClientRecord | None:
        """Refuse the client from now on; its access tokens die with it."""
        with self.transaction() as c:
            c.execute("UPDATE clients SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                      (now, client_id))
            c.execute("UPDATE access_tokens SET revoked_at = ?"
                      " WHERE client_id = ? AND revoked_at IS NULL", (now, client_id))
        return self.get_client(client_id)

    def rotate_client(self, client_id: str, now: int) -> tuple[ClientRecord, str] | None:
        """A new secret (and signing key) for an active client; its access tokens are revoked.

        Tokens of invited users (``kind='user'``) stay valid: they were not issued to the
        client's credentials.
        """
        secret = new_secret(CLIENT_SECRET_PREFIX)
        with self.transaction() as c:
            cursor = c.execute(
                "UPDATE clients SET secret_hash = ?, signing_key_box = ?, rotated_at = ?"
                " WHERE id = ? AND revoked_at IS NULL",
                (hash_secret(secret), self._signing_box(client_id, secret), now, client_id))
            if cursor.rowcount == 0:
                return None
            c.execute("UPDATE access_tokens SET revoked_at = ? WHERE client_id = ?"
                      " AND kind = 'client' AND revoked_at IS NULL", (now, client_id))
        client = self.get_client(client_id)
        assert client is not None
        return client, secret

    # --- access tokens -------------------------------------------------------------------

    def _insert_access_token(self, c: sqlite3.Connection, *, client_id: str, kind: str,
                             scope: Sequence[str], space_id: str, now: int, ttl_ms: int,
                             room_id: str | None = None, role: str | None = None,
                             user_token_id: str | None = None) -> tuple[AccessTokenRecord, str]:
        """Insert a token for a client the caller found active in this transaction; its
        record comes back from the ``INSERT`` itself (no second read)."""
        token = new_secret(ACCESS_TOKEN_PREFIX if kind == "client" else USER_ACCESS_TOKEN_PREFIX)
        row = c.execute(
            "INSERT INTO access_tokens (id, token_hash, client_id, kind, scope, space_id,"
            " issued_at, expires_at, room_id, role, user_token_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (new_id("at_"), hash_secret(token), client_id, kind, " ".join(scope), space_id,
             now, now + ttl_ms, room_id, role, user_token_id)).fetchone()
        return _access(row), token

    def issue_access_token(self, client_id: str, scope: Sequence[str], now: int,
                           ttl_ms: int) -> tuple[AccessTokenRecord, str] | None:
        """A bearer token for an active client (``None`` if it is revoked or unknown)."""
        with self.transaction() as c:
            row = c.execute(
                "SELECT s.id FROM spaces s JOIN clients k ON k.id = s.client_id"
                " WHERE k.id = ? AND k.revoked_at IS NULL", (client_id,)).fetchone()
            if row is None:
                return None
            return self._insert_access_token(
                c, client_id=client_id, kind="client", scope=scope, space_id=row[0], now=now,
                ttl_ms=ttl_ms)

    _ACCESS_SELECT = ("SELECT a.*, k.revoked_at AS client_revoked_at FROM access_tokens a"
                      " JOIN clients k ON k.id = a.client_id")

    def find_access_token(self, token: str) -> AccessTokenRecord | None:
        """The record of a bearer token, whatever its state (check ``active(now)``)."""
        row = self._one(self._ACCESS_SELECT + " WHERE a.token_hash = ?", (hash_secret(token),))
        return _access(row) if row else None

    def revoke_access_token(self, token: str, client_id: str, now: int) -> bool:
        """Revoke one of ``client_id``'s tokens; false if it is not one of them."""
        with self.transaction() as c:
            cursor = c.execute(
                "UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?)"
                " WHERE token_hash = ? AND client_id = ?", (now, hash_secret(token), client_id))
            return cursor.rowcount > 0

    def purge_expired_access_tokens(self, now: int) -> int:
        """Forget tokens that expired more than a day ago; returns how many."""
        with self.transaction() as c:
            return c.execute("DELETE FROM access_tokens WHERE expires_at < ?",
                             (now - 86_400_000,)).rowcount

    # --- spaces --------------------------------------------------------------------------

    def get_space(self, space_id: str) -> SpaceRecord | None:
        row = self._one("SELECT * FROM spaces WHERE id = ?", (space_id,))
        return _space(row) if row else None

    def space_of_client(self, client_id: str) -> SpaceRecord | None:
        row = self._one("SELECT * FROM spaces WHERE client_id = ?", (client_id,))
        return _space(row) if row else None

    def update_space(self, space_id: str, changes: Mapping[str, Any],
                     now: int) -> SpaceRecord | None:
        sets, params = self._sets(SPACE_COLUMNS, changes)
        with self.transaction() as c:
            cursor = c.execute(f"UPDATE spaces SET {sets} updated_at = ? WHERE id = ?",
                               (*params, now, space_id))
            if cursor.rowcount == 0:
                return None
        return self.get_space(space_id)

    @staticmethod
    def _sets(columns: Mapping[str, str], changes: Mapping[str, Any]) -> tuple[str, list[Any]]:
        sets, params = [], []
        for key, value in changes.items():
            column = columns[key]  # KeyError: a programming error, not user input
            sets.append(f"{column} = ?,")
            params.append(_encode(column, value))
        return " ".join(sets), params

    # --- rooms ---------------------------------------------------------------------------

    def create_room(self, space_id: str, fields: Mapping[str, Any], now: int) -> RoomRecord:
        """A new room; ``fields`` holds every column of :data:`ROOM_COLUMNS`.

        Raises :class:`AliasTaken` when the alias is in use.
        """
        room_id = new_id("rm_")
        columns = list(ROOM_COLUMNS.values())
        values = [_encode(col, fields[key]) for key, col in ROOM_COLUMNS.items()]
        marks = ", ".join("?" for _ in range(len(columns) + 4))
        try:
            with self.transaction() as c:
                c.execute(
                    f"INSERT INTO rooms (id, space_id, {', '.join(columns)}, created_at,"
                    f" updated_at) VALUES ({marks})",
                    (room_id, space_id, *values, now, now))
        except sqlite3.IntegrityError as e:
            if "rooms.alias" in str(e):
                raise AliasTaken(fields["alias"]) from e
            raise
        room = self.get_room(room_id)
        assert room is not None
        return room

    def get_room(self, room_id: str) -> RoomRecord | None:
        row = self._one("SELECT * FROM rooms WHERE id = ?", (room_id,))
        return _room(row) if row else None

    def room_by_alias(self, alias: str) -> RoomRecord | None:
        row = self._one("SELECT * FROM rooms WHERE alias = ?", (alias,))
        return _room(row) if row else None

    def list_rooms(self, space_id: str, after: tuple[int, str] | None,
                   limit: int) -> list[RoomRecord]:
        """Rooms of a space in creation order, after the cursor ``(created_at, id)``."""
        if after is None:
            rows = self._conn.execute(
                "SELECT * FROM rooms WHERE space_id = ? ORDER BY created_at, id LIMIT ?",
                (space_id, limit)).fetchall()
        else:
            rows = self._conn.execute(
                "SELECT * FROM rooms WHERE space_id = ? AND (created_at, id) > (?, ?)"
                " ORDER BY created_at, id LIMIT ?", (space_id, *after, limit)).fetchall()
        return [_room(r) for r in rows]

    def update_room(self, room_id: str, changes: Mapping[str, Any],
                    now: int) -> RoomRecord | None:
        sets, params = self._sets(ROOM_COLUMNS, changes)
        try:
            with self.transaction() as c:
                cursor = c.execute(f"UPDATE rooms SET {sets} updated_at = ? WHERE id = ?",
                                   (*params, now, room_id))
                if cursor.rowcount == 0:
                    return None
        except sqlite3.IntegrityError as e:
            if "rooms.alias" in str(e):
                raise AliasTaken(changes.get("alias", "")) from e
            raise
        return self.get_room(room_id)

    def delete_room(self, room_id: str) -> bool:
        """Delete a room with its invitations and the access they granted."""
        with self.transaction() as c:
            return c.execute("DELETE FROM rooms WHERE id = ?", (room_id,)).rowcount > 0

    # --- user tokens (invitations) -------------------------------------------------------

    def create_user_token(
        self,
        *,
        space_id: str,
        room_id: str | None,
        role: str,
        display_name: str,
        external_user_id: str,
        permissions: Mapping[str, bool],
        max_uses: int,
        not_before: int | None,
        expires_at: int,
        now: int,
    ) -> tuple[UserTokenRecord, str]:
        """A new invitation; returns its secret, of which only a hash is kept."""
        token_id = new_id("ut_")
        secret = new_secret(USER_TOKEN_PREFIX)
        with self.transaction() as c:
            c.execute(
                "INSERT INTO user_tokens (id, token_hash, space_id, room_id, role,"
                " display_name, external_user_id, permissions, max_uses, uses, not_before,"
                " expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (token_id, hash_secret(secret), space_id, room_id, role, display_name,
                 external_user_id, _encode("permissions", permissions), max_uses, not_before,
                 expires_at, now))
        record = self.get_user_token(token_id)
        assert record is not None
        return record, secret

    def get_user_token(self, token_id: str) -> UserTokenRecord | None:
        row = self._one("SELECT * FROM user_tokens WHERE id = ?", (token_id,))
        return _user_token(row) if row else None

    def find_user_token(self, secret: str) -> UserTokenRecord | None:
        row = self._one("SELECT * FROM user_tokens WHERE token_hash = ?", (hash_secret(secret),))
        return _user_token(row) if row else None

    def list_user_tokens(self, space_id: str, room_id: str | None,
                         after: tuple[int, str] | None, limit: int) -> list[UserTokenRecord]:
        """Invitations of a space (or of one of its rooms), oldest first."""
        where = "space_id = ?"
        params: list[Any] = [space_id]
        if room_id is not None:
            where += " AND room_id = ?"
            params.append(room_id)
        if after is not None:
            where += " AND (created_at, id) > (?, ?)"
            params.extend(after)
        rows = self._conn.execute(
            f"SELECT * FROM user_tokens WHERE {where} ORDER BY created_at, id LIMIT ?",
            (*params, limit)).fetchall()
        return [_user_token(r) for r in rows]

    def revoke_user_token(self, token_id: str, now: int) -> UserTokenRecord | None:
        """Revoke an invitation and the access tokens its activations handed out."""
        with self.transaction() as c:
            cursor = c.execute(
                "UPDATE user_tokens SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?",
                (now, token_id))
            if cursor.rowcount == 0:
                return None
            c.execute("UPDATE access_tokens SET revoked_at = coalesce(revoked_at, ?)"
                      " WHERE user_token_id = ?", (now, token_id))
        return self.get_user_token(token_id)

    def activate_user_token(self, secret: str, now: int, *, grant_scope: Sequence[str] = (),
                            grant_ttl_ms: int = 0) -> ActivationOutcome:
        """Use the invitation once, atomically: of many concurrent attempts, as many win as
        it has uses left.

        The use is taken by ONE conditional ``UPDATE``; on success (and if ``grant_scope``
        is given) the invited user's access token is inserted in the same transaction.
        """
        token_hash = hash_secret(secret)
        access: tuple[AccessTokenRecord, str] | None = None
        with self.transaction() as c:
            # The space's client comes back with the row (it is active: the UPDATE's
            # condition says so), for the access token inserted next.
            row = c.execute(
                "UPDATE user_tokens SET uses = uses + 1, last_activated_at = :now"
                " WHERE token_hash = :hash AND uses < max_uses AND revoked_at IS NULL"
                " AND expires_at > :now AND (not_before IS NULL OR not_before <= :now)"
                " AND space_id IN (SELECT s.id FROM spaces s JOIN clients k"
                "                  ON k.id = s.client_id WHERE k.revoked_at IS NULL)"
                " RETURNING *, (SELECT client_id FROM spaces s WHERE s.id = space_id)"
                " AS space_client_id", {"now": now, "hash": token_hash}).fetchall()
            token = _user_token(row[0]) if row else None
            if token is not None and grant_scope:
                access = self._insert_access_token(
                    c, client_id=row[0]["space_client_id"], kind="user", scope=grant_scope,
                    space_id=token.space_id, now=now, ttl_ms=grant_ttl_ms,
                    room_id=token.room_id, role=token.role, user_token_id=token.id)
        if token is not None:
            if access is None:
                return ActivationOutcome(won=True, token=token)
            return ActivationOutcome(won=True, token=token, access_token=access[1],
                                     access_record=access[0])
        return self._why_not(token_hash, now)

    def _why_not(self, token_hash: str, now: int) -> ActivationOutcome:
        row = self._one(
            "SELECT t.*, k.revoked_at AS client_revoked_at FROM user_tokens t"
            " JOIN spaces s ON s.id = t.space_id JOIN clients k ON k.id = s.client_id"
            " WHERE t.token_hash = ?", (token_hash,))
        if row is None:
            return ActivationOutcome(won=False, reason="not_found")
        token = _user_token(row)
        if token.revoked_at is not None or row["client_revoked_at"] is not None:
            reason = "revoked"
        elif token.uses >= token.max_uses:
            reason = "used"
        elif token.expires_at <= now:
            reason = "expired"
        elif token.not_before is not None and token.not_before > now:
            reason = "not_yet_valid"
        else:  # pragma: no cover - the UPDATE would have matched
            reason = "used"
        return ActivationOutcome(won=False, token=token, reason=reason)

    def refund_activation(self, token_id: str, access_token_id: str | None) -> None:
        """Give back a use whose seat could not be issued (meeting full, lobby denied...)."""
        with self.transaction() as c:
            c.execute("UPDATE user_tokens SET uses = uses - 1 WHERE id = ? AND uses > 0",
                      (token_id,))
            if access_token_id is not None:
                c.execute("DELETE FROM access_tokens WHERE id = ?", (access_token_id,))
