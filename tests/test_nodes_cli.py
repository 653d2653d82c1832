"""``meetplatform nodes``: add, list, states, remove, janus-config; clear errors (exit 2)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from meetplatform.cli import main
from meetplatform.media.node_settings import secrets_from_master
from meetplatform.store import nodes_db as ndb
from meetplatform.store import open_database

MASTER = "a-node-secret-of-enough-length"


def run(tmp_path: Path, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), environ=env or {}, cwd=tmp_path, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def add(tmp_path: Path, name: str, *extra: str) -> tuple[int, str, str]:
    secret_file = tmp_path / "node.secret"
    secret_file.write_text(MASTER + "\n")
    return run(tmp_path, "nodes", "--data-dir", "data", "add", name,
               "--admin-url", "http://10.0.0.5:7088/admin", "--ws-url", "ws://10.0.0.5:8188",
               "--secret-file", str(secret_file), *extra)


def test_add_list_states_remove(tmp_path: Path) -> None:
    code, out, err = add(tmp_path, "sfu-1", "--capacity", "40")
    assert (code, err) == (0, ""), err
    assert "node sfu-1 added" in out
    db = open_database(tmp_path / "data")
    node = ndb.get_node(db, "sfu-1")
    assert node is not None and node.capacity == 40 and node.state == "enabled"
    assert node.secrets == secrets_from_master(MASTER)
    db.close()

    code, out, _ = run(tmp_path, "nodes", "--data-dir", "data", "list", "--json")
    assert code == 0
    assert [(r["name"], r["state"], r["capacity"]) for r in json.loads(out)] == [
        ("sfu-1", "enabled", 40)]
    assert MASTER not in out and node.secrets.api_secret not in out
    for command, state in (("drain", "draining"), ("disable", "disabled"),
                           ("enable", "enabled")):
        code, out, err = run(tmp_path, "nodes", "--data-dir", "data", command, "sfu-1")
        assert (code, err) == (0, "") and state in out
        code, out, _ = run(tmp_path, "nodes", "--data-dir", "data", "list")
        assert f"sfu-1                {state}" in out
    code, out, _ = run(tmp_path, "nodes", "--data-dir", "data", "remove", "sfu-1")
    assert code == 0 and "removed" in out
    code, out, _ = run(tmp_path, "nodes", "--data-dir", "data", "list")
    assert "no media nodes" in out


def test_options_through_the_environment_and_config_file(tmp_path: Path) -> None:
    """The data directory comes from wherever the service's comes from."""
    (tmp_path / "m.toml").write_text('data_dir = "from-file"\n')
    secret_file = tmp_path / "s"
    secret_file.write_text(MASTER)
    code, _, err = run(tmp_path, "nodes", "--config", "m.toml", "add", "a",
                       "--admin-url", "http://127.0.0.1:7088/admin",
                       "--ws-url", "ws://127.0.0.1:8188", "--secret-file", str(secret_file))
    assert code == 0, err
    assert (tmp_path / "from-file" / "meetplatform.sqlite").exists()
    code, out, _ = run(tmp_path, "nodes", "list",
                       env={"MEETPLATFORM_DATA_DIR": str(tmp_path / "from-file")})
    assert code == 0 and out.startswith("NAME") and "\na " in out


def test_options_after_the_sub_command(tmp_path: Path) -> None:
    assert add(tmp_path, "sfu-1")[0] == 0
    code, out, err = run(tmp_path, "nodes", "list", "--data-dir", "data")
    assert (code, err) == (0, "") and "sfu-1" in out
    code, out, err = run(tmp_path, "nodes", "drain", "sfu-1", "--data-dir", "data")
    assert (code, err) == (0, "") and "draining" in out


@pytest.mark.parametrize(("args", "message"), [
    (("--admin-url", "ftp://x/admin"), "invalid admin URL 'ftp://x/admin'"),
    (("--admin-url", "http://10.0.0.5/admin"), "give the port"),
    (("--ws-url", "http://10.0.0.5:8188"), "invalid WebSocket URL"),
    (("--capacity", "0"), "invalid capacity 0"),
    (("--capacity", "many"), "invalid capacity 'many'"),
])
def test_bad_input_is_a_usage_error(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    code, out, err = add(tmp_path, "sfu-1", *args)
    assert code == 2 and out == ""
    assert message in err and err.startswith("meetplatform nodes: ")


def test_unknown_node_duplicate_name_and_bad_secret_file(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "drain", "nope")
    assert code == 2 and "no node 'nope' (known: none yet)" in err
    assert add(tmp_path, "sfu-1")[0] == 0
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "janus-config", "sfu-2")
    assert code == 2 and "no node 'sfu-2' (known: sfu-1)" in err
    code, _, err = add(tmp_path, "sfu-1")
    assert code == 2 and "exists already" in err
    code, _, err = add(tmp_path, "Bad Name")
    assert code == 2 and "invalid node name" in err
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "add", "x", "--admin-url",
                       "http://h:1/admin", "--ws-url", "ws://h:2", "--secret-file", "missing")
    assert code == 2 and "cannot read secret file missing" in err
    (tmp_path / "short").write_text("short\n")
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "add", "x", "--admin-url",
                       "http://h:1/admin", "--ws-url", "ws://h:2", "--secret-file", str(tmp_path / "short"))
    assert code == 2 and "shorter than 16" in err


