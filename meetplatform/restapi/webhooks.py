"""``webhookEndpoints``: where a space's events are POSTed, signed with Standard Webhooks.

A client app registers up to ten endpoints for its space. Each gets a secret
(``whsec_...``) shown once, in the response that creates it (or rotates it); only a sealed
copy is kept, for signing. Events (``room.created``, ``session.started``,
``participant.joined``, ...; see ``eventTypes``) are delivered at least once with the
headers ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``. An endpoint
that keeps failing is disabled (``enabled: false``, with ``disabledAt`` and
``disabledReason``); ``PATCH`` with ``enabled: true`` turns it on again, and the events
that waited are delivered.

URLs must be http(s); requests never go to loopback, private, link-local or other
non-public addresses unless the operator allows the range (``--allow-webhook-network``):
IP literals are refused here, names are checked when they are resolved for a delivery.
Endpoints are the space's configuration: the scopes are ``spaces:read`` and
``spaces:write``.
"""

from __future__ import annotations

from typing import Any

from meetplatform.restapi import jsonapi
from meetplatform.restapi.base import ApiBase, Ctx
from meetplatform.restapi.jsonapi import ApiError
from meetplatform.restapi.routes import Body, Output, Reply, api_route
from meetplatform.restapi.schema import (
    Array,
    Attr,
    Bool,
    DateTime,
    Int,
    ResourceType,
    Str,
    format_time,
)
from meetplatform.restapi.spaces import PAGE_QUERY
from meetplatform.webhooks.events import REST_EVENT_TYPES
from meetplatform.webhooks.guard import AddressPolicy, UrlRefused, check_url
from meetplatform.webhooks.receivers import EndpointRecord, Receivers, TooMany

WEBHOOK_ENDPOINT = ResourceType(
    "webhookEndpoints",
    "Where the space's events are sent (POST, JSON, Standard Webhooks signatures). The "
    "secret is shown once, when the endpoint is created or its secret rotated.",
    {
        "url": Attr(Str(min_length=1, max_length=2048, format="uri",
                        example="https://app.example.com/hooks/meet"), required=True),
        "description": Attr(Str(max_length=500)),
        "eventTypes": Attr(Array(items=Str(enum=REST_EVENT_TYPES),
                                 max_items=len(REST_EVENT_TYPES), unique=True,
                                 description="the event types to send; empty: all")),
        "enabled": Attr(Bool(description="false: nothing is sent (set automatically after "
                                         "repeated failures); true again delivers what "
                                         "waited")),
        "disabledAt": Attr(DateTime(nullable=True), read_only=True),
        "disabledReason": Attr(Str(nullable=True), read_only=True),
        "consecutiveFailures": Attr(Int(), read_only=True),
        "lastSuccessAt": Attr(DateTime(nullable=True), read_only=True),
        "lastFailureAt": Attr(DateTime(nullable=True), read_only=True),
        "lastError": Attr(Str(nullable=True), read_only=True),
        "nextAttemptAt": Attr(DateTime(nullable=True, description="retries wait until "
                                       "then (backoff)"), read_only=True),
        "pendingDeliveries": Attr(Int(description="events waiting for this endpoint"),
                                  read_only=True),
        "secretRotatedAt": Attr(DateTime(nullable=True), read_only=True),
        "previousSecretExpiresAt": Attr(DateTime(nullable=True, description="until then "
                                                 "requests carry a second signature made "
                                                 "with the previous secret"),
                                        read_only=True),
        "createdAt": Attr(DateTime(), read_only=True),
        "updatedAt": Attr(DateTime(), read_only=True),
        "secret": Attr(Str(description="the signing secret (whsec_...); shown only when "
                           "created or rotated"), read_only=True, once=True),
    },
    relationships={"space": "spaces"},
    id_example="we_k3x9m2p7q4r8s6t5",
)


