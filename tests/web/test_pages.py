"""The conference page, the ended page and the static assets, through the resource tree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.web.resource import Resource

from meetplatform.model import GuestPolicy, MeetingSpec, Role
from meetplatform.registry import Registry
from meetplatform.web.pages import WebPages
from tests.support import make_clock, make_settings

BASE = "https://meet.example"


class Harness:
    def __init__(self, public_url: str = BASE, max_query_bytes: int = 64 * 1024) -> None:
        self.clock = make_clock()
        self.settings = make_settings(public_url=public_url, server_name="Meet",
                                      max_query_bytes=max_query_bytes)
        self.registry = Registry(self.clock, server_url=public_url)
        self.pages = WebPages(self.clock, self.settings, self.registry)
        root = Resource()
        root.putChild(b"client", self.pages.resource())
        root.putChild(b"static", self.pages.static_resource())
        self.treq: Any = StubTreq(root)

    def seat(self, name: str = "Ada", role: Role = Role.MODERATOR, guest: bool = False,
             meeting_name: str = "Algebra <1>", policy: GuestPolicy = GuestPolicy.ALWAYS_ACCEPT):
        meeting, _ = self.registry.create_meeting(
            MeetingSpec(meeting_id="m1", name=meeting_name, guest_policy=policy))
        return self.registry.issue_seat(meeting, full_name=name, role=role, guest=guest)

    async def get(self, path: str, **kw):
        response = await self.treq.get(BASE + path, **kw)
        body = await response.content()
        return response, body.decode("utf-8")


def header(response, name: str) -> str:
    values = response.headers.getRawHeaders(name)
    assert values, f"no {name} header"
    return values[0]


@pytest.fixture
def h() -> Harness:
    return Harness()


@pytest_twisted.ensureDeferred
async def test_join_page_for_a_valid_token(h: Harness) -> None:
    """A valid session token gets the conference page titled with the meeting's name."""
    seat = h.seat()
    response, body = await h.get(f"/client/join?sessionToken={seat.token}")
    assert response.code == 200
    assert header(response, "content-type") == "text/html; charset=utf-8"
    assert "<title>Algebra &lt;1&gt; · Meet</title>" in body
    assert '<meta name="mp-ws-url" content="wss://meet.example/ws">' in body
    assert re.search(r'<script type="module" src="/static/conference.js\?v=[0-9a-f]{16}">', body)
    assert "<script>" not in body  # no inline script
    assert seat.token not in body  # the token never lands in the markup


@pytest_twisted.ensureDeferred
async def test_join_page_security_headers(h: Harness) -> None:
    """The conference page forbids inline script, framing by others, caching and referrers."""
    seat = h.seat()
    response, _ = await h.get(f"/client/join?sessionToken={seat.token}")
    csp = header(response, "content-security-policy")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["connect-src"] == "'self' wss://meet.example"
    assert directives["frame-ancestors"] == "'self'"
    assert directives["base-uri"] == "'none'"
    assert header(response, "cache-control") == "no-store"
    assert header(response, "referrer-policy") == "no-referrer"
    assert header(response, "x-content-type-options") == "nosniff"
    assert "camera=(self)" in header(response, "permissions-policy")


@pytest_twisted.ensureDeferred
async def test_plain_http_service_uses_ws() -> None:
    """A service on plain http points the page at a ws:// socket under its public path."""
    h = Harness(public_url="http://127.0.0.1:8080/meet/")
    seat = h.seat()
    response, body = await h.get(f"/client/join?sessionToken={seat.token}")
    assert '<meta name="mp-ws-url" content="ws://127.0.0.1:8080/meet/ws">' in body
    assert 'href="/meet/static/conference.css?v=' in body
    assert "connect-src 'self' ws://127.0.0.1:8080" in header(response,
                                                              "content-security-policy")


