"""Embedding and invitation links in real headless Chromium, against the real service.

A parent page served from another origin (``http://localhost:<port>``, another site than
the service's ``http://127.0.0.1:<port>``) embeds a room with ``embed.js``; the invited
user joins through the iframe, with third-party cookies blocked, and meets a second
participant who came through an invitation link (``/j/<token>``). A page from an origin
the space does not list cannot frame the room. Run inside a loopback-only network
namespace (see tests/browser/conftest.py)::

    unshare --net sh -c 'ip link set lo up && python -m pytest -q tests/browser/test_embed.py'
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
from base64 import b64encode
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.browser.conftest import (
    _free_port,
    checkout_env,
    http_status,
    start_service,
    stop_process,
)
from tests.browser.helpers import (
    browser_errors,
    choose_audio,
    current_path,
    participant_ids,
    prejoin,
    start_camera,
    wait_for,
    wait_joined,
    wait_media_flowing,
)

pytestmark = pytest.mark.browser

PARENT_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Parent site</title><link rel="icon" href="data:,">
<script src="{service}/static/embed.js"></script></head>
<body><h1>A learning platform</h1>
<div id="meeting" style="width: 1100px; height: 620px"></div>
<script>
window.events = [];
window.startEmbed = function (url, token, displayName, readyTimeoutMs, extra) {{
  const on = {{}};
  for (const name of MeetplatformEmbed.events) {{
    on[name] = (data) => window.events.push({{event: name, data: data}});
  }}
  window.embed = MeetplatformEmbed.create(Object.assign({{
    parentNode: document.getElementById("meeting"), url: url, token: token,
    displayName: displayName, readyTimeoutMs: readyTimeoutMs, on: on,
  }}, extra || {{}}));
}};
window.startSnippet = function (html) {{
  document.getElementById("meeting").innerHTML = html;
}};
</script></body></html>
"""


# --- the service, with an access log and a data directory we know ---------------------------


