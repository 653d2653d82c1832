"""The webhook service: from events to the outbox, from the outbox to receivers.

:class:`WebhookService` is the one object the composition root builds. It

1. listens to the registry (meetings, participants, chat, the lobby) and to the store
   (rooms and invitations changed through the JSON:API), turning each event into an
   :class:`~meetplatform.webhooks.events.Occurrence` on the reactor thread: a cheap
   snapshot, no I/O, so the join path does not wait for webhooks;
2. writes occurrences to the durable outbox in batches, off the reactor thread, fanned
   out to every matching BBB hook, space endpoint and end callback in one transaction;
3. hands the targets that got rows to the :class:`~meetplatform.webhooks.delivery.Dispatcher`,
   which delivers them (and, after a restart, whatever the previous process left).

It is a Twisted service: attached to the running service, it starts delivering when the
service starts and, on stop, writes what it still holds to the outbox before the store
closes. Every five minutes it also wakes targets the dispatcher might have dropped (an
endpoint enabled again) and drops outbox rows older than the history retention.
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
from meetplatform.store.history_db import InterruptedMeeting
from meetplatform.webhooks.delivery import DeliveryPolicy, Dispatcher
from meetplatform.webhooks.events import (
    Occurrence,
    Translator,
    interrupted_occurrence,
    store_occurrence,
)
from meetplatform.webhooks.guard import AddressPolicy
from meetplatform.webhooks.http import Sender, default_clients

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
        self._translator = Translator()
        self._outbox: BatchWriter[Occurrence, set[wdb.Target]] = BatchWriter(
            store, wdb.enqueue, name="webhook outbox",
            on_written=lambda _, targets: self.dispatcher.announce(targets))
        self._scan_interval = scan_interval_s
        self._scan_call: IDelayedCall | None = None
        self._stops: list[Callable[[], None]] = [
            registry.subscribe(self._on_event), store.observe(self._on_store_event)]
        #: Occurrences handed to the outbox since start.
        self.enqueued = 0

    # --- lifecycle ---------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
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
        await self._outbox.flush()
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
        for occurrence in self._translator.translate(event):
            self.enqueue(occurrence)

    def _on_store_event(self, kind: str, record: Any) -> None:
        occurrence = store_occurrence(kind, record, int(self._clock.seconds() * 1000))
        if occurrence is not None:
            self.enqueue(occurrence)

    def enqueue(self, occurrence: Occurrence) -> None:
        self.enqueued += 1
        self._outbox.add(occurrence)

    def meetings_interrupted(self, meetings: Sequence[InterruptedMeeting]) -> None:
        """``meeting-ended`` (and end callbacks) for meetings a killed process left open."""
        for meeting in meetings:
            self.enqueue(interrupted_occurrence(meeting))

    def flush(self) -> Deferred[None]:
        """Fires once every event received so far is in the outbox."""
        return self._outbox.flush()

    async def settle(self) -> None:
        """Wait until the outbox holds everything and the dispatcher has nothing in hand
        (tests and benchmarks; with a receiver that keeps failing, this waits for its
        retries)."""
        await self._outbox.flush()
        await self.dispatcher.when_idle()

    # --- changes made through the surfaces -----------------------------------------------

    def target_removed(self, kind: str, target_id: str) -> None:
        self.dispatcher.forget((kind, target_id))

    def target_changed(self, kind: str, target_id: str) -> None:
        """An endpoint was enabled again or changed: read it and its outbox anew."""
        self.dispatcher.refresh((kind, target_id))

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

