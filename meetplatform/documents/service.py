"""Documents for real: a meeting's presentations fetched, checked and converted to images.

Every document a meeting receives (``create`` modules by URL or inline, ``insertDocument``,
a presenter's upload) is handed to :meth:`DocumentService.add`, which answers at once with
one :class:`ConvertedDocument` per document, in state ``queued``. The conversion then runs
on its own:

1. the bytes: inline, or downloaded through the SSRF guard (:mod:`.fetch`);
2. the kind, sniffed from the bytes (:mod:`.sniff`), never from the name or the
   ``Content-Type``; hostile files are refused here (JavaScript in a PDF, a zip bomb);
3. office documents become a PDF with LibreOffice (``soffice --headless --convert-to
   pdf``) when it is installed, else "This format is not supported on this server";
4. ``pdfinfo`` gives the page count (over the limit: refused before any page is drawn),
   then ``pdftoppm`` draws each page and its thumbnail, page after page, so the progress
   (``converting``, pages done of total) can be shown while it runs;
5. ``ready``, or ``failed`` with a message meant for people (:attr:`ConvertedDocument.error`).

Every converter is a child process under limits (:mod:`.process`); the reactor thread
only reads their output and moves files, so it keeps serving the meeting. At most
``max_concurrent`` documents convert at once (the others wait, ``queued``), as each
conversion keeps a core busy. A document that fails disturbs nothing else.

The files live under ``<data_dir>/presentations/<meeting internal id>/<document id>/``:
``page-<n>.png`` (or ``.jpg``, :attr:`DocumentLimits.page_format`) and ``thumb-<n>.png``
for a PDF or office document (an image document
is its one page, ``page-1.png`` or ``page-1.jpg``, as received), and ``original.<ext>``
when the document is ``downloadable``. :meth:`DocumentService.purge` removes a meeting's
directory once its conversions are stopped.

Whoever shows progress (the conference page, the APIs) subscribes
(:meth:`DocumentService.subscribe`): the callback receives the document at every change,
on the reactor thread.

Why one module of this size: a document's life (queued, converting with progress,
ready or failed, purged) is one state machine; its states and transitions are
kept in one file.
"""

from __future__ import annotations

import enum
import re
import secrets
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, DeferredSemaphore
from twisted.logger import Logger
from twisted.python.failure import Failure

from meetplatform.documents.fetch import Fetcher, FetchLimits, guarded_client, too_large
from meetplatform.documents.process import ProcessLimits, ProcessRunner, Result
from meetplatform.documents.sniff import (
    HAS_JAVASCRIPT,
    NOT_ON_THIS_SERVER,
    UNREADABLE,
    DocumentRefused,
    Kind,
    Sniffed,
    check_zip,
    pdf_has_javascript,
    sniff,
)
from meetplatform.model import Document
from meetplatform.webhooks.guard import AddressPolicy

log = Logger()

#: What may name a directory: meeting internal ids and document ids are made by us, but
#: they become paths, so they are checked (no separators, no ``..``).
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

PRESENTATIONS = "presentations"
TOO_LONG = "The document took too long or too much memory to convert"
STOPPED = "The conversion was stopped"


class State(enum.Enum):
    QUEUED = "queued"
    CONVERTING = "converting"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class DocumentLimits:
    """What a document may be and what converting it may take."""

    max_bytes: int = 30 * 1024 * 1024
    max_pages: int = 200
    #: Pages are drawn to fit in a square of this many pixels, whatever the page size
    #: claims (a 200-inch page at a fixed resolution would be a 30,000-pixel image).
    page_pixels: int = 1600
    #: ``png`` (lossless, sharp text) or ``jpeg`` (quality 90): encoding a 1600-pixel
    #: PNG is most of a page's conversion time, JPEG about a tenth of it.
    page_format: str = "png"
    thumbnail_pixels: int = 200
    max_image_pixels: int = 40_000_000
    max_zip_entries: int = 10_000
    max_zip_uncompressed: int = 300 * 1024 * 1024
    #: Seconds a whole conversion may take (each process also has its own timeout):
    #: a document whose every page takes nearly the per-process limit stops here.
    conversion_timeout: float = 600.0
    #: Documents converting at once (each keeps one core busy); the others wait.
    max_concurrent: int = 1
    #: pdfinfo and pdftoppm, per process (one page).
    process: ProcessLimits = field(default_factory=lambda: ProcessLimits(
        timeout=60.0, cpu_seconds=60, memory_bytes=1024 * 1024 * 1024))
    #: LibreOffice, for the whole document (it maps far more address space).
    office: ProcessLimits = field(default_factory=lambda: ProcessLimits(
        timeout=180.0, cpu_seconds=180, memory_bytes=4 * 1024 * 1024 * 1024))


