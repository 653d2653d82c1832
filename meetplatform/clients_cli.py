"""``meetplatform clients ...``: operators manage the JSON:API's client applications.

    meetplatform clients create --name "Acme LMS"   # prints the id and the secret ONCE
    meetplatform clients list
    meetplatform clients revoke mpc_...
    meetplatform clients rotate mpc_...             # new secret (printed once)

The commands open the store file in the data directory directly (SQLite in WAL mode
allows this while the service runs). ``meetplatform.cli`` hooks them in with
:func:`add_parser` and :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from meetplatform.config import Settings
from meetplatform.store import ClientRecord, Database, open_database
from meetplatform.store.sqlite import DatabaseError


def add_parser(subparsers: Any,
               common: Callable[[argparse.ArgumentParser], None] | None = None
               ) -> argparse.ArgumentParser:
    """Add the ``clients`` command to an ``argparse`` sub-parser collection.

    ``common`` adds the options every command takes (``--data-dir``, ``--config``...)
    to each sub-command, so that they may also follow it: ``clients create --name X
    --data-dir D``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "clients", help="manage the client applications of the JSON:API",
        description="Create, list, revoke and rotate the credentials of JSON:API clients.")
    commands = parser.add_subparsers(dest="clients_command", metavar="COMMAND")
    commands.required = True
    create = commands.add_parser("create", help="create a client (and its space); prints "
                                 "its id and secret once")
    create.add_argument("--name", required=True, help="a name for the client application")
    create.add_argument("--json", action="store_true", help="print JSON")
    listing = commands.add_parser("list", help="list the clients")
    listing.add_argument("--json", action="store_true", help="print JSON")
    revoke = commands.add_parser("revoke", help="refuse a client from now on (its access "
                                 "tokens stop working)")
    revoke.add_argument("client_id")
    rotate = commands.add_parser("rotate", help="give a client a new secret (the old one and "
                                 "its access tokens stop working); prints it once")
    rotate.add_argument("client_id")
    rotate.add_argument("--json", action="store_true", help="print JSON")
    if common is not None:
        for command in (create, listing, revoke, rotate):
            common(command)
    parser.set_defaults(run=run)
    return parser


def format_time(ms: int | None) -> str | None:
    """ISO 8601 in UTC with milliseconds (as the JSON:API shows times)."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _status(client: ClientRecord) -> str:
    return "revoked" if client.revoked_at is not None else "active"


def run(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None,
        err: TextIO | None = None, now: Callable[[], float] = time.time) -> int:
    """Run a ``clients`` command; returns the process exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    command = getattr(args, "clients_command", None)
    as_json = bool(getattr(args, "json", False))
    try:
        db = open_database(settings.data_dir)
    except (OSError, sqlite3.Error, DatabaseError, ValueError) as e:  # unreadable, newer...
        err.write(f"meetplatform clients: cannot open the store in {settings.data_dir}: {e}\n")
        return 1
    try:
        return _run(db, command, args, as_json, out, err, int(now() * 1000))
    finally:
        db.close()


def _run(db: Database, command: str | None, args: argparse.Namespace, as_json: bool,
         out: TextIO, err: TextIO, now_ms: int) -> int:
    if command == "create":
        name = str(args.name).strip()
        if not 1 <= len(name) <= 200:
            err.write("meetplatform clients: --name must be 1 to 200 characters\n")
            return 2
        client, space, secret = db.create_client(name, now_ms)
        _print_secret(out, as_json, client, secret, space_id=space.id)
        return 0
    if command == "list":
        clients = db.list_clients()
        rows: list[dict[str, Any]] = []
        for c in clients:
            own_space = db.space_of_client(c.id)
            rows.append({"clientId": c.id, "name": c.name, "status": _status(c),
                         "spaceId": own_space.id if own_space else None,
                         "createdAt": format_time(c.created_at),
                         "rotatedAt": format_time(c.rotated_at),
                         "revokedAt": format_time(c.revoked_at)})
        if as_json:
            out.write(json.dumps(rows, indent=2) + "\n")
        elif not rows:
            out.write("no clients yet: meetplatform clients create --name NAME\n")
        else:
            out.write(f"{'CLIENT ID':<25} {'STATUS':<8} {'SPACE':<20} {'CREATED':<25} NAME\n")
            out.writelines(f"{row['clientId']:<25} {row['status']:<8} {row['spaceId'] or '-':<20}"
                          f" {row['createdAt']:<25} {row['name']}\n" for row in rows)
        return 0
    if command == "revoke":
        existing = db.get_client(args.client_id)
        if existing is None:
            err.write(f"meetplatform clients: no client {args.client_id}\n")
            return 1
        if existing.revoked_at is not None:
            out.write(f"{existing.id} was revoked already ({format_time(existing.revoked_at)})\n")
            return 0
        db.revoke_client(existing.id, now_ms)
        out.write(f"{existing.id} revoked: its credentials and access tokens no longer work\n")
        return 0
    if command == "rotate":
        rotated = db.rotate_client(args.client_id, now_ms)
        if rotated is None:
            existing = db.get_client(args.client_id)
            reason = "is revoked" if existing is not None else "does not exist"
            err.write(f"meetplatform clients: client {args.client_id} {reason}\n")
            return 1
        client, secret = rotated
        _print_secret(out, as_json, client, secret)
        return 0
    err.write("meetplatform clients: choose a command: create, list, revoke, rotate\n")
    return 2


def _print_secret(out: TextIO, as_json: bool, client: ClientRecord, secret: str,
                  space_id: str | None = None) -> None:
    if as_json:
        doc: dict[str, Any] = {"clientId": client.id, "clientSecret": secret,
                               "name": client.name}
        if space_id:
            doc["spaceId"] = space_id
        out.write(json.dumps(doc, indent=2) + "\n")
        return
    out.write(f"client id:     {client.id}\n")
    out.write(f"client secret: {secret}\n")
    if space_id:
        out.write(f"space id:      {space_id}\n")
    out.write("The secret is shown only now: store it safely. Only a hash of it is kept.\n")
