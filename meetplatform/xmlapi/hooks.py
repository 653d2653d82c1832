"""bbb-webhooks' API on the XML surface: ``hooks/create``, ``hooks/list``, ``hooks/destroy``.

Registered on the XML API's pipeline with ``add_call``, so each call
has BBB's checksum (over the call name ``hooks/create`` etc.), JSON/JSONP and error
handling. Answers and messageKeys are bbb-webhooks' (v3):

- ``hooks/create?callbackURL=..[&meetingID=..][&eventID=a,b][&getRaw=true]`` ->
  ``hookID, permanentHook, rawData``; a callback URL that has a hook already answers
  SUCCESS with its ``hookID`` and ``duplicateWarning``.
- ``hooks/list[?meetingID=..]`` -> ``hooks/hook{hookID, callbackURL, [meetingID],
  [eventID], permanentHook, rawData}``; with a meetingID, the hooks that receive its
  events (the global ones and its own).
- ``hooks/destroy?hookID=..`` -> ``<removed>true</removed>``.

Callbacks are POSTed as bbb-webhooks does (see :mod:`meetplatform.webhooks.signing`), signed
with the checksum algorithm of the ``hooks/create`` call that registered the hook.
"""

from __future__ import annotations

import re

from twisted.internet.interfaces import IReactorTime

from meetplatform.config import Settings
from meetplatform.store import Store
from meetplatform.webhooks.guard import UrlRefused, check_url
from meetplatform.webhooks.receivers import Receivers, TooMany
from meetplatform.webhooks.service import WebhookService
from meetplatform.xmlapi.errors import ApiError
from meetplatform.xmlapi.pipeline import Answer, ApiPipeline, CallContext, Nodes
from meetplatform.xmlapi.render import Items

_EVENT_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
MAX_EVENT_IDS = 50
MAX_MEETING_ID = 256


def missing_callback_url() -> ApiError:
    return ApiError("missingParamCallbackURL", "You must specify a callbackURL in the parameters.")


def missing_hook_id() -> ApiError:
    return ApiError("missingParamHookID", "You must specify a hookID in the parameters.")


def destroy_missing_hook() -> ApiError:
    return ApiError("destroyMissingHook", "The hook informed was not found.")


def create_hook_error(message: str) -> ApiError:
    return ApiError("createHookError", message)


def call_algorithm(ctx: CallContext, allowed: tuple[str, ...]) -> str:
    """The checksum algorithm the caller signed this call with (the pipeline verified it)."""
    if ctx.algorithm is None:
        return "sha1" if "sha1" in allowed else allowed[0]
    return ctx.algorithm


class HookCalls:
    """The ``hooks/*`` calls; :meth:`register` adds them to the XML API."""

    def __init__(self, clock: IReactorTime, settings: Settings, store: Store,
                 webhooks: WebhookService | None = None) -> None:
        self._clock = clock
        self._settings = settings
        # The service's receivers tell its dispatcher of a hook destroyed; without the
        # service (tests of the calls alone) nobody needs telling.
        self._receivers = webhooks.receivers if webhooks is not None else Receivers(store)

    def register(self, api: ApiPipeline) -> None:
        api.add_call("hooks/create", self.create)
        api.add_call("hooks/list", self.list_hooks)
        api.add_call("hooks/destroy", self.destroy)

    def _now(self) -> int:
        return int(self._clock.seconds() * 1000)

    async def create(self, ctx: CallContext) -> Answer:
        params = ctx.params
        url = params.raw("callbackURL")
        if url is None:
            raise missing_callback_url()
        url = url.strip()
        try:
            check_url(url)
        except UrlRefused as refused:
            raise create_hook_error(f"Invalid callbackURL: {refused}.") from None
        meeting_id = params.text("meetingID").strip() or None
        if meeting_id is not None and len(meeting_id) > MAX_MEETING_ID:
            raise create_hook_error(
                f"meetingID must be at most {MAX_MEETING_ID} characters.")
        event_ids: list[str] | None = None
        raw_events = params.raw("eventID")
        if raw_events is not None and raw_events.strip():
            event_ids = list(dict.fromkeys(
                e.strip().lower() for e in raw_events.split(",") if e.strip()))
            if len(event_ids) > MAX_EVENT_IDS or not all(
                    _EVENT_ID.fullmatch(e) for e in event_ids):
                raise create_hook_error(
                    f"eventID must be a comma-separated list of at most {MAX_EVENT_IDS} "
                    "event names such as user-joined,meeting-ended.")
        raw = params.raw("getRaw")
        get_raw = False
        if raw is not None and raw.strip():
            lowered = raw.strip().lower()
            if lowered not in ("true", "false"):
                raise create_hook_error("getRaw must be true or false.")
            get_raw = lowered == "true"
        algorithm = call_algorithm(ctx, self._settings.checksum_algorithms)
        now = self._now()
        try:
            hook, duplicated = await self._receivers.create_hook(
                callback_url=url, meeting_id=meeting_id, event_ids=event_ids,
                get_raw=get_raw, checksum_algorithm=algorithm, now=now)
        except TooMany as e:
            raise create_hook_error(f"Cannot create the hook: {e}.") from None
        if duplicated:
            return [("hookID", hook.id), ("messageKey", "duplicateWarning"),
                    ("message", "There is already a hook for this callback URL.")]
        return [("hookID", hook.id), ("permanentHook", False), ("rawData", hook.get_raw)]

    async def list_hooks(self, ctx: CallContext) -> Answer:
        meeting_id = ctx.params.text("meetingID").strip() or None
        hooks = await self._receivers.list_hooks(meeting_id)
        items = []
        for hook in hooks:
            nodes: Nodes = [("hookID", hook.id), ("callbackURL", hook.callback_url)]
            if hook.meeting_id is not None:
                nodes.append(("meetingID", hook.meeting_id))
            if hook.event_ids is not None:
                nodes.append(("eventID", ",".join(hook.event_ids)))
            nodes += [("permanentHook", False), ("rawData", hook.get_raw)]
            items.append(nodes)
        return [("hooks", Items("hook", items))]

    async def destroy(self, ctx: CallContext) -> Answer:
        hook_id = ctx.params.text("hookID").strip()
        if not hook_id:
            raise missing_hook_id()
        if len(hook_id) > 100:
            raise destroy_missing_hook()
        removed = await self._receivers.destroy_hook(hook_id)
        if not removed:
            raise destroy_missing_hook()
        return [("removed", True)]
