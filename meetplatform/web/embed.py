"""``/embed/<room alias>``: the conference page made to live in another site's iframe.

Routes (relative to the ``/embed`` mount point):

- ``GET /embed/<alias>``: the conference page of the room, plus ``embed-bridge.js``, the
  iframe side of the parent page's ``postMessage`` channel. The page itself carries no
  credential: the parent passes one in the URL *fragment* (``#t=<credential>``, which
  browsers send neither to servers nor in ``Referer``) or by ``postMessage`` after the
  page's ``ready`` event (what ``embed.js`` does). A credential in the query is refused
  (400), so that none ever lands in a server log.
- ``POST /embed/<alias>/session``: what the bridge calls (same origin, JSON) to turn a
  credential into a seat of the room's live meeting: an invitation secret (consumed
  atomically, as ``/j`` does), a session token issued earlier (a reload resumes it), or,
  in public rooms of public spaces, just a display name.
- ``GET /embed/<alias>/ended``: where the embedded page goes when the meeting is over
  for this participant.

Framing: ``Content-Security-Policy: frame-ancestors 'self' <the space's embedOrigins>``.
A space with no embedding origins can be framed by the service's own pages only, so a
room is never embeddable anywhere by accident; an unknown room is framable by nobody
else either. ``Permissions-Policy`` grants camera, microphone, display capture,
fullscreen and autoplay to the page itself, which the parent delegates with the iframe's
``allow`` attribute (:data:`meetplatform.embedding.ALLOW`). Nothing depends on cookies: the session token lives
in the page's memory and, where the browser allows it, in ``sessionStorage``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

from klein import Klein
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource

from meetplatform import invitations as inv
from meetplatform import model as reg
from meetplatform.config import Settings
from meetplatform.embedding import frame_ancestors, normalise_origin
from meetplatform.httpkit import HttpProblem, Problem, install_error_pages
from meetplatform.invitations import Invitations, RoomEntry
from meetplatform.model import Seat
from meetplatform.registry import Registry
from meetplatform.store import RoomRecord, SpaceRecord, Store
from meetplatform.text import BadText, loads_json
from meetplatform.web.entry import seat_entry
from meetplatform.web.i18n import CATALOGUES
from meetplatform.web.invite import (
    MAX_NAME_CHARS,
    TOKEN_RE,
    BadRequest,
    PageKit,
    Refusal,
    describe_refusal,
    enter_with_invitation,
)
from meetplatform.web.pages import ENDED_REASONS, WebPages

__all__ = ["EmbedPages"]

#: Room aliases (see the JSON:API's rooms); anything else is not a room.
ALIAS_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")
#: Session tokens of seats (``secrets.token_urlsafe``).
SESSION_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-]{8,256}$")
#: Query parameters that look like a credential: refused, credentials go in the fragment.
CREDENTIAL_PARAMS = (b"t", b"token", b"sessionToken", b"userToken", b"accessToken",
                     b"access_token")


class EmbedPages:
    """``/embed/<alias>``: the embeddable conference page, its session endpoint, its end."""

    app = Klein()

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, invitations: Invitations, pages: WebPages) -> None:
        self.clock = clock
        self.settings = settings
        self.registry = registry
        self.store = store
        self.invitations = invitations
        self.pages = pages
        self.kit = PageKit(clock, settings, pages)
        self.own_origin = normalise_origin(settings.public_url)
        # Fail at start-up, not on the first request, if the page's markup moved.
        self._conference_page(title="check", alias="check", public=False,
                              ancestors_list=())

    def resource(self) -> IResource:
        """The resource to mount at ``/embed``."""
        return self.kit.guard(self.app.resource(), self.answer_problem)

    # --- lookups --------------------------------------------------------------------------

    async def room_and_space(self, alias: str) -> tuple[RoomRecord, SpaceRecord] | None:
        """The room with this alias and its space, if both exist and the client is active."""
        if not ALIAS_RE.match(alias):
            return None
        room = await self.store.room_by_alias(alias)
        if room is None:
            return None
        space = await self.store.get_space(room.space_id)
        if space is None:
            return None
        client = await self.store.get_client(space.client_id)
        if client is None or not client.active:
            return None
        return room, space

    async def origins_for_seat(self, seat: Seat) -> frozenset[str]:
        """The embedding origins of the space a seat belongs to (for the socket's Origin
        check); empty for seats that are not in a room of a space."""
        space_id = seat.userdata.get("mp_space_id")
        if not space_id:
            return frozenset()
        space = await self.store.get_space(space_id)
        if space is None:
            return frozenset()
        normal = (normalise_origin(o) for o in space.embed_origins)
        return frozenset(o for o in normal if o is not None)

    # --- rendering ------------------------------------------------------------------------

    def _conference_page(self, *, title: str, alias: str, public: bool,
                         ancestors_list: tuple[str, ...], lang: str = "en") -> bytes:
        static_url = self.pages.static_url
        base = self.kit.base_path
        page = self.pages.conference_shell(lang=lang, title=title,
                                           ended_url=f"{base}/embed/{alias}/ended")
        script = (f'<script type="module" src="{html.escape(static_url)}/conference.js?v='
                  f'{self.pages.static.version("conference.js")}"></script>')
        if page.count(script) != 1:
            raise RuntimeError("conference.html no longer loads conference.js as "
                               f"{script!r}; update meetplatform/web/embed.py")
        metas = {
            "mp-embed-room": alias,
            "mp-embed-public": "true" if public else "false",
            "mp-embed-origins": " ".join(ancestors_list),
            "mp-embed-session-url": f"{base}/embed/{alias}/session",
            "mp-conference-js": self.kit.asset("conference.js"),
        }
        head = "".join(f'<meta name="{name}" content="{html.escape(value)}">\n'
                       for name, value in metas.items())
        head += (f'<link rel="stylesheet" href="{html.escape(self.kit.asset("invite.css"))}">\n'
                 f'<script type="module" src="{html.escape(self.kit.asset("embed-bridge.js"))}">'
                 "</script>")
        return page.replace(script, head).encode("utf-8")

    # --- routes ---------------------------------------------------------------------------

    @app.route("/<alias>", methods=["GET"])
    async def embed(self, request: IRequest, alias: str) -> bytes:
        """The embeddable conference page of a room (no credential in it)."""
        found = await self.room_and_space(alias)
        if found is None:
            return self.kit.refusal(request, describe_refusal(
                inv.RoomNotFound("no such room")))
        room, space = found
        ancestors = frame_ancestors(space)
        args = request.args or {}
        if any(name in args for name in CREDENTIAL_PARAMS):
            return self.kit.message(
                request, 400, "Credentials do not go in the address",
                "Pass the invitation or session token after a # (for example "
                "/embed/<room>#t=<token>) or with embed.js, never in the query: queries "
                "end up in server logs.", reason="embed.credentialInQuery",
                frame_ancestors=ancestors)
        public = room.visibility == "public" and space.visibility == "public"
        self.kit.headers(request, scripts=True, frame_ancestors=ancestors)
        origins = tuple(ancestors.split(" ")[1:])
        return self._conference_page(title=f"{room.name} · {self.settings.server_name}",
                                     alias=room.alias, public=public, ancestors_list=origins,
                                     lang=CATALOGUES.for_request(request))

    @app.route("/<alias>/ended", methods=["GET"])
    async def ended(self, request: IRequest, alias: str) -> bytes:
        """Where an embedded participant lands once the meeting is over for them."""
        found = await self.room_and_space(alias)
        ancestors = frame_ancestors(found[1] if found else None)
        values = (request.args or {}).get(b"reason") or [b""]
        reason = values[0].decode("utf-8")  # the URL guard refused a query that is not UTF-8
        title, text = ENDED_REASONS.get(
            reason, ("You are no longer in the meeting", "You can close this window."))
        return self.kit.message(request, 200, title, text,
                                reason=reason if reason in ENDED_REASONS else "ended",
                                frame_ancestors=ancestors)

    @app.route("/<alias>/session", methods=["POST"])
    async def session(self, request: IRequest, alias: str) -> bytes:
        """Turn a credential (or, in public rooms, a name) into a seat: JSON in and out."""
        try:
            self._check_session_request(request)
            data = self._json_body(request)
            found = await self.room_and_space(alias)
            if found is None:
                raise inv.RoomNotFound("no such room")
            room, space = found
            entry_or_seat = await self._seat_for(room, space, data)
        except BadRequest as error:
            return self._json(request, error.status, {"error": {
                "code": "request.invalid" if error.status != 429 else "request.rateLimited",
                "title": error.title, "message": error.text}})
        except (inv.InvitationError, reg.RegistryError) as error:
            refusal = _describe(error)
            return self._json(request, refusal.status, self._refusal_json(refusal))
        if isinstance(entry_or_seat, RoomEntry):
            seat, role = entry_or_seat.seat, entry_or_seat.role
        else:
            seat = entry_or_seat
            role = seat.userdata.get("mp_role", "participant")
        return self._json(request, 200, {
            "sessionToken": seat.token,
            "participant": {"displayName": seat.full_name, "role": role,
                            "waitingForModerator": seat.guest_status is reg.GuestStatus.WAIT},
            "room": {"alias": room.alias, "name": room.name},
            "entry": seat_entry(seat),
        })

    @app.route("/<alias>/session", methods=["GET", "PUT", "PATCH", "DELETE"])
    def session_other_methods(self, request: IRequest, alias: str) -> bytes:
        """The session endpoint takes POST only."""
        request.setHeader(b"allow", b"POST")
        return self._json(request, 405, {"error": {
            "code": "request.methodNotAllowed", "title": "Method not allowed",
            "message": "POST a JSON object."}})

    @app.route("/", branch=True)
    def anything_else(self, request: IRequest) -> bytes:
        """Every other address or method under ``/embed``."""
        if request.method not in (b"GET", b"HEAD"):
            request.setHeader(b"allow", b"GET, HEAD")
            return self.kit.message(request, 405, "Method not allowed",
                                    "This page can only be opened.")
        return self.kit.refusal(request, describe_refusal(inv.RoomNotFound("no such room")))

    # --- the session endpoint's pieces ---------------------------------------------------

    def _check_session_request(self, request: IRequest) -> None:
        origin = request.getHeader(b"origin")
        if origin is not None and normalise_origin(origin.decode("latin-1")) != self.own_origin:
            raise BadRequest(403, "Forbidden", "Only the embedded page itself may ask for "
                                               "a seat.")
        media = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
        if media != b"application/json":
            raise BadRequest(415, "Unsupported media type", "Send application/json.")
        self.kit.rate_limit(request)

    def _json_body(self, request: IRequest) -> dict[str, str]:
        try:
            value = loads_json(self.kit.body(request) or b"{}")
        except BadText as e:  # broken text is refused at the edge (meetplatform.text)
            where = (e.where or "").lstrip("/")
            raise BadRequest(400, "Bad request",
                             f"{where or 'The body'} is not valid Unicode (bad UTF-8 or a "
                             "lone UTF-16 surrogate such as \\ud800).") from None
        except (ValueError, RecursionError):
            raise BadRequest(400, "Bad request", "The body is not valid JSON.") from None
        if not isinstance(value, dict):
            raise BadRequest(400, "Bad request", "The body must be a JSON object.")
        out: dict[str, str] = {}
        for name, limit in (("token", 256), ("sessionToken", 256),
                            ("displayName", MAX_NAME_CHARS)):
            field = value.get(name)
            if field is None:
                continue
            if not isinstance(field, str) or len(field) > limit:
                raise BadRequest(400, "Bad request",
                                 f"{name} must be a string of at most {limit} characters.")
            out[name] = field
        return out

    async def _seat_for(self, room: RoomRecord, space: SpaceRecord,
                        data: Mapping[str, str]) -> RoomEntry | Seat:
        name = data.get("displayName", "").strip()
        session_token = data.get("sessionToken")
        if session_token is not None:
            seat = (self.registry.seat_for_token(session_token)
                    if SESSION_TOKEN_RE.match(session_token) else None)
            if seat is None or seat.revoked or seat.userdata.get("mp_room_id") != room.id:
                raise SessionNotValid("this session is over or belongs to another room")
            return seat
        token = data.get("token")
        if token is not None:
            if not TOKEN_RE.match(token):
                raise inv.InvitationNotFound("no such invitation")
            view = await self.invitations.preview(token)
            if view.room is not None and view.room.id != room.id or (
                    view.room is None and view.space.id != space.id):
                raise OtherRoom("this invitation is for another room")
            display_name = view.display_name or name
            if not display_name or len(display_name) > MAX_NAME_CHARS:
                raise inv.DisplayNameRequired("a display name is needed to join")
            return await enter_with_invitation(self.invitations, self.store, token, room,
                                               display_name)
        return await self.invitations.join_public_room(room.alias, name)

    @staticmethod
    def _refusal_json(refusal: Refusal) -> dict[str, Any]:
        return {"error": {"code": refusal.code, "title": refusal.title,
                          "message": refusal.text}}

    @staticmethod
    def _json(request: IRequest, status: int, body: Mapping[str, Any]) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        return json.dumps(body, separators=(",", ":")).encode("utf-8")

    # --- errors: the kit's handlers, in this page's words --------------------------------

    def answer_problem(self, request: IRequest, problem: HttpProblem) -> bytes:
        """An HTML page for what the URL guard or routing refused, or a failure; an
        unknown address is an unknown room."""
        if problem.problem is Problem.NOT_FOUND:
            return self.kit.refusal(request, describe_refusal(inv.RoomNotFound("no such room")))
        return self.kit.problem(request, problem, not_allowed="This page can only be opened.")

    def answer_bad_request(self, request: IRequest, error: BadRequest) -> bytes:
        return self.kit.bad_request(request, error)

    install_error_pages(app, answer_problem, surface="embed page",
                        own=(BadRequest, answer_bad_request))


class SessionNotValid(inv.InvitationError):
    """A session token that is unknown, over, or for another room."""

    code = "session.invalid"


class OtherRoom(inv.InvitationError):
    """An invitation used on the embed page of a room it does not grant."""

    code = "userToken.otherRoom"


def _describe(error: Exception) -> Refusal:
    if isinstance(error, SessionNotValid):
        return Refusal(404, error.code, "This session is over",
                       "The meeting may have ended, or you were removed from it.")
    if isinstance(error, OtherRoom):
        return Refusal(403, error.code, "This invitation is for another room",
                       "The invitation does not grant access to this room; it was not used.")
    return describe_refusal(error)
