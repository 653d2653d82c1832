"""The durable job queue of recordings, worked off in worker processes.

Jobs are rows of ``recording_jobs`` (:mod:`meetplatform.store.recordings_db`): a
``process`` job per ended meeting that recorded something, a ``delete`` job per deleted
recording. :class:`RecordingJobs` runs the due ones one at a time (the composer uses two
cores already), each ``process`` job in a worker process
(``python -m meetplatform.recording.compose``), so the reactor only reads its progress
lines. A job is deleted from the table only when its work is done, so a job interrupted by
a ``kill -9`` of the service (or of the worker) runs again at the next start and the
worker resumes from what is on disk.

A failed attempt is logged with its reason and retried after a backoff
(:class:`RetryPolicy`); after the last attempt the recording is marked ``failed`` with the
reason (getRecordings ``state=failed``, the REST ``state``).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.interfaces import IDelayedCall, IReactorProcess, IReactorTime
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure

import meetplatform
from meetplatform.store import Store
from meetplatform.store import recordings_db as rdb

_log = Logger()

#: Failures that need the operator (the disk): the recording shows ``failed`` at once,
#: while the retries go on.
DISK_PROBLEMS = ("not writable", "No space left", "Read-only file system",
                 "Permission denied", "Disk quota exceeded")

#: Where the package lives, so that the worker imports the same code.
_PACKAGE_ROOT = str(Path(meetplatform.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class RetryPolicy:
    #: Attempts before a job is marked failed.
    attempts: int = 5
    #: Seconds before the 2nd, 3rd, ... attempt (the last value repeats).
    delays: tuple[float, ...] = (10.0, 60.0, 300.0, 1800.0)
    #: Seconds between looks at the queue when nothing woke it (jobs due later).
    idle_poll: float = 30.0

    def delay(self, attempts_failed: int) -> float:
        return self.delays[min(attempts_failed, len(self.delays)) - 1]


@dataclass(frozen=True)
class Source:
    """Where a recording's ``.mjr`` files are: the node's directory (as the service
    sees it) and the room the meeting had there."""

    directory: str | None
    room: str | None


class _Worker(ProcessProtocol):
    """Collects a worker's output; fires ``done`` with (exit code, result, stderr tail)."""

    def __init__(self, record_id: str) -> None:
        self.record_id = record_id
        self.done: Deferred[tuple[int, dict[str, Any] | None, str]] = Deferred()
        self._out = b""
        self._err = b""
        self.result: dict[str, Any] | None = None

    def outReceived(self, data: bytes) -> None:
        self._out += data
        while b"\n" in self._out:
            line, self._out = self._out.split(b"\n", 1)
            text = line.decode("utf-8", "replace").strip()
            if text.startswith("result: "):
                try:
                    self.result = json.loads(text[len("result: "):])
                except ValueError:
                    _log.warn("recording {id}: unreadable worker result {text!r}",
                              id=self.record_id, text=text[:200])
            elif text:
                _log.info("recording {id}: {text}", id=self.record_id,
                          text=text.removeprefix("progress: "))

    def errReceived(self, data: bytes) -> None:
        self._err = (self._err + data)[-8192:]

    def processEnded(self, reason: Failure) -> None:
        code = 0 if reason.check(ProcessDone) else int(getattr(reason.value, "exitCode", 1)
                                                          or 1)
        lines = self._err.decode("utf-8", "replace").strip().splitlines()
        tail = lines[-1] if lines else (f"the worker ended: {reason.getErrorMessage()}"
                                        if code else "")
        self.done.callback((code, self.result, tail))


#: Called with the recording once its video is ready (callbacks, webhooks).
ReadyListener = Callable[[rdb.RecordingRow], None]
#: Called with (stage event name, recording): rap-* events for webhooks.
StageListener = Callable[[str, rdb.RecordingRow], None]


