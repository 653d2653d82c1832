"""A Python client generated from the served OpenAPI document installs and does the main flow.

openapi-python-client generates a package from ``/api/v2/openapi.json`` (as a client
application's developer would), pip installs it into a temporary directory (its version
comes from ``info.version``, so that must be a version packagers accept), and the test uses
it for the main flow: a token, the space, a room, an invitation and its activation. The
generated client's HTTP goes through ``httpx.MockTransport`` into the real resource tree
(the harness's in-memory agent): no socket and no network. Generating and installing take
a few seconds (openapi-python-client runs ruff over what it writes).
"""

from __future__ import annotations

import base64
import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("openapi_python_client")

from meetplatform import __version__
from tests.restapi.harness import PUBLIC_URL, Harness

PACKAGE = "meetplatform_jsonapi_client"
BASE_URL = f"{PUBLIC_URL}/api/v2"


def _generator() -> list[str]:
    script = shutil.which("openapi-python-client")
    if script is not None:
        return [script]
    return [sys.executable, "-m", "openapi_python_client"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The generated client package, installed with pip into a temporary directory."""
    work = tmp_path_factory.mktemp("generated-client")
    h = Harness(work / "data")
    document = h.request("GET", "/openapi.json", headers={"Accept": "application/json"}).json
    assert document["info"]["version"] == __version__
    (work / "openapi.json").write_text(json.dumps(document))
    subprocess.run([*_generator(), "generate", "--path", str(work / "openapi.json"),
                    "--meta", "setup", "--output-path", str(work / "client")],
                   check=True, capture_output=True, timeout=300, cwd=work)
    # the package must install like any other (no network: no dependencies, no isolation)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    "--no-build-isolation", "--no-index", "--target", str(work / "site"),
                    str(work / "client")], check=True, capture_output=True, timeout=300)
    installed = list((work / "site").glob("meetplatform_jsonapi_client-*.dist-info"))
    assert [p.name for p in installed] == [
        f"meetplatform_jsonapi_client-{__version__}.dist-info"]
    sys.path.insert(0, str(work / "site"))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work / "site"))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _transport(h: Harness) -> Any:
    """An httpx transport that hands every request to the harness's resource tree."""

    def handle(request: Any) -> Any:
        headers = {k: v for k, v in request.headers.items()
                   if k.lower() not in ("host", "content-length")}
        got = h.request(request.method, str(request.url), body=request.content or None,
                        headers=headers)
        out = [(name, value) for name, values in got.headers.items() for value in values]
        return httpx.Response(got.status, headers=out, content=got.body)

    return httpx.MockTransport(handle)


def _module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_does_the_main_flow(generated: ModuleType, tmp_path: Path) -> None:
    """Token (client credentials), the space, a room, an invitation and its activation,
    all through the generated client's own functions and models."""
    h = Harness(tmp_path)
    client_app = h.new_client(with_token=False)
    transport = _transport(h)
    basic = base64.b64encode(f"{client_app.id}:{client_app.secret}".encode()).decode()
    anonymous = generated.Client(base_url=BASE_URL, httpx_args={"transport": transport},
                                 headers={"Authorization": f"Basic {basic}"})

    token_form = _module("models.issue_token_data_body").IssueTokenDataBody.from_dict(
        {"grant_type": "client_credentials"})
    issued = _module("api.o_auth.issue_token").sync_detailed(client=anonymous,
                                                             body=token_form)
    assert issued.status_code == 200, issued.content
    access_token = issued.parsed.access_token
    client = generated.AuthenticatedClient(base_url=BASE_URL, token=access_token,
                                           httpx_args={"transport": transport})

    spaces = _module("api.spaces.list_spaces").sync_detailed(client=client)
    assert spaces.status_code == 200, spaces.content
    assert [space.id for space in spaces.parsed.data] == [client_app.space.id]

    room_request = _module("models.room_create_request").RoomCreateRequest.from_dict(
        {"data": {"type": "rooms", "attributes": {"name": "Generated"}}})
    created = _module("api.rooms.create_room").sync_detailed(
        client_app.space.id, client=client, body=room_request)
    assert created.status_code == 201, created.content
    room = created.parsed.data
    assert room.attributes.name == "Generated"
    listed = _module("api.rooms.list_rooms").sync_detailed(client_app.space.id,
                                                          client=client)
    assert [r.id for r in listed.parsed.data] == [room.id]

    invite_request = _module("models.user_token_create_request").UserTokenCreateRequest \
        .from_dict({"data": {"type": "userTokens", "attributes": {"role": "viewer"}}})
    invited = _module("api.user_tokens.create_room_token").sync_detailed(
        room.id, client=client, body=invite_request)
    assert invited.status_code == 201, invited.content
    secret = invited.parsed.data.attributes.token

    activation = _module("models.user_token_activation_create_request") \
        .UserTokenActivationCreateRequest.from_dict(
            {"data": {"type": "userTokenActivations",
                      "attributes": {"token": secret, "displayName": "Guest"}}})
    unauthenticated = generated.Client(base_url=BASE_URL, httpx_args={"transport": transport})
    activated = _module("api.user_tokens.activate_user_token").sync_detailed(
        client=unauthenticated, body=activation)
    assert activated.status_code in (200, 201), activated.content
    attributes = activated.parsed.data.attributes
    assert attributes.access_token.startswith("mpua_")
    assert attributes.role.value == "viewer"
