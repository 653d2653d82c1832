"""The welcome-message sanitiser: harmless formatting and links survive, nothing runs."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from meetplatform.sanitize import ALLOWED_TAGS, safe_link, sanitize_html


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.comments: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def _parse(text: str) -> _Collect:
    parser = _Collect()
    parser.feed(text)
    parser.close()
    return parser


def _assert_safe(out: str) -> None:
    parsed = _parse(out)
    assert not parsed.comments
    for tag, attrs in parsed.tags:
        assert tag in ALLOWED_TAGS, tag
        for name, value in attrs:
            if tag == "a" and name in ("target", "rel"):
                continue
            assert name in ALLOWED_TAGS[tag], (tag, name)
            if name == "href":
                assert value is not None and safe_link(value) == value
        if tag == "a":
            assert ("target", "_blank") in attrs
            assert ("rel", "noopener noreferrer") in attrs


def test_plain_text_is_escaped() -> None:
    """Text with angle brackets and ampersands is shown as text."""
    assert sanitize_html("1 < 2 & 3 > 2") == "1 &lt; 2 &amp; 3 &gt; 2"


def test_empty() -> None:
    """An empty welcome stays empty."""
    assert sanitize_html("") == ""


def test_bbb_default_welcome_survives() -> None:
    """BigBlueButton's usual welcome markup (bold, line breaks, links) is kept."""
    src = ('Welcome to <b>Algebra</b>!<br><br>Use a headset.<br/>'
           'See <a href="https://example.org/help" target="_top">help</a>.')
    assert sanitize_html(src) == (
        'Welcome to <b>Algebra</b>!<br><br>Use a headset.<br>'
        'See <a href="https://example.org/help" target="_blank" '
        'rel="noopener noreferrer">help</a>.')


def test_script_is_removed_with_its_content() -> None:
    """A script element and everything in it disappears."""
    assert sanitize_html("hi<script>alert(1)</script>there") == "hithere"
    assert sanitize_html("<SCRIPT SRC=//evil/x.js></SCRIPT>ok") == "ok"
    assert sanitize_html("<style>body{display:none}</style>ok") == "ok"


def test_nested_dropped_content() -> None:
    """Content of dropped elements stays dropped even when nested or unclosed."""
    assert sanitize_html("<svg><script>x</script><b>in svg</b></svg>after") == "after"
    assert sanitize_html("a<iframe src=x>b<iframe>c</iframe>d</iframe>e") == "ae"
    assert sanitize_html("a<template>hidden") == "a"


def test_event_handlers_and_styles_are_dropped() -> None:
    """No on* handler, style, class or id attribute survives."""
    out = sanitize_html('<b onclick="alert(1)" style="color:red" class="x" id="y">t</b>'
                        '<img src=x onerror=alert(1)>')
    assert out == "<b>t</b>"


def test_unknown_tags_keep_their_text() -> None:
    """Tags outside the allow list vanish but their text is kept."""
    assert sanitize_html("<font color=red>red</font> <blink>x</blink>") == "red x"


def test_javascript_urls_are_refused() -> None:
    """Links to javascript:, data: or vbscript: URLs lose their link, keep their text."""
    for href in ("javascript:alert(1)", "JaVaScRiPt:alert(1)", " javascript:alert(1)",
                 "java\tscript:alert(1)", "java&#x09;script:alert(1)",
                 "&#106;avascript:alert(1)", "\x01javascript:alert(1)",
                 "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
                 "/relative/path", "//evil.example/", "http:evil", "https://"):
        out = sanitize_html(f'<a href="{href}">click</a>')
        assert out == "click", (href, out)


def test_links_are_forced_to_a_new_tab() -> None:
    """Allowed links get target=_blank and rel=noopener, whatever the author wrote."""
    out = sanitize_html('<a href="mailto:a@b.example" rel="opener" target="x" title="Mail">m</a>')
    assert out == ('<a href="mailto:a@b.example" title="Mail" target="_blank" '
                   'rel="noopener noreferrer">m</a>')


