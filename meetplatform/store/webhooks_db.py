"""Webhooks in the store: BBB hooks, per-space endpoints, the outbox and delivery state.

Tables and queries only: plain values and records in, records out. What an event means
for its receivers (which hooks and endpoints match it, the body each one gets, the
secrets and their signatures) is the webhooks package's business
(:mod:`meetplatform.webhooks.outbox`, :mod:`meetplatform.webhooks.receivers`); the store
knows nothing above it.

The **outbox** is what makes delivery at-least-once: an event is fanned out to its
receivers in one transaction (:func:`add_to_outbox`: one row per receiver, with the
event's id and its JSON body), and a row is deleted only after its receiver acknowledged
it (:func:`record_results`). A process killed at any moment leaves the undelivered rows in
place; the next one delivers them, with the same event ids.

Receivers are *targets*: ``("hook", <bbb_hooks.id>)``, ``("endpoint",
<webhook_endpoints.id>)`` or ``("callback", <id>)`` for a one-off ``meta_endCallbackUrl``
GET. ``webhook_delivery_state`` keeps each target's consecutive failures and when the
next attempt may be made, so that a restart does not hammer a receiver that is down.

Everything here is blocking and runs on the store's thread; callers pass ``now`` (ms).

Why one module of this size: the webhook tables (hooks, endpoints, outbox, delivery state)
change together in the same transactions (a target's removal clears its outbox rows and
its state).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from meetplatform.store.database import Database
from meetplatform.store.keys import new_id

ENDPOINT_ID_PREFIX = "we_"
MAX_HOOKS = 1000
MAX_ENDPOINTS_PER_SPACE = 10
#: How long the previous secret keeps signing after a rotation.
ROTATION_GRACE_MS = 24 * 3600 * 1000

Target = tuple[str, str]


class TooMany(Exception):
    """A limit on hooks or endpoints was reached."""


# --- BigBlueButton hooks ------------------------------------------------------------------------


@dataclass(frozen=True)
class HookRecord:
    id: str
    callback_url: str
    meeting_id: str | None
    event_ids: tuple[str, ...] | None
    get_raw: bool
    checksum_algorithm: str
    created_at: int


def _hook(row: sqlite3.Row) -> HookRecord:
    events = row["event_ids"]
    return HookRecord(id=row["id"], callback_url=row["callback_url"],
                      meeting_id=row["meeting_id"],
                      event_ids=tuple(events.split(",")) if events is not None else None,
                      get_raw=bool(row["get_raw"]),
                      checksum_algorithm=row["checksum_algorithm"],
                      created_at=row["created_at"])


def create_hook(db: Database, *, callback_url: str, meeting_id: str | None,
                event_ids: Sequence[str] | None, get_raw: bool, checksum_algorithm: str,
                now: int, max_hooks: int = MAX_HOOKS) -> tuple[HookRecord, bool]:
    """A new hook, or ``(existing, True)`` when one has this callback URL (as bbb-webhooks)."""
    with db.transaction() as c:
        row = c.execute("SELECT * FROM bbb_hooks WHERE callback_url = ?",
                        (callback_url,)).fetchone()
        if row is not None:
            return _hook(row), True
        if c.execute("SELECT count(*) FROM bbb_hooks").fetchone()[0] >= max_hooks:
            raise TooMany(f"there are {max_hooks} hooks already")
        hook_id = str(uuid.uuid4())
        c.execute(
            "INSERT INTO bbb_hooks (id, callback_url, meeting_id, event_ids, get_raw,"
            " checksum_algorithm, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (hook_id, callback_url, meeting_id,
             ",".join(event_ids) if event_ids is not None else None, int(get_raw),
             checksum_algorithm, now))
        created = c.execute("SELECT * FROM bbb_hooks WHERE id = ?", (hook_id,)).fetchone()
    return _hook(created), False


def list_hooks(db: Database, meeting_id: str | None = None) -> list[HookRecord]:
    """Every hook; with ``meeting_id``, the hooks that receive that meeting's events."""
    if meeting_id is None:
        rows = db.connection.execute("SELECT * FROM bbb_hooks ORDER BY created_at, id")
    else:
        rows = db.connection.execute(
            "SELECT * FROM bbb_hooks WHERE meeting_id IS NULL OR meeting_id = ? ORDER BY id",
            (meeting_id,))
    return [_hook(r) for r in rows.fetchall()]


