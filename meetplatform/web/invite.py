"""The invitation link ``/j/<token>``: an interstitial page that never consumes the token.

Routes (relative to the ``/j`` mount point):

- ``GET /j/<token>`` shows what the invitation grants (the room's name, the role, the name
  the person will have) and a *Join* button. It consumes nothing: mail scanners and link
  previews fetch links, and the invitation must survive them. Invitations that cannot be
  used any more get their own page and status: unknown ``404``, expired ``410``, revoked
  ``410``, already used ``409``, not valid yet ``409``.
- ``POST /j/`` (the page's form: the token travels in the body, not in the URL) consumes
  one use atomically (:meth:`Invitations.activate`) and answers ``303`` to the conference
  page. Of simultaneous activations of a single-use invitation exactly one wins; the
  others get the "already used" page. An invitation to a whole space lets the person pick
  one of the space's rooms.

There are no cookies and no sessions, so there is nothing for a cross-site request to
ride on: the form carries the invitation's secret itself, which is the only thing that
authorises the join. The conference page keeps the seat's session token in
``sessionStorage``, so reloading it does not need the invitation again.

This module also holds what the invitation page and the embed page (``meetplatform.web.
embed``) share: HTML message pages with a chosen ``frame-ancestors``, bounded bodies, a
per-address rate limit, the wording of refusals, and the URL guard and error pages of
:mod:`meetplatform.httpkit` in these pages' words.

Why one module of this size: the invitation pages and the small kit they share with the
embed page (the limiter, the page problems) are one surface.
"""

from __future__ import annotations

import html
import math
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Template

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from meetplatform import invitations as inv
from meetplatform import model as reg
from meetplatform.clientaddr import client_address
from meetplatform.config import Settings
from meetplatform.httpkit import (
    MAX_URI_BYTES,
    DirectRoute,
    HttpProblem,
    Problem,
    UrlGuard,
    install_error_pages,
)
from meetplatform.invitations import Invitations, InvitationView
from meetplatform.registry import Registry
from meetplatform.store import RoomRecord, Store
from meetplatform.store.database import USER_TOKEN_PREFIX
from meetplatform.text import BadText, parse_form
from meetplatform.web.i18n import CATALOGUES
from meetplatform.web.pages import TEMPLATE_DIR, WebPages
from meetplatform.web.problems import page_words

_log = Logger()

__all__ = ["InvitePages", "PageKit", "Refusal", "describe_refusal"]

#: An invitation secret as the store issues it (anything else is "not valid").
TOKEN_RE = re.compile(rf"^{re.escape(USER_TOKEN_PREFIX)}[A-Za-z0-9_\-]{{8,120}}$")
#: Largest request body the pages read (a form or a small JSON object).
MAX_BODY_BYTES = 8 * 1024
MAX_NAME_CHARS = 200
#: Activations and joins per client address (per second, burst): enough for a
#: classroom behind one NAT, not for guessing.
PAGE_RATE = 5.0
PAGE_BURST = 60

ROLE_TEXT = {
    "moderator": "as a moderator",
    "participant": "as a participant",
    "viewer": "as a viewer (you can watch and listen)",
}


