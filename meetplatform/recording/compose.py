"""The processing of one recording, run in a worker process (never on the reactor).

``python -m meetplatform.recording.compose JOB.json`` does, for the job described in the
file (see :class:`Task`), each step only if its result is not there yet, so that a job
killed half-way (``kill -9`` of the service, a node gone, a full disk) resumes where it
stopped when it runs again:

1. **move** the meeting's ``.mjr`` files off the media node: from the node's recording
   directory as the service sees it (``source_dir``: the local Janus's directory, or the
   mount of a remote node's), the files of the meeting's room written between its start
   and its end (Janus names them ``videoroom-<room>-user-<publisher>-<µs>-<audio|video>-
   <mid>.mjr``), into ``<recording>/raw/``. A file is copied, synced, then removed from
   the node: once moved, a node that dies loses nothing. A ``.mjr.tmp`` (Janus is still
   writing it) makes the step fail, to be retried;
2. **convert** each ``.mjr`` with ``janus-pp-rec`` (``-j`` for its header: codec, and
   ``u``, the time of its first packet in µs), into ``<recording>/work/``;
3. **compose** one WebM with ffmpeg: the cameras in a grid, or, while a screen is
   shared, the screen in the main area and the cameras beside it; every voice mixed
   (``amix``); each stream placed at its first-packet time; the segments (recording
   started, stopped, started again) one after the other without the gaps between them;
4. a **preview** image (PNG) of a frame.

It prints progress lines (``progress: ...``) and, last, ``result: {json}`` with the
length, size and participants. Any failure exits non-zero with the reason as the last
line of stderr; the job runner (:mod:`meetplatform.recording.jobs`) logs it and retries.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

JANUS_PP_REC = "janus-pp-rec"
FFMPEG = "ffmpeg"
FFPROBE = "ffprobe"

#: ``videoroom-<room>-user-<publisher>-<µs>-<audio|video|data>-<mid>.mjr``
MJR_NAME = re.compile(
    r"videoroom-(?P<room>[^-]+)-user-(?P<publisher>[^-]+)-(?P<created>\d+)"
    r"-(?P<kind>audio|video|data)-(?P<mid>\d+)\.mjr(?P<tmp>\.tmp)?$")

#: Seconds to wait for files Janus is still writing (``.mjr.tmp``) before failing.
OPEN_FILES_WAIT = 30.0

#: How much lower than the service the worker and its tools run (``nice``).
NICENESS = 10

#: The composed picture.
WIDTH, HEIGHT, FPS = 640, 480, 15

#: Files written this long before the start or after the end still belong to the meeting
#: (the clocks of the node and the service differ a little).
SLACK_MS = 5_000


class ProcessingError(Exception):
    """A step failed; the message says which and why."""


@dataclass(frozen=True)
class Task:
    """What the job runner hands the worker (as JSON)."""

    record_id: str
    #: The node's recording directory as seen from here (None: nothing to move).
    source_dir: str | None
    #: The VideoRoom room id the meeting had on the node (None: every file of source_dir).
    room: str | None
    #: [start_ms, end_ms] of the meeting's recorded segments, in order.
    segments: list[list[int]]
    #: ``<recordings-dir>/<record_id>``: raw/, work/, video.webm, preview.png.
    dest_dir: str
    #: Publisher ids whose video is a screen share (the SFU path tells the recorder).
    screens: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Task:
        return cls(**json.loads(path.read_text("utf-8")))


@dataclass
class Stream:
    """One converted ``.mjr``: a publisher's audio or video from one segment."""

    publisher: str
    kind: str  # "audio" | "video"
    #: The stream's mid in the publisher's PeerConnection (a camera and a screen differ).
    mid: str
    path: Path
    #: µs of the first packet (janus-pp-rec's ``u``), or its creation time.
    first_us: int
    duration_s: float = 0.0
    #: Seconds into the composed video.
    offset_s: float = 0.0
    screen: bool = False

    @property
    def camera(self) -> str:
        """The grid cell's key: one per publisher and video stream."""
        return f"{self.publisher}:{self.mid}"


def progress(message: str) -> None:
    print(f"progress: {message}", flush=True)


