"""The classroom over the socket: presentation, whiteboard and polls.

:class:`ClassroomFanout` turns the registry's classroom events into frames for a room
(each encoded once, written to every socket concerned in the same reactor turn) and
gives the ``presentation`` part of the ``joined`` snapshot, so a late joiner lands on the
current page with its annotations. :class:`ClassroomRequests` holds the protocol's
handlers of the classroom requests (docs/signalling-protocol.md §4.1); the registry
decides who may do what and raises typed refusals, which become ``error`` frames with
their own ``code``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from meetplatform import events as ev
from meetplatform.documents.meetings import PRESENTATIONS_PATH, document_json
from meetplatform.model import (
    DEFAULT_DOCUMENT,
    ClassroomError,
    Meeting,
    Participant,
    Poll,
    PollKind,
    Shape,
)
from meetplatform.signalling import messages as msg

if TYPE_CHECKING:
    from meetplatform.signalling.hub import Hub, Room

Json = dict[str, Any]


def shape_json(shape: Shape) -> Json:
    return {"id": shape.id, "kind": shape.kind, "by": shape.user_id, "color": shape.color,
            "width": shape.width, "points": shape.points, "text": shape.text,
            "done": shape.done}


def poll_json(poll: Poll, *, answered: bool | None = None) -> Json:
    out: Json = {"id": poll.id, "pollType": poll.kind.value, "question": poll.question,
                 "answers": poll.answers, "anonymous": poll.anonymous,
                 "stopped": poll.stopped, "published": poll.published}
    if answered is not None:
        out["answered"] = answered
    return out


def poll_results_json(meeting: Meeting, poll: Poll) -> Json:
    """The results; who answered what only for a named poll (an anonymous one never
    knew it)."""
    out = poll_json(poll)
    out["counts"] = poll.counts
    out["texts"] = poll.texts
    out["responders"] = len(poll.responders)
    if not poll.anonymous:
        names = {a.user_id: a.full_name for a in meeting.attendance}
        out["votes"] = [{"userId": user_id, "name": names.get(user_id, ""), "answer": answer}
                        for user_id, answer in poll.votes.items()]
    return out


def page_json(meeting: Meeting) -> Json:
    p = meeting.presentation
    view = p.viewport
    return {"documentId": p.current_document, "page": p.current_page,
            "viewport": {"zoom": view.zoom, "x": view.x, "y": view.y},
            "annotations": [shape_json(s) for s in p.shapes()]}


class ClassroomFanout:
    """The hub's classroom half: registry events to frames, and the snapshot."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.base = urlsplit(hub.settings.public_url).path.rstrip("/") + PRESENTATIONS_PATH
        handlers: dict[type, Callable[[Any], None]] = {
            ev.DocumentChanged: self._on_document,
            ev.DocumentRemoved: self._on_document_removed,
            ev.PresentationChanged: self._on_presentation,
            ev.ViewportChanged: self._on_viewport,
            ev.ShapeDrawn: self._on_drawn,
            ev.ShapesRemoved: self._on_removed,
            ev.MultiUserChanged: self._on_multi_user,
            ev.PollStarted: self._on_poll_started,
            ev.PollAnswered: self._on_poll_answered,
            ev.PollStopped: self._on_poll_stopped,
            ev.PollPublished: self._on_poll_published,
        }
        hub._handlers.update(handlers)
        # A new presenter gets the running poll's results (after the hub's own fan-out).
        updated = hub._handlers[ev.ParticipantUpdated]

        def on_updated(event: ev.ParticipantUpdated) -> None:
            updated(event)
            self._on_presenter_changed(event)

        hub._handlers[ev.ParticipantUpdated] = on_updated

    def snapshot(self, me: Participant) -> Json:
        """The ``presentation`` key of ``joined``."""
        meeting = me.meeting
        p = meeting.presentation
        out = page_json(meeting)
        out["documents"] = [document_json(meeting, d, self.base) for d in p.documents.values()]
        out["multiUser"] = p.multi_user
        poll = p.poll
        if poll is None:
            out["poll"] = None
        else:
            out["poll"] = poll_json(poll, answered=me.user_id in poll.responders)
            if me.presenter or poll.published:
                out["pollResults"] = poll_results_json(meeting, poll)
        return out

    # --- events ---------------------------------------------------------------------------

    def _room(self, meeting: Meeting) -> Room | None:
        room = self.hub.rooms.get(meeting)
        return room if room is not None and room.conns else None

    def _broadcast(self, meeting: Meeting, kind: str, data: Json,
                   exclude: str | None = None) -> None:
        room = self._room(meeting)
        if room is not None:
            room.broadcast(_frame(msg.event(kind, data)), exclude=exclude)

    def _on_document(self, event: ev.DocumentChanged) -> None:
        self._broadcast(event.meeting, "document", document_json(event.meeting, event.document,
                                                          self.base))

    def _on_document_removed(self, event: ev.DocumentRemoved) -> None:
        self._broadcast(event.meeting, "documentRemoved", {"id": event.document_id})

    def _on_presentation(self, event: ev.PresentationChanged) -> None:
        data = page_json(event.meeting)
        data["by"] = event.by.user_id if event.by else None
        self._broadcast(event.meeting, "presentation", data)

    def _on_viewport(self, event: ev.ViewportChanged) -> None:
        view = event.meeting.presentation.viewport
        self._broadcast(event.meeting, "viewport", {"zoom": view.zoom, "x": view.x, "y": view.y})

    def _on_drawn(self, event: ev.ShapeDrawn) -> None:
        shape = event.shape
        data: Json = {"page": event.page_key, "shapeId": shape.id, "by": shape.user_id,
                      "from": event.points_from, "points": shape.points[event.points_from:],
                      "done": shape.done}
        if event.created:
            data.update(kind=shape.kind, color=shape.color, width=shape.width)
        if shape.kind == "text":
            data["text"] = shape.text
        self._broadcast(event.meeting, "draw", data, exclude=shape.user_id or None)

    def _on_removed(self, event: ev.ShapesRemoved) -> None:
        self._broadcast(event.meeting, "shapesRemoved", {
            "page": event.page_key, "ids": list(event.shape_ids), "cleared": event.cleared,
            "by": event.by.user_id if event.by else None})

    def _on_multi_user(self, event: ev.MultiUserChanged) -> None:
        self._broadcast(event.meeting, "multiUser", {"enabled": event.enabled})

    def _on_poll_started(self, event: ev.PollStarted) -> None:
        self._broadcast(event.meeting, "pollStarted", poll_json(event.poll, answered=False))
        self._to_presenter(event.meeting, event.poll)

    def _to_presenter(self, meeting: Meeting, poll: Poll) -> None:
        room = self._room(meeting)
        presenter = meeting.presenter()
        if room is None or presenter is None:
            return
        conn = room.conns.get(presenter.user_id)
        if conn is not None:
            conn.write_frame(_frame(msg.event("pollResults", poll_results_json(meeting, poll))))

    def _on_presenter_changed(self, event: ev.ParticipantUpdated) -> None:
        p = event.participant
        poll = p.meeting.presentation.poll
        if "presenter" in event.changed and p.presenter and poll is not None:
            self._to_presenter(p.meeting, poll)

    def _on_poll_answered(self, event: ev.PollAnswered) -> None:
        self._to_presenter(event.meeting, event.poll)

    def _on_poll_stopped(self, event: ev.PollStopped) -> None:
        self._broadcast(event.meeting, "pollStopped", {"id": event.poll.id})

    def _on_poll_published(self, event: ev.PollPublished) -> None:
        self._broadcast(event.meeting, "pollPublished",
                        poll_results_json(event.meeting, event.poll))


