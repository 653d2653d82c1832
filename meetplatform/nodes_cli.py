"""``meetplatform nodes ...``: operators manage media nodes (Janus instances).

    meetplatform nodes add sfu-1 --admin-url http://10.0.0.5:7088/admin \\
        --ws-url ws://10.0.0.5:8188 --secret-file /etc/meetplatform/sfu-1.secret [--capacity N]
    meetplatform nodes list [--json]
    meetplatform nodes enable|disable|drain sfu-1
    meetplatform nodes check sfu-1        # contact it: up? the right secrets?
    meetplatform nodes remove sfu-1
    meetplatform nodes janus-config sfu-1 [--output-dir DIR]   # the node's Janus config files

Nodes are stored in the data directory's store (SQLite, WAL: usable while the service
runs); the running service picks changes up within seconds
(:class:`meetplatform.media.nodes.MediaNodes` reloads them). Exit status: 0 done, 1 the
store cannot be opened, 2 a usage error (unknown node, bad URL, unreadable secret file).
``meetplatform.cli`` hooks this in with :func:`add_parser`.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from twisted.internet.defer import Deferred

from meetplatform.clients_cli import format_time
from meetplatform.config import Settings
from meetplatform.media import node_settings as ns
from meetplatform.media.janus_config import FILE_NAMES, render_config, write_config
from meetplatform.store import Database, open_database
from meetplatform.store import nodes_db as ndb
from meetplatform.store.sqlite import DatabaseError

PROG = "meetplatform nodes"
_STATE_COMMANDS = {"enable": "enabled", "disable": "disabled", "drain": "draining"}


def add_parser(subparsers: Any,
               common: Callable[[argparse.ArgumentParser], None] | None = None,
               ) -> argparse.ArgumentParser:
    """Add the ``nodes`` command; ``common(parser)`` is called for every sub-command's
    parser (the CLI gives them the configuration options that way)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "nodes", help="manage media nodes (Janus instances meetings are placed on)",
        description="Add, list, enable, disable, drain and remove media nodes, and print "
        "the Janus configuration a node needs. See docs/media.md.")
    commands = parser.add_subparsers(dest="nodes_command", metavar="COMMAND")
    commands.required = True
    # ``common`` first: in ``nodes add``, ``--secret-file`` names the node's secret and
    # replaces the service's option of the same name ("resolve").
    add = commands.add_parser("add", help="add a node", conflict_handler="resolve")
    if common is not None:
        common(add)
    subs: list[argparse.ArgumentParser] = []
    add.add_argument("name", help="the node's name (what preferredServer and getServers use)")
    add.add_argument("--admin-url", required=True,
                     help="Janus Admin API URL, e.g. http://10.0.0.5:7088/admin")
    add.add_argument("--ws-url", required=True,
                     help="Janus API WebSocket URL, e.g. ws://10.0.0.5:8188")
    add.add_argument("--secret-file", required=True, type=Path, dest="node_secret_file",
                     help="file with the node's secret (one line), or api_secret/"
                     "admin_secret/admin_key lines of an existing Janus")
    add.add_argument("--capacity", default=str(ns.DEFAULT_CAPACITY),
                     help="streams (publishers + subscriptions) the node takes "
                     f"[default: {ns.DEFAULT_CAPACITY}]")
    listing = commands.add_parser("list", help="list the nodes")
    listing.add_argument("--json", action="store_true", help="print JSON")
    subs.append(listing)
    for command in _STATE_COMMANDS:
        what = {"enable": "take new meetings again",
                "disable": "take no new meetings (and not shown as usable)",
                "drain": "take no new meetings; its meetings go on"}[command]
        sub = commands.add_parser(command, help=f"{command} a node: {what}")
        sub.add_argument("name")
        subs.append(sub)
    check = commands.add_parser(
        "check", help="contact a node: is it up, and are its secrets the right ones?",
        description="Contact the node as the service does: ping its Admin API, use its "
        "admin secret, open a Janus session over its WebSocket with its API secret, and "
        "create and destroy a test room with its admin key. Exit status 0 when all work, "
        "1 otherwise (the message says what failed).")
    check.add_argument("name")
    check.add_argument("--timeout", type=float, default=5.0,
                       help="seconds each step may take [default: 5]")
    subs.append(check)
    remove = commands.add_parser("remove", help="forget a node")
    remove.add_argument("name")
    subs.append(remove)
    config = commands.add_parser(
        "janus-config", help="print the Janus configuration files the node needs",
        description="Print (or write) janus.jcfg, janus.plugin.videoroom.jcfg, "
        "janus.transport.websockets.jcfg, janus.transport.http.jcfg and "
        "janus.eventhandler.sampleevh.jcfg for the node: its secrets, ports, the event "
        "handler URL back to this service (from --public-url) and the recording directory.")
    config.add_argument("name")
    config.add_argument("--output-dir", type=Path,
                        help="write the files into this directory instead of printing them")
    config.add_argument("--configs-folder", type=Path, default=Path("/etc/janus"),
                        help="where the files will live on the node [default: /etc/janus]")
    config.add_argument("--rtp-port-range", default="20000-40000",
                        help="UDP ports for media [default: 20000-40000]")
    config.add_argument("--recordings-dir", type=Path, default=Path("/srv/janus-recordings"),
                        help="recording directory on the node [default: /srv/janus-recordings]")
    config.add_argument("--nat-1-1-mapping", help="the node's public IP when behind 1:1 NAT")
    config.add_argument("--ice-enforce-list",
                        help="interfaces/addresses ICE may use (e.g. eth1 or 10.0.0.)")
    subs.append(config)
    if common is not None:
        for sub in subs:
            common(sub)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace, settings: Settings, *, out: TextIO | None = None,
        err: TextIO | None = None, now: Callable[[], float] = time.time) -> int:
    """Run a ``nodes`` command; returns the process exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        db = open_database(settings.data_dir)
    except (OSError, sqlite3.Error, DatabaseError, ValueError) as e:
        err.write(f"{PROG}: cannot open the store in {settings.data_dir}: {e}\n")
        return 1
    try:
        return _run(db, args, settings, out, err, int(now() * 1000))
    except ns.NodeSettingError as error:
        err.write(f"{PROG}: {error}\n")
        return 2
    finally:
        db.close()


def _node(db: Database, name: str) -> ndb.NodeRecord:
    node = ndb.get_node(db, name)
    if node is None:
        known = ", ".join(n.name for n in ndb.list_nodes(db)) or "none yet"
        raise ns.NodeSettingError(f"no node {name!r} (known: {known})")
    return node


def _row(node: ndb.NodeRecord) -> dict[str, Any]:
    return {"name": node.name, "state": node.state, "capacity": node.capacity,
            "adminUrl": node.admin_url, "wsUrl": node.ws_url,
            "createdAt": format_time(node.created_at), "updatedAt": format_time(node.updated_at)}


def _run(db: Database, args: argparse.Namespace, settings: Settings, out: TextIO,
         err: TextIO, now_ms: int) -> int:
    command = args.nodes_command
    if command == "add":
        name = ns.check_name(args.name)
        admin_url = ns.check_admin_url(args.admin_url)
        ws_url = ns.check_ws_url(args.ws_url)
        capacity = ns.check_capacity(args.capacity)
        secrets = ns.read_secret_file(args.node_secret_file)
        try:
            ndb.add_node(db, name, admin_url=admin_url, ws_url=ws_url, secrets=secrets,
                         capacity=capacity, now=now_ms)
        except ndb.NodeExists:
            raise ns.NodeSettingError(f"a node named {name!r} exists already (remove it "
                                      "first to change it)") from None
        out.write(f"node {name} added (enabled, capacity {capacity}); configure its Janus "
                  f"with: meetplatform nodes janus-config {name}\n")
        return 0
    if command == "list":
        rows = [_row(n) for n in ndb.list_nodes(db)]
        if args.json:
            out.write(json.dumps(rows, indent=2) + "\n")
        elif not rows:
            out.write("no media nodes: meetings use browser-to-browser media (mesh); add one "
                      "with meetplatform nodes add NAME --admin-url URL --ws-url URL "
                      "--secret-file F\n")
        else:
            out.write(f"{'NAME':<20} {'STATE':<9} {'CAPACITY':>8}  {'ADMIN URL':<32} WS URL\n")
            out.writelines(f"{r['name']:<20} {r['state']:<9} {r['capacity']:>8}  "
                           f"{r['adminUrl']:<32} {r['wsUrl']}\n" for r in rows)
        return 0
    if command in _STATE_COMMANDS:
        node = _node(db, args.name)
        state = _STATE_COMMANDS[command]
        if node.state == state:
            out.write(f"node {node.name} is {state} already\n")
            return 0
        ndb.set_state(db, node.name, state, now_ms)
        note = {"enabled": "it takes new meetings",
                "disabled": "it takes no new meetings",
                "draining": "it takes no new meetings; its meetings go on"}[state]
        out.write(f"node {node.name} {state}: {note}\n")
        return 0
    if command == "check":
        node = _node(db, args.name)
        return check_node(node, out, err, timeout=args.timeout)
    if command == "remove":
        node = _node(db, args.name)
        ndb.remove_node(db, node.name)
        out.write(f"node {node.name} removed\n")
        return 0
    if command == "janus-config":
        node = _node(db, args.name)
        config = ns.janus_config_for(
            node, public_url=settings.public_url, configs_folder=args.configs_folder,
            rtp_port_range=ns.check_rtp_range(args.rtp_port_range),
            recordings_dir=args.recordings_dir, nat_1_1_mapping=args.nat_1_1_mapping,
            ice_enforce_list=args.ice_enforce_list)
        if args.output_dir is not None:
            write_config(config, args.output_dir)
            out.write(f"wrote {', '.join(FILE_NAMES)} into {args.output_dir}\n")
            return 0
        files = render_config(config)
        out.write(f"# Janus configuration of media node {node.name}: install these files "
                  f"into {args.configs_folder} on the node (they hold secrets: mode 0600).\n"
                  f"# Janus posts its events to {config.events_url}; that must be reachable "
                  "from the node (set --public-url).\n")
        for name in FILE_NAMES:
            out.write(f"\n# ===== {name} =====\n{files[name]}")
        return 0
    err.write(f"{PROG}: choose a command: add, list, enable, disable, drain, check, remove, "
              "janus-config\n")
    return 2


def check_node(node: ndb.NodeRecord, out: TextIO, err: TextIO, *, timeout: float,
               reactor: Any = None) -> int:
    """``nodes check``: run :func:`meetplatform.media.probe.probe_node` on a reactor of
    its own (this is a one-shot command; the reactor must not be running already)."""
    from meetplatform.media.probe import probe_node

    if reactor is None:
        from twisted.internet import reactor as global_reactor

        reactor = global_reactor
    if reactor.running:
        err.write(f"{PROG} check: cannot run inside a running reactor\n")
        return 1
    outcome: list[int] = []

    async def run_probe() -> None:
        try:
            steps = await probe_node(reactor, node, timeout=timeout)
            out.writelines(f"ok: {step}\n" for step in steps)
        except Exception as error:  # noqa: BLE001 - every failure is reported, exit 1
            err.write(f"{PROG} check: node {node.name}: {error}\n")
            outcome.append(1)
        else:
            out.write(f"node {node.name} works with the stored secrets\n")
            outcome.append(0)
        finally:
            reactor.callLater(0, reactor.stop)

    reactor.callWhenRunning(lambda: Deferred.fromCoroutine(run_probe()))
    reactor.run(installSignalHandlers=False)
    return outcome[0] if outcome else 1