@dataclass
class Api:
    """A JSON:API client with client credentials, as a company backend would use it."""

    base_url: str
    client_id: str
    client_secret: str
    token: str = ""

    def call(self, method: str, path: str, document: Any = None) -> Any:
        data = json.dumps(document).encode() if document is not None else None
        request = urllib.request.Request(
            f"{self.base_url}/api/v2{path}", data=data, method=method,
            headers={"Accept": "application/vnd.api+json",
                     "Content-Type": "application/vnd.api+json",
                     "Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
        return json.loads(body) if body else None

    def authenticate(self) -> None:
        basic = b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        request = urllib.request.Request(
            f"{self.base_url}/api/v2/oauth/token", data=b"grant_type=client_credentials",
            method="POST", headers={"Authorization": f"Basic {basic}",
                                    "Content-Type": "application/x-www-form-urlencoded",
                                    "Accept": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            self.token = json.loads(response.read())["access_token"]


@dataclass
class EmbedService:
    base_url: str
    data_dir: Path
    access_log: Path
    process: subprocess.Popen[str]
    api: Api
    space_id: str
    lines: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def embed_service() -> Iterator[EmbedService]:
    """The real service (``twistd -n meetplatform``) and a client created with the CLI."""
    workdir = Path(tempfile.mkdtemp(prefix="mp-embed-"))
    data_dir = workdir / "data"
    access_log = workdir / "access.log"
    port = _free_port()
    options = [f"--listen=tcp:{port}:interface=127.0.0.1", f"--data-dir={data_dir}",
               f"--access-log={access_log}", "--server-name=meetplatform-test"]
    created = subprocess.run(
        [sys.executable, "-m", "meetplatform.cli", "clients", f"--data-dir={data_dir}",
         "create", "--name", "Parent LMS", "--json"],
        capture_output=True, text=True, check=True, cwd=workdir, env=checkout_env())
    client = json.loads(created.stdout)
    process, lines = start_service(workdir, options)
    base_url = f"http://127.0.0.1:{port}"
    api = Api(base_url, client["clientId"], client["clientSecret"])
    api.authenticate()
    service = EmbedService(base_url, data_dir, access_log, process, api,
                           client["spaceId"], lines)
    try:
        yield service
    finally:
        stop_process(process)
        shutil.rmtree(workdir, ignore_errors=True)
        failures = [line for line in lines if "Traceback" in line or "Unhandled" in line]
        assert not failures, "the service logged errors:\n" + "".join(lines)


# --- the parent site: static pages on another port -------------------------------------------


@dataclass
class ParentSite:
    port: int

    @property
    def allowed_origin(self) -> str:
        """The origin the space allows: another site than the service (localhost)."""
        return f"http://localhost:{self.port}"

    @property
    def other_origin(self) -> str:
        """The same files from an origin the space does not list."""
        return f"http://127.0.0.1:{self.port}"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def parent_site(embed_service: EmbedService) -> Iterator[ParentSite]:
    """A plain static HTTP server (no meetplatform code) serving the parent page."""
    root = Path(tempfile.mkdtemp(prefix="mp-parent-"))
    (root / "parent.html").write_text(PARENT_PAGE.format(service=embed_service.base_url))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ParentSite(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        shutil.rmtree(root, ignore_errors=True)


# --- browsers --------------------------------------------------------------------------------


# --- helpers -----------------------------------------------------------------------------------


def set_up_room(service: EmbedService, parent: ParentSite, alias: str, *,
                public: bool = False) -> dict[str, Any]:
    """Allow the parent site to embed the space's rooms and create a room (REST API)."""
    api = service.api
    visibility = "public" if public else "private"
    api.call("PATCH", f"/spaces/{service.space_id}", {"data": {
        "type": "spaces", "id": service.space_id,
        "attributes": {"embedOrigins": [parent.allowed_origin], "visibility": visibility}}})
    room = api.call("POST", f"/spaces/{service.space_id}/rooms", {"data": {
        "type": "rooms", "attributes": {"name": f"Room {alias}", "alias": alias,
                                        "visibility": visibility}}})
    return room["data"]  # type: ignore[no-any-return]


def invite(service: EmbedService, room_id: str, **attributes: Any) -> dict[str, Any]:
    created = service.api.call("POST", f"/rooms/{room_id}/userTokens", {"data": {
        "type": "userTokens", "attributes": attributes}})
    return created["data"]["attributes"]  # type: ignore[no-any-return]


def events(driver: Any, name: str | None = None) -> list[dict[str, Any]]:
    """What the parent page's embed.js listeners recorded (top-level context)."""
    recorded: list[dict[str, Any]] = driver.execute_script("return window.events || []")
    return [e for e in recorded if name is None or e["event"] == name]


def wait_event(driver: Any, name: str, predicate: Callable[[dict[str, Any]], bool] = bool,
               what: str = "") -> dict[str, Any]:
    def found(d: Any) -> Any:
        return next((e["data"] for e in events(d, name) if predicate(e["data"] or {"": 1})),
                    None)
    return wait_for(driver, found, what or f"the parent page to receive {name}")  # type: ignore[no-any-return]


def into_frame(driver: Any) -> None:
    driver.switch_to.default_content()
    driver.switch_to.frame(driver.find_element(By.CSS_SELECTOR, "#meeting iframe"))


def cookies_blocked_in_frame(driver: Any) -> bool:
    """True when the current (framed, third-party) document cannot keep any cookie."""
    return driver.execute_async_script(  # type: ignore[no-any-return]
        "const done = arguments[arguments.length - 1];"
        "document.cookie = 'probe=1; SameSite=None; Secure'; document.cookie = 'probe2=1';"
        "document.hasStorageAccess().then("
        "  (access) => done(!access && !document.cookie), () => done(!document.cookie));")


# --- the tests ---------------------------------------------------------------------------------


def test_an_invited_user_joins_through_the_iframe_and_meets_another_participant(
        embed_service: EmbedService, parent_site: ParentSite,
        new_browser: Callable[..., Any]) -> None:
    """embed.js on another site frames the room; the invited user joins in the iframe
    (third-party cookies blocked), sees and hears a moderator who came through /j/, and
    the parent page receives ready, joined, participantJoined, audioMuted, left and
    readyToClose, and drives mute and leave."""
    room = set_up_room(embed_service, parent_site, "embed-main")
    snippet = embed_service.api.call("GET", f"/rooms/{room['id']}/embed")["data"]["attributes"]
    assert snippet["allow"] == ("camera; microphone; display-capture; autoplay; fullscreen; "
                                "clipboard-write")
    guest = invite(embed_service, room["id"], role="participant", displayName="Emma")
    host = invite(embed_service, room["id"], role="moderator")

    # the moderator comes through the invitation link; opening it uses nothing
    mo = new_browser()
    mo.get(host["inviteUrl"])
    assert mo.find_element(By.ID, "message-title").text == "Join Room embed-main"
    mo.find_element(By.ID, "display-name").send_keys("Mo")
    mo.find_element(By.ID, "join-button").click()
    prejoin(mo)
    mo_id = wait_joined(mo)
    assert current_path(mo) == "/client/join?resume=1"
    choose_audio(mo)
    start_camera(mo)

    # the invited user: the parent page on another site, third-party cookies blocked
    emma = new_browser(third_party_cookies=False)
    emma.get(f"{parent_site.allowed_origin}/parent.html")
    # the documented option skips the pre-join screen
    emma.execute_script("window.startEmbed(arguments[0], arguments[1], null, 30000,"
                        " {prejoin: false})", snippet["url"], guest["token"])
    ready = wait_event(emma, "ready")
    assert ready == {"room": "embed-main", "public": False}
    joined = wait_event(emma, "joined")
    emma_id = joined["participantId"]
    assert joined["name"] == "Emma" and joined["role"] == "VIEWER"
    assert {p["participantId"] for p in joined["participants"]} == {emma_id, mo_id}
    iframe = emma.find_element(By.CSS_SELECTOR, "#meeting iframe")
    assert iframe.get_attribute("allow") == snippet["allow"]
    assert guest["token"] not in iframe.get_attribute("src")

    # inside the frame: the conference, with camera and microphone delegated by `allow`
    into_frame(emma)
    assert wait_joined(emma) == emma_id
    assert cookies_blocked_in_frame(emma)
    frame_url = emma.execute_script("return location.href")
    assert "mput_" not in frame_url and "sessionToken" not in frame_url
    choose_audio(emma)
    start_camera(emma)
    wait_for(emma, lambda d: set(participant_ids(d)) == {emma_id, mo_id}, "both in the frame")
    wait_media_flowing(emma, mo_id)
    wait_media_flowing(mo, emma_id)
    assert not browser_errors(emma), browser_errors(emma)

    # the parent page drives the frame: mute, and the event comes back
    emma.switch_to.default_content()
    emma.execute_script("window.embed.mute()")
    assert wait_event(emma, "audioMuted") == {"muted": True}
    wait_for(mo, lambda d: d.execute_script(
        "return (window.meetplatform.participants.find(p => p.id === arguments[0]) || {})"
        ".muted", emma_id) is True, "Emma muted on Mo's page")

    # the moderator reloads: the seat resumes, the invitation is not needed (it is used)
    mo.refresh()
    assert wait_joined(mo) == mo_id
    assert http_status(host["inviteUrl"]) == 409
    # a participant joining later shows up on the parent page
    late = invite(embed_service, room["id"], displayName="Lea")
    lea = new_browser()
    lea.get(late["inviteUrl"])
    lea.find_element(By.ID, "join-button").click()
    prejoin(lea)
    lea_id = wait_joined(lea)
    assert wait_event(emma, "participantJoined",
                      lambda data: data.get("participantId") == lea_id)["name"] == "Lea"
    lea.find_element(By.ID, "leave-btn").click()
    wait_event(emma, "participantLeft", lambda data: data.get("participantId") == lea_id)

    # leave from the parent page: left, then readyToClose; the moderator sees Emma go
    emma.execute_script("window.embed.leave()")
    assert wait_event(emma, "left") == {"reason": "left"}
    wait_event(emma, "readyToClose")
    wait_for(mo, lambda d: emma_id not in participant_ids(d), "Emma gone from Mo's page")
    names = [e["event"] for e in events(emma)]
    assert names.index("left") < names.index("readyToClose")
    assert "error" not in names, events(emma, "error")

    # the embedded user's invitation never reached the server's access log
    log = embed_service.access_log.read_text()
    assert "/embed/embed-main" in log
    assert guest["token"] not in log


def test_a_site_not_allowed_cannot_frame_the_room(
        embed_service: EmbedService, parent_site: ParentSite,
        new_browser: Callable[..., Any]) -> None:
    """From an origin the space does not list, the browser refuses to show the room in
    the frame (CSP frame-ancestors): the page never runs, the parent never gets ready
    and embed.js reports notReady."""
    room = set_up_room(embed_service, parent_site, "embed-refused")
    snippet = embed_service.api.call("GET", f"/rooms/{room['id']}/embed")["data"]["attributes"]
    guest = invite(embed_service, room["id"], displayName="Eve")
    eve = new_browser()
    eve.get(f"{parent_site.other_origin}/parent.html")
    eve.execute_script("window.startEmbed(arguments[0], arguments[1], null, 3000)",
                       snippet["url"], guest["token"])
    error = wait_event(eve, "error", what="embed.js to report that the frame never started")
    assert error["code"] == "notReady" and error["fatal"] is True
    assert parent_site.other_origin in error["message"]
    assert not events(eve, "ready")
    violations = [m for m in browser_errors(eve) if "frame-ancestors" in m]
    assert violations, browser_errors(eve)
    # the frame shows the browser's error page, not the meeting
    into_frame(eve)
    assert not eve.execute_script("return Boolean(window.meetplatform)")
    eve.switch_to.default_content()
    assert http_status(f"{embed_service.base_url}/j/{guest['token']}") == 200  # unused


def test_the_plain_snippet_with_a_fragment_credential_joins_and_reload_resumes(
        embed_service: EmbedService, parent_site: ParentSite,
        new_browser: Callable[..., Any]) -> None:
    """The REST snippet, pasted as is with #t=<invitation> on its src, joins the room
    (third-party cookies blocked); the credential leaves the frame's address at once;
    reloading the frame resumes the seat without the (now used) invitation."""
    room = set_up_room(embed_service, parent_site, "embed-snippet")
    snippet = embed_service.api.call("GET", f"/rooms/{room['id']}/embed")["data"]["attributes"]
    guest = invite(embed_service, room["id"], displayName="Paul")
    html = snippet["html"].replace(snippet["url"],
                                   f"{snippet['url']}#t={guest['token']}&prejoin=0", 1)
    paul = new_browser(third_party_cookies=False)
    paul.get(f"{parent_site.allowed_origin}/parent.html")
    paul.execute_script("window.startSnippet(arguments[0])", html)
    into_frame(paul)
    paul_id = wait_joined(paul)
    assert cookies_blocked_in_frame(paul)
    assert "mput_" not in paul.execute_script("return location.href")
    assert http_status(f"{embed_service.base_url}/j/{guest['token']}") == 409
    paul.execute_script("location.reload()")
    assert wait_joined(paul) == paul_id



def test_the_embedded_page_passes_the_prejoin_screen_in_the_chosen_language(
        embed_service: EmbedService, parent_site: ParentSite,
        new_browser: Callable[..., Any]) -> None:
    """Without `prejoin: false` the frame shows the pre-join screen before joining, in the
    language of the `lang` option (over the browser's); an invitation page (/j/) speaks
    the browser's language."""
    room = set_up_room(embed_service, parent_site, "embed-lang")
    snippet = embed_service.api.call("GET", f"/rooms/{room['id']}/embed")["data"]["attributes"]
    guest = invite(embed_service, room["id"], displayName="Zoe")
    zoe = new_browser(lang="fr")
    zoe.get(guest["inviteUrl"])
    assert zoe.find_element(By.ID, "join-button").text == "Rejoindre"
    zoe.get(f"{parent_site.allowed_origin}/parent.html")
    zoe.execute_script("window.startEmbed(arguments[0], arguments[1], null, 30000,"
                       " {lang: 'es'})", snippet["url"], guest["token"])
    into_frame(zoe)
    wait_for(zoe, lambda d: d.find_element(By.ID, "prejoin-screen").is_displayed(),
             "the pre-join screen in the frame")
    assert zoe.find_element(By.ID, "prejoin-title").text == "¿Listo para entrar?"
    assert zoe.find_element(By.ID, "prejoin-name").get_attribute("value") == "Zoe"
    zoe.switch_to.default_content()
    assert not events(zoe, "joined")  # nothing joined before the pre-join screen's Join
    into_frame(zoe)
    prejoin(zoe, "listen")
    zoe_id = wait_joined(zoe)
    zoe.switch_to.default_content()
    assert wait_event(zoe, "joined")["participantId"] == zoe_id
