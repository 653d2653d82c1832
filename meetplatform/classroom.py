"""The classroom's live state: which page is shown, the whiteboard, polls.

:class:`Classroom` is the part of :class:`meetplatform.registry.Registry` that owns each
meeting's :class:`~meetplatform.model.Presentation` (the registry inherits it, so there is
still one owner of live state and one event stream). Like the rest of the registry it
knows no protocol: the surfaces call these methods and fan the events out.

Who may do what (as BigBlueButton):

- the **presenter** turns pages, zooms and pans, draws, starts and ends polls;
- with the **multi-user whiteboard** on (moderators switch it), everyone draws; a viewer
  erases, undoes and clears only its own shapes;
- ``by=None`` is the server's own APIs, which may do everything.

Limits (class attributes) keep one page and one participant from growing without bound;
breaking one raises :class:`~meetplatform.model.ClassroomError` with a code the surfaces
report as is.
"""

from __future__ import annotations

import re
import secrets

from meetplatform import events as ev
from meetplatform.model import (
    DEFAULT_DOCUMENT,
    ChatMessage,
    ClassroomError,
    Meeting,
    NotAllowed,
    Participant,
    Poll,
    PollKind,
    Presentation,
    Shape,
    SlideDocument,
)

SHAPE_KINDS = ("pen", "line", "rectangle", "ellipse", "text")
#: Fixed answers of the quick polls.
POLL_ANSWERS: dict[PollKind, list[str]] = {
    PollKind.YES_NO: ["Yes", "No"],
    PollKind.TRUE_FALSE: ["True", "False"],
    PollKind.LETTERS: ["A", "B", "C", "D"],
}
_COLOR = re.compile(r"#[0-9a-fA-F]{6}\Z")
_SHAPE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


