"""``/playback/video/<recordID>/``: the playback page, the video file and its preview.

* ``/playback/video/<recordID>/``: an HTML page with a ``<video>`` (strict CSP: no
  script, media and images from this origin only);
* ``/playback/video/<recordID>/video.webm``: the file, served by Twisted's
  :class:`~twisted.web.static.File`, which answers HTTP range requests (``206``,
  ``Content-Range``, ``Accept-Ranges: bytes``) with ``Content-Type: video/webm``;
* ``/playback/video/<recordID>/preview.png``.

Only a published recording plays: an unknown, unpublished, deleted or unprocessed one
answers 404. Under protected playback every request needs a valid signature (403
otherwise; see :mod:`meetplatform.recording.links`). The recording's state is read from
the store for each request (off the reactor thread), so publishing and deleting apply at
once.
"""

from __future__ import annotations

import html
from pathlib import Path

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from twisted.web.static import File

from meetplatform.recording.catalogue import StoreRecordings

_log = Logger()

_FILES = {b"video.webm": "video/webm", b"preview.png": "image/png"}

_CSP = ("default-src 'none'; media-src 'self'; img-src 'self'; style-src 'unsafe-inline'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors *")


def _text_answer(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return (message + "\n").encode()


class PlaybackResource(Resource):
    """``/playback``: only ``video/<recordID>/[video.webm|preview.png]``."""

    isLeaf = True

    def __init__(self, recordings: StoreRecordings, recordings_dir: Path) -> None:
        super().__init__()
        self._recordings = recordings
        self._dir = recordings_dir

    def render(self, request: Request) -> int | bytes:  # type: ignore[override]
        path = list(request.postpath or [])
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return _text_answer(request, 405, "use GET or HEAD")
        if len(path) < 2 or path[0] != b"video" or not path[1]:
            return _text_answer(request, 404, "no such recording")
        try:
            record_id = path[1].decode("ascii")
        except UnicodeDecodeError:
            return _text_answer(request, 404, "no such recording")
        rest = path[2:]
        if not rest:  # the page's relative links need the trailing slash
            request.setResponseCode(301)
            query = request.uri.partition(b"?")[2]
            request.setHeader(b"location", path[1] + b"/" + (b"?" + query if query else b""))
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"moved to the page with a trailing slash\n"
        if rest == [b""]:
            item = b""
        elif len(rest) == 1 and rest[0] in _FILES:
            item = rest[0]
        else:
            return _text_answer(request, 404, "no such recording file")
        if "/" in record_id or record_id.startswith("."):
            return _text_answer(request, 404, "no such recording")
        args = request.args or {}
        expires = (args.get(b"expires") or [b""])[0].decode("ascii", "replace")
        sig = (args.get(b"sig") or [b""])[0].decode("ascii", "replace")
        refused = self._recordings.links.check(record_id, expires or None, sig or None)
        if refused is not None:
            _log.info("playback of {id} refused: {why}", id=record_id, why=refused)
            return _text_answer(request, 403, refused)
        d = Deferred.fromCoroutine(self._recordings.get(record_id))
        d.addCallback(self._serve, request, record_id, item, expires, sig)
        d.addErrback(self._failed, request, record_id)
        return NOT_DONE_YET

    def _serve(self, row: object, request: Request, record_id: str, item: bytes,
               expires: str, sig: str) -> None:
        from meetplatform.store.recordings_db import RecordingRow

        if request.finished or request._disconnected:
            return
        if not isinstance(row, RecordingRow) or row.state != "published":
            request.write(_text_answer(request, 404, "no such recording"))
            request.finish()
            return
        if item:
            path = self._dir / record_id / item.decode()
            if not path.is_file():
                request.write(_text_answer(request, 404, "no such recording file"))
                request.finish()
                return
            resource = File(str(path), defaultType=_FILES[item])
            resource.type = _FILES[item]
            resource.encoding = None
            request.setHeader(b"cache-control", b"private, max-age=300")
            body = resource.render(request)
            if body != NOT_DONE_YET:
                request.write(body)
                request.finish()
            return
        query = f"?expires={expires}&sig={sig}" if expires and sig else ""
        title = html.escape(row.name)
        page = (
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{title}</title><style>body{{margin:0;background:#111;color:#eee;"
            "font:16px system-ui,sans-serif}main{max-width:960px;margin:auto;padding:1em}"
            "video{width:100%;background:#000}</style></head><body><main>"
            f"<h1>{title}</h1>"
            f"<video controls preload=\"metadata\" poster=\"preview.png{html.escape(query)}\""
            f" src=\"video.webm{html.escape(query)}\"></video>"
            f"<p><a href=\"video.webm{html.escape(query)}\" download>Download (WebM)</a></p>"
            "</main></body></html>\n")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"content-security-policy", _CSP.encode())
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        if request.method == b"HEAD":
            request.setHeader(b"content-length", str(len(page.encode())).encode())
            request.finish()
            return
        request.write(page.encode())
        request.finish()

    def _failed(self, failure: object, request: Request, record_id: str) -> None:
        _log.failure("playback of {id} failed", failure, id=record_id)  # type: ignore[arg-type]
        if not request.finished and not request._disconnected:
            request.write(_text_answer(request, 503, "the recordings are not available"))
            request.finish()
