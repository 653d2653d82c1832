"""The store's queries, run directly (no reactor): secrets, invitations, concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from meetplatform.store import DB_FILE_NAME, Database, open_database
from meetplatform.store.keys import hash_secret, signing_key_for

NOW = 1_700_000_000_000
DAY = 86_400_000

ROOM = {"alias": "daily", "name": "Daily", "type": "conference", "visibility": "private",
            "lobby": False, "max_participants": 0, "camera": True, "microphone": True,
            "screenshare": True, "not_before": None, "expires_at": None, "metadata": {"k": "v"}}


def invite(db: Database, space_id: str, room_id: str | None, **kw: Any) -> tuple[Any, str]:
    fields: dict[str, Any] = {"space_id": space_id, "room_id": room_id, "role": "participant",
                                  "display_name": "", "external_user_id": "", "permissions": {},
                                  "max_uses": 1, "not_before": None, "expires_at": NOW + DAY, "now": NOW}
    fields.update(kw)
    return db.create_user_token(**fields)


def all_bytes(data_dir: Path) -> bytes:
    """Everything SQLite wrote: the database, its WAL and shared memory, backups."""
    return b"".join(p.read_bytes() for p in data_dir.iterdir()
                    if p.name.startswith(DB_FILE_NAME))


def test_nothing_that_grants_access_can_be_read_from_the_database(tmp_path: Path) -> None:
    """Client secrets, signing keys, access tokens and invitation secrets are stored only
    as hashes or sealed: none of them appears anywhere in the database files."""
    db = open_database(tmp_path)
    client, space, secret = db.create_client("acme", NOW)
    _, access = db.issue_access_token(client.id, ["rooms:read"], NOW, 3_600_000) or (None, "")
    room = db.create_room(space.id, ROOM, NOW)
    _, invitation = invite(db, space.id, room.id)
    outcome = db.activate_user_token(invitation, NOW, grant_scope=("rooms:read",),
                                     grant_ttl_ms=1000)
    rotated = db.rotate_client(client.id, NOW + 1)
    assert rotated is not None
    raw = all_bytes(tmp_path)
    assert hash_secret(invitation).encode() in raw  # the scan does see the stored rows
    for value in (secret, rotated[1], access, invitation, outcome.access_token or "missing"):
        assert value.encode() not in raw
    for key in (signing_key_for(secret), signing_key_for(rotated[1])):
        assert key not in raw and key.hex().encode() not in raw
    db.close()


def test_client_secret_check(tmp_path: Path) -> None:
    """Only the current secret of an active client authenticates it."""
    db = open_database(tmp_path)
    client, _, secret = db.create_client("acme", NOW)
    assert db.check_client_secret(client.id, secret) == client
    assert db.check_client_secret(client.id, secret + "x") is None
    assert db.check_client_secret("mpc_unknown", secret) is None
    rotated = db.rotate_client(client.id, NOW + 1)
    assert rotated is not None
    assert db.check_client_secret(client.id, secret) is None
    assert db.check_client_secret(client.id, rotated[1]) is not None
    db.revoke_client(client.id, NOW + 2)
    assert db.check_client_secret(client.id, rotated[1]) is None
    assert db.client_signing_key(client.id) is None


def test_rotation_and_revocation_end_access_tokens(tmp_path: Path) -> None:
    """Rotating a client's secret revokes its access tokens; revoking it ends them all."""
    db = open_database(tmp_path)
    client, _, _ = db.create_client("acme", NOW)
    _, before = db.issue_access_token(client.id, ["rooms:read"], NOW, DAY) or (None, "")
    db.rotate_client(client.id, NOW + 1)
    record = db.find_access_token(before)
    assert record is not None and not record.active(NOW + 2)
    _, after = db.issue_access_token(client.id, ["rooms:read"], NOW + 2, DAY) or (None, "")
    assert db.find_access_token(after).active(NOW + 3)  # type: ignore[union-attr]
    db.revoke_client(client.id, NOW + 4)
    assert not db.find_access_token(after).active(NOW + 5)  # type: ignore[union-attr]
    assert db.issue_access_token(client.id, ["rooms:read"], NOW + 6, DAY) is None


def test_activation_outcomes_are_distinct(tmp_path: Path) -> None:
    """Unknown, used, expired, revoked and not-yet-valid invitations lose for their reason."""
    db = open_database(tmp_path)
    _, space, _ = db.create_client("acme", NOW)
    room = db.create_room(space.id, ROOM, NOW)
    assert db.activate_user_token("mput_nope", NOW).reason == "not_found"
    _, used = invite(db, space.id, room.id)
    assert db.activate_user_token(used, NOW).won
    assert db.activate_user_token(used, NOW).reason == "used"
    _, expired = invite(db, space.id, room.id, expires_at=NOW + 10)
    assert db.activate_user_token(expired, NOW + 10).reason == "expired"
    token, revoked = invite(db, space.id, room.id)
    db.revoke_user_token(token.id, NOW)
    assert db.activate_user_token(revoked, NOW).reason == "revoked"
    _, later = invite(db, space.id, room.id, not_before=NOW + 100)
    assert db.activate_user_token(later, NOW).reason == "not_yet_valid"
    assert db.activate_user_token(later, NOW + 100).won


