"""A veth pair inside the network namespace a test made (``unshare --net``).

Tests with real media need an address that is not loopback: Janus never offers loopback
ICE candidates, Firefox gathers none when ``lo`` is the only interface, and TURN servers
and browsers do not relay over loopback. Yet test traffic must never leave the machine.
So such tests run in a namespace of their own that has only ``lo`` (``scripts/test``, or
``unshare --net sh -c 'ip link set lo up && ...'``) and add a veth pair there, with
private addresses and *both* ends in that namespace: media crosses the pair and stays
inside. A test refuses to touch a namespace with any other interface (the host's, say):
:func:`only_loopback` is that check.

The pair's ends get no IPv6 link-local address (``addrgenmode none``): one appearing
seconds after the link came up reached Chromium as a network change, which aborted a
page's loads (``ERR_NETWORK_CHANGED``).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import pytest

#: Why a test that needs its own namespace skips (or refuses) outside one.
NOT_ISOLATED = ("not in a loopback-only network namespace (run through scripts/test or "
                "unshare --net)")


def interfaces() -> list[str]:
    """The names of this namespace's interfaces (``veth1@veth0`` read as ``veth1``)."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                         check=True).stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


def only_loopback() -> bool:
    """Whether this namespace has ``lo`` and nothing else: one a test made, where it may
    add links without touching the host's network."""
    return interfaces() == ["lo"]


def skip_unless_only_loopback() -> None:
    """Skip the calling test unless :func:`only_loopback`."""
    if not only_loopback():
        pytest.skip(NOT_ISOLATED)


def _run(commands: Sequence[str]) -> None:
    for command in commands:
        subprocess.run(command.split(), check=True)


@dataclass(frozen=True)
class VethPair:
    """A veth pair ``name`` (``address``) ↔ ``peer`` (``peer_address``), both in this
    namespace, on a ``/prefix`` network. As a context manager it is up inside the block
    and deleted after it; :meth:`up` alone leaves it up until the namespace goes.

    ``default_route`` adds a default route through ``name`` (it leads only to the pair's
    other end): Firefox offers the address of the default route's interface.
    """

    name: str
    peer: str
    address: str
    peer_address: str
    prefix: int = 24
    default_route: bool = False

    def up(self) -> None:
        """Add the pair, address both ends and bring them up (raises if ``ip`` fails)."""
        commands = [
            f"ip link add {self.name} type veth peer name {self.peer}",
            f"ip addr add {self.address}/{self.prefix} dev {self.name}",
            f"ip addr add {self.peer_address}/{self.prefix} dev {self.peer}",
            f"ip link set {self.name} addrgenmode none",
            f"ip link set {self.peer} addrgenmode none",
            f"ip link set {self.name} up",
            f"ip link set {self.peer} up",
        ]
        if self.default_route:
            commands.append(f"ip route add default dev {self.name}")
        _run(commands)

    def down(self) -> None:
        """Delete the pair (both ends go with ``name``); no error if it is already gone."""
        subprocess.run(["ip", "link", "del", self.name], check=False)

    def __enter__(self) -> Self:
        self.up()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.down()
