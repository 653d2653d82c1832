"""An allow-list HTML sanitiser for meeting texts (``welcome``, ``moderatorOnlyMessage``).

BigBlueButton lets integrations put HTML into the welcome message. We keep the harmless
formatting and links and drop everything else: the input is tokenised with the standard
library's HTML parser and a fresh document is written from the tokens, so nothing the
parser did not understand can reach the output. Rules:

- only the tags in :data:`ALLOWED_TAGS` survive; others are dropped but their text is kept,
  except inside :data:`DROP_CONTENT_TAGS` (``script``, ``style``, ...) whose content goes too;
- no attributes except ``href`` and ``title`` on ``a`` and ``title`` on ``abbr``; no
  ``style``, ``class``, ``id`` or ``on*`` handlers;
- ``href`` must be an absolute ``http:``, ``https:`` or ``mailto:`` URL after removing
  what browsers ignore (tabs, new lines, leading/trailing control characters); every link
  gets ``target="_blank" rel="noopener noreferrer"``; a link without an acceptable ``href``
  keeps its text only;
- text and attribute values are escaped; every element opened is closed, stray end tags
  are dropped; comments, processing instructions and doctype declarations vanish.

The function is pure and never raises on any string.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

__all__ = ["ALLOWED_TAGS", "safe_link", "sanitize_html"]

#: Elements kept, with the attributes each may carry.
ALLOWED_TAGS: dict[str, frozenset[str]] = {
    "a": frozenset({"href", "title"}),
    "abbr": frozenset({"title"}),
    "b": frozenset(),
    "blockquote": frozenset(),
    "br": frozenset(),
    "code": frozenset(),
    "del": frozenset(),
    "div": frozenset(),
    "em": frozenset(),
    "h1": frozenset(),
    "h2": frozenset(),
    "h3": frozenset(),
    "h4": frozenset(),
    "hr": frozenset(),
    "i": frozenset(),
    "ins": frozenset(),
    "li": frozenset(),
    "mark": frozenset(),
    "ol": frozenset(),
    "p": frozenset(),
    "pre": frozenset(),
    "q": frozenset(),
    "s": frozenset(),
    "small": frozenset(),
    "span": frozenset(),
    "strong": frozenset(),
    "sub": frozenset(),
    "sup": frozenset(),
    "u": frozenset(),
    "ul": frozenset(),
}

#: Elements that never hold content.
VOID_TAGS = frozenset({"br", "hr"})

#: Elements dropped together with everything inside them.
DROP_CONTENT_TAGS = frozenset({
    "script", "style", "template", "iframe", "object", "embed", "noscript", "noembed",
    "noframes", "frameset", "frame", "applet", "svg", "math", "textarea", "select",
    "title", "head", "xmp", "plaintext", "video", "audio", "canvas", "form",
})

#: Deepest nesting written; deeper elements keep only their text.
MAX_DEPTH = 32

_SAFE_SCHEMES = ("http:", "https:", "mailto:")
# Browsers drop ASCII tab and new lines anywhere in a URL, and C0 controls and spaces at
# either end (WHATWG URL parser); "java\tscript:" is "javascript:" to them.
_URL_IGNORED = re.compile(r"[\t\n\r]")
_URL_EDGES = "".join(chr(c) for c in range(0x21))


def safe_link(value: str) -> str | None:
    """``value`` as a link target if it is an absolute http(s) or mailto URL, else ``None``."""
    url = _URL_IGNORED.sub("", value).strip(_URL_EDGES)
    lowered = url.lower()
    if not lowered.startswith(_SAFE_SCHEMES):
        return None
    if lowered.startswith(("http:", "https:")):
        rest = url.split(":", 1)[1]
        if not rest.startswith("//") or len(rest) <= 2:
            return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        return None
    return url


class _Sanitiser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        # open elements written to the output, innermost last
        self.stack: list[str] = []
        # depth inside dropped-with-content elements
        self.skip: list[str] = []
        # allowed elements we did not write (too deep, or a link without a safe href)
        self.unwritten: list[str] = []

    # tokens -----------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self_closing=False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._start(tag, attrs, self_closing=True)

    def _start(self, tag: str, attrs: list[tuple[str, str | None]], self_closing: bool) -> None:
        if self.skip:
            if tag in DROP_CONTENT_TAGS and not self_closing:
                self.skip.append(tag)
            return
        if tag in DROP_CONTENT_TAGS:
            if not self_closing:
                self.skip.append(tag)
            return
        allowed = ALLOWED_TAGS.get(tag)
        if allowed is None:
            return
        if tag in VOID_TAGS:
            self.out.append(f"<{tag}>")
            return
        kept: list[tuple[str, str]] = []
        for name, value in attrs:
            if name not in allowed or value is None:
                continue
            if name == "href":
                link = safe_link(value)
                if link is None:
                    continue
                value = link
            kept.append((name, value))
        if tag == "a":
            if not any(name == "href" for name, _ in kept):
                self.unwritten.append(tag)
                return
            kept += [("target", "_blank"), ("rel", "noopener noreferrer")]
            if "a" in self.stack:  # no nested links: close the outer one first
                self._close("a")
        if self_closing:
            return
        if len(self.stack) >= MAX_DEPTH:
            self.unwritten.append(tag)
            return
        rendered = "".join(f' {name}="{html.escape(value, quote=True)}"' for name, value in kept)
        self.out.append(f"<{tag}{rendered}>")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[-1]:
                self.skip.pop()
            elif tag in self.skip:
                while self.skip and self.skip.pop() != tag:
                    pass
            return
        if tag in self.unwritten:
            while self.unwritten and self.unwritten.pop() != tag:
                pass
            return
        if tag in self.stack:
            self._close(tag)

    def _close(self, tag: str) -> None:
        while self.stack:
            top = self.stack.pop()
            self.out.append(f"</{top}>")
            if top == tag:
                return

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(html.escape(data, quote=False))

    # everything else (comments, declarations, processing instructions) is dropped
    def handle_comment(self, data: str) -> None:
        pass

    def handle_decl(self, decl: str) -> None:
        pass

    def handle_pi(self, data: str) -> None:
        pass

    def unknown_decl(self, data: str) -> None:
        pass

    def finish(self) -> str:
        self.close()
        self._close_all()
        return "".join(self.out)

    def _close_all(self) -> None:
        while self.stack:
            self.out.append(f"</{self.stack.pop()}>")


def sanitize_html(text: str) -> str:
    """Safe HTML for ``text``: allowed formatting and links only, everything else dropped."""
    if not text:
        return ""
    # NUL and other C0 controls (except tab and new lines) have no place in a message.
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    parser = _Sanitiser()
    try:
        parser.feed(text)
        return parser.finish()
    except (AssertionError, ValueError):
        # The stdlib parser gives up on a few malformed declarations ("<![foo[").
        # Show such a text as plain text rather than guess.
        return html.escape(text, quote=False)