def test_explicit_secrets_of_an_existing_janus(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("# node b\napi_secret = a1\nadmin_secret = \"b2\"\n"
                                "admin_key = c3\n")
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "add", "b", "--admin-url",
                       "http://h:1/admin", "--ws-url", "ws://h:2", "--secret-file",
                       str(tmp_path / "s"))
    assert code == 0, err
    node = ndb.get_node(open_database(tmp_path / "data"), "b")
    assert node is not None
    assert (node.secrets.api_secret, node.secrets.admin_secret, node.secrets.admin_key) == (
        "a1", "b2", "c3")
    (tmp_path / "s").write_text("api_secret = a1\n")
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "add", "c", "--admin-url",
                       "http://h:1/admin", "--ws-url", "ws://h:2", "--secret-file",
                       str(tmp_path / "s"))
    assert code == 2 and "missing admin_secret, admin_key" in err


def test_janus_config_prints_every_file_with_the_node_secrets(tmp_path: Path) -> None:
    assert add(tmp_path, "sfu-1")[0] == 0
    secrets = secrets_from_master(MASTER)
    code, out, err = run(tmp_path, "nodes", "--data-dir", "data", "--public-url",
                         "https://meet.example.org", "janus-config", "sfu-1",
                         "--rtp-port-range", "30000-31000")
    assert (code, err) == (0, ""), err
    for name in ("janus.jcfg", "janus.plugin.videoroom.jcfg",
                 "janus.transport.websockets.jcfg", "janus.transport.http.jcfg",
                 "janus.eventhandler.sampleevh.jcfg"):
        assert f"# ===== {name} =====" in out
    assert f'api_secret = "{secrets.api_secret}"' in out
    assert f'admin_secret = "{secrets.admin_secret}"' in out
    assert f'admin_key = "{secrets.admin_key}"' in out
    assert "token_auth = false" in out
    assert 'backend = "https://meet.example.org/janus-events/sfu-1"' in out
    assert 'backend_user = "sfu-1"' in out and f'backend_pwd = "{secrets.event_secret}"' in out
    assert 'rtp_port_range = "30000-31000"' in out
    assert "ws_port = 8188" in out and 'ws_ip = "10.0.0.5"' in out
    assert "admin_port = 7088" in out and 'admin_base_path = "/admin"' in out
    assert "lock_rtp_forward = true" in out

    code, out, err = run(tmp_path, "nodes", "--data-dir", "data", "janus-config", "sfu-1",
                         "--output-dir", str(tmp_path / "janus-sfu-1"))
    assert code == 0, err
    written = tmp_path / "janus-sfu-1"
    assert (written / "janus.jcfg").stat().st_mode & 0o777 == 0o600
    code, _, err = run(tmp_path, "nodes", "--data-dir", "data", "janus-config", "sfu-1",
                       "--rtp-port-range", "10-5")
    assert code == 2 and "invalid RTP port range" in err


def test_check_reports_the_media_nodes(tmp_path: Path) -> None:
    code, out, _ = run(tmp_path, "check", "--data-dir", "data")
    assert code == 0 and "media nodes:" in out and "mesh" in out
    assert add(tmp_path, "sfu-1")[0] == 0
    run(tmp_path, "nodes", "--data-dir", "data", "drain", "sfu-1")
    code, out, err = run(tmp_path, "check", "--data-dir", "data")
    assert code == 0, err
    assert "media nodes:" in out and "sfu-1 (draining, capacity 500)" in out
    assert "note: no media node is enabled: new meetings run mesh" in out
    (tmp_path / "data" / "store.key").write_text(
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")  # another key
    code, _, err = run(tmp_path, "check", "--data-dir", "data")
    assert code == 1 and "media node sfu-1: its secrets do not open" in err


def test_janus_local_must_be_an_executable(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, "check", "--janus-local", str(tmp_path / "nope"))
    assert code == 1 and "--janus-local" in err and "is not an executable file" in err
    (tmp_path / "janus").write_text("#!/bin/sh\n")
    (tmp_path / "janus").chmod(0o755)
    code, out, _ = run(tmp_path, "check", "--janus-local", str(tmp_path / "janus"))
    assert code == 0 and "local Janus:" in out