def test_url_whitespace_is_cleaned() -> None:
    """What browsers ignore in URLs is removed from kept links too."""
    out = sanitize_html('<a href=" https://ex.example/a\nb ">x</a>')
    assert 'href="https://ex.example/ab"' in out


def test_attribute_values_are_escaped() -> None:
    """Quotes in attribute values cannot break out of the attribute."""
    out = sanitize_html('<a href="https://x.example/?q=&quot;&gt;<script>" title=\'a"b\'>x</a>')
    assert "<script" not in out
    assert 'href="https://x.example/?q=&quot;&gt;&lt;script&gt;"' in out
    assert 'title="a&quot;b"' in out


def test_unbalanced_markup_is_balanced() -> None:
    """Unclosed tags are closed and stray end tags are dropped."""
    assert sanitize_html("<b><i>x</b>y</u>") == "<b><i>x</i></b>y"
    assert sanitize_html("<ul><li>a<li>b") == "<ul><li>a<li>b</li></li></ul>"


def test_nested_links_are_not_nested() -> None:
    """A link inside a link closes the outer one first."""
    out = sanitize_html('<a href="https://a.example/">a<a href="https://b.example/">b</a></a>')
    assert out.count("<a ") == 2
    assert "</a><a " in out


def test_comments_and_declarations_vanish() -> None:
    """Comments, conditional comments, CDATA and doctype disappear."""
    assert sanitize_html("a<!-- <script>x</script> -->b<!DOCTYPE html><![CDATA[c]]>") == "ab"


def test_declarations_the_parser_rejects() -> None:
    """Markup the standard parser gives up on is shown as escaped text."""
    assert sanitize_html("<b>x</b><![foo[bar]]>") == "&lt;b&gt;x&lt;/b&gt;&lt;![foo[bar]]&gt;"


def test_deep_nesting_is_bounded() -> None:
    """Very deep nesting keeps the text but not thousands of elements."""
    out = sanitize_html("<span>" * 5000 + "deep" + "</span>" * 5000)
    assert "deep" in out
    assert out.count("<span>") <= 32
    _assert_safe(out)


def test_control_characters_are_removed() -> None:
    """NUL and other control characters are dropped."""
    assert sanitize_html("a\x00b\x07c\nd") == "abc\nd"


def test_known_xss_vectors() -> None:
    """A set of well-known XSS payloads yields nothing executable."""
    vectors = [
        '<img src=x onerror=alert(1)//',
        '<svg/onload=alert(1)>',
        '<body onload=alert(1)>',
        '"><script>alert(1)</script>',
        '<a href="javascript&colon;alert(1)">x</a>',
        '<iframe srcdoc="<script>alert(1)</script>">',
        '<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>',
        '<div style="background:url(javascript:alert(1))">x</div>',
        '<a href=" &#14;  javascript:alert(1)">x</a>',
        '<scr<script>ipt>alert(1)</script>',
        '<<script>script>alert(1)</script>',
        '<form><button formaction=javascript:alert(1)>x</button></form>',
        '<object data="javascript:alert(1)">',
        '<meta http-equiv="refresh" content="0;url=javascript:alert(1)">',
        '<base href="javascript:alert(1)//">',
        '<p title="</p><script>alert(1)</script>">x</p>',
    ]
    for vector in vectors:
        out = sanitize_html(vector)
        _assert_safe(out)
        assert "<script" not in out.lower()
        assert not re.search(r"<[^>]*\son\w+\s*=", out, re.IGNORECASE), out
        assert "javascript:" not in out.lower() or "<a " not in out, out


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("<>/=\"' abhrefscriptonjavs:&#;x-!")), max_size=80))
def test_any_input_gives_safe_output(text: str) -> None:
    """Whatever the input, the output holds only allowed tags, attributes and links."""
    _assert_safe(sanitize_html(text))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_sanitising_is_stable(text: str) -> None:
    """Sanitising sanitised HTML changes nothing."""
    once = sanitize_html(text)
    assert sanitize_html(once) == once
