"""Schemathesis, driven by the served OpenAPI document, against the real resource tree.

Schemathesis generates requests for every documented operation, schema-valid ones and
schema-violating ones; they go through the same in-memory agent as the other tests
(StubTreq's), and each response is checked by schemathesis: no server error, a
documented status, the documented content type and headers, a body matching the
documented schema, schema-valid data accepted and schema-violating data refused, and an
``Allow`` header naming the documented methods. The project's ``schemathesis.toml`` (the
same file ``schemathesis run`` reads) lists the few rules JSON Schema cannot state.
"""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

schemathesis = pytest.importorskip("schemathesis")
requests = pytest.importorskip("requests")

from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode, checks
from schemathesis.config import SchemathesisConfig
from schemathesis.core.transport import Response

from meetplatform.restapi import Limit, RateLimits
from tests.restapi.harness import PUBLIC_URL, Harness

_UNLIMITED = Limit(1e6, 10**6)
H = Harness(Path(tempfile.mkdtemp(prefix="schemathesis-")),
            rate_limits=RateLimits(client=_UNLIMITED, user=_UNLIMITED, anonymous=_UNLIMITED))
CLIENT = H.new_client()
ROOM = H.create_room(CLIENT)
DOCUMENT = H.request("GET", "/openapi.json", headers={"Accept": "application/json"}).json
CONFIG = SchemathesisConfig.from_path(str(Path(__file__).parents[2] / "schemathesis.toml"))
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_schema_conformance,
          checks.response_headers_conformance, checks.positive_data_acceptance,
          checks.negative_data_rejection, checks.allow_header_conformance]


def send(case: Any) -> Any:
    """Send a generated case through the harness; return schemathesis' Response."""
    kwargs = case.as_transport_kwargs(base_url=f"{PUBLIC_URL}/api/v2")
    headers = {k: str(v) for k, v in (kwargs.get("headers") or {}).items()
               if k.lower() != "authorization"}
    # authenticated as the test's client (the generated credentials are random); a
    # generated OAuth body with its own client credentials keeps them (Basic and body
    # credentials together are refused, as RFC 6749 §2.3 asks)
    data = kwargs.get("json") if kwargs.get("json") is not None else kwargs.get("data")
    own_credentials = isinstance(data, dict) and ("client_id" in data or
                                                  "client_secret" in data)
    if not case.path.startswith("/oauth/"):
        headers["Authorization"] = f"Bearer {CLIENT.token}"
    elif not own_credentials:
        headers["Authorization"] = CLIENT.basic
    url = kwargs["url"]
    params = kwargs.get("params") or {}
    if params:
        url += "?" + urlencode(params, doseq=True)
    body: bytes | None = None
    if "json" in kwargs and kwargs["json"] is not None:
        body = json.dumps(kwargs["json"]).encode()
        headers.setdefault("Content-Type", "application/vnd.api+json")
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        body = data if isinstance(data, bytes) else (
            urlencode(data) if isinstance(data, dict) else str(data)).encode()
    got = H.request(kwargs["method"], url, body=body, headers=headers)
    content = got.body
    if got.header("content-encoding") == "gzip":  # as any HTTP client would
        content = gzip.decompress(content)
    prepared = requests.Request(kwargs["method"], url, headers=headers, data=body).prepare()
    return Response(status_code=got.status, headers=got.headers, content=content,
                    request=prepared, elapsed=0.0, verify=True)


@schema.parametrize()
@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_error_and_no_schema_violation(case: Any) -> None:
    """Every generated request gets a documented status and a body of the documented shape,
    never a server error; schema-valid data is accepted and schema-violating data refused."""
    for name, value in (("spaceId", CLIENT.space.id), ("roomId", ROOM["id"])):
        if case.path_parameters and name in case.path_parameters and case.path_parameters[
                name] == "":
            case.path_parameters[name] = value
    case.validate_response(send(case), checks=CHECKS)
