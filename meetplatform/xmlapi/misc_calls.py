"""The other calls on the live registry: ``getSessions``, ``getStats`` (in memory),
``sendChatMessage`` and ``insertDocument``.

``getStats`` here reads the registry's in-memory history; the service registers
:class:`~meetplatform.xmlapi.history_calls.HistoryCalls` after this family, and its durable
``getStats`` replaces this one.
"""

from __future__ import annotations

from collections.abc import Iterable

from meetplatform.model import Meeting
from meetplatform.registry import Registry
from meetplatform.xmlapi import errors
from meetplatform.xmlapi import params as P
from meetplatform.xmlapi.errors import ApiError
from meetplatform.xmlapi.pipeline import Answer, ApiPipeline, CallContext
from meetplatform.xmlapi.render import Items


class MiscCalls:
    """Sessions, in-memory stats, chat and documents; :meth:`register` adds them."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def register(self, api: ApiPipeline) -> None:
        api.add_call("getSessions", self.get_sessions)
        api.add_call("getStats", self.get_stats)
        api.add_call("sendChatMessage", self.send_chat_message)
        api.add_call("insertDocument", self.insert_document)

    def get_sessions(self, ctx: CallContext) -> Answer:
        seats = list(self._registry.sessions())
        if not seats:
            return [("sessions", Items("meeting", [])), ("messageKey", "noSessions"),
                    ("message", "no sessions were found on this serverr")]
        return [("sessions", Items("meeting", [
            [("meetingID", seat.meeting.internal_id), ("meetingName", seat.meeting.name),
             ("userName", seat.full_name)] for seat in seats]))]

    def get_stats(self, ctx: CallContext) -> Answer:
        wanted = set(ctx.params.id_list("meetingID"))
        meetings: Iterable[Meeting] = [*self._registry.history, *self._registry.meetings()]
        stats = []
        for meeting in meetings:
            if not meeting.has_user_joined or (wanted and meeting.meeting_id not in wanted):
                continue
            stats.append([
                ("meetingID", meeting.meeting_id),
                ("meetingName", meeting.name),
                ("recordID", meeting.internal_id),
                ("startTime", meeting.start_time),
                ("endTime", meeting.end_time),
                ("participants", Items("participant", [
                    [("userID", a.user_id), ("userName", a.full_name),
                     ("joinTime", a.join_time), ("leftTime", a.left_time or 0)]
                    for a in meeting.attendance])),
            ])
        if not stats:
            return [("stats", Items("meeting", [])), ("messageKey", "noStats"),
                    ("message", "no stats were found on this server")]
        return [("stats", Items("meeting", stats))]

    def send_chat_message(self, ctx: CallContext) -> Answer:
        meeting_id = P.require_meeting_id(ctx.params)
        message = ctx.params.text("message")
        if not 1 <= len(message) <= 500:
            raise errors.validation("Param message must be between 1 and 500 characters")
        user_name = ctx.params.text("userName").strip()
        if len(user_name) > 255:
            raise errors.validation("Param userName must be at most 255 characters")
        meeting = self._registry.get_meeting(meeting_id)
        if meeting is None:
            raise errors.meeting_not_active()
        self._registry.send_chat(meeting, message, sender_name=user_name or "System")
        return [("messageKey", None), ("message", None)]

    def insert_document(self, ctx: CallContext) -> Answer:
        meeting_id = P.require_meeting_id(ctx.params)
        if ctx.xml_body is None:
            raise errors.validation(
                "Send the documents as an XML <modules> body (Content-Type: application/xml).")
        documents = P.order_documents(P.parse_modules(ctx.xml_body), force_current=False)
        if not documents:
            raise errors.validation("The <modules> body contains no presentation document.")
        meeting = self._registry.get_meeting(meeting_id)
        if meeting is None:
            raise ApiError("notFound", f"Meeting with id [{meeting_id[:256]}] not found.")
        self._registry.insert_documents(meeting, documents)
        return [("messageKey", "documentInserted"),
                ("message", "Presentation is being uploaded")]