def _run(argv: list[str], what: str, timeout: float = 3600) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False, preexec_fn=_die_with_parent)
    except FileNotFoundError as e:
        raise ProcessingError(f"{what}: {argv[0]} is not installed") from e
    except subprocess.TimeoutExpired as e:
        raise ProcessingError(f"{what}: {argv[0]} took longer than {timeout:.0f} s") from e
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise ProcessingError(f"{what}: {argv[0]} exited {done.returncode}: "
                              + " / ".join(tail))
    return done.stdout


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _meeting_files(task: Task, source: Path) -> list[tuple[Path, bool]]:
    """The meeting's files in the node's directory, and whether each is still open."""
    start = task.segments[0][0] - SLACK_MS if task.segments else 0
    end = task.segments[-1][1] + SLACK_MS if task.segments else 1 << 62
    found = []
    for entry in sorted(source.iterdir()):
        match = MJR_NAME.match(entry.name)
        if match is None:
            continue
        if task.room is not None and match["room"] != str(task.room):
            continue
        if not start <= int(match["created"]) // 1000 <= end:
            continue
        found.append((entry, bool(match["tmp"])))
    return found


def move_files(task: Task, raw: Path) -> list[Path]:
    """Step 1: the meeting's files into ``raw`` (copy, fsync, then unlink the source).

    Janus closes a room's files when the room is destroyed, just after the meeting ends:
    files still open (``.mjr.tmp``) are waited for, up to :data:`OPEN_FILES_WAIT` s.
    """
    raw.mkdir(parents=True, exist_ok=True)
    if task.source_dir is not None:
        source = Path(task.source_dir)
        if not source.is_dir():
            raise ProcessingError(f"move: the node's recording directory {source} is not "
                                  "reachable")
        deadline = time.monotonic() + OPEN_FILES_WAIT
        files = _meeting_files(task, source)
        while any(still_open for _, still_open in files):
            if time.monotonic() > deadline:
                name = next(p.name for p, still_open in files if still_open)
                raise ProcessingError(f"move: {name} is still being written")
            time.sleep(0.5)
            files = _meeting_files(task, source)
        for entry, _ in files:
            target = raw / entry.name
            partial = raw / (entry.name + ".part")
            with entry.open("rb") as src, partial.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
                dst.flush()
                os.fsync(dst.fileno())
            partial.replace(target)
            _fsync_dir(raw)
            entry.unlink()
        progress(f"moved {len(files)} file(s) from {source}")
    return sorted(p for p in raw.iterdir() if p.suffix == ".mjr")


