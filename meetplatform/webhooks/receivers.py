"""The receivers of events as the surfaces manage them: BBB hooks and per-space endpoints.

:class:`Receivers` is what the XML API's ``hooks/*`` calls and the JSON:API's
``webhookEndpoints`` call: one object per service
(:attr:`~meetplatform.webhooks.service.WebhookService.receivers`), so that the surfaces
neither run store queries themselves nor know the dispatcher. Each method is one store
job (one transaction, as before); the dispatcher hears of a receiver removed or changed
once its change has committed, so it never delivers to a hook just destroyed nor keeps
signing with a secret just rotated.

Endpoint secrets are made here (:func:`~meetplatform.webhooks.signing.new_secret`): the
store keeps only the sealed key, and the secret is returned to the caller this once.

Without a dispatcher (a surface built without the webhook service, in tests) the
changes are made all the same and nobody is told.

:attr:`Receivers.any` tells the service whether a hook or an endpoint may exist: most
deployments have none, and then the events of a join (or a chat line) need no payloads
built and no outbox transaction. It is ``True`` until a count in the store has said
otherwise, becomes ``True`` the moment a hook or endpoint is asked for (before its
transaction is even queued, so no event that happens after the request is missed), and
goes back to ``False`` only when a count made after the last removal, with nothing
created meanwhile, finds none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from meetplatform.store import Store
from meetplatform.store import webhooks_db as wdb
from meetplatform.store.database import Database
from meetplatform.store.webhooks_db import EndpointRecord, HookRecord, TooMany
from meetplatform.webhooks import signing
from meetplatform.webhooks.delivery import Dispatcher

__all__ = ["EndpointRecord", "HookRecord", "Receivers", "TooMany"]

_log = Logger()


class Receivers:
    """Create, list, change and remove hooks and endpoints (see the module's docstring)."""

    def __init__(self, store: Store, dispatcher: Dispatcher | None = None) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._any = True
        #: Counts the creations asked for, so that a count made before one is ignored.
        self._creations = 0

    @property
    def any(self) -> bool:
        """False only while the store is known to hold no hook and no endpoint."""
        return self._any

    def recount(self) -> Deferred[None]:
        """Ask the store whether any hook or endpoint is left (at start, after a removal)."""
        creations = self._creations

        async def count() -> None:
            found = await self._store.run(wdb.any_receivers)
            if creations == self._creations:
                self._any = found

        def failed(failure: Any) -> None:
            _log.failure("webhooks: counting the receivers failed", failure)

        return Deferred.fromCoroutine(count()).addErrback(failed)

    def _creating(self) -> None:
        self._creations += 1
        self._any = True

    def _removed(self, kind: str, target_id: str) -> None:
        if self._dispatcher is not None:
            self._dispatcher.forget((kind, target_id))

    def _changed(self, kind: str, target_id: str) -> None:
        """An endpoint was enabled again or changed: the dispatcher reads it and its
        outbox anew."""
        if self._dispatcher is not None:
            self._dispatcher.refresh((kind, target_id))

    # --- BigBlueButton hooks -------------------------------------------------------------

    async def create_hook(self, *, callback_url: str, meeting_id: str | None,
                          event_ids: Sequence[str] | None, get_raw: bool,
                          checksum_algorithm: str, now: int) -> tuple[HookRecord, bool]:
        """A new hook, or ``(existing, True)`` when one has this callback URL; raises
        :class:`TooMany` at the limit."""
        self._creating()
        return await self._store.run(lambda db: wdb.create_hook(
            db, callback_url=callback_url, meeting_id=meeting_id, event_ids=event_ids,
            get_raw=get_raw, checksum_algorithm=checksum_algorithm, now=now))

    async def list_hooks(self, meeting_id: str | None = None) -> list[HookRecord]:
        """Every hook; with ``meeting_id``, the hooks that receive that meeting's events."""
        return await self._store.run(lambda db: wdb.list_hooks(db, meeting_id))

    async def destroy_hook(self, hook_id: str) -> bool:
        """Remove a hook with its undelivered events; False if there is none with this id."""
        removed = await self._store.run(lambda db: wdb.destroy_hook(db, hook_id))
        if removed:
            self._removed("hook", hook_id)
            self.recount()
        return removed

    # --- per-space endpoints ---------------------------------------------------------------

    async def create_endpoint(self, *, space_id: str, url: str, description: str,
                              event_types: Sequence[str], now: int,
                              enabled: bool = True) -> tuple[EndpointRecord, str]:
        """A new endpoint and its secret (``whsec_...``), which is shown only this once;
        raises :class:`TooMany` at the limit. ``enabled=False`` disables it at once."""
        secret = signing.new_secret()
        key = signing.key_of(secret)
        self._creating()
        endpoint = await self._store.run(lambda db: wdb.create_endpoint(
            db, space_id=space_id, url=url, description=description,
            event_types=event_types, key=key, now=now))
        if not enabled:
            updated = await self._store.run(
                lambda db: wdb.update_endpoint(db, endpoint.id, {"enabled": False}, now))
            endpoint = updated or endpoint
        return endpoint, secret

    async def get_endpoint(self, endpoint_id: str) -> EndpointRecord | None:
        return await self._store.run(lambda db: wdb.get_endpoint(db, endpoint_id))

    async def list_endpoints(self, space_id: str, after: tuple[int, str] | None,
                             limit: int) -> list[EndpointRecord]:
        """The space's endpoints, oldest first, after the ``(created_at, id)`` cursor."""
        return await self._store.run(
            lambda db: wdb.list_endpoints(db, space_id, after, limit))

    async def update_endpoint(self, endpoint_id: str, changes: Mapping[str, Any],
                              now: int) -> EndpointRecord | None:
        """Change ``url``, ``description``, ``event_types`` or ``enabled`` (see
        :func:`~meetplatform.store.webhooks_db.update_endpoint`); ``None`` if it is gone.
        A disabled endpoint is dropped by the dispatcher, any other is read anew."""
        updated = await self._store.run(
            lambda db: wdb.update_endpoint(db, endpoint_id, changes, now))
        if updated is not None:
            if updated.enabled:
                self._changed("endpoint", updated.id)
            else:
                self._removed("endpoint", updated.id)
        return updated

    async def delete_endpoint(self, endpoint_id: str) -> bool:
        """Remove an endpoint with its undelivered events; False if there was none."""
        deleted = await self._store.run(lambda db: wdb.delete_endpoint(db, endpoint_id))
        self._removed("endpoint", endpoint_id)
        if deleted:
            self.recount()
        return deleted

    async def rotate_endpoint_secret(self, endpoint_id: str,
                                     now: int) -> tuple[EndpointRecord, str] | None:
        """A new secret (returned this once); the previous one keeps signing, as a second
        signature, for :data:`~meetplatform.store.webhooks_db.ROTATION_GRACE_MS`.
        ``None`` if the endpoint is gone."""
        secret = signing.new_secret()
        key = signing.key_of(secret)

        def rotate(db: Database) -> EndpointRecord | None:
            return wdb.rotate_endpoint_secret(db, endpoint_id, key, now)

        record = await self._store.run(rotate)
        if record is None:
            return None
        self._changed("endpoint", record.id)
        return record, secret