# --- refusals, in words ---------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """Why an invitation or a join was refused: an HTTP status, a stable code, and text."""

    status: int
    code: str
    title: str
    text: str


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def describe_refusal(error: Exception) -> Refusal:
    """The page (or JSON) answer for a domain refusal of an invitation or a room entry."""
    at = _when(getattr(error, "at", None))
    if isinstance(error, inv.InvitationNotFound):
        return Refusal(404, error.code, "This invitation link is not valid",
                       "Check that you opened the whole link, or ask whoever invited you "
                       "for a new one.")
    if isinstance(error, inv.InvitationExpired):
        return Refusal(410, error.code, "This invitation has expired",
                       (f"It was valid until {at}. " if at else "")
                       + "Ask whoever invited you for a new invitation.")
    if isinstance(error, inv.InvitationRevoked):
        return Refusal(410, error.code, "This invitation was withdrawn",
                       "Whoever invited you cancelled this invitation. Ask them for a new "
                       "one if you still need to join.")
    if isinstance(error, inv.InvitationUsed):
        return Refusal(409, error.code, "This invitation was already used",
                       "An invitation works only as many times as it allows. If you joined "
                       "with it already, go back to the meeting's window (reloading it "
                       "keeps you in); otherwise ask for a new invitation.")
    if isinstance(error, inv.InvitationNotYetValid):
        return Refusal(409, error.code, "This invitation is not valid yet",
                       f"You can use it from {at} on." if at else
                       "Try again later.")
    if isinstance(error, inv.DisplayNameRequired):
        return Refusal(422, error.code, "Your name is needed",
                       "Enter the name the other participants will see (1 to 200 "
                       "characters).")
    if isinstance(error, inv.RoomNotFound):
        return Refusal(404, error.code, "There is no such room",
                       "The room may have been deleted, or the link is incomplete.")
    if isinstance(error, inv.RoomNotOpenYet):
        return Refusal(409, error.code, "The room is not open yet",
                       f"It opens at {at}." if at else "Try again later.")
    if isinstance(error, inv.RoomExpired):
        return Refusal(410, error.code, "The room is closed",
                       "This room is no longer available.")
    if isinstance(error, inv.RoomNotPublic):
        return Refusal(403, error.code, "This room needs an invitation",
                       "Only people with an invitation can join this room.")
    if isinstance(error, reg.MaxParticipantsReached):
        return Refusal(409, "meeting.full", "The meeting is full",
                       "The meeting has reached its maximum number of participants. Your "
                       "invitation was not used up: try again later.")
    if isinstance(error, reg.GuestDeniedAccess):
        return Refusal(403, "meeting.guestDenied", "Access denied",
                       "The meeting does not let guests in.")
    if isinstance(error, reg.MeetingForciblyEnded):
        return Refusal(410, "meeting.ended", "The meeting was ended",
                       "A moderator ended this meeting; it cannot be joined again now.")
    if isinstance(error, reg.RegistryError):
        return Refusal(409, "meeting.refused", "You cannot join right now",
                       str(error) or "The meeting refused the request.")
    return Refusal(400, "request.invalid", "Request refused", str(error) or "")


# --- what the pages share -------------------------------------------------------------------


class AddressLimiter:
    """Token buckets per client address on the injected clock; the least recently seen
    addresses are forgotten past ``max_keys``."""

    def __init__(self, clock: IReactorTime, rate: float = PAGE_RATE, burst: int = PAGE_BURST,
                 max_keys: int = 100_000) -> None:
        self._clock = clock
        self._rate = rate
        self._burst = float(burst)
        self._max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        #: Requests refused since start (the metrics read it).
        self.refused = 0

    def take(self, key: str) -> float | None:
        """``None`` if ``key`` may go on, else the seconds until it may."""
        now = self._clock.seconds()
        tokens, updated = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + max(0.0, now - updated) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        if allowed:
            return None
        self.refused += 1
        return (1.0 - tokens) / self._rate


class BadRequest(Exception):
    """A request the pages refuse before any domain code runs."""

    def __init__(self, status: int, title: str, text: str) -> None:
        super().__init__(title)
        self.status = status
        self.title = title
        self.text = text