def header(path: Path) -> dict[str, Any]:
    """``janus-pp-rec -j``: ``{"t": "a"|"v", "c": codec, "s": created µs, "u": first µs}``."""
    out = _run([JANUS_PP_REC, "-j", str(path)], f"header of {path.name}", timeout=120)
    for line in reversed(out.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            parsed: dict[str, Any] = json.loads(line)
            return parsed
    raise ProcessingError(f"header of {path.name}: janus-pp-rec printed no JSON")


def duration(path: Path) -> float:
    out = _run([FFPROBE, "-v", "error", "-show_entries", "format=duration", "-of",
                "default=nw=1:nk=1", str(path)], f"duration of {path.name}", timeout=120)
    try:
        return float(out.strip().splitlines()[0])
    except (ValueError, IndexError):
        return 0.0


def convert(task: Task, files: list[Path], work: Path) -> list[Stream]:
    """Step 2: each ``.mjr`` to ``.webm`` (video) or ``.opus`` (audio), with its timing."""
    work.mkdir(parents=True, exist_ok=True)
    streams = []
    for path in files:
        match = MJR_NAME.match(path.name)
        if match is None or match["kind"] == "data":
            continue
        info = header(path)
        kind = "audio" if info.get("t") == "a" else "video"
        target = work / (path.stem + (".opus" if kind == "audio" else ".webm"))
        if not target.exists() or target.stat().st_size == 0:
            partial = target.with_name("part-" + target.name)
            _run([JANUS_PP_REC, str(path), str(partial)], f"converting {path.name}")
            if not partial.exists() or partial.stat().st_size == 0:
                progress(f"skipped {path.name}: no media in it")
                continue
            partial.replace(target)
        first = int(info.get("u") or info.get("s") or int(match["created"]))
        publisher, mid = match["publisher"], match["mid"]
        stream = Stream(publisher=publisher, kind=kind, mid=mid, path=target,
                        first_us=first, duration_s=duration(target),
                        screen=kind == "video" and (publisher in task.screens
                                                    or f"{publisher}:{mid}" in task.screens))
        streams.append(stream)
    progress(f"converted {len(streams)} stream(s)")
    return streams


def place(streams: list[Stream], segments: list[list[int]]) -> float:
    """Give each stream its offset in the composed video; returns the total length.

    Streams are grouped by the segment they started in (the recording's start/stop
    marks); inside a segment they are aligned on their first packets, and each segment
    follows the previous one without the gap between them.
    """
    bounds = segments or [[0, 1 << 62]]
    groups: list[list[Stream]] = [[] for _ in bounds]
    for stream in streams:
        ms = stream.first_us // 1000
        index = 0
        for i, (start, _end) in enumerate(bounds):
            if ms >= start - SLACK_MS:
                index = i
        groups[index].append(stream)
    total = 0.0
    for group in groups:
        if not group:
            continue
        t0 = min(s.first_us for s in group)
        length = 0.0
        for stream in group:
            stream.offset_s = total + (stream.first_us - t0) / 1e6
            length = max(length, (stream.first_us - t0) / 1e6 + stream.duration_s)
        total += length
    return total


def _grid(n: int, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Cells (x, y, w, h) of an n-cell grid filling width × height."""
    cols = 1
    while cols * cols < n:
        cols += 1
    rows = (n + cols - 1) // cols
    w, h = width // cols, height // rows
    return [((i % cols) * w, (i // cols) * h, w - w % 2, h - h % 2) for i in range(n)]


def _intervals(streams: list[Stream]) -> list[tuple[float, float]]:
    return [(s.offset_s, s.offset_s + s.duration_s) for s in streams]


def _during(intervals: list[tuple[float, float]]) -> str:
    return "+".join(f"between(t,{a:.3f},{b:.3f})" for a, b in intervals) or "0"


def filter_graph(streams: list[Stream], total: float) -> tuple[list[str], str, bool]:
    """The ffmpeg inputs and ``-filter_complex`` for ``streams``; whether there is audio.

    Cameras keep one grid cell per publisher for the whole video; while a screen share
    runs, the screen fills the left three quarters and the cameras stack on the right.
    """
    inputs: list[str] = []
    parts: list[str] = [f"color=c=black:s={WIDTH}x{HEIGHT}:r={FPS}:d={total:.3f}[base0]"]
    cameras = sorted({s.camera for s in streams if s.kind == "video" and not s.screen})
    screens = [s for s in streams if s.kind == "video" and s.screen]
    screen_on = _during(_intervals(screens))
    grid = dict(zip(cameras, _grid(max(1, len(cameras)), WIDTH, HEIGHT), strict=False))
    side_w = WIDTH // 4 - (WIDTH // 4) % 2
    side_h = min(HEIGHT // max(1, len(cameras)), side_w * 3 // 4)
    side_h -= side_h % 2
    side = {p: (WIDTH - side_w, i * side_h, side_w, side_h) for i, p in enumerate(cameras)}
    layer = 0
    audio: list[str] = []
    for index, stream in enumerate(streams):
        inputs += ["-i", str(stream.path)]
        if stream.kind == "audio":
            delay = round(stream.offset_s * 1000)
            parts.append(f"[{index}:a]aresample=48000,adelay={delay}|{delay}[a{index}]")
            audio.append(f"[a{index}]")
            continue
        shift = f"setpts=PTS-STARTPTS+{stream.offset_s:.3f}/TB"
        if stream.screen:
            placements = [((0, 0, WIDTH - side_w, HEIGHT), "1")]
        elif screens:
            placements = [(grid[stream.camera], f"not({screen_on})"),
                          (side[stream.camera], screen_on)]
        else:
            placements = [(grid[stream.camera], "1")]
        label = f"v{index}"
        if len(placements) > 1:
            parts.append(f"[{index}:v]{shift},split={len(placements)}"
                         + "".join(f"[{label}s{k}]" for k in range(len(placements))))
            sources = [f"[{label}s{k}]" for k in range(len(placements))]
        else:
            parts.append(f"[{index}:v]{shift}[{label}s0]")
            sources = [f"[{label}s0]"]
        for k, ((x, y, w, h), when) in enumerate(placements):
            scaled = f"{label}c{k}"
            parts.append(f"{sources[k]}scale={w}:{h}:force_original_aspect_ratio=decrease,"
                         f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2[{scaled}]")
            enable = "" if when == "1" else f":enable='{when}'"
            parts.append(f"[base{layer}][{scaled}]overlay={x}:{y}:eof_action=pass"
                         f"{enable}[base{layer + 1}]")
            layer += 1
    parts.append(f"[base{layer}]format=yuv420p[vout]")
    if audio:
        parts.append("".join(audio) + f"amix=inputs={len(audio)}:duration=longest:"
                     f"normalize=0,apad,atrim=0:{total:.3f}[aout]")
    return inputs, ";".join(parts), bool(audio)


def compose(streams: list[Stream], total: float, out: Path) -> None:
    """Step 3: the WebM (VP8 + Opus), written under a temporary name then renamed."""
    inputs, graph, has_audio = filter_graph(streams, total)
    partial = out.with_name("part-" + out.name)
    argv = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *inputs]
    if not has_audio:
        argv += ["-f", "lavfi", "-t", f"{total:.3f}", "-i",
                 "anullsrc=channel_layout=stereo:sample_rate=48000"]
    argv += ["-filter_complex", graph, "-map", "[vout]"]
    argv += ["-map", "[aout]"] if has_audio else ["-map", f"{len(streams)}:a"]
    argv += ["-t", f"{total:.3f}", "-c:v", "libvpx", "-deadline", "realtime",
             "-cpu-used", "8", "-auto-alt-ref", "0", "-b:v", "600k", "-threads", "2", "-c:a", "libopus",
             "-b:a", "64k", "-f", "webm", str(partial)]
    _run(argv, "composing the video")
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    partial.replace(out)
    _fsync_dir(out.parent)
    progress(f"composed {out.name} ({total:.1f} s)")


def preview(video: Path, total: float, out: Path) -> None:
    """Step 4: one frame as PNG."""
    partial = out.with_name("part-" + out.name)
    at = min(2.0, total / 2)
    _run([FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-ss",
          f"{at:.3f}", "-i", str(video), "-frames:v", "1", "-vf", "scale=320:-2",
          "-f", "image2", "-c:v", "png", str(partial)], "the preview image")
    partial.replace(out)


def run(task: Task) -> dict[str, Any]:
    started = time.monotonic()
    dest = Path(task.dest_dir)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProcessingError(f"the recordings directory is not writable: {e}") from e
    if not os.access(dest, os.W_OK):
        raise ProcessingError(f"the recordings directory {dest} is not writable")
    files = move_files(task, dest / "raw")
    if not files:
        raise ProcessingError("no media files were found for this recording")
    streams = convert(task, files, dest / "work")
    if not any(s.kind == "video" for s in streams) and not any(
            s.kind == "audio" for s in streams):
        raise ProcessingError("the media files hold no audio or video")
    total = place(streams, task.segments)
    if total <= 0:
        raise ProcessingError("the recording is empty")
    video = dest / "video.webm"
    if not video.exists():
        compose(streams, total, video)
    image = dest / "preview.png"
    if not image.exists():
        preview(video, total, image)
    shutil.rmtree(dest / "work", ignore_errors=True)
    length = duration(video)
    return {"length_ms": round(length * 1000), "size": video.stat().st_size,
            "participants": len({s.publisher for s in streams}),
            "compose_s": round(time.monotonic() - started, 3)}


def _die_with_parent() -> None:
    """Linux: this worker (and each tool it runs) gets SIGKILL when its parent dies (a
    ``kill -9`` of the service), so a resumed job never races an orphan over the files."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: an orphan may finish its step; a resumed job redoes it


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if argv is None:
        _die_with_parent()
        # Below the service (and its live meetings) for the CPU: the reactor keeps its
        # turns short while a video is composed (children inherit the niceness).
        try:
            os.nice(NICENESS)
        except OSError:
            progress("could not lower the worker's CPU priority")
    if len(args) != 1:
        print("usage: python -m meetplatform.recording.compose JOB.json", file=sys.stderr)
        return 2
    try:
        result = run(Task.load(Path(args[0])))
    except ProcessingError as e:
        print(str(e), file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print("result: " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