def _forget_target(c: sqlite3.Connection, kind: str, target_id: str) -> None:
    c.execute("DELETE FROM webhook_outbox WHERE target_kind = ? AND target_id = ?",
              (kind, target_id))
    c.execute("DELETE FROM webhook_delivery_state WHERE target_kind = ? AND target_id = ?",
              (kind, target_id))


def destroy_hook(db: Database, hook_id: str) -> bool:
    """Remove a hook with its undelivered events; False if there is none with this id."""
    with db.transaction() as c:
        if c.execute("DELETE FROM bbb_hooks WHERE id = ?", (hook_id,)).rowcount == 0:
            return False
        _forget_target(c, "hook", hook_id)
    return True


# --- per-space endpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class EndpointRecord:
    """A space's webhook endpoint as the JSON:API shows it (never its secret)."""

    id: str
    space_id: str
    url: str
    description: str
    event_types: tuple[str, ...]
    created_at: int
    updated_at: int
    secret_rotated_at: int | None
    previous_secret_expires_at: int | None
    disabled_at: int | None
    disabled_reason: str | None
    consecutive_failures: int
    last_success_at: int | None
    last_failure_at: int | None
    last_error: str | None
    next_attempt_at: int | None
    pending: int

    @property
    def enabled(self) -> bool:
        return self.disabled_at is None


_ENDPOINT_SELECT = (
    "SELECT e.*, coalesce(s.consecutive_failures, 0) AS failures,"
    " s.last_success_at, s.last_failure_at, s.last_error, s.next_attempt_at,"
    " (SELECT count(*) FROM webhook_outbox o WHERE o.target_kind = 'endpoint'"
    "  AND o.target_id = e.id) AS pending"
    " FROM webhook_endpoints e LEFT JOIN webhook_delivery_state s"
    " ON s.target_kind = 'endpoint' AND s.target_id = e.id")