@pytest_twisted.ensureDeferred
async def test_waiting_guest_gets_the_page(h: Harness) -> None:
    """A guest still waiting for a moderator gets the page (which shows the lobby)."""
    seat = h.seat(name="Guest", role=Role.VIEWER, guest=True, policy=GuestPolicy.ASK_MODERATOR)
    response, _ = await h.get(f"/client/join?sessionToken={seat.token}")
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_missing_token_is_a_clear_error(h: Harness) -> None:
    """Opening the page without a session token explains that the link is incomplete."""
    response, body = await h.get("/client/join")
    assert response.code == 400
    assert header(response, "content-type") == "text/html; charset=utf-8"
    assert "This meeting link is incomplete" in body
    assert "script-src 'none'" in header(response, "content-security-policy")


@pytest_twisted.ensureDeferred
async def test_unknown_token_is_a_clear_error(h: Harness) -> None:
    """An unknown session token gets an HTML page saying the link is not valid."""
    h.seat()
    response, body = await h.get("/client/join?sessionToken=AAAAAAAAAAAAAAAAAAAAAAAA")
    assert response.code == 404
    assert "This meeting link is not valid any more" in body
    assert "Traceback" not in body


@pytest_twisted.ensureDeferred
async def test_malformed_token_is_a_clear_error(h: Harness) -> None:
    """A token with characters no token has is refused without a lookup."""
    response, body = await h.get("/client/join?sessionToken=%3Cscript%3E")
    assert response.code == 400
    assert "malformed" in body
    assert "<script>" not in body


@pytest_twisted.ensureDeferred
async def test_token_of_an_ended_meeting(h: Harness) -> None:
    """After the meeting ended its links show the not-valid page."""
    seat = h.seat()
    h.registry.end_meeting(seat.meeting, "ENDED_FROM_API")
    response, _ = await h.get(f"/client/join?sessionToken={seat.token}")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_token_of_a_removed_participant(h: Harness) -> None:
    """A participant removed by a moderator cannot come back through its link."""
    seat = h.seat(role=Role.VIEWER)
    participant = h.registry.connect(seat)
    h.registry.remove(seat.meeting, participant.user_id)
    response, _ = await h.get(f"/client/join?sessionToken={seat.token}")
    assert response.code == 404


@pytest_twisted.ensureDeferred
async def test_resume_shell(h: Harness) -> None:
    """The token-less resume address (what a reload sees) serves the page shell."""
    response, body = await h.get("/client/join?resume=1")
    assert response.code == 200
    assert "conference.js" in body


@pytest_twisted.ensureDeferred
async def test_ended_page_reasons(h: Harness) -> None:
    """The ended page explains each reason in words."""
    cases = {
        "removed": "You were removed from the meeting",
        "left": "You left the meeting",
        "denied": "Access denied",
        "ENDED_BY_MODERATOR": "A moderator ended the meeting for everyone.",
        "ENDED_FROM_API": "The meeting has ended",
        "full": "The meeting is full",
    }
    for reason, text in cases.items():
        response, body = await h.get(f"/client/ended?reason={reason}")
        assert response.code == 200
        assert text in body, reason
        assert f'data-reason="{reason}"' in body


@pytest_twisted.ensureDeferred
async def test_ended_page_never_reflects_unknown_reasons(h: Harness) -> None:
    """An unknown reason shows a generic text and is not echoed into the page."""
    response, body = await h.get("/client/ended?reason=%3Cscript%3Ealert(1)%3C/script%3E")
    assert response.code == 200
    assert "You are no longer in the meeting" in body
    assert "alert" not in body
    response, body = await h.get("/client/ended")
    assert response.code == 200


@pytest_twisted.ensureDeferred
async def test_other_addresses_are_html_404(h: Harness) -> None:
    """Any other address under /client is an HTML 404 page."""
    for path in ("/client/nothing", "/client/join/extra", "/client/", "/client",
                 "/client/a/b/c"):
        response, body = await h.get(path)
        assert response.code == 404, path
        assert header(response, "content-type") == "text/html; charset=utf-8"
        assert "Page not found" in body


@pytest_twisted.ensureDeferred
async def test_post_is_refused_with_html(h: Harness) -> None:
    """Posting to the page is refused with an HTML 405, not a traceback."""
    response = await h.treq.post(BASE + "/client/join", data=b"x")
    body = (await response.content()).decode()
    assert response.code == 405
    assert "Method not allowed" in body