@dataclass(eq=False)
class ConvertedDocument:
    """One document of a meeting and how far its conversion got."""

    id: str
    meeting_internal_id: str
    filename: str
    directory: Path
    current: bool = False
    downloadable: bool = False
    removable: bool = True
    url: str | None = None
    state: State = State.QUEUED
    pages_total: int = 0
    pages_done: int = 0
    #: Why it failed, in words for people (``failed`` only).
    error: str | None = None
    kind: Kind | None = None
    #: File names in :attr:`directory`, one per page (index 0 is page 1).
    page_files: list[str] = field(default_factory=list)
    thumbnail_files: list[str] = field(default_factory=list)
    #: The original's file name in :attr:`directory` (``downloadable`` documents, once
    #: ready).
    original_file: str | None = None

    @property
    def done(self) -> bool:
        return self.state in (State.READY, State.FAILED)

    def page_path(self, page: int) -> Path:
        """The image of page ``page`` (1-based); IndexError if there is none."""
        if page < 1:
            raise IndexError(page)
        return self.directory / self.page_files[page - 1]

    def thumbnail_path(self, page: int) -> Path:
        if page < 1:
            raise IndexError(page)
        return self.directory / self.thumbnail_files[page - 1]

    @property
    def original_path(self) -> Path | None:
        return self.directory / self.original_file if self.original_file else None

    def as_dict(self) -> dict[str, Any]:
        """What the page and the APIs show (no paths)."""
        return {"id": self.id, "filename": self.filename, "state": self.state.value,
                "pagesDone": self.pages_done, "pagesTotal": self.pages_total,
                "error": self.error, "current": self.current,
                "downloadable": self.downloadable and self.original_file is not None,
                "removable": self.removable}


Subscriber = Callable[[ConvertedDocument], None]