def _endpoint(row: sqlite3.Row) -> EndpointRecord:
    return EndpointRecord(
        id=row["id"], space_id=row["space_id"], url=row["url"],
        description=row["description"], event_types=tuple(json.loads(row["event_types"])),
        created_at=row["created_at"], updated_at=row["updated_at"],
        secret_rotated_at=row["secret_rotated_at"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        disabled_at=row["disabled_at"], disabled_reason=row["disabled_reason"],
        consecutive_failures=row["failures"], last_success_at=row["last_success_at"],
        last_failure_at=row["last_failure_at"], last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"], pending=row["pending"])


def _seal(db: Database, endpoint_id: str, key: bytes) -> bytes:
    return db.box.seal(key, endpoint_id.encode())


def create_endpoint(db: Database, *, space_id: str, url: str, description: str,
                    event_types: Sequence[str], key: bytes, now: int,
                    max_per_space: int = MAX_ENDPOINTS_PER_SPACE) -> EndpointRecord:
    """A new endpoint signing with ``key``, which is kept sealed (the caller made it, and
    shows its secret only this once)."""
    endpoint_id = new_id(ENDPOINT_ID_PREFIX)
    with db.transaction() as c:
        count = c.execute("SELECT count(*) FROM webhook_endpoints WHERE space_id = ?",
                          (space_id,)).fetchone()[0]
        if count >= max_per_space:
            raise TooMany(f"a space has at most {max_per_space} webhook endpoints")
        c.execute(
            "INSERT INTO webhook_endpoints (id, space_id, url, description, event_types,"
            " secret_box, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (endpoint_id, space_id, url, description, json.dumps(list(event_types)),
             _seal(db, endpoint_id, key), now, now))
    record = get_endpoint(db, endpoint_id)
    assert record is not None
    return record


def get_endpoint(db: Database, endpoint_id: str) -> EndpointRecord | None:
    row = db.connection.execute(_ENDPOINT_SELECT + " WHERE e.id = ?", (endpoint_id,)).fetchone()
    return _endpoint(row) if row is not None else None


def list_endpoints(db: Database, space_id: str, after: tuple[int, str] | None,
                   limit: int) -> list[EndpointRecord]:
    if after is None:
        rows = db.connection.execute(
            _ENDPOINT_SELECT + " WHERE e.space_id = ? ORDER BY e.created_at, e.id LIMIT ?",
            (space_id, limit))
    else:
        rows = db.connection.execute(
            _ENDPOINT_SELECT + " WHERE e.space_id = ? AND (e.created_at, e.id) > (?, ?)"
            " ORDER BY e.created_at, e.id LIMIT ?", (space_id, *after, limit))
    return [_endpoint(r) for r in rows.fetchall()]


def update_endpoint(db: Database, endpoint_id: str, changes: Mapping[str, Any],
                    now: int) -> EndpointRecord | None:
    """Change ``url``, ``description``, ``event_types`` or ``enabled``. Enabling a disabled
    endpoint forgets its failures: its waiting events are delivered again."""
    sets: list[str] = []
    params: list[Any] = []
    for name in ("url", "description"):
        if name in changes:
            sets.append(f"{name} = ?")
            params.append(changes[name])
    if "event_types" in changes:
        sets.append("event_types = ?")
        params.append(json.dumps(list(changes["event_types"])))
    with db.transaction() as c:
        row = c.execute("SELECT disabled_at FROM webhook_endpoints WHERE id = ?",
                        (endpoint_id,)).fetchone()
        if row is None:
            return None
        if "enabled" in changes:
            if changes["enabled"] and row["disabled_at"] is not None:
                sets.append("disabled_at = NULL, disabled_reason = NULL")
                c.execute("DELETE FROM webhook_delivery_state WHERE target_kind = 'endpoint'"
                          " AND target_id = ?", (endpoint_id,))
            elif not changes["enabled"] and row["disabled_at"] is None:
                sets.append("disabled_at = ?, disabled_reason = ?")
                params.extend([now, "disabled by the client"])
        sets.append("updated_at = ?")
        params.append(now)
        c.execute(f"UPDATE webhook_endpoints SET {', '.join(sets)} WHERE id = ?",
                  (*params, endpoint_id))
    return get_endpoint(db, endpoint_id)


def rotate_endpoint_secret(db: Database, endpoint_id: str, key: bytes, now: int,
                           grace_ms: int = ROTATION_GRACE_MS) -> EndpointRecord | None:
    """Sign with ``key`` from now on; the previous key keeps signing (as a second
    signature) for ``grace_ms`` so receivers can switch without losing events."""
    with db.transaction() as c:
        cursor = c.execute(
            "UPDATE webhook_endpoints SET previous_secret_box = secret_box,"
            " previous_secret_expires_at = ?, secret_box = ?, secret_rotated_at = ?,"
            " updated_at = ? WHERE id = ?",
            (now + grace_ms, _seal(db, endpoint_id, key), now, now, endpoint_id))
        if cursor.rowcount == 0:
            return None
    record = get_endpoint(db, endpoint_id)
    assert record is not None
    return record


def delete_endpoint(db: Database, endpoint_id: str) -> bool:
    with db.transaction() as c:
        if c.execute("DELETE FROM webhook_endpoints WHERE id = ?",
                     (endpoint_id,)).rowcount == 0:
            return False
        _forget_target(c, "endpoint", endpoint_id)
    return True


# --- fan-out into the outbox ------------------------------------------------------------------------


def any_receivers(db: Database) -> bool:
    """Whether any hook or any endpoint (enabled or not) exists."""
    return bool(db.connection.execute(
        "SELECT EXISTS (SELECT 1 FROM bbb_hooks) OR EXISTS (SELECT 1 FROM webhook_endpoints)"
    ).fetchone()[0])


def all_hooks(db: Database) -> list[HookRecord]:
    """Every hook, by id (the order their rows of one event are written in)."""
    return [_hook(r) for r in db.connection.execute("SELECT * FROM bbb_hooks ORDER BY id")]


@dataclass(frozen=True)
class EndpointSubscription:
    """An enabled endpoint and the event types it wants (empty: all)."""

    id: str
    event_types: frozenset[str]


def enabled_endpoints(db: Database, space_id: str) -> list[EndpointSubscription]:
    """The space's enabled endpoints, by id."""
    return [EndpointSubscription(r["id"], frozenset(json.loads(r["event_types"])))
            for r in db.connection.execute(
                "SELECT id, event_types FROM webhook_endpoints WHERE space_id = ?"
                " AND disabled_at IS NULL ORDER BY id", (space_id,))]


class NewOutboxRow(NamedTuple):
    """One event for one receiver, as it enters the outbox. A named tuple in the order
    of :func:`add_to_outbox`'s columns: the rows of a busy turn go to SQLite as they
    are, with nothing built per row on the join's hot path but the tuple itself."""

    event_id: str
    event_type: str
    target_kind: str
    target_id: str
    ordering_key: str
    payload: str
    created_at: int
    method: str = "POST"
    url: str | None = None


def add_to_outbox(db: Database, rows: Sequence[NewOutboxRow]) -> None:
    """Write ``rows`` in this order (their ``seq`` follows it), in one transaction (the
    caller's, if it is in one)."""
    with db.transaction() as c:
        c.executemany(
            "INSERT INTO webhook_outbox (event_id, event_type, target_kind, target_id,"
            " ordering_key, payload, created_at, method, url)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


# --- what the dispatcher reads ------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    event_id: str
    event_type: str
    ordering_key: str
    method: str
    url: str | None
    payload: str
    created_at: int
    attempts: int


@dataclass(frozen=True)
class TargetInfo:
    """Where and how to deliver a target's rows, and its delivery state."""

    kind: str
    id: str
    url: str | None
    #: Standard Webhooks keys (current first); empty for hooks and callbacks.
    keys: tuple[bytes, ...] = ()
    checksum_algorithm: str = "sha1"
    consecutive_failures: int = 0
    next_attempt_at: int | None = None


def _row(r: sqlite3.Row) -> OutboxRow:
    return OutboxRow(seq=r["seq"], event_id=r["event_id"], event_type=r["event_type"],
                     ordering_key=r["ordering_key"], method=r["method"], url=r["url"],
                     payload=r["payload"], created_at=r["created_at"], attempts=r["attempts"])


def _state(c: sqlite3.Connection, kind: str, target_id: str) -> tuple[int, int | None]:
    row = c.execute("SELECT consecutive_failures, next_attempt_at FROM webhook_delivery_state"
                    " WHERE target_kind = ? AND target_id = ?", (kind, target_id)).fetchone()
    return (row[0], row[1]) if row is not None else (0, None)


def target_info(db: Database, kind: str, target_id: str, now: int) -> TargetInfo | None:
    """The target's delivery details, or ``None`` when it is gone or disabled."""
    c = db.connection
    failures, next_at = _state(c, kind, target_id)
    if kind == "hook":
        row = c.execute("SELECT callback_url, checksum_algorithm FROM bbb_hooks WHERE id = ?",
                        (target_id,)).fetchone()
        if row is None:
            return None
        return TargetInfo(kind, target_id, row[0], checksum_algorithm=row[1],
                          consecutive_failures=failures, next_attempt_at=next_at)
    if kind == "endpoint":
        row = c.execute("SELECT url, secret_box, previous_secret_box,"
                        " previous_secret_expires_at, disabled_at FROM webhook_endpoints"
                        " WHERE id = ?", (target_id,)).fetchone()
        if row is None or row["disabled_at"] is not None:
            return None
        context = target_id.encode()
        keys = [db.box.open(row["secret_box"], context)]
        if row["previous_secret_box"] is not None and (row["previous_secret_expires_at"] or 0) > now:
            keys.append(db.box.open(row["previous_secret_box"], context))
        return TargetInfo(kind, target_id, row["url"], keys=tuple(keys),
                          consecutive_failures=failures, next_attempt_at=next_at)
    if kind == "callback":
        exists = c.execute("SELECT 1 FROM webhook_outbox WHERE target_kind = 'callback'"
                           " AND target_id = ? LIMIT 1", (target_id,)).fetchone()
        if exists is None:
            return None
        return TargetInfo(kind, target_id, None, consecutive_failures=failures,
                          next_attempt_at=next_at)
    return None


def load_target(db: Database, kind: str, target_id: str, now: int,
                limit: int) -> tuple[TargetInfo | None, list[OutboxRow]]:
    """A target's details and its first ``limit`` undelivered rows, oldest first."""
    info = target_info(db, kind, target_id, now)
    if info is None:
        return None, []
    rows = db.connection.execute(
        "SELECT * FROM webhook_outbox WHERE target_kind = ? AND target_id = ?"
        " ORDER BY seq LIMIT ?", (kind, target_id, limit)).fetchall()
    return info, [_row(r) for r in rows]


def load_rows(db: Database, kind: str, target_id: str, after_seq: int,
              limit: int) -> list[OutboxRow]:
    """A target's undelivered rows written after ``after_seq``, oldest first."""
    rows = db.connection.execute(
        "SELECT * FROM webhook_outbox WHERE target_kind = ? AND target_id = ? AND seq > ?"
        " ORDER BY seq LIMIT ?", (kind, target_id, after_seq, limit)).fetchall()
    return [_row(r) for r in rows]


def pending_targets(db: Database) -> list[Target]:
    """Every target with undelivered rows."""
    rows = db.connection.execute(
        "SELECT DISTINCT target_kind, target_id FROM webhook_outbox").fetchall()
    return [(r[0], r[1]) for r in rows]


def outbox_size(db: Database) -> int:
    return int(db.connection.execute("SELECT count(*) FROM webhook_outbox").fetchone()[0])


# --- what the dispatcher writes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Delivered:
    kind: str
    target_id: str
    seq: int
    at: int


@dataclass(frozen=True)
class Failed:
    kind: str
    target_id: str
    seq: int
    at: int
    error: str
    #: The target's consecutive failures after this one (None: not counted).
    failures: int | None
    next_attempt_at: int | None


@dataclass(frozen=True)
class Disabled:
    """The target failed too often: endpoints are disabled, hooks removed (as
    bbb-webhooks does), callbacks given up."""

    kind: str
    target_id: str
    at: int
    reason: str


Result = Delivered | Failed | Disabled


def _succeeded(c: sqlite3.Connection, target: Target, at: int) -> None:
    if target[0] == "callback":  # one-off: nothing to remember once it is done
        c.execute("DELETE FROM webhook_delivery_state WHERE target_kind = ? AND target_id = ?",
                  target)
        return
    c.execute(
        "INSERT INTO webhook_delivery_state (target_kind, target_id, consecutive_failures,"
        " last_success_at) VALUES (?, ?, 0, ?) ON CONFLICT (target_kind, target_id)"
        " DO UPDATE SET consecutive_failures = 0, next_attempt_at = NULL,"
        " last_success_at = excluded.last_success_at", (target[0], target[1], at))


def record_results(db: Database, results: Sequence[Result]) -> None:
    """Write the outcome of deliveries, in order, in one transaction.

    Delivered rows are deleted together; a target's success is written once per batch
    (its last), before any later failure of the same target.
    """
    delivered: list[int] = []
    successes: dict[Target, int] = {}
    with db.transaction() as c:
        for result in results:
            target = (result.kind, result.target_id)
            if isinstance(result, Delivered):
                delivered.append(result.seq)
                successes[target] = result.at
                continue
            if target in successes:
                _succeeded(c, target, successes.pop(target))
            if isinstance(result, Failed):
                c.execute("UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?"
                          " WHERE seq = ?", (result.error[:500], result.seq))
                if result.failures is not None:
                    c.execute(
                        "INSERT INTO webhook_delivery_state (target_kind, target_id,"
                        " consecutive_failures, next_attempt_at, last_failure_at, last_error)"
                        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (target_kind, target_id)"
                        " DO UPDATE SET consecutive_failures = excluded.consecutive_failures,"
                        " next_attempt_at = excluded.next_attempt_at,"
                        " last_failure_at = excluded.last_failure_at,"
                        " last_error = excluded.last_error",
                        (result.kind, result.target_id, result.failures,
                         result.next_attempt_at, result.at, result.error[:500]))
            elif isinstance(result, Disabled):
                if result.kind == "endpoint":
                    c.execute("UPDATE webhook_endpoints SET disabled_at = ?,"
                              " disabled_reason = ? WHERE id = ? AND disabled_at IS NULL",
                              (result.at, result.reason, result.target_id))
                elif result.kind == "hook":
                    c.execute("DELETE FROM bbb_hooks WHERE id = ?", (result.target_id,))
                    _forget_target(c, "hook", result.target_id)
                else:
                    _forget_target(c, result.kind, result.target_id)
        for target, at in successes.items():
            _succeeded(c, target, at)
        for start in range(0, len(delivered), 500):
            chunk = delivered[start:start + 500]
            c.execute(f"DELETE FROM webhook_outbox WHERE seq IN ({', '.join('?' * len(chunk))})",
                      chunk)


def prune_outbox(db: Database, created_before: int, *, limit: int = 1000) -> int:
    """Drop at most ``limit`` undelivered rows older than ``created_before``."""
    with db.transaction() as c:
        return c.execute(
            "DELETE FROM webhook_outbox WHERE seq IN (SELECT seq FROM webhook_outbox"
            " WHERE created_at < ? LIMIT ?)", (created_before, limit)).rowcount

