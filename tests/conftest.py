"""Shared fixtures. No reactor import here: pytest-twisted chooses the reactor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from twisted.logger import ILogObserver, LogEvent, globalLogPublisher
from zope.interface import provider

try:
    import selenium  # noqa: F401 - only asks whether the `browser` extra is installed
except ImportError:
    # `pip install .[test]` without the `browser` extra: the real-browser tests need its
    # drivers, so they are not collected (./scripts/test installs every extra).
    collect_ignore = ["browser"]


@pytest.fixture(autouse=True)
def fail_on_logged_failures() -> Iterator[list[LogEvent]]:
    """Fail any test during which something logged a failure (as trial does)."""
    failures: list[LogEvent] = []

    @provider(ILogObserver)
    def observe(event: LogEvent) -> None:
        if event.get("log_failure") is not None and not event.get("expected_failure"):
            failures.append(event)

    globalLogPublisher.addObserver(observe)
    try:
        yield failures
    finally:
        globalLogPublisher.removeObserver(observe)
    if failures:
        from twisted.logger import formatEvent

        texts = [formatEvent(e) + "\n" + e["log_failure"].getTraceback() for e in failures]
        pytest.fail("logged failures:\n" + "\n".join(texts))


@pytest.fixture(autouse=True)
def unfreeze_garbage_collector() -> Iterator[None]:
    """A started MeetplatformService freezes the collector's view of the heap (as it
    should in production); give the next test back the interpreter's defaults."""
    import gc

    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