class Classroom:
    """Presentation, whiteboard and polls of every meeting (mixed into the registry)."""

    #: Shapes one page may hold.
    MAX_SHAPES_PER_PAGE = 2000
    #: Coordinates (x and y count one each) one shape may hold.
    MAX_POINTS_PER_SHAPE = 4000
    #: Coordinates all shapes of one page may hold: what a late joiner receives in its
    #: snapshot stays around a megabyte of JSON.
    MAX_POINTS_PER_PAGE = 150_000
    #: Text of a text shape, in characters.
    MAX_TEXT_CHARS = 500
    #: Whiteboard messages (draw, erase, undo, clear) per participant and second, and
    #: the burst allowed above that rate.
    DRAW_RATE = 120.0
    DRAW_BURST = 240.0
    MAX_POLL_ANSWERS = 10
    MAX_ANSWER_CHARS = 100
    MAX_QUESTION_CHARS = 300
    MAX_FREE_TEXT_CHARS = 300
    #: Polls a meeting keeps (the oldest go first).
    MAX_POLLS = 200

    # provided by the registry
    def now(self) -> int:
        raise NotImplementedError

    def _emit(self, event: ev.Event) -> None:
        raise NotImplementedError

    def send_chat(self, meeting: Meeting, text: str, sender_name: str,
                  sender: Participant | None = None) -> ChatMessage:
        raise NotImplementedError

    # --- permissions -------------------------------------------------------------------

    @staticmethod
    def _require_presenter(by: Participant | None) -> None:
        if by is not None and not by.presenter:
            raise NotAllowed("only the presenter may do this")

    @staticmethod
    def may_draw(meeting: Meeting, by: Participant | None) -> bool:
        return by is None or by.presenter or meeting.presentation.multi_user

    def _require_drawer(self, meeting: Meeting, by: Participant | None) -> None:
        if not self.may_draw(meeting, by):
            raise NotAllowed("only the presenter may draw (the multi-user whiteboard is off)")

    def _take_draw_token(self, p: Presentation, by: Participant | None) -> None:
        if by is None:
            return
        now = float(self.now())
        budget = p.rates.get(by.user_id)
        if budget is None:
            budget = p.rates[by.user_id] = [self.DRAW_BURST, now]
        tokens = min(self.DRAW_BURST, budget[0] + (now - budget[1]) / 1000 * self.DRAW_RATE)
        budget[1] = now
        if tokens < 1:
            budget[0] = tokens
            raise ClassroomError(
                "rateLimited", f"more than {self.DRAW_RATE:g} whiteboard messages per second")
        budget[0] = tokens - 1

    def classroom_ended(self, meeting: Meeting) -> None:
        """The meeting ended (its subscribers have heard): drop what is heavy. Ended
        meetings stay in the registry a while (``getStats``); their annotations are in
        the durable history (:mod:`meetplatform.history`), not needed here."""
        p = meeting.presentation
        p.annotations.clear()
        p.page_points.clear()
        p.rates.clear()

    # --- documents (reported by the document service) ----------------------------------

    def document_changed(self, meeting: Meeting, document: SlideDocument) -> None:
        """A document's conversion moved on; the first ready one asked to be current
        (or the first ready one at all while the default page is shown) is shown."""
        if meeting.ended:
            return
        p = meeting.presentation
        p.documents[document.id] = document
        now = self.now()
        self._emit(ev.DocumentChanged(at=now, meeting=meeting, document=document))
        if (document.ready and p.current_document != document.id
                and (document.current or p.current_document == DEFAULT_DOCUMENT)):
            if document.current:
                for other in p.documents.values():
                    if other is not document:
                        other.current = False
            self._show(meeting, document.id, 1, None)

    def remove_document(self, meeting: Meeting, document_id: str,
                        by: Participant | None = None) -> None:
        """The presenter removes a ``removable`` document (BBB): it disappears for
        everyone (the default page is shown if it was current) and its files go."""
        self._require_presenter(by)
        doc = meeting.presentation.documents.get(document_id)
        if doc is None:
            raise ClassroomError("notFound", "no such document in this meeting")
        if not doc.removable and by is not None:
            raise NotAllowed("this document may not be removed")
        self.document_removed(meeting, document_id)

    def document_removed(self, meeting: Meeting, document_id: str) -> None:
        """Forget a document (its files are the document service's, which hears of it
        through :class:`~meetplatform.events.DocumentRemoved`)."""
        p = meeting.presentation
        if p.documents.pop(document_id, None) is None:
            return
        for key in [k for k in p.annotations if k.startswith(document_id + "/")]:
            del p.annotations[key]
            p.page_points.pop(key, None)
        self._emit(ev.DocumentRemoved(at=self.now(), meeting=meeting, document_id=document_id))
        if p.current_document == document_id:
            self._show(meeting, DEFAULT_DOCUMENT, 1, None)

    def page_count(self, meeting: Meeting, document_id: str) -> int:
        if document_id == DEFAULT_DOCUMENT:
            return 1
        doc = meeting.presentation.documents.get(document_id)
        if doc is None:
            raise ClassroomError("notFound", "no such document in this meeting")
        if not doc.ready:
            raise ClassroomError("notReady", "this document is not converted (yet)")
        return doc.pages_total

    # --- pages and the viewport ----------------------------------------------------------

    def set_page(self, meeting: Meeting, document_id: str | None, page: int,
                 by: Participant | None = None) -> None:
        """Show ``page`` of ``document_id`` (``None``: the current document)."""
        self._require_presenter(by)
        p = meeting.presentation
        document_id = document_id or p.current_document
        total = self.page_count(meeting, document_id)
        if not 1 <= page <= total:
            raise ClassroomError("notFound", f"page must be between 1 and {total}")
        if (document_id, page) != (p.current_document, p.current_page):
            self._show(meeting, document_id, page, by)

    def _show(self, meeting: Meeting, document_id: str, page: int,
              by: Participant | None) -> None:
        p = meeting.presentation
        p.current_document = document_id
        p.current_page = page
        p.viewport.zoom, p.viewport.x, p.viewport.y = 1.0, 0.0, 0.0
        self._emit(ev.PresentationChanged(at=self.now(), meeting=meeting, by=by))

    def set_viewport(self, meeting: Meeting, zoom: float, x: float, y: float,
                     by: Participant | None = None) -> None:
        """Zoom (1..8) and pan (the top left corner, within the page)."""
        self._require_presenter(by)
        if not 1.0 <= zoom <= 8.0:
            raise ClassroomError("invalid", "zoom must be between 1 and 8")
        limit = 1.0 - 1.0 / zoom
        view = meeting.presentation.viewport
        view.zoom = zoom
        view.x = min(max(x, 0.0), limit)
        view.y = min(max(y, 0.0), limit)
        self._emit(ev.ViewportChanged(at=self.now(), meeting=meeting))

    # --- the whiteboard ----------------------------------------------------------------

    def set_multi_user(self, meeting: Meeting, enabled: bool,
                       by: Participant | None = None) -> None:
        if by is not None and not by.is_moderator:
            raise NotAllowed("only moderators may open the whiteboard to everyone")
        p = meeting.presentation
        if p.multi_user != enabled:
            p.multi_user = enabled
            self._emit(ev.MultiUserChanged(at=self.now(), meeting=meeting, enabled=enabled))

    def draw(self, meeting: Meeting, by: Participant | None, shape_id: str, *,
             points: list[float], kind: str | None = None, color: str | None = None,
             width: float | None = None, text: str | None = None,
             done: bool = False) -> Shape:
        """Start shape ``shape_id`` on the current page or append ``points`` to it.

        The first message of a shape names its ``kind`` (and style); later ones only
        add points (and text), so a stroke travels in small pieces while it is drawn.
        A shape belongs to who started it; ``done`` closes it.
        """
        self._require_drawer(meeting, by)
        p = meeting.presentation
        self._take_draw_token(p, by)
        if not _SHAPE_ID.match(shape_id):
            raise ClassroomError("invalid", "shapeId must be 1..64 letters, digits, - or _")
        if len(points) % 2:
            raise ClassroomError("invalid", "points must be x, y pairs")
        key = p.page_key
        page = p.annotations.setdefault(key, {})
        shape = page.get(shape_id)
        created = shape is None
        if shape is None:
            if kind not in SHAPE_KINDS:
                raise ClassroomError("invalid", "a new shape needs a kind: "
                                     + ", ".join(SHAPE_KINDS))
            if len(page) >= self.MAX_SHAPES_PER_PAGE:
                raise ClassroomError(
                    "tooManyShapes", f"a page holds at most {self.MAX_SHAPES_PER_PAGE} shapes; "
                    "clear some first")
            if color is not None and not _COLOR.match(color):
                raise ClassroomError("invalid", "color must look like #rrggbb")
            if width is not None and not 0.0005 <= width <= 0.1:
                raise ClassroomError("invalid", "width must be between 0.0005 and 0.1")
            shape = Shape(id=shape_id, kind=kind, user_id=by.user_id if by else "",
                          color=color or "#d32f2f", width=width or 0.004)
        else:
            if by is not None and shape.user_id != by.user_id:
                raise NotAllowed("this shape belongs to someone else")
            if shape.done:
                raise ClassroomError("invalid", "this shape is finished")
        if len(shape.points) + len(points) > self.MAX_POINTS_PER_SHAPE:
            raise ClassroomError(
                "tooManyPoints", f"a shape holds at most {self.MAX_POINTS_PER_SHAPE // 2} "
                "points; start a new one")
        held = p.page_points.get(key, 0)
        if held + len(points) > self.MAX_POINTS_PER_PAGE:
            raise ClassroomError(
                "tooManyPoints", f"a page holds at most {self.MAX_POINTS_PER_PAGE // 2} "
                "points in all; clear some first")
        p.page_points[key] = held + len(points)
        if text is not None:
            if len(text) > self.MAX_TEXT_CHARS:
                raise ClassroomError("invalid",
                                     f"text must have at most {self.MAX_TEXT_CHARS} characters")
            shape.text = text
        if created:
            page[shape_id] = shape
        start = len(shape.points)
        shape.points.extend(points)
        shape.done = done
        self._emit(ev.ShapeDrawn(at=self.now(), meeting=meeting, page_key=key, shape=shape,
                                 points_from=start, created=created))
        return shape

    def _removable(self, meeting: Meeting, by: Participant | None, shape: Shape) -> bool:
        return by is None or by.presenter or by.is_moderator or shape.user_id == by.user_id

    def erase(self, meeting: Meeting, shape_ids: list[str],
              by: Participant | None = None) -> list[str]:
        """Remove shapes of the current page (the eraser); returns the ids removed."""
        self._require_drawer(meeting, by)
        p = meeting.presentation
        self._take_draw_token(p, by)
        page = p.annotations.get(p.page_key, {})
        removed = []
        for shape_id in shape_ids:
            shape = page.get(shape_id)
            if shape is None:
                continue
            if not self._removable(meeting, by, shape):
                raise NotAllowed("this shape belongs to someone else")
            removed.append(shape_id)
        return self._remove(meeting, removed, by)

    def undo(self, meeting: Meeting, by: Participant) -> list[str]:
        """Remove the last shape ``by`` drew on the current page."""
        self._require_drawer(meeting, by)
        p = meeting.presentation
        self._take_draw_token(p, by)
        mine = [s for s in p.shapes() if s.user_id == by.user_id]
        return self._remove(meeting, [mine[-1].id] if mine else [], by)

    def clear_page(self, meeting: Meeting, by: Participant | None = None) -> list[str]:
        """The presenter (or a moderator) clears the page; others clear their own shapes."""
        self._require_drawer(meeting, by)
        p = meeting.presentation
        self._take_draw_token(p, by)
        everything = by is None or by.presenter or by.is_moderator
        ids = [s.id for s in p.shapes() if everything or (by and s.user_id == by.user_id)]
        return self._remove(meeting, ids, by, cleared=everything)

    def _remove(self, meeting: Meeting, ids: list[str], by: Participant | None,
                cleared: bool = False) -> list[str]:
        p = meeting.presentation
        key = p.page_key
        page = p.annotations.get(key, {})
        for shape_id in ids:
            shape = page.pop(shape_id, None)
            if shape is not None:
                p.page_points[key] = p.page_points.get(key, 0) - len(shape.points)
        if ids or cleared:
            self._emit(ev.ShapesRemoved(at=self.now(), meeting=meeting, page_key=key,
                                        shape_ids=tuple(ids), by=by, cleared=cleared))
        return ids

    # --- polls ---------------------------------------------------------------------------

    def start_poll(self, meeting: Meeting, kind: PollKind, *, question: str = "",
                   answers: list[str] | None = None, anonymous: bool = False,
                   by: Participant | None = None) -> Poll:
        """Start a poll (a running one stops first)."""
        self._require_presenter(by)
        if len(question) > self.MAX_QUESTION_CHARS:
            raise ClassroomError(
                "invalid", f"question must have at most {self.MAX_QUESTION_CHARS} characters")
        if kind is PollKind.CUSTOM:
            answers = [a.strip() for a in (answers or [])]
            if not 2 <= len(answers) <= self.MAX_POLL_ANSWERS or not all(answers) or any(
                    len(a) > self.MAX_ANSWER_CHARS for a in answers):
                raise ClassroomError(
                    "invalid", f"a custom poll needs 2..{self.MAX_POLL_ANSWERS} answers of "
                    f"1..{self.MAX_ANSWER_CHARS} characters")
        elif kind is PollKind.FREE_TEXT:
            answers = []
        else:
            answers = list(POLL_ANSWERS[kind])
        p = meeting.presentation
        if p.poll is not None and not p.poll.stopped:
            self.stop_poll(meeting, by)
        poll = Poll(id=secrets.token_hex(8), kind=kind, question=question.strip(),
                    answers=answers, anonymous=anonymous,
                    started_by=by.user_id if by else "", started_at=self.now(),
                    counts=[0] * len(answers))
        p.poll = poll
        p.polls.append(poll)
        del p.polls[:-self.MAX_POLLS]
        self._emit(ev.PollStarted(at=poll.started_at, meeting=meeting, poll=poll))
        return poll

    def answer_poll(self, meeting: Meeting, participant: Participant, poll_id: str,
                    answer: int | str) -> None:
        """One answer per participant: an answer index, or a text for a free-text poll."""
        poll = meeting.presentation.poll
        if poll is None or poll.id != poll_id:
            raise ClassroomError("notFound", "no such poll")
        if poll.stopped:
            raise ClassroomError("pollClosed", "this poll is closed")
        if participant.user_id in poll.responders:
            raise ClassroomError("alreadyAnswered", "you already answered this poll")
        if poll.kind is PollKind.FREE_TEXT:
            if not isinstance(answer, str) or not answer.strip() or (
                    len(answer) > self.MAX_FREE_TEXT_CHARS):
                raise ClassroomError("invalid", "the answer must be a text of 1.."
                                     f"{self.MAX_FREE_TEXT_CHARS} characters")
            answer = answer.strip()
            poll.texts.append(answer)
        else:
            if isinstance(answer, bool) or not isinstance(answer, int) or not (
                    0 <= answer < len(poll.answers)):
                raise ClassroomError("invalid", "the answer must be the index of a choice")
            poll.counts[answer] += 1
        poll.responders.add(participant.user_id)
        if not poll.anonymous:
            poll.votes[participant.user_id] = answer
        self._emit(ev.PollAnswered(at=self.now(), meeting=meeting, poll=poll,
                                   participant=None if poll.anonymous else participant,
                                   answer=answer))

    def stop_poll(self, meeting: Meeting, by: Participant | None = None) -> Poll:
        self._require_presenter(by)
        poll = meeting.presentation.poll
        if poll is None:
            raise ClassroomError("notFound", "no poll is running")
        if not poll.stopped:
            poll.stopped = True
            self._emit(ev.PollStopped(at=self.now(), meeting=meeting, poll=poll))
        return poll

    def publish_poll(self, meeting: Meeting, by: Participant | None = None) -> Poll:
        """Stop the poll and show its results to everyone, and in the chat."""
        poll = self.stop_poll(meeting, by)
        if not poll.published:
            poll.published = True
            self._emit(ev.PollPublished(at=self.now(), meeting=meeting, poll=poll))
            self.send_chat(meeting, poll_summary(poll), "Poll")
        return poll


def poll_summary(poll: Poll) -> str:
    """The results as one chat message."""
    head = f"Poll results: {poll.question}" if poll.question else "Poll results"
    if poll.kind is PollKind.FREE_TEXT:
        lines = [f"- {text}" for text in poll.texts[:20]]
        if len(poll.texts) > 20:
            lines.append(f"(and {len(poll.texts) - 20} more)")
    else:
        total = sum(poll.counts)
        lines = [f"{answer}: {count}" + (f" ({round(100 * count / total)}%)" if total else "")
                 for answer, count in zip(poll.answers, poll.counts, strict=True)]
    text = "\n".join([head, *lines])
    return text[:500]