class PageKit:
    """Rendering and input handling shared by the invitation and embed pages."""

    def __init__(self, clock: IReactorTime, settings: Settings, pages: WebPages) -> None:
        self.clock = clock
        self.settings = settings
        self.pages = pages
        self.limiter = AddressLimiter(clock)
        self._message = Template((TEMPLATE_DIR / "message.html").read_text("utf-8"))

    @property
    def base_path(self) -> str:
        return self.pages.static_url.removesuffix("/static")

    def asset(self, name: str) -> str:
        """The versioned URL of a static asset (cacheable for a year)."""
        return f"{self.pages.static_url}/{name}?v={self.pages.static.version(name)}"

    def csp(self, *, scripts: bool, frame_ancestors: str = "'self'") -> str:
        """The conference pages' policy with ``frame-ancestors`` replaced."""
        directives = [d.strip() for d in
                      self.pages.content_security_policy(scripts=scripts).split(";")]
        kept = [d for d in directives if d and not d.startswith("frame-ancestors")]
        return "; ".join([*kept, f"frame-ancestors {frame_ancestors}"])

    def headers(self, request: IRequest, *, scripts: bool,
                frame_ancestors: str = "'self'") -> None:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"content-security-policy",
                          self.csp(scripts=scripts, frame_ancestors=frame_ancestors).encode())
        request.setHeader(b"cross-origin-opener-policy", b"same-origin-allow-popups")
        request.setHeader(b"permissions-policy",
                          b"camera=(self), microphone=(self), display-capture=(self), "
                          b"fullscreen=(self), autoplay=(self)")

    def message(self, request: IRequest, status: int, title: str, text: str, *,
                reason: str = "", extra: str = "", frame_ancestors: str = "'self'") -> bytes:
        """An HTML page with a heading, a paragraph and optional extra markup."""
        request.setResponseCode(status)
        self.headers(request, scripts=False, frame_ancestors=frame_ancestors)
        stylesheet = f'<link rel="stylesheet" href="{html.escape(self.asset("invite.css"))}">'
        lang = CATALOGUES.for_request(request)
        title, text = CATALOGUES.english(lang, title), CATALOGUES.english(lang, text)
        return self._message.substitute(
            lang=html.escape(lang),
            dir=CATALOGUES.direction(lang),
            title=html.escape(f"{title} · {self.settings.server_name}"),
            heading=html.escape(title),
            text=html.escape(text),
            reason=html.escape(reason or f"http-{status}"),
            extra=stylesheet + extra,
            static_url=html.escape(self.pages.static_url),
            css_version=self.pages.static.version("conference.css"),
            favicon_version=self.pages.static.version("favicon.svg"),
        ).encode("utf-8")

    def refusal(self, request: IRequest, refusal: Refusal, *, extra: str = "",
                frame_ancestors: str = "'self'") -> bytes:
        return self.message(request, refusal.status, refusal.title, refusal.text,
                            reason=refusal.code, extra=extra, frame_ancestors=frame_ancestors)

    # --- input --------------------------------------------------------------------------

    def body(self, request: IRequest) -> bytes:
        """The request body, at most :data:`MAX_BODY_BYTES` (413 otherwise)."""
        raw = request.getHeader(b"content-length")
        if raw is not None and raw.strip().isdigit() and int(raw) > MAX_BODY_BYTES:
            raise BadRequest(413, "Request too large", "The form sent is too large.")
        content = request.content
        if content is None:
            return b""
        content.seek(0)
        data: bytes = content.read(MAX_BODY_BYTES + 1)
        if len(data) > MAX_BODY_BYTES:
            raise BadRequest(413, "Request too large", "The form sent is too large.")
        return data

    def form(self, request: IRequest) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body; repeated fields are refused."""
        media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if media != b"application/x-www-form-urlencoded":
            raise BadRequest(415, "Unsupported form", "Send the form from the invitation page.")
        try:
            pairs = parse_form(self.body(request), max_num_fields=20)
        except BadText as e:  # refused, not repaired (meetplatform.text)
            field = f"The field {e.where}" if e.where else "The form"
            raise BadRequest(400, "Bad form",
                             f"{field} holds text that is not valid Unicode (bad UTF-8). "
                             "Nothing was used; send the form again from the invitation "
                             "page.") from None
        except ValueError:
            raise BadRequest(400, "Bad form", "The form sent could not be read.") from None
        out: dict[str, str] = {}
        for name, value in pairs:
            if name in out:
                raise BadRequest(400, "Bad form", f"The field {name} was sent twice.")
            out[name] = value
        return out

    def rate_limit(self, request: IRequest) -> None:
        wait = self.limiter.take(
            "ip:" + client_address(request, self.settings.trusted_proxies))
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            request.setHeader(b"retry-after", str(seconds).encode())
            raise BadRequest(429, "Too many attempts",
                             f"Please wait {seconds} seconds and try again.")

    # --- refusals -------------------------------------------------------------------------

    def guard(self, inner: IResource,
              answer: Callable[[IRequest, HttpProblem], bytes]) -> IResource:
        """The URL guard in front of a page's routes (URLs up to the configured query
        size and at most :data:`~meetplatform.httpkit.MAX_URI_BYTES`; queries in UTF-8)."""
        return UrlGuard(inner, answer,
                        max_uri_bytes=min(self.settings.max_query_bytes, MAX_URI_BYTES),
                        max_query_bytes=self.settings.max_query_bytes, check_query=True)

    def problem(self, request: IRequest, problem: HttpProblem, *, not_allowed: str) -> bytes:
        """The page for a refused URL, a routing error or a failure; ``not_allowed`` is
        the page's own words for a method it does not take."""
        if problem.problem is Problem.METHOD_NOT_ALLOWED:
            request.setHeader(b"allow", b"GET, HEAD")
            return self.message(request, 405, "Method not allowed", not_allowed)
        return self.message(request, problem.status, *page_words(problem))

    def bad_request(self, request: IRequest, error: BadRequest) -> bytes:
        """The page for a request refused before any domain code ran."""
        return self.message(request, error.status, error.title, error.text)


