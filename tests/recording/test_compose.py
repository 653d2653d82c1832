"""The worker on real ``.mjr`` files: two Chromium publishers recorded by a real Janus for
12 s, then (after 3 s off) 8 s more: two segments, 20 s recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from meetplatform.recording import compose
from tests.recording.media import ROOM, RecordedMeeting, needs_tools

pytestmark = needs_tools


def probe(path: Path) -> tuple[float, list[str]]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration:stream=codec_type",
         "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    return float(info["format"]["duration"]), sorted(s["codec_type"] for s in info["streams"])


def task(recorded: RecordedMeeting, tmp_path: Path, **extra: object) -> compose.Task:
    node = recorded.copy_to(tmp_path / "node")
    fields: dict[str, object] = {
        "record_id": "r-1", "source_dir": str(node), "room": str(ROOM),
        "segments": recorded.segments, "dest_dir": str(tmp_path / "out" / "r-1")}
    fields.update(extra)
    return compose.Task(**fields)  # type: ignore[arg-type]


def test_two_segments_make_one_video_of_the_recorded_time(
        recorded: RecordedMeeting, tmp_path: Path) -> None:
    job = task(recorded, tmp_path)
    result = compose.run(job)
    span = sum(end - start for start, end in recorded.segments) / 1000
    duration, streams = probe(Path(job.dest_dir) / "video.webm")
    assert streams == ["audio", "video"]
    assert abs(duration - span) <= 2.0, (duration, span)
    assert result["participants"] == recorded.publishers
    assert (Path(job.dest_dir) / "preview.png").read_bytes()[:4] == b"\x89PNG"
    # moved off the node; a second run (a resumed job) finds everything done
    assert list(Path(str(job.source_dir)).glob("*.mjr")) == []
    raw = sorted(p.name for p in (Path(job.dest_dir) / "raw").iterdir())
    assert len(raw) == 4 * recorded.publishers  # audio + video per publisher and segment
    before = (Path(job.dest_dir) / "video.webm").stat().st_mtime_ns
    assert compose.run(job)["length_ms"] == result["length_ms"]
    assert (Path(job.dest_dir) / "video.webm").stat().st_mtime_ns == before


def test_a_screen_share_takes_the_main_area(recorded: RecordedMeeting,
                                            tmp_path: Path) -> None:
    first = next(Path(recorded.node_dir).glob("*-video-*.mjr")).name
    publisher = compose.MJR_NAME.match(first)["publisher"]  # type: ignore[index]
    job = task(recorded, tmp_path, screens=[publisher])
    compose.run(job)
    duration, streams = probe(Path(job.dest_dir) / "video.webm")
    assert streams == ["audio", "video"]
    span = sum(end - start for start, end in recorded.segments) / 1000
    assert abs(duration - span) <= 2.0


def test_the_worker_process_reports_a_failure_on_stderr(tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"record_id": "r", "source_dir": str(tmp_path / "none"),
                               "room": "1", "segments": [[0, 1]],
                               "dest_dir": str(tmp_path / "out")}))
    done = subprocess.run([sys.executable, "-m", "meetplatform.recording.compose", str(job)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1
    assert "is not reachable" in done.stderr.strip().splitlines()[-1]