@pytest_twisted.ensureDeferred
async def test_non_utf8_path_is_refused_with_html(h: Harness) -> None:
    """A path that is not UTF-8 gets an HTML 400."""
    response, body = await h.get("/client/%FF%FE")
    assert response.code == 400
    assert "not valid" in body


@pytest_twisted.ensureDeferred
async def test_non_utf8_query_is_refused_with_html_not_repaired(h: Harness) -> None:
    """A query value that is not UTF-8 once percent-decoded gets an HTML 400 (the
    service-wide text rule: refused, not repaired into U+FFFD)."""
    for path in ("/client/join?sessionToken=%FF", "/client/ended?reason=%ED%A0%80"):
        response, body = await h.get(path)
        assert response.code == 400, path
        assert header(response, "content-type") == "text/html; charset=utf-8"
        assert "not valid" in body


@pytest_twisted.ensureDeferred
async def test_oversized_address_is_refused() -> None:
    """An address longer than the configured limit is refused before any lookup."""
    h = Harness(max_query_bytes=1000)
    response, body = await h.get("/client/join?sessionToken=" + "A" * 5000)
    assert response.code == 414
    assert "too long" in body


@pytest_twisted.ensureDeferred
async def test_static_assets_have_types_and_caching(h: Harness) -> None:
    """Static files carry the right content type, an ETag and cache headers."""
    expected = {
        "conference.js": "text/javascript; charset=utf-8",
        "conference.css": "text/css; charset=utf-8",
        "favicon.svg": "image/svg+xml",
    }
    for name, content_type in expected.items():
        response, body = await h.get(f"/static/{name}")
        assert response.code == 200, name
        assert header(response, "content-type") == content_type
        assert header(response, "cache-control") == "no-cache"
        assert header(response, "x-content-type-options") == "nosniff"
        assert body
        version = h.pages.static.version(name)
        assert header(response, "etag") == f'"{version}"'
        response, _ = await h.get(f"/static/{name}?v={version}")
        assert "immutable" in header(response, "cache-control")
        response, body = await h.get(f"/static/{name}",
                                     headers={"If-None-Match": f'"{version}"'})
        assert response.code == 304
        assert body == ""


@pytest_twisted.ensureDeferred
async def test_static_unknown_and_traversal_are_404(h: Harness) -> None:
    """Unknown names, directories and traversal attempts get an HTML 404."""
    for path in ("/static/nope.js", "/static/", "/static/../pages.py",
                 "/static/%2e%2e/pages.py", "/static/sub/conference.js"):
        response, _body = await h.get(path)
        assert response.code == 404, path
        assert "text/html" in header(response, "content-type")