# --- the invitation page ----------------------------------------------------------------------


class InvitePages:
    """``/j/<token>``: the invitation interstitial (GET shows, POST joins)."""

    app = Klein()

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, invitations: Invitations, pages: WebPages) -> None:
        self.clock = clock
        self.settings = settings
        self.registry = registry
        self.store = store
        self.invitations = invitations
        self.kit = PageKit(clock, settings, pages)

    def resource(self) -> IResource:
        """The resource to mount at ``/j``: an invitee's Join (``POST /j/``, the request
        a webinar's invitees send together) goes to :meth:`join` directly
        (:class:`~meetplatform.httpkit.DirectRoute`), the rest through Klein."""
        joins = DirectRoute(self.app.resource(), b"POST", [b""], self.join,
                            self.answer_failure)
        return self.kit.guard(joins, self.answer_problem)

    # --- rendering ------------------------------------------------------------------------

    def _form(self, secret: str, view: InvitationView, rooms: list[RoomRecord], *,
              name: str = "", problem: str = "", lang: str = "en") -> str:
        def say(key: str, **params: object) -> str:
            return html.escape(CATALOGUES.text(lang, key, **params))

        parts = [(f'<form method="post" action="{html.escape(self.kit.base_path)}/j/" '
                  'class="join-form" id="join-form" autocomplete="off">'),
                 f'<input type="hidden" name="token" value="{html.escape(secret)}">']
        if problem:
            parts.append(f'<p class="form-problem" id="form-problem" role="alert">'
                         f'{html.escape(problem)}</p>')
        if view.room is None:
            parts.append(f'<fieldset class="room-choice"><legend>{say("invite.room")}</legend>')
            for index, room in enumerate(rooms):
                checked = " checked" if index == 0 else ""
                parts.append(
                    f'<label class="choice"><input type="radio" name="room" '
                    f'value="{html.escape(room.alias)}"{checked}> {html.escape(room.name)}'
                    '</label>')
            parts.append("</fieldset>")
        if view.display_name:
            strong = f'<strong id="fixed-name">{html.escape(view.display_name)}</strong>'
            parts.append('<p class="join-as">'
                         + say("invite.appearAs", name="\0").replace("\0", strong) + "</p>")
        else:
            parts.append(f'<label class="field" for="display-name">{say("prejoin.name")}</label>'
                         '<input class="text-input" id="display-name" name="displayName" '
                         f'type="text" required maxlength="{MAX_NAME_CHARS}" '
                         f'autocomplete="name" value="{html.escape(name)}">')
        parts.append(f'<button type="submit" class="btn primary" id="join-button">'
                     f'{say("prejoin.join")}</button></form>')
        return "".join(parts)

    def _invitation_page(self, request: IRequest, secret: str, view: InvitationView,
                         rooms: list[RoomRecord], *, status: int = 200, name: str = "",
                         problem: str = "") -> bytes:
        lang = CATALOGUES.for_request(request)
        role = (CATALOGUES.text(lang, f"invite.role.{view.token.role}")
                if view.token.role in ROLE_TEXT else "")
        if view.room is not None:
            title = CATALOGUES.text(lang, "invite.joinTitle", name=view.room.name)
            text = CATALOGUES.text(lang, "invite.roomText", room=view.room.name, role=role)
            if view.room.lobby and view.token.role != "moderator":
                text += " " + CATALOGUES.text(lang, "invite.lobby")
        else:
            title = CATALOGUES.text(lang, "invite.joinTitle", name=view.space.name)
            text = CATALOGUES.text(lang, "invite.spaceText", space=view.space.name, role=role)
        extra = self._form(secret, view, rooms, name=name, problem=problem, lang=lang)
        return self.kit.message(request, status, title, text, reason="invitation", extra=extra)

    async def _rooms_for(self, view: InvitationView) -> list[RoomRecord]:
        if view.room is not None:
            return []
        rooms = await self.store.list_rooms(view.space.id, None, 100)
        now = self.invitations.now()
        open_rooms = []
        for room in rooms:
            try:
                inv.check_room_open(room, now)
            except inv.InvitationError:
                continue
            open_rooms.append(room)
        return open_rooms

    # --- routes ---------------------------------------------------------------------------

    @app.route("/<token>", methods=["GET"])
    async def show(self, request: IRequest, token: str) -> bytes:
        """What the invitation grants, and a Join button. Consumes nothing."""
        if not TOKEN_RE.match(token):
            return self.kit.refusal(request, describe_refusal(
                inv.InvitationNotFound("no such invitation")))
        try:
            view = await self.invitations.preview(token)
        except (inv.InvitationError, reg.RegistryError) as error:
            return self.kit.refusal(request, describe_refusal(error))
        rooms = await self._rooms_for(view)
        if view.room is None and not rooms:
            return self.kit.message(request, 409, "No room to join yet",
                                    f"“{view.space.name}” has no open room at the moment. "
                                    "Try again later; your invitation was not used.",
                                    reason="space.noRooms")
        return self._invitation_page(request, token, view, rooms)

    @app.route("/", methods=["POST"])
    async def join(self, request: IRequest) -> bytes:
        """Consume one use of the invitation and go to the conference (303)."""
        self.kit.rate_limit(request)
        form = self.kit.form(request)
        secret = form.get("token", "")
        if not TOKEN_RE.match(secret):
            return self.kit.refusal(request, describe_refusal(
                inv.InvitationNotFound("no such invitation")))
        name = form.get("displayName", "").strip()
        try:
            view = await self.invitations.preview(secret, recent=True)  # activating next
        except (inv.InvitationError, reg.RegistryError) as error:
            return self.kit.refusal(request, describe_refusal(error))
        rooms = await self._rooms_for(view)
        chosen: RoomRecord | None = view.room
        if view.room is None:
            wanted = form.get("room", "")
            chosen = next((r for r in rooms if r.alias == wanted), None)
            if chosen is None:
                return self._invitation_page(request, secret, view, rooms, status=422,
                                             name=name, problem="Pick one of the rooms.")
        assert chosen is not None
        display_name = view.display_name or name
        if not display_name or len(display_name) > MAX_NAME_CHARS:
            return self._invitation_page(
                request, secret, view, rooms, status=422, name=name[:MAX_NAME_CHARS],
                problem="Enter your name (1 to 200 characters) to join.")
        try:
            entry = await enter_with_invitation(self.invitations, self.store, secret,
                                                chosen, display_name, view=view)
        except (inv.InvitationError, reg.RegistryError) as error:
            refusal = describe_refusal(error)
            _log.info("invitation page: join refused ({code})", code=refusal.code)
            return self.kit.refusal(request, refusal)
        request.setResponseCode(303)
        request.setHeader(b"location", entry.conference_url.encode("utf-8"))
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return b""

    @app.route("/", branch=True)
    def anything_else(self, request: IRequest) -> bytes:
        """Every other address or method under ``/j``."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self.kit.message(request, 405, "Method not allowed",
                                    "Open the invitation link, then press Join.")
        return self.kit.message(request, 404, "This invitation link is not valid",
                                "The link is incomplete. Open the whole link you were sent.")

    # --- errors: the kit's handlers, in this page's words --------------------------------

    def answer_problem(self, request: IRequest, problem: HttpProblem) -> bytes:
        """An HTML page for what the URL guard or routing refused, or a failure."""
        return self.kit.problem(request, problem,
                                not_allowed="Open the invitation link, then press Join.")

    def answer_bad_request(self, request: IRequest, error: BadRequest) -> bytes:
        return self.kit.bad_request(request, error)

    answer_failure = install_error_pages(app, answer_problem, surface="invitation page",
                                         own=(BadRequest, answer_bad_request))


async def enter_with_invitation(invitations: Invitations, store: Store, secret: str,
                                room: RoomRecord, display_name: str, *,
                                view: inv.InvitationView | None = None) -> inv.RoomEntry:
    """Consume one use of ``secret`` and seat its holder in ``room``.

    ``room`` must be the invitation's room, or a room of its space for a space invitation
    (the caller checked with :meth:`Invitations.preview`, whose ``view`` it may pass on to
    save reading the invitation again). When the room refuses the seat, no use is taken.
    ``store`` is not used any more (the seat and the use are one step of
    :meth:`Invitations.activate`); it stays for the callers.
    """
    del store
    activation = await invitations.activate(secret, display_name=display_name, room=room,
                                            view=view)
    assert activation.entry is not None  # a room was given
    return activation.entry
