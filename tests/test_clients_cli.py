"""`meetplatform clients create|list|revoke|rotate` for operators."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from meetplatform import clients_cli
from meetplatform.store import open_database
from tests.support import START, make_settings


def cli(tmp_path: Path, *argv: str) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="meetplatform")
    clients_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(list(argv))
    out, err = io.StringIO(), io.StringIO()
    settings = make_settings(data_dir=tmp_path)
    code = args.run(args, settings, out=out, err=err, now=lambda: START)
    return code, out.getvalue(), err.getvalue()


def test_create_prints_the_secret_once_and_keeps_a_hash(tmp_path: Path) -> None:
    """create prints the client id, its secret and space; the store can check the secret
    but does not contain it."""
    code, out, _ = cli(tmp_path, "clients", "create", "--name", "Acme LMS")
    assert code == 0
    lines = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    client_id = lines["client id"].strip()
    secret = lines["client secret"].strip()
    assert client_id.startswith("mpc_") and secret.startswith("mpcs_")
    assert "shown only now" in out
    db = open_database(tmp_path)
    assert db.check_client_secret(client_id, secret) is not None
    assert db.space_of_client(client_id) is not None
    assert secret.encode() not in (tmp_path / "meetplatform.sqlite").read_bytes()
    code, listed, _ = cli(tmp_path, "clients", "list")
    assert client_id in listed and "Acme LMS" in listed and secret not in listed


def test_json_output(tmp_path: Path) -> None:
    """--json prints machine-readable output for create and list."""
    _, out, _ = cli(tmp_path, "clients", "create", "--name", "A", "--json")
    created = json.loads(out)
    assert set(created) == {"clientId", "clientSecret", "name", "spaceId"}
    _, out, _ = cli(tmp_path, "clients", "list", "--json")
    (row,) = json.loads(out)
    assert row["clientId"] == created["clientId"] and row["status"] == "active"
    assert row["createdAt"] == "2023-11-14T22:13:20.000Z"


def test_revoke_and_rotate(tmp_path: Path) -> None:
    """rotate replaces the secret (printed once); revoke refuses the client; both say so
    for unknown or revoked clients."""
    _, out, _ = cli(tmp_path, "clients", "create", "--name", "A", "--json")
    created = json.loads(out)
    code, out, _ = cli(tmp_path, "clients", "rotate", created["clientId"], "--json")
    assert code == 0
    new_secret = json.loads(out)["clientSecret"]
    db = open_database(tmp_path)
    assert db.check_client_secret(created["clientId"], created["clientSecret"]) is None
    assert db.check_client_secret(created["clientId"], new_secret) is not None
    code, out, _ = cli(tmp_path, "clients", "revoke", created["clientId"])
    assert code == 0 and "revoked" in out
    assert db.check_client_secret(created["clientId"], new_secret) is None
    code, out, _ = cli(tmp_path, "clients", "revoke", created["clientId"])
    assert code == 0 and "already" in out
    code, _, err = cli(tmp_path, "clients", "rotate", created["clientId"])
    assert code == 1 and "revoked" in err
    code, _, err = cli(tmp_path, "clients", "revoke", "mpc_nobody")
    assert code == 1 and "no client" in err
    _, listed, _ = cli(tmp_path, "clients", "list")
    assert "revoked" in listed


def test_bad_names_and_empty_lists(tmp_path: Path) -> None:
    """An empty name is refused; listing no clients says how to create one."""
    code, _, err = cli(tmp_path, "clients", "create", "--name", "  ")
    assert code == 2 and "--name" in err
    code, out, _ = cli(tmp_path, "clients", "list")
    assert code == 0 and "clients create" in out


def test_unreadable_store_is_a_clear_error(tmp_path: Path) -> None:
    """A data directory whose database is not one gives a message, not a traceback."""
    (tmp_path / "meetplatform.sqlite").write_bytes(b"not a database at all" * 50)
    code, _, err = cli(tmp_path, "clients", "list")
    assert code == 1 and "cannot open the store" in err
