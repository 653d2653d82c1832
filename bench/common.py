"""Shared harness code for bench/xmlapi_bench.py and bench/ws_bench.py.

Everything here runs in the *harness* process (never inside a server under test):
starting and stopping the processes it owns (by PID only), pinning them with ``taskset``,
sampling their CPU time and RSS from ``/proc``, the "other CPU" guard, medians and
result files. Linux only (it reads ``/proc``); all traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import queue
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
#: A run whose unrelated CPU use exceeds this (in cores, averaged over the measured
#: window) is repeated (perf-floor.md's guard).
OTHER_CPU_LIMIT = 0.15


def raise_nofile() -> None:
    """Raise this process's soft open-files limit to the hard limit (20,000 here)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def product_log_observer(out: Any) -> Any:
    """The log observer twistd gets from the product on ``out``: its text format
    (``meetplatform.logs.text_file_observer``) behind the default level filter (info), in
    a checkout that has them; Twisted's own text observer in an earlier one."""
    from twisted.logger import FilteringLogObserver, textFileLogObserver

    from meetplatform import logs

    observer = getattr(logs, "text_file_observer", textFileLogObserver)(out)
    if not hasattr(logs, "level_predicate"):
        return observer
    return FilteringLogObserver(observer, [logs.level_predicate([])])


def product_listen(description: str) -> str:
    """The endpoint description as the product listens on it (its listen queue,
    ``meetplatform.config.with_backlog``, in a checkout that has one)."""
    from meetplatform import config

    with_backlog = getattr(config, "with_backlog", None)
    return description if with_backlog is None else str(with_backlog(description))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Block until something accepts on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
            time.sleep(0.05)


# --- /proc sampling -------------------------------------------------------------------------


