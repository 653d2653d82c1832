"""Converter processes run under resource limits and a wall-clock timeout."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError

from meetplatform.documents.process import ProcessLimits, ProcessRunner
from tests.documents.harness import DEADLINE, reactor

LIMITS = ProcessLimits(timeout=30.0, cpu_seconds=7, memory_bytes=512 * 1024 * 1024,
                       file_bytes=3 * 1024 * 1024)
SHOW = "grep -E '^Max (cpu time|address space|file size)' /proc/self/limits; echo $HOME $TMPDIR"

#: prlimit if installed, and always the Python fallback ("" means: do not use prlimit).
WRAPPERS = [p for p in (shutil.which("prlimit"),) if p] + [""]


@pytest.mark.parametrize("prlimit", WRAPPERS)
@pytest_twisted.ensureDeferred
async def test_limits_apply_to_the_converter(tmp_path: Path, prlimit: str) -> None:
    runner = ProcessRunner(reactor(), prlimit=prlimit)
    result = await runner.run(["sh", "-c", SHOW], LIMITS, home=str(tmp_path)).addTimeout(
        DEADLINE, reactor())
    assert result.ok
    *limits, home = result.stdout.decode().splitlines()
    soft_limits = {line[:26].strip(): int(line[26:].split()[0]) for line in limits}
    assert soft_limits == {"Max cpu time": 7, "Max file size": 3 * 1024 * 1024,
                           "Max address space": 512 * 1024 * 1024}
    assert home == f"{tmp_path} {tmp_path}"


@pytest_twisted.ensureDeferred
async def test_a_converter_that_runs_too_long_is_killed(tmp_path: Path) -> None:
    runner = ProcessRunner(reactor())
    limits = ProcessLimits(timeout=0.2)
    result = await runner.run(["sleep", "30"], limits, home=str(tmp_path)).addTimeout(
        DEADLINE, reactor())
    assert result.timed_out and not result.ok
    assert result.signal == 9
    assert not runner._running


@pytest_twisted.ensureDeferred
async def test_cancelling_kills_and_settled_waits_for_the_end(tmp_path: Path) -> None:
    runner = ProcessRunner(reactor())
    running = runner.run(["sleep", "30"], LIMITS, home=str(tmp_path))
    running.cancel()
    with pytest.raises(CancelledError):
        await running
    await runner.settled(str(tmp_path)).addTimeout(DEADLINE, reactor())
    assert not runner._running


@pytest_twisted.ensureDeferred
async def test_a_failing_converter_is_a_result(tmp_path: Path) -> None:
    runner = ProcessRunner(reactor())
    result = await runner.run(["sh", "-c", "echo oops >&2; exit 3"], LIMITS,
                              home=str(tmp_path))
    assert (result.ok, result.code, result.signal, result.stderr) == (
        False, 3, None, b"oops\n")