def test_multi_use_invitation_counts_its_uses(tmp_path: Path) -> None:
    """An invitation with maxUses=3 wins three times, then is used up; a refund gives one back."""
    db = open_database(tmp_path)
    _, space, _ = db.create_client("acme", NOW)
    token, secret = invite(db, space.id, None, max_uses=3)
    outcomes = [db.activate_user_token(secret, NOW) for _ in range(4)]
    assert [o.won for o in outcomes] == [True, True, True, False]
    assert outcomes[-1].reason == "used"
    db.refund_activation(token.id, None)
    assert db.activate_user_token(secret, NOW).won


def test_revoking_the_client_stops_its_invitations(tmp_path: Path) -> None:
    """Invitations of a revoked client cannot be activated any more."""
    db = open_database(tmp_path)
    client, space, _ = db.create_client("acme", NOW)
    _, secret = invite(db, space.id, None)
    db.revoke_client(client.id, NOW)
    assert db.activate_user_token(secret, NOW).reason == "revoked"


def test_deleting_a_room_deletes_its_invitations(tmp_path: Path) -> None:
    """A deleted room's invitations are gone (foreign keys cascade)."""
    db = open_database(tmp_path)
    _, space, _ = db.create_client("acme", NOW)
    room = db.create_room(space.id, ROOM, NOW)
    token, secret = invite(db, space.id, room.id)
    assert db.delete_room(room.id)
    assert db.get_user_token(token.id) is None
    assert db.activate_user_token(secret, NOW).reason == "not_found"


def test_fifty_connections_activating_at_once_one_wins(tmp_path: Path) -> None:
    """50 threads, each with its own connection to the file, activate one single-use
    invitation at the same moment: exactly one wins, the 49 others see it used."""
    db = open_database(tmp_path)
    _, space, _ = db.create_client("acme", NOW)
    token, secret = invite(db, space.id, None)
    db.close()
    workers = 50
    barrier = threading.Barrier(workers)
    outcomes: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def attempt() -> None:
        conn_db = open_database(tmp_path)
        try:
            barrier.wait()
            outcome = conn_db.activate_user_token(secret, NOW, grant_scope=("rooms:read",),
                                                  grant_ttl_ms=1000)
            with lock:
                outcomes.append(outcome)
        except Exception as e:  # noqa: BLE001 - reported below
            with lock:
                errors.append(e)
        finally:
            conn_db.close()

    threads = [threading.Thread(target=attempt) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(o.won for o in outcomes) == 1
    assert sorted(o.reason for o in outcomes if not o.won) == ["used"] * (workers - 1)
    check = open_database(tmp_path)
    assert check.get_user_token(token.id).uses == 1  # type: ignore[union-attr]
    tokens = check.connection.execute(
        "SELECT count(*) FROM access_tokens WHERE user_token_id = ?", (token.id,)).fetchone()
    assert tokens[0] == 1


_WRITER = """
import json, os, signal, sys
from pathlib import Path
from meetplatform.store import open_database
db = open_database(Path(sys.argv[1]))
client, space, secret = db.create_client("acme", 1)
room = db.create_room(space.id, json.loads(sys.argv[2]), 2)
token, invitation = db.create_user_token(
    space_id=space.id, room_id=room.id, role="participant", display_name="",
    external_user_id="", permissions={}, max_uses=1, not_before=None,
    expires_at=10**13, now=3)
assert db.activate_user_token(invitation, 4).won
print(json.dumps([client.id, room.id, token.id, invitation]), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_minus_nine_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """A process killed with SIGKILL right after its writes returned keeps them all,
    including the used state of an invitation."""
    proc = subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path), json.dumps(ROOM)],
                          capture_output=True, text=True, timeout=60, check=False,
                          cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    client_id, room_id, token_id, invitation = json.loads(proc.stdout)
    db = open_database(tmp_path)
    assert db.get_client(client_id) is not None
    assert db.get_room(room_id) is not None
    assert db.get_user_token(token_id).uses == 1  # type: ignore[union-attr]
    assert db.activate_user_token(invitation, 5).reason == "used"


def test_pagination_keys(tmp_path: Path) -> None:
    """Rooms list in creation order and continue after a (createdAt, id) cursor."""
    db = open_database(tmp_path)
    _, space, _ = db.create_client("acme", NOW)
    rooms = [db.create_room(space.id, {**ROOM, "alias": f"room{i}"}, NOW + i) for i in range(5)]
    first = db.list_rooms(space.id, None, 2)
    assert [r.id for r in first] == [r.id for r in rooms[:2]]
    rest = db.list_rooms(space.id, (first[-1].created_at, first[-1].id), 10)
    assert [r.id for r in rest] == [r.id for r in rooms[2:]]


def test_key_file_is_private(tmp_path: Path) -> None:
    """The key that seals signing keys is created readable by its owner only."""
    open_database(tmp_path).close()
    mode = os.stat(tmp_path / "store.key").st_mode & 0o777
    assert mode == 0o600


def test_alias_uniqueness(tmp_path: Path) -> None:
    """Two rooms cannot share an alias (across spaces too)."""
    from meetplatform.store import AliasTaken

    db = open_database(tmp_path)
    _, space_a, _ = db.create_client("a", NOW)
    _, space_b, _ = db.create_client("b", NOW)
    db.create_room(space_a.id, ROOM, NOW)
    with pytest.raises(AliasTaken):
        db.create_room(space_b.id, ROOM, NOW)