class RecordingJobs(Service):
    """Runs the due recording jobs, one at a time, in worker processes."""

    name = "recording-jobs"

    def __init__(self, clock: IReactorTime, store: Store, recordings_dir: Path, *,
                 sources: Callable[[rdb.RecordingRow], Source],
                 policy: RetryPolicy | None = None, python: str | None = None,
                 spawner: IReactorProcess | None = None) -> None:
        self._clock = clock
        self._store = store
        self.recordings_dir = recordings_dir
        self._sources = sources
        self.policy = policy or RetryPolicy()
        self._python = python or sys.executable
        self._spawner = spawner
        self._timer: IDelayedCall | None = None
        self._running_job: Deferred[None] | None = None
        self._worker: Any = None
        self._again = False
        self.ready: list[ReadyListener] = []
        self.stages: list[StageListener] = []
        #: The last failure, for /healthz (None: the last job worked).
        self.last_failure: str | None = None
        self.done = 0
        self.failed = 0

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    # --- the loop --------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.wake()

    def stopService(self) -> Deferred[None] | None:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._worker is not None:
            # The job stays in the queue; the next start resumes it.
            try:
                self._worker.signalProcess("TERM")
            except Exception:  # noqa: BLE001 - it may have ended just now
                _log.debug("the recording worker had ended already")
        return self._running_job

    def wake(self, delay: float = 0.0) -> None:
        """Look at the queue (soon): a job was added or became due."""
        if not self.running:
            return
        if self._running_job is not None:
            self._again = True
            return
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self._clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._running_job = Deferred.fromCoroutine(self._work())
        self._running_job.addErrback(
            lambda f: _log.failure("recording jobs: the queue loop failed", f))
        self._running_job.addBoth(self._finished)

    def _finished(self, _: object) -> None:
        self._running_job = None
        if not self.running:
            return
        if self._again:
            self._again = False
            self.wake()
            return
        Deferred.fromCoroutine(self._schedule_next()).addErrback(
            lambda f: _log.failure("recording jobs: reading the queue failed", f))

    async def _schedule_next(self) -> None:
        due = await self._store.run(rdb.next_due)
        if not self.running or self._running_job is not None or self._timer is not None:
            return
        if due is None:
            return
        self.wake(max(0.0, min(self.policy.idle_poll, (due - self._now()) / 1000)))

    async def _work(self) -> None:
        while self.running:
            jobs = await self._store.run(partial(rdb.due_jobs, now=self._now(), limit=1))
            if not jobs:
                return
            await self.run_job(jobs[0])

    # --- one job ----------------------------------------------------------------------

    def directory(self, record_id: str) -> Path:
        return self.recordings_dir / record_id

    async def run_job(self, job: rdb.Job) -> None:
        row = await self._store.run(lambda db: rdb.get_recording(db, job.record_id))
        if job.kind == "delete":
            await self._delete(job)
            return
        if row is None or row.state not in ("processing", "failed"):
            await self._store.run(lambda db: rdb.forget(db, job.record_id, job.id))
            return
        started = self._now()
        _log.info("recording {id}: processing (attempt {n})", id=row.record_id,
                  n=job.attempts + 1)
        self._stage("rap-process-started", row)
        try:
            result = await self._process(row)
        except Exception as error:  # noqa: BLE001 - every failure is retried, then recorded
            await self._attempt_failed(job, row, str(error) or type(error).__name__)
            return
        length = int(result.get("length_ms", 0))
        size = int(result.get("size", 0))
        participants = int(result.get("participants", 0))
        processing = int(float(result.get("compose_s", 0)) * 1000) or (self._now() - started)
        now = self._now()
        done = await self._store.run(lambda db: rdb.finish_processing(
            db, row.record_id, length_ms=length, size=size, processing_ms=processing,
            participants=participants, job_id=job.id, now=now))
        self.done += 1
        self.last_failure = None
        _log.info("recording {id}: ready ({seconds:.1f} s of video, {size} bytes, processed "
                  "in {ms} ms)", id=row.record_id, seconds=length / 1000, size=size,
                  ms=processing)
        if done is not None and done.state in ("published", "unpublished"):
            self._stage("rap-process-ended", done)
            self._stage("rap-publish-started", done)
            self._stage("rap-publish-ended", done)
            for listener in list(self.ready):
                try:
                    listener(done)
                except Exception:  # noqa: BLE001 - a listener's bug must not stop the queue
                    _log.failure("recording {id}: a ready listener failed", id=done.record_id)

    def _stage(self, name: str, row: rdb.RecordingRow) -> None:
        for listener in list(self.stages):
            try:
                listener(name, row)
            except Exception:  # noqa: BLE001 - logged; webhooks must not stop processing
                _log.failure("recording {id}: a stage listener failed", id=row.record_id)

    async def _attempt_failed(self, job: rdb.Job, row: rdb.RecordingRow, reason: str) -> None:
        attempts = job.attempts + 1
        self.last_failure = reason
        now = self._now()
        if attempts >= self.policy.attempts:
            self.failed += 1
            _log.error("recording {id}: processing failed for good after {n} attempt(s): "
                       "{reason}", id=row.record_id, n=attempts, reason=reason)
            await self._store.run(lambda db: rdb.fail_processing(db, row.record_id, reason,
                                                                 job.id, now))
            return
        delay = self.policy.delay(attempts)
        disk = any(sign in reason for sign in DISK_PROBLEMS)
        _log.warn("recording {id}: processing attempt {n} failed: {reason}; retrying in "
                  "{delay:g} s", id=row.record_id, n=attempts, reason=reason, delay=delay)
        await self._store.run(lambda db: rdb.retry_later(
            db, job.id, reason, now + int(delay * 1000),
            show_failed=row.record_id if disk else None))

    async def _process(self, row: rdb.RecordingRow) -> dict[str, Any]:
        source = self._sources(row)
        dest = self.directory(row.record_id)
        task = {"record_id": row.record_id, "source_dir": source.directory,
                "room": source.room, "segments": [list(s) for s in row.segments],
                "dest_dir": str(dest), "screens": list(row.screens)}

        def write_task() -> str:
            dest.mkdir(parents=True, exist_ok=True)
            path = dest / "job.json"
            path.write_text(json.dumps(task), "utf-8")
            return str(path)

        try:
            task_file = await deferToThread(write_task)
        except OSError as error:
            raise RuntimeError(f"the recordings directory is not writable: {error}") from None
        return await self._spawn(row.record_id, task_file)

    async def _spawn(self, record_id: str, task_file: str) -> dict[str, Any]:
        from twisted.internet import reactor

        spawner: Any = self._spawner or reactor
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
        worker = _Worker(record_id)
        self._worker = spawner.spawnProcess(
            worker, self._python, [self._python, "-m", "meetplatform.recording.compose",
                                   task_file], env=env)
        try:
            code, result, tail = await worker.done
        finally:
            self._worker = None
        if code != 0 or result is None:
            raise RuntimeError(tail or f"the worker exited with status {code}")
        return result

    async def _delete(self, job: rdb.Job) -> None:
        directory = self.directory(job.record_id)
        try:
            await deferToThread(_remove_tree, directory)
        except OSError as error:
            reason = f"removing {directory} failed: {error}"
            _log.warn("recording {id}: {reason}", id=job.record_id, reason=reason)
            if job.attempts + 1 < self.policy.attempts:
                now = self._now()
                delay = self.policy.delay(job.attempts + 1)
                await self._store.run(lambda db: rdb.retry_later(
                    db, job.id, reason, now + int(delay * 1000)))
                return
        _log.info("recording {id}: files removed", id=job.record_id)
        await self._store.run(lambda db: rdb.forget(db, job.record_id, job.id))


def _remove_tree(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
