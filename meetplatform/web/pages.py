"""The conference page and its companions, served under ``/client``; assets under ``/static``.

Routes (relative to the ``/client`` mount point):

- ``/join?sessionToken=<token>``: the conference page for the seat that BigBlueButton's
  ``join`` handed out. The browser keeps the token in ``sessionStorage`` and replaces the
  visible URL with ``/client/join?resume=1``, which serves the same page without a token so
  that a reload resumes the seat from ``sessionStorage``.
- ``/ended?reason=<reason>``: where the page goes after leaving, being removed, being
  denied or the meeting ending, when the meeting has no ``logoutURL``.
- anything else: an HTML 404.

Every page carries a strict Content-Security-Policy: scripts and styles come from
``/static`` only (no inline script), the page may connect to itself and to the signalling
socket, nobody but the service itself may frame it.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from string import Template
from urllib.parse import urlsplit, urlunsplit

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from meetplatform.config import Settings
from meetplatform.httpkit import HttpProblem, Problem, UrlGuard, install_error_pages
from meetplatform.model import EndReason, Seat
from meetplatform.registry import Registry
from meetplatform.web.entry import seat_entry
from meetplatform.web.i18n import CATALOGUES
from meetplatform.web.problems import PAGE_WORDS, page_words

__all__ = ["ENDED_REASONS", "StaticAssets", "WebPages"]

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
TEMPLATE_DIR = _HERE / "templates"

#: Session tokens are url-safe base64 (``secrets.token_urlsafe``); anything else is refused.
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{8,128}$")

#: What ``/client/ended?reason=`` says for each reason: (title, explanation).
ENDED_REASONS: dict[str, tuple[str, str]] = {
    "left": ("You left the meeting",
             "You have left the meeting. You can close this window."),
    "removed": ("You were removed from the meeting",
                "A moderator removed you from this meeting."),
    "denied": ("Access denied",
               "A moderator did not let you into this meeting."),
    "replaced": ("You joined from another window",
                 ("You joined this meeting again from another window or device, so this "
                 "window left it.")),
    "full": ("The meeting is full",
             "The meeting has reached its maximum number of participants. Try again later."),
    "invalid": ("This meeting link is not valid any more",
                ("The meeting may be over, or you were removed from it. Ask the meeting's "
                "organiser for a new link.")),
    "ended": ("The meeting has ended", "This meeting is over."),
    EndReason.ENDED_FROM_API.value: ("The meeting has ended",
                                     "The meeting was ended by its organiser."),
    EndReason.ENDED_BY_MODERATOR.value: ("The meeting has ended",
                                         "A moderator ended the meeting for everyone."),
    EndReason.ENDED_WHEN_NOT_JOINED.value: ("The meeting has ended",
                                            "The meeting ended because nobody joined it."),
    EndReason.ENDED_WHEN_LAST_USER_LEFT.value: ("The meeting has ended",
                                                "The meeting ended after everyone left."),
    EndReason.ENDED_AFTER_EXCEEDING_DURATION.value: (
        "The meeting has ended", "The meeting reached its planned duration."),
    EndReason.ENDED_DUE_TO_NO_MODERATOR.value: (
        "The meeting has ended", "The meeting ended because no moderator was present."),
    EndReason.ENDED_BY_PARENT.value: (
        "The meeting has ended", "The main meeting this breakout room belonged to has ended."),
    EndReason.ENDED_DUE_TO_SERVICE_INTERRUPTION.value: (
        "The meeting has ended", "The meeting ended because the service was restarted."),
}

_GENERIC_ENDED = ("You are no longer in the meeting", "You can close this window.")

_CONTENT_TYPES: dict[str, str] = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}

#: Assets other sites load (``embed.js`` runs in the page that embeds a room).
CROSS_ORIGIN_ASSETS = frozenset({"embed.js"})
#: ``Cache-Control`` for an asset requested with its current ``?v=`` content hash.
IMMUTABLE = b"public, max-age=31536000, immutable"
#: ``Cache-Control`` for an asset requested without it: revalidate each time (ETag).
REVALIDATE = b"no-cache"


def _common_headers(request: IRequest) -> None:
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")


@dataclass(frozen=True)
class _Asset:
    body: bytes
    content_type: str
    version: str

    @property
    def etag(self) -> bytes:
        return f'"{self.version}"'.encode()


def _load_assets(directory: Path) -> dict[str, _Asset]:
    """Every file under ``directory`` with a known type, read once, keyed by its relative path.

    Sub-directories are walked (the conference page's ES modules live in
    ``static/conference/``); names starting with a dot, files or directories, are never
    served, and symbolic links to directories are not followed (no loop, nothing from
    outside the package). Serving from this table, never from the file system, is what
    makes traversal impossible: a request can only name a key that is here.
    """
    assets: dict[str, _Asset] = {}
    if directory.is_dir():
        _collect_assets(directory, "", assets)
    return assets


def _collect_assets(directory: Path, prefix: str, assets: dict[str, _Asset]) -> None:
    for path in sorted(directory.iterdir()):
        if path.name.startswith("."):
            continue
        if path.is_dir():
            if not path.is_symlink():
                _collect_assets(path, f"{prefix}{path.name}/", assets)
            continue
        content_type = _CONTENT_TYPES.get(path.suffix.lower())
        if not path.is_file() or content_type is None:
            continue
        body = path.read_bytes()
        version = hashlib.sha256(body).hexdigest()[:16]
        assets[prefix + path.name] = _Asset(body=body, content_type=content_type,
                                            version=version)


def _asset_name(postpath: list[bytes]) -> str | None:
    """The asset key a request's path segments name, or ``None`` for anything suspicious.

    Twisted has already percent-decoded each segment, so ``%2e%2e`` arrives as ``..`` and
    ``%2f`` as a ``/`` inside a segment: empty, dot-led (``.``, ``..``, dotfiles), non-UTF-8
    segments and segments holding a separator are refused before the table lookup.
    """
    segments: list[str] = []
    for raw in postpath:
        try:
            segment = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None
        if (not segment or segment.startswith(".")
                or any(c in segment for c in "/\\\0")):
            return None
        segments.append(segment)
    return "/".join(segments) if segments else None


def _html_error_body(settings: Settings, status: int, title: str, text: str) -> bytes:
    """A small self-contained HTML error page (no assets needed)."""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{html.escape(title)} · {html.escape(settings.server_name)}</title></head>"
        f"<body><main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>"
        f"<p><small>HTTP {status}</small></p></main></body></html>"
    ).encode()


class StaticAssets(Resource):
    """``/static/<path>``: the page's CSS, JavaScript and images, held in memory.

    Content types are explicit (``text/javascript`` for ``.js``, which browsers require
    of module scripts), every response has an ``ETag`` (304 on a match), and a request
    carrying the file's current content hash as ``?v=`` may be cached for a year; without
    it the browser revalidates each time. That is how the conference page's modules
    (``conference/*.js``, imported by ``conference.js`` without a hash) stay fresh.
    Files in sub-directories are served by their relative path; directories, dotfiles,
    traversal attempts and unknown names get an HTML 404.
    """

    isLeaf = True

    def __init__(self, settings: Settings, directory: Path = STATIC_DIR) -> None:
        super().__init__()
        self._settings = settings
        self.assets = _load_assets(directory)

    def version(self, name: str) -> str:
        asset = self.assets.get(name)
        return asset.version if asset is not None else "0"

    def render(self, request: IRequest) -> bytes:  # type: ignore[override]
        _common_headers(request)
        method = request.method
        if method not in (b"GET", b"HEAD"):
            request.setResponseCode(405)
            request.setHeader(b"allow", b"GET, HEAD")
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return _html_error_body(self._settings, 405, "Method not allowed",
                                    "Static files can only be read.")
        name = _asset_name(list(getattr(request, "postpath", [])))
        asset = self.assets.get(name) if name is not None else None
        if asset is None:
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            request.setHeader(b"cache-control", b"no-store")
            return _html_error_body(self._settings, 404, "Not found",
                                    "There is no such file.")
        request.setHeader(b"content-type", asset.content_type.encode())
        request.setHeader(b"etag", asset.etag)
        wanted = request.args.get(b"v", [b""])[0] if request.args else b""
        request.setHeader(b"cache-control",
                          IMMUTABLE if wanted == asset.version.encode() else REVALIDATE)
        if name in CROSS_ORIGIN_ASSETS:
            request.setHeader(b"cross-origin-resource-policy", b"cross-origin")
            request.setHeader(b"access-control-allow-origin", b"*")
        else:
            request.setHeader(b"cross-origin-resource-policy", b"same-origin")
        inm = request.getHeader(b"if-none-match")
        if inm is not None and asset.etag in [t.strip() for t in inm.split(b",")]:
            request.setResponseCode(304)
            return b""
        request.setHeader(b"content-length", str(len(asset.body)).encode())
        if method == b"HEAD":
            return b""
        return asset.body


class WebPages:
    """The conference page (``/client/join``), the ended page and the static assets."""

    app = Klein()

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry) -> None:
        self.clock = clock
        self.settings = settings
        self.registry = registry
        self.static = StaticAssets(settings)
        self._conference = Template((TEMPLATE_DIR / "conference.html").read_text("utf-8"))
        self._message = Template((TEMPLATE_DIR / "message.html").read_text("utf-8"))
        parts = urlsplit(settings.public_url)
        self._base_path = parts.path.rstrip("/")
        ws_scheme = "wss" if parts.scheme == "https" else "ws"
        self.ws_url = urlunsplit((ws_scheme, parts.netloc, self._base_path + "/ws", "", ""))
        self._ws_origin = f"{ws_scheme}://{parts.netloc}"

    # --- mounting -----------------------------------------------------------------------

    def resource(self) -> IResource:
        """The resource to mount at ``/client``."""
        # These pages accept URLs up to the configured query size; the invitation and
        # embed pages cap them at httpkit.MAX_URI_BYTES as well. A query that is not
        # UTF-8 is refused here (meetplatform.text: refused, not repaired).
        return UrlGuard(self.app.resource(), self.answer_problem,
                        max_uri_bytes=self.settings.max_query_bytes,
                        max_query_bytes=self.settings.max_query_bytes, check_query=True)

    def static_resource(self) -> IResource:
        """The resource to mount at ``/static``."""
        return self.static

    # --- helpers ------------------------------------------------------------------------

    @property
    def static_url(self) -> str:
        return self._base_path + "/static"

    def content_security_policy(self, *, scripts: bool) -> str:
        """The page's CSP: same-origin assets only, the signalling socket, no framing."""
        directives = [
            "default-src 'none'",
            "script-src 'self'" if scripts else "script-src 'none'",
            "style-src 'self'",
            "img-src 'self' data: blob: https:",
            "media-src 'self' blob: mediastream:",
            "connect-src 'self' " + self._ws_origin if scripts else "connect-src 'none'",
            "font-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'self'",
        ]
        return "; ".join(directives)

    def _page_headers(self, request: IRequest, *, scripts: bool) -> None:
        _common_headers(request)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"content-security-policy",
                          self.content_security_policy(scripts=scripts).encode())
        request.setHeader(b"cross-origin-opener-policy", b"same-origin")
        request.setHeader(b"permissions-policy",
                          b"camera=(self), microphone=(self), display-capture=(self), "
                          b"fullscreen=(self), autoplay=(self)")

    def _render_message(self, *, title: str, heading: str, text: str, reason: str = "",
                        extra: str = "", lang: str = "en") -> bytes:
        """The message page, its fixed English sentences said in ``lang``."""
        title, heading, text = (CATALOGUES.english(lang, s) for s in (title, heading, text))
        return self._message.substitute(
            lang=html.escape(lang),
            dir=CATALOGUES.direction(lang),
            title=html.escape(f"{title} · {self.settings.server_name}"),
            heading=html.escape(heading),
            text=html.escape(text),
            reason=html.escape(reason),
            extra=extra,
            static_url=html.escape(self.static_url),
            css_version=self.static.version("conference.css"),
            favicon_version=self.static.version("favicon.svg"),
        ).encode("utf-8")

    def error(self, request: IRequest, status: int, heading: str, text: str) -> bytes:
        """An HTML error page with ``status``."""
        request.setResponseCode(status)
        self._page_headers(request, scripts=False)
        return self._render_message(title=heading, heading=heading, text=text,
                                    reason=f"http-{status}",
                                    lang=CATALOGUES.for_request(request))

    def render_conference(self, request: IRequest, *, title: str,
                          seat: Seat | None = None) -> bytes:
        """The conference page shell; the script joins with the stored session token.

        The static text is in the seat's language (``userdata-bbb_override_default_locale``)
        or the browser's; the seat's pre-join settings go in as JSON (``mp-seat``)."""
        self._page_headers(request, scripts=True)
        entry = seat_entry(seat) if seat is not None else None
        lang = CATALOGUES.for_request(request, entry["locale"] if entry else None)
        return self.conference_shell(
            lang=lang, title=title, ended_url=self._base_path + "/client/ended",
            seat_json=json.dumps(entry) if entry else "").encode("utf-8")

    def conference_shell(self, *, lang: str, title: str, ended_url: str,
                         seat_json: str = "") -> str:
        """The conference template filled in and translated (also the embed page's base)."""
        page = self._conference.substitute(
            lang=html.escape(lang),
            dir=CATALOGUES.direction(lang),
            languages=html.escape(" ".join(CATALOGUES.languages)),
            seat=html.escape(seat_json),
            title=html.escape(title),
            heading=html.escape(title),
            ws_url=html.escape(self.ws_url),
            ended_url=html.escape(ended_url),
            join_url=html.escape(self._base_path + "/client/join"),
            static_url=html.escape(self.static_url),
            js_version=self.static.version("conference.js"),
            css_version=self.static.version("conference.css"),
            favicon_version=self.static.version("favicon.svg"),
        )
        return CATALOGUES.localise_html(page, lang)

    @staticmethod
    def _arg(request: IRequest, name: bytes) -> str | None:
        values = (request.args or {}).get(name)
        if not values:
            return None
        return values[0].decode("utf-8")  # the URL guard refused a query that is not UTF-8

    # --- routes -------------------------------------------------------------------------

    @app.route("/join", methods=["GET"])
    def join(self, request: IRequest) -> bytes:
        """The conference page for a session token (or the resume shell)."""
        token = self._arg(request, b"sessionToken")
        if token is None:
            if self._arg(request, b"resume") is not None:
                return self.render_conference(request, title=self.settings.server_name)
            return self.error(
                request, 400, "This meeting link is incomplete",
                "The link has no session token. Open the meeting through the link your "
                "organiser or learning platform gave you.")
        if not _TOKEN_RE.match(token):
            return self.error(request, 400, "This meeting link is not valid",
                              "The session token in the link is malformed.")
        seat = self.registry.seat_for_token(token)
        if seat is None or seat.revoked:
            return self.error(
                request, 404, "This meeting link is not valid any more",
                "The meeting may be over, or the link was replaced by a newer one. Ask the "
                "meeting's organiser for a new link.")
        return self.render_conference(
            request, title=f"{seat.meeting.name} · {self.settings.server_name}", seat=seat)

    @app.route("/ended", methods=["GET"])
    def ended(self, request: IRequest) -> bytes:
        """Where a participant lands after the meeting is over for them."""
        reason = self._arg(request, b"reason") or ""
        title, text = ENDED_REASONS.get(reason, _GENERIC_ENDED)
        self._page_headers(request, scripts=False)
        known = reason if reason in ENDED_REASONS else ""
        return self._render_message(title=title, heading=title, text=text, reason=known,
                                    lang=CATALOGUES.for_request(request))

    @app.route("/", branch=True)
    def anything_else(self, request: IRequest) -> bytes:
        """Every other address under ``/client`` (and other methods on the pages)."""
        if request.method not in (b"GET", b"HEAD") and request.path.rstrip(b"/").endswith(
                (b"/client/join", b"/client/ended")):
            request.setHeader(b"allow", b"GET, HEAD")
            return self.error(request, 405, *PAGE_WORDS[Problem.METHOD_NOT_ALLOWED])
        return self.not_found(request)

    def not_found(self, request: IRequest) -> bytes:
        return self.error(request, 404, *PAGE_WORDS[Problem.NOT_FOUND])

    # --- errors: the kit's handlers, in the pages' words --------------------------------

    def answer_problem(self, request: IRequest, problem: HttpProblem) -> bytes:
        """An HTML error page for what the URL guard or Klein's routing refused, or a
        failure (logged by the kit)."""
        if problem.problem is Problem.METHOD_NOT_ALLOWED:
            request.setHeader(b"allow", b"GET, HEAD")
        return self.error(request, problem.status, *page_words(problem))

    install_error_pages(app, answer_problem, surface="conference page")