def endpoint_resource(endpoint: EndpointRecord, base: str, *,
                      secret: str | None = None) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "url": endpoint.url,
        "description": endpoint.description,
        "eventTypes": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabledAt": format_time(endpoint.disabled_at),
        "disabledReason": endpoint.disabled_reason,
        "consecutiveFailures": endpoint.consecutive_failures,
        "lastSuccessAt": format_time(endpoint.last_success_at),
        "lastFailureAt": format_time(endpoint.last_failure_at),
        "lastError": endpoint.last_error,
        "nextAttemptAt": format_time(endpoint.next_attempt_at),
        "pendingDeliveries": endpoint.pending,
        "secretRotatedAt": format_time(endpoint.secret_rotated_at),
        "previousSecretExpiresAt": format_time(endpoint.previous_secret_expires_at),
        "createdAt": format_time(endpoint.created_at),
        "updatedAt": format_time(endpoint.updated_at),
    }
    if secret is not None:
        attributes["secret"] = secret
    return jsonapi.resource(
        "webhookEndpoints", endpoint.id, attributes,
        relationships={"space": jsonapi.to_one("spaces", endpoint.space_id,
                                               f"{base}/spaces/{endpoint.space_id}")},
        links={"self": f"{base}/webhookEndpoints/{endpoint.id}"})


