"""Meetings' documents: the registry's meetings meet the document service.

:class:`MeetingDocuments` listens to the registry and to the
:class:`~meetplatform.documents.service.DocumentService`:

- every document a meeting receives goes through the registry (``create`` with
  ``<modules>`` or ``preUploadedPresentation`` → :class:`~meetplatform.events.MeetingCreated`,
  ``insertDocument`` and uploads → :class:`~meetplatform.events.DocumentsInserted`), so
  listening there hands every one of them, whichever surface received it, to the
  service;
- the service's progress (queued, converting, each page, ready, failed) becomes the
  registry's classroom state (:meth:`Registry.document_changed`), which the conference
  page, ``getMeetingInfo`` and the JSON:API show;
- a document removed from the classroom (``DocumentRemoved``) is removed from the
  service, its files with it;
- when a meeting ends its conversions stop and, after ``retention_seconds`` (default 0:
  at once), its files are removed (:meth:`DocumentService.purge`); on start,
  :meth:`sweep` removes what a killed process left (no meeting is live then).

Notifications the service makes while the registry is still announcing an event (the
``queued`` state of a document just added) reach the registry on the next reactor turn,
so that every registry subscriber hears of the meeting before it hears of its documents.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.documents.service import ConvertedDocument, DocumentService
from meetplatform.model import Document, Meeting, SlideDocument
from meetplatform.registry import Registry

_log = Logger()


#: Where converted pages are served (:mod:`meetplatform.web.presentations`).
PRESENTATIONS_PATH = "/presentations"


def document_json(meeting: Meeting, doc: SlideDocument,
                  base: str = PRESENTATIONS_PATH) -> dict[str, Any]:
    """A document as the page shows it; ``base`` is where ``/presentations`` is mounted
    (under the public URL's path)."""
    base = f"{base}/{meeting.internal_id}/{doc.id}"
    out: dict[str, Any] = {
        "id": doc.id, "filename": doc.filename, "state": doc.state,
        "pagesDone": doc.pages_done, "pagesTotal": doc.pages_total, "error": doc.error,
        "downloadable": doc.downloadable and doc.ready, "removable": doc.removable,
        "pageUrl": f"{base}/page-{{page}}.{doc.page_extension}",
        "thumbnailUrl": f"{base}/thumb-{{page}}.png",
    }
    if doc.downloadable and doc.ready:
        out["downloadUrl"] = f"{base}/original"
    return out



def slide(doc: ConvertedDocument) -> SlideDocument:
    """What the classroom knows of a converted document (no paths)."""
    extension = doc.page_files[0].rsplit(".", 1)[-1] if doc.page_files else "png"
    return SlideDocument(
        id=doc.id, filename=doc.filename, state=doc.state.value,
        pages_total=doc.pages_total, pages_done=doc.pages_done, error=doc.error,
        downloadable=doc.downloadable and doc.original_file is not None,
        removable=doc.removable, current=doc.current, page_extension=extension)


class MeetingDocuments:
    """Converts every meeting's documents and keeps the classroom informed."""

    def __init__(self, clock: IReactorTime, registry: Registry, service: DocumentService,
                 *, retention_seconds: float = 0.0) -> None:
        self._clock = clock
        self._registry = registry
        self.service = service
        self.retention_seconds = retention_seconds
        self._announcing = False
        self._queued: dict[str, ConvertedDocument] = {}
        self._purges: dict[str, IDelayedCall] = {}
        self._last_added: list[ConvertedDocument] = []
        registry.subscribe(self._on_event)
        service.subscribe(self._on_document)

    # --- the API --------------------------------------------------------------------------

    def upload(self, meeting: Meeting, filename: str, content: bytes, *,
               current: bool = False, downloadable: bool = False) -> ConvertedDocument:
        """A presenter's upload: recorded on the meeting like an ``insertDocument``, then
        converted; returns the document (queued)."""
        return self.insert(meeting, Document(filename=filename, content=content,
                                             current=current, downloadable=downloadable))

    def insert(self, meeting: Meeting, document: Document) -> ConvertedDocument:
        """One document (inline or by URL) for a live meeting, as ``insertDocument``
        does; returns its record (queued) at once."""
        self._last_added = []
        self._registry.insert_documents(meeting, [document])
        [doc] = self._last_added
        return doc

    def documents(self, meeting: Meeting) -> list[ConvertedDocument]:
        return self.service.documents(meeting.internal_id)

    def sweep(self) -> None:
        """Remove every meeting's files (call at start: nothing is live yet)."""
        root = Path(self.service.root)
        if root.is_dir():
            for entry in root.iterdir():
                if entry.is_dir() and not self.service.documents(entry.name):
                    shutil.rmtree(entry, ignore_errors=True)

    # --- registry events ------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        if isinstance(event, ev.MeetingCreated):
            if event.meeting.documents:
                self._add(event.meeting, event.meeting.documents)
        elif isinstance(event, ev.DocumentsInserted):
            self._add(event.meeting, list(event.documents))
        elif isinstance(event, ev.MeetingEnded):
            self._ended(event.meeting)
        elif isinstance(event, ev.DocumentRemoved):
            internal_id = event.meeting.internal_id
            self.service.remove(internal_id, event.document_id).addErrback(
                lambda f: _log.failure("removing document {document} of {meeting} failed",
                                       f, document=event.document_id, meeting=internal_id))

    def _add(self, meeting: Meeting, documents: list[Document]) -> None:
        self._announcing = True
        try:
            self._last_added = self.service.add(meeting.internal_id, documents)
        finally:
            self._announcing = False

    def _ended(self, meeting: Meeting) -> None:
        if not self.service.documents(meeting.internal_id):
            return
        if self.retention_seconds <= 0:
            self._purge(meeting.internal_id)
        else:
            self._purges[meeting.internal_id] = self._clock.callLater(
                self.retention_seconds, self._purge, meeting.internal_id)

    def _purge(self, internal_id: str) -> Deferred[None]:
        self._purges.pop(internal_id, None)
        d = self.service.purge(internal_id)
        d.addErrback(lambda f: _log.failure("purging the documents of {meeting} failed", f,
                                            meeting=internal_id))
        return d

    def stop(self) -> None:
        """Cancel the purges still waiting (the service stops)."""
        for call in self._purges.values():
            if call.active():
                call.cancel()
        self._purges.clear()

    # --- the service's progress -------------------------------------------------------------

    def _on_document(self, doc: ConvertedDocument) -> None:
        if self._announcing:
            if not self._queued:
                self._clock.callLater(0, self._flush)
            self._queued[doc.id] = doc
            return
        self._report(doc)

    def _flush(self) -> None:
        queued, self._queued = self._queued, {}
        for doc in queued.values():
            self._report(doc)

    def _report(self, doc: ConvertedDocument) -> None:
        meeting = self._registry.get_by_internal_id(doc.meeting_internal_id)
        if meeting is not None:
            self._registry.document_changed(meeting, slide(doc))
