"""Running a converter (pdfinfo, pdftoppm, soffice) in a child process under limits.

Conversion never happens on the reactor thread: each step is a separate process started
with ``reactor.spawnProcess``, whose output is read by the reactor like any socket. A
hostile document can make a converter loop, allocate without end or write huge files, so
each process runs under resource limits set before ``exec``: CPU seconds, address space
and the size of any file it writes (``RLIMIT_CPU``, ``RLIMIT_AS``, ``RLIMIT_FSIZE``), and
it is killed when it outlives a wall-clock timeout (on the injected reactor's clock).

The limits are set by util-linux's ``prlimit`` when it is installed (a small C program:
about a millisecond per start), else by a few lines of Python run with the current
interpreter (:data:`_SETRLIMIT`, some 20 ms per start).
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone, ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure


@dataclass(frozen=True)
class ProcessLimits:
    """What one converter process may use."""

    #: Killed (SIGKILL) after this many seconds of wall-clock time.
    timeout: float = 60.0
    cpu_seconds: int = 60
    memory_bytes: int = 1024 * 1024 * 1024
    file_bytes: int = 200 * 1024 * 1024


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    #: The exit code, or None when a signal ended the process.
    code: int | None
    signal: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.code == 0 and not self.timed_out


#: Sets the limits given as arguments, then becomes the converter.
_SETRLIMIT = (
    "import os,resource,sys\n"
    "for name,value in ((resource.RLIMIT_CPU,sys.argv[1]),(resource.RLIMIT_AS,sys.argv[2]),"
    "(resource.RLIMIT_FSIZE,sys.argv[3])):\n"
    " resource.setrlimit(name,(int(value),int(value)))\n"
    "os.execvp(sys.argv[4],sys.argv[4:])\n"
)

#: The output kept from a converter (pdfinfo's answer is a few hundred bytes).
MAX_OUTPUT = 1024 * 1024


def limited_argv(argv: Sequence[str], limits: ProcessLimits, *,
                 prlimit: str | None = None) -> list[str]:
    """``argv`` prefixed with what applies ``limits`` before it runs."""
    if prlimit is None:
        prlimit = shutil.which("prlimit") or ""
    if prlimit:
        return [prlimit, f"--cpu={limits.cpu_seconds}", f"--as={limits.memory_bytes}",
                f"--fsize={limits.file_bytes}", "--", *argv]
    return [sys.executable, "-I", "-S", "-c", _SETRLIMIT, str(limits.cpu_seconds),
            str(limits.memory_bytes), str(limits.file_bytes), *argv]


class _Collect(ProcessProtocol):
    def __init__(self, argv: tuple[str, ...], done: Deferred[Result]) -> None:
        self._argv = argv
        self._done = done
        self._out: list[bytes] = []
        self._err: list[bytes] = []
        self._sizes = [0, 0]
        self.timed_out = False

    def outReceived(self, data: bytes) -> None:
        self._keep(0, self._out, data)

    def errReceived(self, data: bytes) -> None:
        self._keep(1, self._err, data)

    def _keep(self, which: int, into: list[bytes], data: bytes) -> None:
        if self._sizes[which] < MAX_OUTPUT:
            into.append(data[:MAX_OUTPUT - self._sizes[which]])
        self._sizes[which] += len(data)

    def kill(self) -> None:
        self.timed_out = True
        self._signal("KILL")

    def _signal(self, name: str) -> None:
        transport: Any = self.transport
        try:
            if transport is not None:
                transport.signalProcess(name)
        except ProcessExitedAlready:
            pass

    def processEnded(self, reason: Failure) -> None:  # type: ignore[override]
        value: Any = reason.value
        code = 0 if reason.check(ProcessDone) else getattr(value, "exitCode", None)
        signal = getattr(value, "signal", None)
        self._done.callback(Result(self._argv, code, signal, b"".join(self._out),
                                   b"".join(self._err), self.timed_out))


#: A minimal environment: converters need no secrets nor the server's settings.
def _environment(home: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "HOME": home, "TMPDIR": home}


class ProcessRunner:
    """Starts converter processes on ``reactor``; :meth:`run` returns their result."""

    def __init__(self, reactor: Any, *, prlimit: str | None = None) -> None:
        self._reactor = reactor
        self._prlimit = prlimit
        #: The processes running, with the home directory each was given (the document's
        #: directory) and the Deferred that fires when it has ended.
        self._running: dict[_Collect, tuple[str, Deferred[Result]]] = {}

    def run(self, argv: Sequence[str], limits: ProcessLimits, *, home: str
            ) -> Deferred[Result]:
        """Run ``argv`` under ``limits``, with ``home`` as its HOME and TMPDIR.

        The Deferred fires with the :class:`Result` (a failing converter is a result,
        not an error); cancelling it kills the process.

        The process keeps the server's working directory (every path given to it is
        absolute): with a working directory of its own, Twisted would ``fork()`` the
        whole server instead of using ``posix_spawnp()``, and copying a large process's
        page tables holds the reactor for milliseconds.
        """
        command = tuple(argv)
        full = limited_argv(command, limits, prlimit=self._prlimit)
        protocol: _Collect

        def cancel(_: Deferred[Result]) -> None:
            protocol.kill()

        done: Deferred[Result] = Deferred(cancel)
        ended: Deferred[Result] = Deferred()
        protocol = _Collect(command, ended)
        self._reactor.spawnProcess(protocol, full[0], full, env=_environment(home))
        self._running[protocol] = (home, ended)
        deadline = self._reactor.callLater(limits.timeout, protocol.kill)

        def finish(result: Result) -> None:
            self._running.pop(protocol, None)
            if deadline.active():
                deadline.cancel()
            if not done.called:
                done.callback(result)

        ended.addCallback(finish)
        return done

    def settled(self, under: str) -> Deferred[None]:
        """Fires once every process whose home is ``under`` (or below it) has ended: a
        killed converter may still be writing for an instant, so its files are removed
        only after this."""
        prefix = os.path.join(under, "")
        waiting = [ended for home, ended in self._running.values()
                   if os.path.join(home, "").startswith(prefix)]
        done: Deferred[None] = Deferred()
        if not waiting:
            done.callback(None)
            return done
        left = [len(waiting)]

        def one(result: Result) -> Result:
            left[0] -= 1
            if left[0] == 0:
                done.callback(None)
            return result

        for ended in waiting:
            ended.addCallback(one)
        return done

    def kill_under(self, under: str) -> None:
        """Kill every process whose home is ``under`` (or below it)."""
        prefix = os.path.join(under, "")
        for protocol, (home, _) in list(self._running.items()):
            if os.path.join(home, "").startswith(prefix):
                protocol.kill()

    def kill_all(self) -> None:
        """Kill every process still running (the service stops)."""
        for protocol in list(self._running):
            protocol.kill()