def proc_cpu(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds used so far by process ``pid`` (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        raw = f.read()
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def proc_rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (10^6 bytes)."""
    with open(f"/proc/{pid}/statm") as f:
        pages = int(f.read().split()[1])
    return pages * PAGE_SIZE / 1e6


def system_busy() -> float:
    """CPU seconds all CPUs spent not idle since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (parts + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass
class Sample:
    """CPU counters of the processes of one run at one instant."""

    t: float
    busy: float
    cpu: dict[str, tuple[float, float]]


def sample(pids: dict[str, int]) -> Sample:
    cpu = {}
    for name, pid in pids.items():
        try:
            cpu[name] = proc_cpu(pid)
        except (FileNotFoundError, ProcessLookupError):
            cpu[name] = (0.0, 0.0)
    return Sample(time.monotonic(), system_busy(), cpu)


def usage(a: Sample, b: Sample) -> dict[str, Any]:
    """Cores used between two samples: per process (user, sys, total) and "other"."""
    dt = max(b.t - a.t, 1e-9)
    out: dict[str, Any] = {"seconds": round(dt, 3)}
    mine = 0.0
    for name in a.cpu:
        user = (b.cpu[name][0] - a.cpu[name][0]) / dt
        system = (b.cpu[name][1] - a.cpu[name][1]) / dt
        mine += user + system
        out[name] = {"user": round(user, 3), "sys": round(system, 3),
                     "cores": round(user + system, 3)}
    out["other"] = round((b.busy - a.busy) / dt - mine, 3)
    return out


# --- processes ------------------------------------------------------------------------------


@dataclass
class Proc:
    """A process this harness started (and will stop, by its PID)."""

    name: str
    popen: subprocess.Popen[str]
    log_path: Path
    lines: queue.Queue[str] = field(default_factory=queue.Queue)

    def __post_init__(self) -> None:
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        stdout = self.popen.stdout
        assert stdout is not None
        for line in stdout:
            self.lines.put(line)
        self.lines.put("")

    @property
    def pid(self) -> int:
        return self.popen.pid

    def readline(self, timeout: float) -> str | None:
        """The next stdout line ('' at EOF), or None on timeout."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            return None

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit status."""
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        return self.popen.returncode


#: Scheduling priority of the measured processes (servers and load generators); set by the
#: harnesses' ``--nice`` option. Negative values (root only) keep other users' work from
#: taking the pinned CPUs away from a run; baseline and product get the same treatment.
NICE = 0


def checkout(name: str) -> tuple[str, Path]:
    """A server or case name ``NAME@DIR`` → ``(NAME, DIR)``: run the product from the
    checkout ``DIR`` (its ``meetplatform`` on ``PYTHONPATH``, its bench server script)
    in the same run as this one, e.g. ``meetplatform@/tmp/before-issue9`` for a same-run
    before/after; a plain ``NAME`` → ``(NAME, REPO_DIR)``."""
    base, at, where = name.partition("@")
    if not at:
        return name, REPO_DIR
    path = Path(where).resolve()
    if not (path / "meetplatform" / "__init__.py").exists():
        raise SystemExit(f"{name}: {path} is no checkout of the product")
    return base, path


def start(name: str, argv: Sequence[str], *, cpu: int | None, log_dir: Path,
          cwd: Path = REPO_DIR, env: dict[str, str] | None = None,
          code: Path = REPO_DIR) -> Proc:
    """Start ``argv`` (pinned to ``cpu`` with taskset if given); stdout is piped.
    ``code`` is the checkout whose product the child imports (``PYTHONPATH``)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.stderr"
    full = list(argv)
    if cpu is not None:
        full = ["taskset", "-c", str(cpu), *full]
    if NICE:
        full = ["nice", "-n", str(NICE), *full]
    stderr: TextIO = open(log_path, "w")  # noqa: SIM115 - closed below, once the child has it
    child_env = dict(os.environ)
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(code), child_env.get("PYTHONPATH", "")) if p)
    child_env["PYTHONUNBUFFERED"] = "1"
    if env:
        child_env.update(env)
    try:
        # Children inherit the raised open-files limit (raise_nofile() in the harness's
        # main); their own session, so that ^C in the terminal does not reach them before
        # the harness stops them (by PID, in every case).
        popen = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                 cwd=cwd, env=child_env, start_new_session=True)
    finally:
        stderr.close()
    return Proc(name, popen, log_path)


def expect_ready(proc: Proc, timeout: float = 60.0) -> str:
    """Wait for the ``READY ...`` line a bench server prints once it listens."""
    deadline = time.monotonic() + timeout
    while True:
        line = proc.readline(max(deadline - time.monotonic(), 0.1))
        if line is None or line == "":
            tail = proc.log_path.read_text()[-2000:] if proc.log_path.exists() else ""
            raise RuntimeError(f"{proc.name} did not become ready:\n{tail}")
        if line.startswith("READY"):
            return line.strip()


# --- statistics and output ----------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{min(values):.4g}–{max(values):.4g}"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {"cpus": os.cpu_count()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["mem_gb"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 1e6, 1)
    except OSError:
        pass
    info["kernel"] = os.uname().release
    info["python"] = sys.version.split()[0]
    try:
        import autobahn
        import klein
        import lxml.etree

        import twisted

        info["twisted"] = twisted.__version__
        info["autobahn"] = autobahn.__version__
        info["klein"] = klein.__version__
        info["lxml"] = ".".join(map(str, lxml.etree.LXML_VERSION))
    except ImportError:
        pass
    node = shutil.which("node")
    if node:
        info["node"] = subprocess.run([node, "--version"], capture_output=True,
                                      text=True, check=False).stdout.strip()
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        info["wrk"] = (out.stdout or out.stderr).split("[")[0].strip()
    return info


def load_average() -> str:
    return Path("/proc/loadavg").read_text().split(" ")[0]


def results_file(prefix: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    return RESULTS_DIR / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}.jsonl"


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def log(message: str) -> None:
    """Progress output of the harness (stderr, timestamped)."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def wait_quiet(max_wait: float, limit: float = OTHER_CPU_LIMIT, window: float = 1.0) -> float:
    """Wait (at most ``max_wait`` s) for a ``window`` in which the machine is nearly idle.

    Returns the busy cores of the last window. The harness calls this before each run
    (nothing of its own is running then), so that runs start when the other engineers'
    work pauses; the "other CPU" guard then checks the run itself.
    """
    deadline = time.monotonic() + max_wait
    while True:
        a = system_busy()
        time.sleep(window)
        busy = (system_busy() - a) / window
        if busy <= limit or time.monotonic() >= deadline:
            return round(busy, 3)


def product_fingerprint(repo: Path = REPO_DIR) -> str:
    """A short hash of the product's source (meetplatform/**/*.py) as it is right now.

    The product is being changed while benchmarks run (several engineers share the
    checkout); each run records which code its server was started with.
    """
    import hashlib

    digest = hashlib.sha256()
    for path in sorted((repo / "meetplatform").rglob("*.py")):
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]
