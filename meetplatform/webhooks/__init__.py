"""Webhooks: BigBlueButton hooks, per-space endpoints and end callbacks, from a durable outbox.

See :mod:`meetplatform.webhooks.service` for how the parts fit and ``docs/webhooks.md``
for what receivers get.
"""

from meetplatform.webhooks.delivery import DeliveryPolicy, Dispatcher
from meetplatform.webhooks.guard import AddressPolicy, UrlRefused, check_url
from meetplatform.webhooks.http import Sender, TreqSender, default_clients
from meetplatform.webhooks.receivers import Receivers
from meetplatform.webhooks.service import WebhookService

__all__ = [
    "AddressPolicy",
    "DeliveryPolicy",
    "Dispatcher",
    "Receivers",
    "Sender",
    "TreqSender",
    "UrlRefused",
    "WebhookService",
    "check_url",
    "default_clients",
]
