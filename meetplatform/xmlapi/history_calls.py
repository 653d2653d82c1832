"""``getMeetingEvents`` (Mconf load balancer) and ``getStats`` (Mconf-Live), from history.

Both read the durable meeting history (:class:`~meetplatform.history.History`), so they
answer the same after a restart. Registered on the XML API with ``add_call``;
``getStats`` replaces the in-memory version of :class:`~meetplatform.xmlapi.misc_calls.MiscCalls`.

``getMeetingEvents`` follows the Mconf-LB specification:

- no parameters: the last 50 meetings that had at least one user, newest first;
- ``createdAt=YYYY-MM-DD``: meetings created on that day (UTC) or later; a second
  ``createdAt`` (as in the specification's example) is the last creation day included;
- ``endedAt=YYYY-MM-DD``: meetings that ended on that day or before (so none that is
  running);
- ``users=N``: meetings that had at least N users (default 1; ``0`` includes meetings
  nobody joined); a user joining several times counts once, but each join is listed;
- ``limit=N``: at most N meetings (default 50, at most 100: larger values are capped);
- malformed values: ``invalidParameters``.

Each ``event``: ``meetingID, name, createdAt, endedAt (0 while running),
server{name, url}, users/user{name, role (moderator|attendee), createdAt}, query{...}``
(the create parameters without passwords).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from twisted.internet.interfaces import IReactorTime

from meetplatform.config import Settings
from meetplatform.history import History
from meetplatform.store import history_db as hdb
from meetplatform.xmlapi import errors
from meetplatform.xmlapi.pipeline import Answer, ApiPipeline, CallContext, Nodes
from meetplatform.xmlapi.render import Items

DEFAULT_LIMIT = 50
MAX_LIMIT = 100
DAY_MS = 24 * 3600 * 1000
#: The newest meetings ``getStats`` lists when no meetingID narrows it.
STATS_LIMIT = 10_000

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_NUMBER = re.compile(r"\d{1,9}")
#: Parameter names that can be written as XML element names in ``<query>``.
_XML_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,127}")


def _day_start(text: str) -> int:
    """Milliseconds at 00:00 UTC of a ``YYYY-MM-DD`` day; invalidParameters otherwise."""
    if not _DATE.fullmatch(text):
        raise errors.invalid_parameters()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise errors.invalid_parameters() from None
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _number(text: str) -> int:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        raise errors.invalid_parameters()
    return int(text)


def _role(role: str) -> str:
    return "moderator" if role == "MODERATOR" else "attendee"


class HistoryCalls:
    """``getMeetingEvents`` and ``getStats``; :meth:`register` adds them to an XmlApi."""

    def __init__(self, clock: IReactorTime, settings: Settings, history: History) -> None:
        self._clock = clock
        self._settings = settings
        self._history = history

    def register(self, api: ApiPipeline) -> None:
        api.add_call("getMeetingEvents", self.get_meeting_events)
        api.add_call("getStats", self.get_stats)

    async def get_meeting_events(self, ctx: CallContext) -> Answer:
        params = ctx.params
        created = [value for name, value in params.pairs if name == "createdAt"]
        created_from = _day_start(created[0].strip()) if created else None
        created_before = _day_start(created[1].strip()) + DAY_MS if len(created) > 1 else None
        ended = params.raw("endedAt")
        ended_before = _day_start(ended.strip()) + DAY_MS if ended is not None else None
        users = params.raw("users")
        min_users = _number(users) if users is not None else 1
        limit_text = params.raw("limit")
        limit = DEFAULT_LIMIT
        if limit_text is not None:
            limit = _number(limit_text)
            if limit < 1:
                raise errors.invalid_parameters()
            limit = min(limit, MAX_LIMIT)
        meetings = await self._history.read(lambda db: hdb.meeting_events(
            db, created_from=created_from, created_before=created_before,
            ended_before=ended_before, min_users=min_users, limit=limit))
        return [("events", Items("event", [self._event(m) for m in meetings]))]

    @staticmethod
    def _event(meeting: hdb.MeetingRecord) -> Nodes:
        query = [(name, value) for name, value in sorted(meeting.query.items())
                 if _XML_NAME.fullmatch(name) and not name.lower().startswith("xml")]
        return [
            ("meetingID", meeting.meeting_id),
            ("name", meeting.name),
            ("createdAt", meeting.create_time),
            ("endedAt", meeting.end_time or 0),
            ("server", [("name", meeting.node_name), ("url", meeting.node_url)]),
            ("users", Items("user", [
                [("name", a.full_name), ("role", _role(a.role)), ("createdAt", a.join_time)]
                for a in meeting.attendance])),
            ("query", query),
        ]

    async def get_stats(self, ctx: CallContext) -> Answer:
        wanted = ctx.params.id_list("meetingID")
        meetings = await self._history.read(
            lambda db: hdb.stats(db, wanted, limit=STATS_LIMIT))
        if not meetings:
            return [("stats", Items("meeting", [])), ("messageKey", "noStats"),
                    ("message", "no stats were found on this server")]
        return [("stats", Items("meeting", [[
            ("meetingID", m.meeting_id),
            ("meetingName", m.name),
            ("recordID", m.internal_id),
            ("startTime", m.start_time or 0),
            ("endTime", m.end_time or 0),
            ("participants", Items("participant", [
                [("userID", a.user_id), ("userName", a.full_name),
                 ("joinTime", a.join_time), ("leftTime", a.left_time or 0)]
                for a in m.attendance])),
        ] for m in meetings]))]
