"""Into the outbox: which receivers get an occurrence, and the body each one gets.

:func:`enqueue` fans occurrences out, in one transaction, to

- every BBB hook that wants the event (its meeting or all meetings, its event ids or
  all), with bbb-webhooks' mapped body, or the raw one for ``getRaw`` hooks;
- every enabled endpoint of the event's space that wants its type, with the JSON:API
  body;
- every end callback URL the occurrence carries (a one-off GET, each its own target);
- every one-off POST it carries (``meta_bbb-recording-ready-url``: a form body, signed
  already), each its own ``callback`` target too.

Bodies are rendered here, once, when the event enters the outbox, so that every retry
sends the same bytes with the same event id. The rows themselves (and the hooks and
endpoints read to match them) are the store's tables
(:mod:`meetplatform.store.webhooks_db`); this module is the part that knows what an
:class:`~meetplatform.webhooks.events.Occurrence` is, which the store must not.

Blocking: it runs on the store's thread, either as a batch of the service's outbox
writer or inside the transaction of a change made through the store (``Store.observe``),
whose rows then commit with the change.
"""

from __future__ import annotations

from collections.abc import Sequence

from meetplatform.store import webhooks_db as wdb
from meetplatform.store.database import Database
from meetplatform.store.keys import new_id
from meetplatform.webhooks import payloads
from meetplatform.webhooks.events import Occurrence

CALLBACK_ID_PREFIX = "cb_"

Target = wdb.Target


def _row(occ: Occurrence, event_type: str, kind: str, target_id: str, payload: str, *,
         method: str = "POST", url: str | None = None) -> wdb.NewOutboxRow:
    return wdb.NewOutboxRow(event_id=occ.id, event_type=event_type, target_kind=kind,
                            target_id=target_id, ordering_key=occ.ordering_key,
                            payload=payload, created_at=occ.at, method=method, url=url)


def enqueue(db: Database, occurrences: Sequence[Occurrence]) -> set[Target]:
    """Write one outbox row per (occurrence, receiver), in one transaction; returns the
    targets that got rows."""
    touched: set[Target] = set()
    rows: list[wdb.NewOutboxRow] = []
    with db.transaction():
        hooks = wdb.all_hooks(db)
        endpoints: dict[str, list[wdb.EndpointSubscription]] = {}
        for occ in occurrences:
            if occ.bbb_name is not None and occ.meeting is not None and hooks:
                mapped = raw = None
                for hook in hooks:
                    if hook.meeting_id is not None and hook.meeting_id != occ.meeting.meeting_id:
                        continue
                    if hook.event_ids is not None and occ.bbb_name not in hook.event_ids:
                        continue
                    if hook.get_raw:
                        raw = raw or payloads.bbb_raw(occ)
                        body = raw
                    else:
                        mapped = mapped or payloads.bbb_mapped(occ)
                        body = mapped
                    rows.append(_row(occ, occ.bbb_name, "hook", hook.id, body))
                    touched.add(("hook", hook.id))
            if occ.rest_type is not None and occ.space_id is not None:
                if occ.space_id not in endpoints:
                    endpoints[occ.space_id] = wdb.enabled_endpoints(db, occ.space_id)
                body_rest: str | None = None
                for endpoint in endpoints[occ.space_id]:
                    if endpoint.event_types and occ.rest_type not in endpoint.event_types:
                        continue
                    body_rest = body_rest or payloads.rest_body(occ)
                    rows.append(_row(occ, occ.rest_type, "endpoint", endpoint.id, body_rest))
                    touched.add(("endpoint", endpoint.id))
            for url in occ.callbacks:
                callback_id = new_id(CALLBACK_ID_PREFIX)
                rows.append(_row(occ, "meeting-ended-callback", "callback", callback_id, "",
                                 method="GET", url=url))
                touched.add(("callback", callback_id))
            for url, body in occ.posts:
                callback_id = new_id(CALLBACK_ID_PREFIX)
                rows.append(_row(occ, "recording-ready-callback", "callback", callback_id,
                                 body, method="POST", url=url))
                touched.add(("callback", callback_id))
        wdb.add_to_outbox(db, rows)
    return touched