def _frame(payload: bytes) -> bytes:
    from meetplatform.signalling.hub import frame

    return frame(payload)


class ClassroomRequests:
    """The protocol's handlers of the classroom requests (mixed into the protocol)."""

    factory: Any

    @property
    def _me(self) -> Participant:
        raise NotImplementedError

    def _classroom(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except ClassroomError as e:
            raise msg.MessageError(e.code, e.message) from None

    def handle_setPage(self, r: msg.PageRequest) -> None:
        me = self._me
        document_id = r.document_id
        if document_id == DEFAULT_DOCUMENT:
            document_id = DEFAULT_DOCUMENT
        self._classroom(lambda: self.factory.hub.registry.set_page(
            me.meeting, document_id, r.page, by=me))

    def handle_removeDocument(self, document_id: str) -> None:
        me = self._me
        self._classroom(lambda: self.factory.hub.registry.remove_document(
            me.meeting, document_id, by=me))

    def handle_viewport(self, r: msg.ViewportRequest) -> None:
        me = self._me
        self._classroom(lambda: self.factory.hub.registry.set_viewport(
            me.meeting, r.zoom, r.x, r.y, by=me))

    def handle_draw(self, r: msg.DrawRequest) -> dict[str, Any]:
        me = self._me
        shape = self._classroom(lambda: self.factory.hub.registry.draw(
            me.meeting, me, r.shape_id, points=r.points, kind=r.kind, color=r.color,
            width=r.width, text=r.text, done=r.done))
        return {"shapeId": shape.id, "points": len(shape.points)}

    def handle_erase(self, ids: list[str]) -> dict[str, Any]:
        me = self._me
        removed = self._classroom(lambda: self.factory.hub.registry.erase(me.meeting, ids, by=me))
        return {"removed": removed}

    def handle_undo(self, _: None) -> dict[str, Any]:
        me = self._me
        removed = self._classroom(lambda: self.factory.hub.registry.undo(me.meeting, me))
        return {"removed": removed}

    def handle_clearPage(self, _: None) -> dict[str, Any]:
        me = self._me
        removed = self._classroom(lambda: self.factory.hub.registry.clear_page(me.meeting, by=me))
        return {"removed": removed}

    def handle_multiUser(self, enabled: bool) -> None:
        me = self._me
        self.factory.hub.registry.set_multi_user(me.meeting, enabled, by=me)

    def handle_pollStart(self, r: msg.PollRequest) -> dict[str, Any]:
        me = self._me
        poll = self._classroom(lambda: self.factory.hub.registry.start_poll(
            me.meeting, PollKind(r.kind), question=r.question, answers=r.answers,
            anonymous=r.anonymous, by=me))
        return {"id": poll.id}

    def handle_pollAnswer(self, r: msg.PollAnswer) -> None:
        me = self._me
        self._classroom(lambda: self.factory.hub.registry.answer_poll(
            me.meeting, me, r.poll_id, r.answer))

    def handle_pollStop(self, _: None) -> None:
        me = self._me
        self._classroom(lambda: self.factory.hub.registry.stop_poll(me.meeting, by=me))

    def handle_pollPublish(self, _: None) -> None:
        me = self._me
        self._classroom(lambda: self.factory.hub.registry.publish_poll(me.meeting, by=me))
