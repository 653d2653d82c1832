"""``--janus-local PATH``: the service runs one Janus of its own, registered as node ``local``.

One-box operators get an SFU with one flag. :class:`LocalJanus` is a Twisted service that

- generates the Janus configuration into ``<data_dir>/janus/`` (mode 0700): secrets from
  ``<data_dir>/janus/secret`` (created once, 0600), the Janus API and the Admin API on
  127.0.0.1 with free ports picked at each start, recordings in
  ``<data_dir>/janus/recordings``;
- stores (or updates) the node ``local`` in the store (then starts Janus), keeping the state an operator gave
  it (``meetplatform nodes drain local`` sticks across restarts);
- starts Janus, logs each line it prints (``janus: ...``), and restarts it when it exits,
  after a back-off (1 s, doubling up to 30 s; back to 1 s after a minute of running);
- stops it on shutdown (SIGTERM, then SIGKILL after ``stop_timeout`` seconds).

:class:`~meetplatform.media.nodes.MediaNodes` watches it like any other node, so a crash
shows as offline, and the restarted Janus (rooms lost) as a ``NodeRestarted``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from meetplatform.media.janus_config import JanusConfig, write_config
from meetplatform.media.node_settings import (
    DEFAULT_CAPACITY,
    read_secret_file,
)
from meetplatform.store.nodes_db import NodeSecrets

_log = Logger()

LOCAL_NODE = "local"
FIRST_BACKOFF = 1.0
MAX_BACKOFF = 30.0
#: A Janus that ran this long before exiting restarts after FIRST_BACKOFF again.
STABLE_AFTER = 60.0

#: ``register(name, admin_url, ws_url, secrets, capacity)``: store the node.
Register = Callable[[str, str, str, NodeSecrets, int], Awaitable[object]]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on ``host`` (Janus binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def local_secrets(folder: Path) -> NodeSecrets:
    """The local node's secrets, derived from ``<folder>/secret`` (created on first use)."""
    path = folder / "secret"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (secrets.token_urlsafe(32) + "\n").encode())
        finally:
            os.close(fd)
    return read_secret_file(path)


class _JanusOutput(ProcessProtocol):
    def __init__(self, owner: LocalJanus) -> None:
        self._owner = owner
        self._partial = b""

    def outReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            text = line.decode("utf-8", "replace").rstrip()
            if text:
                _log.info("janus: {line}", line=text)

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        if self._partial.strip():
            _log.info("janus: {line}", line=self._partial.decode("utf-8", "replace"))
        self._owner._ended(reason)


class LocalJanus(Service):
    """Generates the config of, starts, supervises and stops one local Janus."""

    name = "janus-local"

    def __init__(self, reactor: Any, binary: Path, folder: Path, register: Register, *,
                 events_url: str | None = None, capacity: int = DEFAULT_CAPACITY,
                 rtp_port_range: str = "20000-40000", stop_timeout: float = 5.0) -> None:
        self._reactor = reactor
        self.binary = binary
        self.folder = folder
        self._register = register
        self._events_url = events_url
        self._capacity = capacity
        self._rtp_port_range = rtp_port_range
        self._stop_timeout = stop_timeout
        self._process: Any = None
        self._started_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._restart: IDelayedCall | None = None
        self._stopping = False
        self._exited: Deferred[None] | None = None
        self.config: JanusConfig | None = None
        #: How many times Janus was (re)started (tests read it).
        self.starts = 0
        #: Fires once the node is registered in the store after start.
        self.registered: Deferred[None] = Deferred()

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        secrets_ = local_secrets(self.folder)
        self.config = JanusConfig(
            name=LOCAL_NODE, api_secret=secrets_.api_secret,
            admin_secret=secrets_.admin_secret, admin_key=secrets_.admin_key,
            ws_host="127.0.0.1", ws_port=free_port(), admin_host="127.0.0.1",
            admin_port=free_port(), events_url=self._events_url,
            event_secret=secrets_.event_secret, configs_folder=self.folder,
            rtp_port_range=self._rtp_port_range,
            recordings_dir=self.folder / "recordings")
        (self.folder / "recordings").mkdir(parents=True, exist_ok=True)
        write_config(self.config, self.folder)
        # Janus starts once the node is known, so that its first events are accepted.
        d = Deferred.fromCoroutine(self._register_node(secrets_))
        d.addErrback(lambda f: _log.failure("registering the local Janus node failed", f))
        d.addBoth(lambda _: self._spawn())

    async def _register_node(self, secrets_: NodeSecrets) -> None:
        assert self.config is not None
        await self._register(LOCAL_NODE, self.admin_url, self.ws_url, secrets_, self._capacity)
        if not self.registered.called:
            self.registered.callback(None)

    @property
    def ws_url(self) -> str:
        assert self.config is not None
        return f"ws://127.0.0.1:{self.config.ws_port}"

    @property
    def admin_url(self) -> str:
        assert self.config is not None
        return f"http://127.0.0.1:{self.config.admin_port}/admin"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def _spawn(self) -> None:
        self._restart = None
        if self._stopping:
            return
        args = [str(self.binary), "-F", str(self.folder), "-C", str(self.folder / "janus.jcfg")]
        _log.info("starting local Janus: {command}", command=" ".join(args))
        try:
            self._process = self._reactor.spawnProcess(
                _JanusOutput(self), str(self.binary), args, env=dict(os.environ),
                path=str(self.folder))
        except OSError as error:
            _log.error("cannot start local Janus {binary}: {error}", binary=str(self.binary),
                       error=str(error))
            self._schedule_restart()
            return
        self.starts += 1
        self._started_at = self._reactor.seconds()

    def _ended(self, reason: Failure) -> None:
        self._process = None
        if self._stopping:
            if self._exited is not None and not self._exited.called:
                self._exited.callback(None)
            return
        how = ("exited" if reason.check(ProcessDone) else
               f"ended: {reason.getErrorMessage()}")
        _log.warn("local Janus {how}; restarting it in {delay:g} s", how=how,
                  delay=self._next_delay())
        self._schedule_restart()

    def _next_delay(self) -> float:
        if self._reactor.seconds() - self._started_at >= STABLE_AFTER:
            self._backoff = FIRST_BACKOFF
        return self._backoff

    def _schedule_restart(self) -> None:
        delay = self._next_delay()
        self._backoff = min(MAX_BACKOFF, delay * 2)
        self._restart = self._reactor.callLater(delay, self._spawn)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        self._stopping = True
        if self._restart is not None and self._restart.active():
            self._restart.cancel()
        self._restart = None
        if self._process is None:
            return Deferred.fromCoroutine(_nothing())
        self._exited = Deferred()
        process = self._process
        try:
            process.signalProcess("TERM")
        except ProcessExitedAlready:
            return Deferred.fromCoroutine(_nothing())

        def kill() -> None:
            try:
                process.signalProcess(signal.SIGKILL.name.removeprefix("SIG"))
            except ProcessExitedAlready:
                pass

        call = self._reactor.callLater(self._stop_timeout, kill)
        exited = self._exited

        def done(result: None) -> None:
            if call.active():
                call.cancel()

        exited.addCallback(done)
        return exited


async def _nothing() -> None:
    return None
