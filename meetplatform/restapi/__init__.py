"""The JSON:API v2 for client applications (``/api/v2``).

:class:`RestApi` is the surface (one Klein app); :mod:`.auth` authenticates callers
(OAuth 2.0 client credentials, HMAC-signed requests, invited users' tokens);
:mod:`.model` defines the resource types; :mod:`.openapi` generates the OpenAPI document
from the route table (:mod:`.routes`).
"""

from meetplatform.restapi.api import RestApi
from meetplatform.restapi.base import RateLimits
from meetplatform.restapi.ratelimit import Limit

__all__ = ["Limit", "RateLimits", "RestApi"]
