"""A meeting's documents: fetched, checked and converted to page images in worker
processes. :class:`DocumentService` is the entry point; see :mod:`.service`."""

from meetplatform.documents.fetch import Fetcher, FetchLimits, guarded_client
from meetplatform.documents.process import ProcessLimits, ProcessRunner
from meetplatform.documents.service import (
    ConvertedDocument,
    DocumentLimits,
    DocumentService,
    State,
    safe_filename,
)
from meetplatform.documents.sniff import DocumentRefused, Kind, sniff

__all__ = [
    "ConvertedDocument",
    "DocumentLimits",
    "DocumentRefused",
    "DocumentService",
    "FetchLimits",
    "Fetcher",
    "Kind",
    "ProcessLimits",
    "ProcessRunner",
    "State",
    "guarded_client",
    "safe_filename",
    "sniff",
]