def safe_filename(name: str, fallback: str = "document") -> str:
    """A file name to show and offer for download: no directories, no control
    characters, at most 255 characters."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip().strip(".")
    return name[:255] or fallback


class DocumentService(Service):
    """Converts meetings' documents (see the module); a Twisted service."""

    name = "documents"

    def __init__(self, reactor: Any, data_dir: Path, *,
                 policy: AddressPolicy | None = None, http_client: Any = None,
                 limits: DocumentLimits = DocumentLimits(),
                 fetch_limits: FetchLimits | None = None,
                 soffice: str | None = None, pdftoppm: str | None = None,
                 pdfinfo: str | None = None, runner: ProcessRunner | None = None,
                 new_id: Callable[[], str] | None = None) -> None:
        """``policy`` restricts URL downloads (default: public addresses only);
        ``http_client`` is a treq-like client (default: :func:`.fetch.guarded_client`
        with that policy); ``soffice``, ``pdftoppm`` and ``pdfinfo`` default to what is
        on the PATH (``soffice`` may be missing: office documents are then refused)."""
        self._reactor = reactor
        self.root = Path(data_dir) / PRESENTATIONS
        self.limits = limits
        self.policy = policy if policy is not None else AddressPolicy()
        fetch_limits = fetch_limits or FetchLimits(max_bytes=limits.max_bytes)
        if http_client is None:
            http_client = guarded_client(reactor, self.policy)
        self._fetcher = Fetcher(reactor, http_client, self.policy, fetch_limits)
        self.soffice = soffice if soffice is not None else shutil.which("soffice")
        self.pdftoppm = pdftoppm or shutil.which("pdftoppm") or "pdftoppm"
        self.pdfinfo = pdfinfo or shutil.which("pdfinfo") or "pdfinfo"
        self._runner = runner or ProcessRunner(reactor)
        self._new_id = new_id or (
            lambda: f"{secrets.token_hex(20)}-{int(self._reactor.seconds() * 1000)}")
        self._slots = DeferredSemaphore(max(1, limits.max_concurrent))
        self._meetings: dict[str, dict[str, ConvertedDocument]] = {}
        self._tasks: dict[str, Deferred[None]] = {}
        #: Documents removed or purged whose conversion has not ended yet.
        self._stopped: set[str] = set()
        self._waiters: dict[str, list[Deferred[ConvertedDocument]]] = {}
        self._subscribers: list[Subscriber] = []

    @classmethod
    def from_settings(cls, reactor: Any, settings: Any, **kwargs: Any) -> DocumentService:
        """The service as the composition root builds it: the data directory and the
        networks allowed beyond public addresses (``allow_webhook_networks``) of
        :class:`meetplatform.config.Settings`."""
        return cls(reactor, settings.data_dir,
                   policy=AddressPolicy(settings.allow_webhook_networks), **kwargs)

    # --- the API ------------------------------------------------------------------------

    def add(self, meeting_internal_id: str, documents: Iterable[Document]
            ) -> list[ConvertedDocument]:
        """Start converting ``documents`` for the meeting; returns their records (queued).

        The conversions go on after this returns; :meth:`subscribe` or :meth:`wait`
        tell when they are done.
        """
        _check_id(meeting_internal_id)
        added: list[tuple[ConvertedDocument, Document]] = []
        meeting = self._meetings.setdefault(meeting_internal_id, {})
        for document in documents:
            doc_id = self._new_id()
            _check_id(doc_id)
            doc = ConvertedDocument(
                id=doc_id, meeting_internal_id=meeting_internal_id,
                filename=safe_filename(document.filename),
                directory=self.root / meeting_internal_id / doc_id,
                current=document.current, downloadable=document.downloadable,
                removable=document.removable, url=document.url)
            meeting[doc_id] = doc
            added.append((doc, document))
        for doc, _ in added:
            self._notify(doc)
        for doc, document in added:
            task = Deferred.fromCoroutine(self._convert(doc, document))
            if not task.called:
                self._tasks[doc.id] = task
                task.addBoth(self._forget_task, doc.id)
        return [doc for doc, _ in added]

    def documents(self, meeting_internal_id: str) -> list[ConvertedDocument]:
        """The meeting's documents, in the order they were added."""
        return list(self._meetings.get(meeting_internal_id, {}).values())

    def get(self, meeting_internal_id: str, document_id: str) -> ConvertedDocument | None:
        return self._meetings.get(meeting_internal_id, {}).get(document_id)

    def wait(self, doc: ConvertedDocument) -> Deferred[ConvertedDocument]:
        """Fires with ``doc`` once it is ``ready`` or ``failed`` (never fails)."""
        d: Deferred[ConvertedDocument] = Deferred()
        if doc.done:
            d.callback(doc)
        else:
            self._waiters.setdefault(doc.id, []).append(d)
        return d

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber(doc)`` at every change of any document (added, converting,
        each page done, ready, failed), on the reactor thread. Returns the function that
        unsubscribes."""
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    def remove(self, meeting_internal_id: str, document_id: str) -> Deferred[bool]:
        """Forget one document and delete its files (its conversion is stopped first).
        Whether a user may remove it (``removable``) is for the caller to decide."""
        doc = self._meetings.get(meeting_internal_id, {}).pop(document_id, None)
        if doc is None:
            d: Deferred[bool] = Deferred()
            d.callback(False)
            return d
        return self._stop_and_delete([doc], doc.directory).addCallback(lambda _: True)

    def purge(self, meeting_internal_id: str) -> Deferred[None]:
        """Stop the meeting's conversions and remove all its files."""
        _check_id(meeting_internal_id)
        docs = list(self._meetings.pop(meeting_internal_id, {}).values())
        return self._stop_and_delete(docs, self.root / meeting_internal_id)

    def stopService(self) -> Deferred[None]:  # type: ignore[override]
        super().stopService()
        for meeting in self._meetings.values():
            for doc in meeting.values():
                self._stop(doc)
        self._runner.kill_all()
        return self._runner.settled(str(self.root))

    # --- conversion ---------------------------------------------------------------------

    def _stop_and_delete(self, docs: list[ConvertedDocument], directory: Path
                         ) -> Deferred[None]:
        for doc in docs:
            self._stop(doc)

        def delete(_: object) -> None:
            shutil.rmtree(directory, ignore_errors=True)

        return self._runner.settled(str(directory)).addCallback(delete)

    def _stop(self, doc: ConvertedDocument) -> None:
        """Stop converting ``doc`` now: its state is final at once, its process killed.

        Cancelling the task is not always enough: a subscriber may purge from inside a
        notification, while the conversion's coroutine is running (not waiting), and
        the cancellation then has nothing to interrupt. So the coroutine also checks
        :attr:`_stopped` before and after each step (:meth:`_go_on`)."""
        if doc.done:
            return
        self._stopped.add(doc.id)
        self._finish(doc, State.FAILED, STOPPED)
        self._runner.kill_under(str(doc.directory))
        task = self._tasks.get(doc.id)
        if task is not None:
            task.cancel()

    def _go_on(self, doc: ConvertedDocument) -> None:
        if doc.id in self._stopped:
            raise CancelledError()

    async def _process(self, doc: ConvertedDocument, argv: list[str],
                       limits: ProcessLimits, home: Path) -> Result:
        self._go_on(doc)
        result = await self._runner.run(argv, limits, home=str(home))
        self._go_on(doc)
        return result

    def _forget_task(self, result: object, doc_id: str) -> None:
        self._tasks.pop(doc_id, None)
        self._stopped.discard(doc_id)
        if isinstance(result, Failure) and not result.check(CancelledError):
            log.failure("document conversion crashed", result)

    async def _convert(self, doc: ConvertedDocument, document: Document) -> None:
        slot = self._slots.acquire()
        try:
            await slot
        except CancelledError:
            self._finish(doc, State.FAILED, STOPPED)
            raise
        try:
            self._go_on(doc)
            doc.state = State.CONVERTING
            self._notify(doc)
            await self._run(doc, document)
        except DocumentRefused as refusal:
            log.info("document {filename} of {meeting} refused: {why}",
                     filename=doc.filename, meeting=doc.meeting_internal_id,
                     why=refusal.message)
            self._finish(doc, State.FAILED, refusal.message)
        except CancelledError:
            self._finish(doc, State.FAILED, STOPPED)
            raise
        except Exception:  # noqa: BLE001 - logged; one document must not stop the others
            log.failure("converting document {filename} of {meeting} failed",
                        filename=doc.filename, meeting=doc.meeting_internal_id)
            self._finish(doc, State.FAILED, "The document could not be converted")
        else:
            self._finish(doc, State.READY, None)
        finally:
            self._slots.release()

    async def _run(self, doc: ConvertedDocument, document: Document) -> None:
        if document.content is not None:
            data = document.content
            if len(data) > self.limits.max_bytes:
                raise too_large(self.limits.max_bytes)
        elif document.url:
            data = await self._fetcher.fetch(document.url)
            self._go_on(doc)
        else:
            raise DocumentRefused("The document has neither a URL nor content")
        sniffed = sniff(data, max_image_pixels=self.limits.max_image_pixels,
                        max_zip_entries=self.limits.max_zip_entries)
        doc.kind = sniffed.kind
        doc.directory.mkdir(parents=True, exist_ok=True)
        if sniffed.kind.is_image:
            self._image(doc, sniffed, data)
            return
        if sniffed.kind is Kind.OFFICE:
            pdf = await self._office_to_pdf(doc, sniffed, data)
        else:
            if pdf_has_javascript(data):
                raise DocumentRefused(HAS_JAVASCRIPT)
            pdf = doc.directory / "original.pdf"
            pdf.write_bytes(data)
        del data
        await self._pdf_pages(doc, pdf)
        if doc.downloadable:
            doc.original_file = f"original.{sniffed.extension}"
        self._cleanup(doc, keep_original=doc.downloadable)

    def _image(self, doc: ConvertedDocument, sniffed: Sniffed, data: bytes) -> None:
        """An image is a one-page document as it is: the browser draws it."""
        name = f"page-1.{sniffed.extension}"
        (doc.directory / name).write_bytes(data)
        doc.pages_total = doc.pages_done = 1
        doc.page_files = [name]
        doc.thumbnail_files = [name]
        if doc.downloadable:
            doc.original_file = name

    async def _office_to_pdf(self, doc: ConvertedDocument, sniffed: Sniffed, data: bytes
                             ) -> Path:
        if not self.soffice:
            raise DocumentRefused(NOT_ON_THIS_SERVER)
        if sniffed.extension != "doc":  # a zip: OOXML or ODF
            check_zip(data, max_entries=self.limits.max_zip_entries,
                      max_uncompressed=self.limits.max_zip_uncompressed)
        original = doc.directory / f"original.{sniffed.extension}"
        original.write_bytes(data)
        work = doc.directory / "work"
        work.mkdir(exist_ok=True)
        result = await self._process(
            doc, [self.soffice, "--headless", "--norestore", "--nolockcheck",
             f"-env:UserInstallation={(work / 'profile').as_uri()}",
             "--convert-to", "pdf", "--outdir", str(work), str(original)],
            self.limits.office, work)
        pdf = work / "original.pdf"
        if not result.ok or not pdf.is_file():
            self._raise_for(result, UNREADABLE)
        if pdf_has_javascript(pdf.read_bytes()):
            raise DocumentRefused(HAS_JAVASCRIPT)
        return pdf

    async def _pdf_pages(self, doc: ConvertedDocument, pdf: Path) -> None:
        info = await self._process(doc, [self.pdfinfo, str(pdf)], self.limits.process,
                                   doc.directory)
        if not info.ok:
            if b"Incorrect password" in info.stderr:
                raise DocumentRefused("The document is protected by a password")
            self._raise_for(info, UNREADABLE)
        fields = _pdfinfo_fields(info.stdout)
        if fields.get("JavaScript") == "yes":
            raise DocumentRefused(HAS_JAVASCRIPT)
        try:
            pages = int(fields["Pages"])
        except (KeyError, ValueError):
            raise DocumentRefused(UNREADABLE) from None
        if pages < 1:
            raise DocumentRefused("The document has no pages")
        if pages > self.limits.max_pages:
            raise DocumentRefused(
                f"The document has {pages} pages; at most {self.limits.max_pages} "
                "are allowed")
        doc.pages_total = pages
        self._notify(doc)
        if self.limits.page_format == "jpeg":
            page_format, extension = ["-jpeg", "-jpegopt", "quality=90"], "jpg"
        else:
            page_format, extension = ["-png"], "png"
        started = self._reactor.seconds()
        for page in range(1, pages + 1):
            if self._reactor.seconds() - started > self.limits.conversion_timeout:
                raise DocumentRefused(TOO_LONG)
            for prefix, pixels, output in (
                    ("page", self.limits.page_pixels, page_format),
                    ("thumb", self.limits.thumbnail_pixels, ["-png"])):
                result = await self._process(
                    doc, [self.pdftoppm, *output, "-scale-to", str(pixels), "-f", str(page),
                     "-l", str(page), "-singlefile", str(pdf),
                     str(doc.directory / f"{prefix}-{page}")],
                    self.limits.process, doc.directory)
                if not result.ok:
                    self._raise_for(result, f"{UNREADABLE} (page {page})")
            doc.page_files.append(f"page-{page}.{extension}")
            doc.thumbnail_files.append(f"thumb-{page}.png")
            doc.pages_done = page
            self._notify(doc)

    @staticmethod
    def _raise_for(result: Result, message: str) -> None:
        if result.timed_out or result.signal is not None:
            log.info("{argv} stopped (timed out: {timed_out}, signal {signal})",
                     argv=result.argv[0], timed_out=result.timed_out, signal=result.signal)
            raise DocumentRefused(TOO_LONG)
        log.info("{argv} exited with {code}: {stderr}", argv=result.argv[0],
                 code=result.code, stderr=result.stderr[-500:].decode("utf-8", "replace"))
        raise DocumentRefused(message)

    @staticmethod
    def _cleanup(doc: ConvertedDocument, *, keep_original: bool) -> None:
        """After a conversion: remove the working files, and the original unless kept."""
        shutil.rmtree(doc.directory / "work", ignore_errors=True)
        if keep_original:
            return
        for entry in doc.directory.glob("original.*"):
            entry.unlink(missing_ok=True)

    def _finish(self, doc: ConvertedDocument, state: State, error: str | None) -> None:
        """Make ``doc``'s state final (once: a stopped document stays stopped)."""
        if doc.done:
            return
        doc.state = state
        doc.error = error
        if state is State.FAILED:
            doc.page_files = []
            doc.thumbnail_files = []
            doc.original_file = None
            shutil.rmtree(doc.directory, ignore_errors=True)
        self._notify(doc)
        for waiter in self._waiters.pop(doc.id, []):
            waiter.callback(doc)

    def _notify(self, doc: ConvertedDocument) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(doc)
            except Exception:  # noqa: BLE001 - logged; the other subscribers still hear
                log.failure("a document subscriber failed")


def _pdfinfo_fields(output: bytes) -> dict[str, str]:
    fields = {}
    for line in output.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _check_id(value: str) -> None:
    if not _SAFE_ID.match(value) or value in (".", ".."):
        raise ValueError(f"not a safe identifier: {value!r}")