@pytest_twisted.ensureDeferred
async def test_conference_modules_are_served(h: Harness) -> None:
    """Every module the page's entry script imports, and what they import, is served as JS."""
    seen: set[str] = set()
    todo = ["/static/conference.js"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        response, body = await h.get(path)
        assert response.code == 200, path
        assert header(response, "content-type") == "text/javascript; charset=utf-8", path
        assert header(response, "x-content-type-options") == "nosniff", path
        assert header(response, "cache-control") == "no-cache", path
        assert header(response, "etag") == f'"{h.pages.static.version(path[8:])}"', path
        base = path.rsplit("/", 1)[0]
        imports = re.findall(r'^import [^;]*? from "(\./[^"]+)";', body, re.MULTILINE)
        for spec in imports:
            todo.append(f"{base}/{spec[2:]}")
    expected = {f"/static/{name}" for name in h.pages.static.assets
                if name.startswith("conference/")} | {"/static/conference.js"}
    assert seen == expected  # every module file is imported, and only these
    assert len(seen) > 5


@pytest_twisted.ensureDeferred
async def test_static_sub_directory_traversal_is_refused(h: Harness) -> None:
    """Dot segments, encoded or not, dotfiles and directories never reach a file."""
    for path in ("/static/../x", "/static/conference/../../x", "/static/conference/../pages.py",
                 "/static/conference/../conference.js",
                 "/static/%2e%2e/x", "/static/conference/%2e%2e/%2e%2e/x",
                 "/static/conference/%2E%2E/conference.js", "/static/conference%2fchat.js",
                 "/static/conference%2f..%2f..%2fpages.py", "/static/./conference.js",
                 "/static/conference/./chat.js", "/static/conference//chat.js",
                 "/static/conference", "/static/conference/", "/static/.hidden",
                 "/static/conference/%00chat.js", "/static/..%5cpages.py"):
        response, _body = await h.get(path)
        assert response.code == 404, path
        assert "text/html" in header(response, "content-type"), path
    assert all(".." not in name and not name.startswith(".") for name in h.pages.static.assets)


def test_static_tree_skips_dotfiles_and_keys_by_relative_path(tmp_path: Path) -> None:
    """Sub-directories are served by relative path; dotfiles and dot-directories never."""
    from meetplatform.web.pages import StaticAssets

    (tmp_path / "app.js").write_text("a")
    (tmp_path / ".env.js").write_text("secret")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "hook.js").write_text("secret")
    (tmp_path / "mod" / "deep").mkdir(parents=True)
    (tmp_path / "mod" / "one.js").write_text("1")
    (tmp_path / "mod" / "deep" / "two.js").write_text("2")
    (tmp_path / "mod" / "notes.unknown").write_text("?")
    assets = StaticAssets(Harness().settings, directory=tmp_path).assets
    assert set(assets) == {"app.js", "mod/one.js", "mod/deep/two.js"}
    assert assets["mod/deep/two.js"].content_type == "text/javascript; charset=utf-8"


@pytest_twisted.ensureDeferred
async def test_page_references_existing_assets(h: Harness) -> None:
    """Every asset the page links to is served."""
    seat = h.seat()
    _, body = await h.get(f"/client/join?sessionToken={seat.token}")
    for path in re.findall(r'(?:src|href)="(/static/[^"?]+)', body):
        response, _ = await h.get(path)
        assert response.code == 200, path


@pytest_twisted.ensureDeferred
async def test_page_markup_needs_no_inline_script_or_style(h: Harness) -> None:
    """The page works under its CSP: no inline script, handler or style attribute."""
    seat = h.seat()
    _, body = await h.get(f"/client/join?sessionToken={seat.token}")
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", body)
    assert not re.search(r"\son[a-z]+\s*=", body, re.IGNORECASE)
    assert not re.search(r"\sstyle\s*=", body, re.IGNORECASE)
    assert "javascript:" not in body


def test_browser_sanitiser_allows_what_the_server_allows() -> None:
    """The page's own welcome sanitiser keeps exactly the server's allow-list."""
    from meetplatform.sanitize import ALLOWED_TAGS, DROP_CONTENT_TAGS
    from meetplatform.web.pages import STATIC_DIR

    source = (STATIC_DIR / "conference" / "sanitize.js").read_text("utf-8")
    block = re.search(r"const ALLOWED_TAGS = \{(.*?)\};", source, re.DOTALL)
    assert block is not None
    js_tags = dict(re.findall(r"(\w+): \[([^\]]*)\]", block.group(1)))
    assert set(js_tags) == set(ALLOWED_TAGS)
    for tag, attrs in js_tags.items():
        assert set(re.findall(r'"(\w+)"', attrs)) == set(ALLOWED_TAGS[tag]), tag
    drop = re.search(r"const DROP_WITH_CONTENT = new Set\(\[(.*?)\]\);", source, re.DOTALL)
    assert drop is not None
    assert set(re.findall(r'"(\w+)"', drop.group(1))) == set(DROP_CONTENT_TAGS)


@pytest_twisted.ensureDeferred
async def test_head_requests(h: Harness) -> None:
    """HEAD on the page and on assets answers like GET, without a body."""
    seat = h.seat()
    response = await h.treq.head(f"{BASE}/client/join?sessionToken={seat.token}")
    assert response.code == 200
    assert await response.content() == b""
    response = await h.treq.head(f"{BASE}/static/conference.js")
    assert response.code == 200
    assert header(response, "content-type") == "text/javascript; charset=utf-8"