class WebhookRoutes(ApiBase):
    #: The webhook service's receivers (set by :class:`~meetplatform.restapi.api.RestApi`):
    #: every change goes through them, so the service's dispatcher hears of it.
    webhook_receivers: Receivers

    def _address_policy(self) -> AddressPolicy:
        return AddressPolicy(self._settings.allow_webhook_networks)

    def _checked_url(self, url: str) -> str:
        try:
            return check_url(url, self._address_policy())
        except UrlRefused as refused:
            raise ApiError(422, "webhook.urlRefused", str(refused),
                           pointer="/data/attributes/url") from None

    async def _endpoint_for(self, ctx: Ctx, endpoint_id: str) -> EndpointRecord:
        assert ctx.caller is not None
        endpoint = None
        if len(endpoint_id) <= 64:
            endpoint = await self.webhook_receivers.get_endpoint(endpoint_id)
        if endpoint is None or endpoint.space_id != ctx.caller.space_id:
            raise ApiError(404, "webhookEndpoint.notFound", "no such webhook endpoint",
                           parameter="endpointId")
        return endpoint

    @api_route("GET", "/spaces/{spaceId}/webhookEndpoints",
               summary="List the space's webhook endpoints", tag="Webhooks", auth="client",
               scope="spaces:read", output=Output("collection", WEBHOOK_ENDPOINT),
               query=PAGE_QUERY)
    async def list_webhook_endpoints(self, ctx: Ctx, spaceId: str) -> Reply:
        """Oldest first, with each endpoint's delivery state; never the secrets."""
        space = await self.space_for(ctx, spaceId)
        size, after = self.page(ctx)
        endpoints = await self.webhook_receivers.list_endpoints(space.id, after, size + 1)
        more = len(endpoints) > size
        endpoints = endpoints[:size]
        last = (endpoints[-1].created_at, endpoints[-1].id) if endpoints else None
        self_link, next_link = self.page_links(ctx, f"/spaces/{space.id}/webhookEndpoints",
                                               last, more)
        return Reply(200, jsonapi.collection(
            [endpoint_resource(e, self.base_url) for e in endpoints],
            self_link=self_link, next_link=next_link))

    @api_route("POST", "/spaces/{spaceId}/webhookEndpoints",
               summary="Add a webhook endpoint", tag="Webhooks", auth="client",
               scope="spaces:write", body=Body(WEBHOOK_ENDPOINT, "create"), success=201,
               output=Output("resource", WEBHOOK_ENDPOINT, include_once=True), secret=True,
               errors=(409,))
    async def create_webhook_endpoint(self, ctx: Ctx, spaceId: str) -> Reply:
        """Returns the signing ``secret`` ONCE. At most ten endpoints per space (409)."""
        space = await self.space_for(ctx, spaceId)
        attrs = ctx.attrs
        url = self._checked_url(attrs["url"])
        try:
            endpoint, secret = await self.webhook_receivers.create_endpoint(
                space_id=space.id, url=url, description=attrs.get("description", ""),
                event_types=attrs.get("eventTypes", []), now=ctx.now,
                enabled=attrs.get("enabled") is not False)
        except TooMany as e:
            raise ApiError(409, "webhookEndpoint.tooMany", str(e)) from None
        return Reply(201, jsonapi.single(endpoint_resource(endpoint, self.base_url,
                                                           secret=secret)),
                     headers={"Location": self.url(f"/webhookEndpoints/{endpoint.id}")})

    @api_route("GET", "/webhookEndpoints/{endpointId}", summary="Read a webhook endpoint",
               tag="Webhooks", auth="client", scope="spaces:read",
               output=Output("resource", WEBHOOK_ENDPOINT))
    async def get_webhook_endpoint(self, ctx: Ctx, endpointId: str) -> Reply:
        endpoint = await self._endpoint_for(ctx, endpointId)
        return Reply(200, jsonapi.single(endpoint_resource(endpoint, self.base_url)))

    @api_route("PATCH", "/webhookEndpoints/{endpointId}", summary="Change a webhook endpoint",
               tag="Webhooks", auth="client", scope="spaces:write",
               body=Body(WEBHOOK_ENDPOINT, "update"),
               output=Output("resource", WEBHOOK_ENDPOINT))
    async def update_webhook_endpoint(self, ctx: Ctx, endpointId: str) -> Reply:
        """URL, description, event types; ``enabled: true`` turns a disabled endpoint on
        again (its failures are forgotten and the events that waited are delivered)."""
        endpoint = await self._endpoint_for(ctx, endpointId)
        changes: dict[str, Any] = {}
        if "url" in ctx.attrs:
            changes["url"] = self._checked_url(ctx.attrs["url"])
        if "description" in ctx.attrs:
            changes["description"] = ctx.attrs["description"]
        if "eventTypes" in ctx.attrs:
            changes["event_types"] = ctx.attrs["eventTypes"]
        if "enabled" in ctx.attrs:
            changes["enabled"] = ctx.attrs["enabled"]
        updated = await self.webhook_receivers.update_endpoint(endpoint.id, changes, ctx.now)
        if updated is None:
            raise ApiError(404, "webhookEndpoint.notFound", "no such webhook endpoint")
        return Reply(200, jsonapi.single(endpoint_resource(updated, self.base_url)))

    @api_route("DELETE", "/webhookEndpoints/{endpointId}", summary="Remove a webhook endpoint",
               tag="Webhooks", auth="client", scope="spaces:write", success=204)
    async def delete_webhook_endpoint(self, ctx: Ctx, endpointId: str) -> Reply:
        """Its undelivered events are dropped."""
        endpoint = await self._endpoint_for(ctx, endpointId)
        await self.webhook_receivers.delete_endpoint(endpoint.id)
        return Reply(204)

    @api_route("POST", "/webhookEndpoints/{endpointId}/rotateSecret",
               summary="Give a webhook endpoint a new secret", tag="Webhooks", auth="client",
               scope="spaces:write", output=Output("resource", WEBHOOK_ENDPOINT,
                                                   include_once=True), secret=True)
    async def rotate_webhook_secret(self, ctx: Ctx, endpointId: str) -> Reply:
        """Returns the new ``secret`` ONCE. For 24 hours requests carry two signatures,
        with the new and the previous secret, so the receiver can switch without losing
        events."""
        endpoint = await self._endpoint_for(ctx, endpointId)
        rotated = await self.webhook_receivers.rotate_endpoint_secret(endpoint.id, ctx.now)
        if rotated is None:
            raise ApiError(404, "webhookEndpoint.notFound", "no such webhook endpoint")
        record, secret = rotated
        return Reply(200, jsonapi.single(endpoint_resource(record, self.base_url,
                                                           secret=secret)))
