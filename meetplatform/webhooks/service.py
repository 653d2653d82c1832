"""The webhook service: from events to the outbox, from the outbox to receivers.

:class:`WebhookService` is the one object the composition root builds. It

1. listens to the registry (meetings, participants, chat, the lobby). When an event
   happens it only *captures* it (:meth:`~meetplatform.webhooks.events.Translator.capture`: a tuple of
   the values that may change afterwards) and, once per turn of the reactor, schedules
   ``callLater(0)``; the join (or API call) that caused the event does nothing else for
   webhooks. On that next turn, every event captured meanwhile becomes its
   :class:`~meetplatform.webhooks.events.Occurrence` (or several), in order, with the
   values and the time of the moment it happened; while no hook and no endpoint exists
   (:attr:`~meetplatform.webhooks.receivers.Receivers.any`), only the events that may
   carry callbacks (a meeting's end) are built;
2. writes those occurrences to the durable outbox, all of one turn in one transaction
   when nothing else is being written (group commit), off the reactor thread, fanned
   out to every matching BBB hook, space endpoint and end callback. Changes made in the
   store (rooms and invitations changed through the JSON:API) write their events to the
   outbox inside the change's own transaction (``Store.observe``): the change and its
   event commit together;
3. hands the targets that got rows to the :class:`~meetplatform.webhooks.delivery.Dispatcher`,
   which delivers them (and, after a restart, whatever the previous process left).

The fan-out (which receivers match, the body each gets) is
:mod:`meetplatform.webhooks.outbox`; the receivers themselves are managed through
:attr:`WebhookService.receivers` (:class:`~meetplatform.webhooks.receivers.Receivers`),
which the surfaces' ``hooks/*`` calls and ``webhookEndpoints`` use, so the dispatcher
hears of every receiver removed or changed.

It is a Twisted service: attached to the running service, it starts delivering when the
service starts and, on stop, writes what it still holds (captured events included) to
the outbox before the store closes. Every five minutes it also wakes targets the
dispatcher might have dropped (an endpoint enabled again) and drops outbox rows older
than the history retention.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from meetplatform import events as ev
from meetplatform.config import Settings
from meetplatform.registry import Registry
from meetplatform.store import Store
from meetplatform.store import webhooks_db as wdb
from meetplatform.store.batch import BatchWriter
from meetplatform.store.database import Database
from meetplatform.store.history_db import InterruptedMeeting
from meetplatform.webhooks import outbox
from meetplatform.webhooks.delivery import DeliveryPolicy, Dispatcher
from meetplatform.webhooks.events import (
    Captured,
    Occurrence,
    Translator,
    interrupted_occurrence,
    store_occurrence,
)
from meetplatform.webhooks.guard import AddressPolicy
from meetplatform.webhooks.http import Sender, default_clients
from meetplatform.webhooks.receivers import Receivers

_log = Logger()

DAY_MS = 24 * 3600 * 1000


class WebhookService(Service):
    """Events in, deliveries out (see the module's docstring)."""

    name = "webhooks"

    def __init__(self, clock: IReactorTime, settings: Settings, registry: Registry,
                 store: Store, *, sender: Sender | None = None,
                 policy: DeliveryPolicy | None = None, rng: random.Random | None = None,
                 scan_interval_s: float = 300.0) -> None:
        self._clock = clock
        self._settings = settings
        self._store = store
        self.address_policy = AddressPolicy(settings.allow_webhook_networks)
        policy = policy or DeliveryPolicy()
        self._own_sender = sender is None
        if sender is None:
            sender = default_clients(clock, self.address_policy, timeout=policy.timeout)
        self._sender = sender
        self.dispatcher = Dispatcher(
            clock, store, sender, secret=settings.secret,
            domain=urlsplit(settings.public_url).hostname or settings.server_name,
            policy=policy, rng=rng)
        #: The hooks and endpoints, as the surfaces create, change and remove them.
        self.receivers = Receivers(store, self.dispatcher)
        self._translator = Translator()
        #: Events captured since the last turn, in order (see _on_event).
        self._captured: list[Captured] = []
        self._build_call: IDelayedCall | None = None
        # No clock for the writer: it is fed from _build_captured, already off the moment
        # of the event, and submits that turn's occurrences as one transaction at once.
        self._outbox: BatchWriter[Occurrence, set[outbox.Target]] = BatchWriter(
            store, outbox.enqueue, name="webhook outbox",
            on_written=lambda _, targets: self.dispatcher.announce(targets))
        self._scan_interval = scan_interval_s
        self._scan_call: IDelayedCall | None = None
        self._stops: list[Callable[[], None]] = [
            registry.subscribe(self._on_event), store.observe(self._in_store_transaction)]
        #: Occurrences handed to the outbox since start.
        self.enqueued = 0

    # --- lifecycle ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.receivers.recount()
        started = Deferred.fromCoroutine(self.dispatcher.start())
        started.addErrback(lambda f: _log.failure("webhooks: starting delivery failed", f))
        self._schedule_scan()

    def stopService(self) -> Deferred[None]:
        """Write what is still in memory to the outbox, then stop delivering."""
        super().stopService()
        if self._scan_call is not None and self._scan_call.active():
            self._scan_call.cancel()
        self._scan_call = None
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        await self.flush()
        await self.dispatcher.stop()
        if self._own_sender:
            await self._sender.close()

    def close(self) -> None:
        """Stop listening to the registry and the store (tests that build several)."""
        for stop in self._stops:
            stop()
        self._stops = []

    # --- events in -----------------------------------------------------------------------

    def _on_event(self, event: ev.Event) -> None:
        """A registry event, synchronously on its emitter's path (a join): capture it and
        make sure the next turn builds it; nothing more."""
        captured = self._translator.capture(event)
        if captured is not None:
            self._later(captured)

    def _in_store_transaction(self, db: Database, kind: str,
                              record: Any) -> Callable[[], None] | None:
        """A change made through the store (rooms, invitations): its event is written to
        the outbox inside the change's own transaction, on the store's thread, so a
        committed change always has its event; delivery starts once it has committed."""
        occurrence = store_occurrence(kind, record, int(self._clock.seconds() * 1000))
        if occurrence is None:
            return None
        targets = outbox.enqueue(db, [occurrence])

        def committed() -> None:
            self.enqueued += 1
            self.dispatcher.announce(targets)

        return committed

    def _later(self, captured: Captured) -> None:
        """Build ``captured`` on the next turn, after everything captured before it."""
        self._captured.append(captured)
        if self._build_call is None:
            self._build_call = self._clock.callLater(0, self._build_captured)

    def _build_captured(self) -> None:
        """Turn everything captured so far into occurrences, in order, and hand them to
        the outbox writer together."""
        if self._build_call is not None:
            if self._build_call.active():
                self._build_call.cancel()
            self._build_call = None
        while self._captured:  # (a builder that emits more is not expected, but harmless)
            captured, self._captured = self._captured, []
            occurrences: list[Occurrence] = []
            nobody = not self.receivers.any
            for item in captured:
                try:
                    if nobody and self._translator.skip(item):
                        continue
                    occurrences.extend(self._translator.build(item))
                except Exception:  # noqa: BLE001 - one bad event must not lose the others
                    _log.failure("webhooks: building the occurrences of {builder} failed",
                                 builder=getattr(item[0], "__name__", item[0]))
            self.enqueued += len(occurrences)
            self._outbox.extend(occurrences)

    def enqueue(self, occurrence: Occurrence) -> None:
        """Hand a ready occurrence to the outbox, after the events captured before it."""
        self._later((_ready, (occurrence,)))

    def meetings_interrupted(self, meetings: Sequence[InterruptedMeeting]) -> None:
        """``meeting-ended`` (and end callbacks) for meetings a killed process left open."""
        for meeting in meetings:
            self.enqueue(interrupted_occurrence(meeting))

    def flush(self) -> Deferred[None]:
        """Fires once every event received so far (captured ones included) is in the
        outbox."""
        self._build_captured()
        return self._outbox.flush()

    async def settle(self) -> None:
        """Wait until the outbox holds everything and the dispatcher has nothing in hand
        (tests and benchmarks; with a receiver that keeps failing, this waits for its
        retries)."""
        await self.flush()
        await self.dispatcher.when_idle()

    # --- periodic work ---------------------------------------------------------------------

    def _schedule_scan(self) -> None:
        def run() -> None:
            self._scan_call = None
            d = Deferred.fromCoroutine(self.periodic())
            d.addBoth(lambda _: self._schedule_scan() if self.running else None)

        self._scan_call = self._clock.callLater(self._scan_interval, run)

    async def periodic(self) -> None:
        """Wake forgotten targets; drop rows older than the retention. Never raises."""
        try:
            await self.dispatcher.scan()
            days = self._settings.history_retention_days
            if days > 0:
                cutoff = int(self._clock.seconds() * 1000) - days * DAY_MS
                dropped = 0
                while True:  # in chunks: other queries interleave
                    chunk = await self._store.run(
                        lambda db: wdb.prune_outbox(db, cutoff, limit=1000))
                    dropped += chunk
                    if chunk < 1000:
                        break
                if dropped:
                    _log.warn("webhooks: dropped {count} undelivered event(s) older than "
                              "{days} day(s)", count=dropped, days=days)
        except Exception:  # noqa: BLE001 - periodic jobs never raise (they log)
            _log.failure("webhooks: periodic work failed")


def _ready(occurrence: Occurrence) -> list[Occurrence]:
    return [occurrence]

