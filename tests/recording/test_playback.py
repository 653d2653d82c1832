"""``/playback/video/<recordID>/`` in process: states, files, ranges, signatures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
import treq
from twisted.web.resource import Resource
from twisted.web.server import Site

from meetplatform.recording.catalogue import StoreRecordings
from meetplatform.recording.links import PlaybackLinks
from meetplatform.recording.playback import PlaybackResource
from meetplatform.store import Store
from meetplatform.store import recordings_db as rdb
from meetplatform.store.database import Database
from tests.support import PUBLIC_URL, SECRET, make_clock, run


class Got:
    def __init__(self, response: Any, body: bytes) -> None:
        self.code = response.code
        self.headers = response.headers
        self.body = body

    def text(self) -> str:
        return self.body.decode()


class Server:
    """The resource on a real loopback socket (static files stream through a producer)."""

    def __init__(self, root: Resource) -> None:
        from twisted.internet import reactor

        listener: Any = reactor
        self.port: Any = listener.listenTCP(0, Site(root), interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}/playback/video"

    async def close(self) -> None:
        await self.port.stopListening()

    async def fetch(self, method: str, path: str, **kwargs: Any) -> Got:
        response = await treq.request(method, self.base + path, persistent=False, **kwargs)
        return Got(response, await response.content())


def setup(tmp_path: Path, protected: int = 0) -> tuple[Server, Store, PlaybackLinks]:
    clock = make_clock()
    store = Store.open_inline(tmp_path)
    links = PlaybackLinks(clock, PUBLIC_URL, SECRET, protected)
    catalogue = StoreRecordings(clock, store, links)
    row = rdb.RecordingRow("r-1", "m1", "r-1", "Course <1>", False, "processing", True,
                           1, 2, 1, segments=((1, 2),))

    def made(db: Database) -> None:
        rdb.add_recording(db, row, 1)
        [job] = rdb.jobs(db)
        rdb.finish_processing(db, "r-1", length_ms=1000, size=4, processing_ms=1,
                              participants=1, job_id=job.id, now=2)

    run(store.run(made))
    (tmp_path / "recordings" / "r-1").mkdir(parents=True)
    (tmp_path / "recordings" / "r-1" / "video.webm").write_bytes(bytes(range(256)) * 4)
    root = Resource()
    root.putChild(b"playback", PlaybackResource(catalogue, tmp_path / "recordings"))
    return Server(root), store, links


@pytest_twisted.ensureDeferred
async def test_page_file_and_ranges(tmp_path: Path) -> None:
    http, store, _ = setup(tmp_path)
    page = await http.fetch("GET", "/r-1/")
    assert page.code == 200
    body = page.text()
    assert 'src="video.webm"' in body and "Course &lt;1&gt;" in body
    assert b"default-src 'none'" in page.headers.getRawHeaders(
        b"content-security-policy")[0]
    moved = await http.fetch("GET", "/r-1", allow_redirects=False)
    assert moved.code == 301 and moved.headers.getRawHeaders(b"location") == [b"r-1/"]
    video = await http.fetch("GET", "/r-1/video.webm")
    assert video.code == 200 and video.headers.getRawHeaders(b"content-type") == [
        b"video/webm"]
    assert len(video.body) == 1024
    part = await http.fetch("GET", "/r-1/video.webm", headers={b"range": [b"bytes=10-19"]})
    assert part.code == 206
    assert part.headers.getRawHeaders(b"content-range") == [b"bytes 10-19/1024"]
    assert part.body == bytes(range(10, 20))
    assert (await http.fetch("GET", "/r-1/preview.png")).code == 404  # not made here
    assert (await http.fetch("GET", "/nope/")).code == 404
    assert (await http.fetch("GET", "/r-1/other.txt")).code == 404
    assert (await http.fetch("POST", "/r-1/", data=b"")).code == 405
    run(store.run(lambda db: rdb.set_published(db, ["r-1"], False, 3)))
    assert (await http.fetch("GET", "/r-1/video.webm")).code == 404
    assert (await http.fetch("GET", "/r-1/")).code == 404
    await http.close()


@pytest_twisted.ensureDeferred
async def test_protected_playback_needs_a_valid_signature(tmp_path: Path) -> None:
    http, _, links = setup(tmp_path, protected=60)
    assert (await http.fetch("GET", "/r-1/video.webm")).code == 403
    signed = links.page("r-1").split("?", 1)[1]
    assert (await http.fetch("GET", f"/r-1/video.webm?{signed}")).code == 200
    page = await http.fetch("GET", f"/r-1/?{signed}")
    assert f'src="video.webm?{signed.replace("&", "&amp;")}"' in page.text()
    assert (await http.fetch("GET", f"/r-2/video.webm?{signed}")).code == 403
    await http.close()
