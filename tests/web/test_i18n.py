"""Translations: the catalogues match what the pages use, languages are chosen as
documented, server-rendered pages speak the participant's language, and the page's
colours meet WCAG AA contrast."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from meetplatform.model import Role
from meetplatform.web.entry import seat_entry
from meetplatform.web.i18n import CATALOGUE_DIR, CATALOGUES, parse_accept_language
from meetplatform.web.pages import _GENERIC_ENDED, ENDED_REASONS
from meetplatform.web.problems import PAGE_WORDS
from tests.web.test_pages import Harness

WEB = Path(__file__).resolve().parents[2] / "meetplatform" / "web"
STATIC = WEB / "static"
#: The languages every page must speak in full; other catalogues may be partial (their
#: ``_meta`` says ``"complete": "false"``) and fall back on English key by key.
MAIN = ("en", "pt-BR", "es", "de", "fr")

_JS_KEY = re.compile(r"""\bt\(\s*["']([A-Za-z0-9_.]+)["']""")
_JS_PREFIX = re.compile(r"""\bt\(\s*`([A-Za-z0-9_.]+)\$\{""")
_HTML_KEY = re.compile(r'\bdata-i18n(?:-label|-placeholder|-title)?="([^"]+)"')
_PY_KEY = re.compile(r"""(?:CATALOGUES\.text\(\s*lang,\s*|say\()\s*f?["']([A-Za-z0-9_.]+)""")
_PY_PREFIX = re.compile(r"""CATALOGUES\.text\(\s*lang,\s*f["']([A-Za-z0-9_.]+)\{""")


def _catalogue(lang: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CATALOGUE_DIR / f"{lang}.json").read_text("utf-8"))
    return data


def _sources() -> tuple[str, str, str]:
    js = "\n".join(p.read_text("utf-8") for p in sorted(STATIC.rglob("*.js")))
    templates = "\n".join(p.read_text("utf-8") for p in sorted((WEB / "templates").glob("*.html")))
    python = "\n".join(p.read_text("utf-8") for p in sorted(WEB.glob("*.py")))
    return js, templates, python


def _used() -> tuple[set[str], set[str]]:
    """Keys the pages use literally, and prefixes of keys they build (``device.${kind}``)."""
    js, templates, python = _sources()
    keys = set(_JS_KEY.findall(js)) | set(_HTML_KEY.findall(templates))
    keys |= {k for k in _PY_KEY.findall(python) if not k.endswith(".")}
    prefixes = set(_JS_PREFIX.findall(js)) | set(_PY_PREFIX.findall(python))
    return keys, prefixes


def _python_sentences() -> set[str]:
    """Every string constant of the web package's Python (the pages' English sentences)."""
    out: set[str] = set()
    for path in WEB.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.add(node.value)
    return out


def test_every_key_the_pages_use_is_in_every_main_catalogue() -> None:
    keys, prefixes = _used()
    assert len(keys) > 100
    for lang in MAIN:
        catalogue = _catalogue(lang)
        missing = sorted(k for k in keys if k not in catalogue)
        assert not missing, f"{lang}.json lacks {missing}"
        for prefix in prefixes:
            assert any(k.startswith(prefix) for k in catalogue), f"{lang}: nothing for {prefix}*"


def test_no_catalogue_has_a_key_nobody_uses() -> None:
    keys, prefixes = _used()
    sentences = _python_sentences()
    english = _catalogue("en")
    unused = sorted(
        key for key, text in english.items()
        if key != "_meta" and key not in keys
        and not any(key.startswith(p) for p in prefixes) and text not in sentences)
    assert not unused, f"keys nobody uses: {unused}"
    for path in CATALOGUE_DIR.glob("*.json"):
        extra = sorted(set(_catalogue(path.stem)) - set(english))
        assert not extra, f"{path.name} has keys English lacks: {extra}"


def test_main_catalogues_are_complete_and_others_say_so() -> None:
    english = set(_catalogue("en"))
    for path in CATALOGUE_DIR.glob("*.json"):
        catalogue = _catalogue(path.stem)
        assert catalogue["_meta"]["name"] and catalogue["_meta"]["dir"] in ("ltr", "rtl")
        if path.stem in MAIN:
            assert set(catalogue) == english, path.name
        else:
            assert catalogue["_meta"].get("complete") == "false", path.name


def test_placeholders_are_the_same_in_every_language() -> None:
    english = CATALOGUES.placeholders("en")
    for lang in CATALOGUES.languages:
        for key, names in CATALOGUES.placeholders(lang).items():
            assert names == english[key], f"{lang} {key}: {sorted(names)} != {sorted(english[key])}"


def test_translations_are_translated() -> None:
    """Not English copied over: nearly every message differs from English."""
    english = _catalogue("en")
    for lang in MAIN[1:]:
        catalogue = _catalogue(lang)
        same = [k for k in english if k != "_meta" and catalogue[k] == english[k]]
        assert len(same) < 0.06 * len(english), f"{lang} keeps English for {same}"


def test_server_sentences_are_in_the_catalogue() -> None:
    """The ended and error pages' English sentences are catalogue messages."""
    english = {v for k, v in _catalogue("en").items() if k != "_meta"}
    sentences = {s for pair in ENDED_REASONS.values() for s in pair}
    sentences |= set(_GENERIC_ENDED) | {s for pair in PAGE_WORDS.values() for s in pair}
    assert not sorted(sentences - english)


@pytest.mark.parametrize(("header", "expected"), [
    (None, []),
    ("pt-BR,pt;q=0.9,en;q=0.8", ["pt-BR", "pt", "en"]),
    ("en;q=0.2, de", ["de", "en"]),
    ("fr;q=0, es", ["es"]),
    ("*", []),
])
def test_accept_language_is_parsed(header: str | None, expected: list[str]) -> None:
    assert parse_accept_language(header) == expected


@pytest.mark.parametrize(("preferred", "header", "expected"), [
    ((), "pt-BR,pt;q=0.9", "pt-BR"),
    ((), "pt-PT", "pt-BR"),
    ((), "de-AT,de;q=0.9", "de"),
    ((), "ja, zh", "en"),
    ((), None, "en"),
    (("de",), "pt-BR", "de"),
    (("pt_BR",), "fr", "pt-BR"),
    (("xx",), "es-MX", "es"),
    ((None, "fr"), "de", "fr"),
])
def test_language_choice(preferred: tuple[str | None, ...], header: str | None,
                         expected: str) -> None:
    assert CATALOGUES.choose(*preferred, accept_language=header) == expected


def test_direction_comes_from_the_catalogue() -> None:
    assert CATALOGUES.direction("ar") == "rtl"
    assert CATALOGUES.direction("de") == "ltr"


def test_localise_html_fills_text_and_attributes() -> None:
    page = ('<p data-i18n="prejoin.join">Join</p>'
            '<input placeholder="x" data-i18n-placeholder="chat.placeholder">'
            '<main aria-label="Participants" data-i18n-label="meeting.participants">')
    out = CATALOGUES.localise_html(page, "de")
    assert '<p data-i18n="prejoin.join">Beitreten</p>' in out
    assert 'placeholder="Nachricht an alle senden"' in out
    assert 'aria-label="Teilnehmende"' in out
    assert CATALOGUES.localise_html(page, "en") == page


def _seat(h: Harness, **userdata: str) -> Any:
    seat = h.seat()
    seat.userdata.update(userdata)
    return seat


@pytest_twisted.ensureDeferred
async def test_conference_page_speaks_the_browser_language() -> None:
    h = Harness()
    seat = _seat(h)
    _, body = await h.get(f"/client/join?sessionToken={seat.token}",
                          headers={"Accept-Language": "pt-BR,pt;q=0.9"})
    assert '<html lang="pt-BR" dir="ltr">' in body
    assert ">Pronto para entrar?<" in body
    assert '<meta name="mp-languages" content="en ar de es fr pt-BR">' in body


@pytest_twisted.ensureDeferred
async def test_seat_locale_overrides_the_browser() -> None:
    h = Harness()
    seat = _seat(h, bbb_override_default_locale="de")
    _, body = await h.get(f"/client/join?sessionToken={seat.token}",
                          headers={"Accept-Language": "pt-BR"})
    assert '<html lang="de" dir="ltr">' in body
    assert ">Bereit zum Beitreten?<" in body
    entry = json.loads(re.search(r'<meta name="mp-seat" content="([^"]*)">', body)
                       .group(1).replace("&quot;", '"'))  # type: ignore[union-attr]
    assert entry["locale"] == "de" and entry["name"] == "Ada"


@pytest_twisted.ensureDeferred
async def test_rtl_page() -> None:
    h = Harness()
    seat = _seat(h, bbb_override_default_locale="ar")
    _, body = await h.get(f"/client/join?sessionToken={seat.token}")
    assert '<html lang="ar" dir="rtl">' in body


@pytest_twisted.ensureDeferred
async def test_error_and_ended_pages_are_translated() -> None:
    h = Harness()
    _, body = await h.get("/client/nothing", headers={"Accept-Language": "fr"})
    assert '<html lang="fr" dir="ltr">' in body and "Page introuvable" in body
    _, body = await h.get("/client/ended?reason=left", headers={"Accept-Language": "es"})
    assert "Ha salido de la reunión" in body
    _, body = await h.get("/client/join", headers={"Accept-Language": "de"})
    assert "Dieser Meeting-Link ist unvollständig" in body


def test_seat_entry_defaults() -> None:
    h = Harness()
    entry = seat_entry(h.seat(name="Bea", role=Role.VIEWER))
    assert entry == {"name": "Bea", "nameEditable": False, "locale": None,
                     "skipPrejoin": False, "audioChoices": ["microphone", "listen", "none"],
                     "defaultAudio": None, "video": True, "cameraOn": None, "preview": True}


@pytest.mark.parametrize(("userdata", "expected"), [
    ({"bbb_skip_check_audio": "true"}, {"skipPrejoin": True}),
    ({"bbb_skip_check_audio_on_first_join": "TRUE"}, {"skipPrejoin": True}),
    ({"bbb_force_listen_only": "true"}, {"audioChoices": ["listen"], "defaultAudio": "listen"}),
    ({"bbb_listen_only_mode": "false"}, {"audioChoices": ["microphone", "none"]}),
    ({"bbb_auto_join_audio": "false"}, {"defaultAudio": "none"}),
    ({"bbb_auto_share_webcam": "true"}, {"cameraOn": True}),
    ({"bbb_enable_video": "false"}, {"video": False, "cameraOn": False, "preview": False}),
    ({"bbb_skip_video_preview": "true"}, {"preview": False}),
    ({"bbb_override_default_locale": " pt_BR "}, {"locale": "pt_BR"}),
])
def test_seat_entry_honours_bbb_userdata(userdata: dict[str, str],
                                         expected: dict[str, Any]) -> None:
    h = Harness()
    seat = _seat(h, **userdata)
    entry = seat_entry(seat)
    for key, value in expected.items():
        assert entry[key] == value, key


# --- colours ---------------------------------------------------------------------------


def _luminance(colour: str) -> float:
    value = colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    first, second = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (first + 0.05) / (second + 0.05)


#: (text, background) custom-property pairs the page draws text with.
TEXT_PAIRS = [
    ("--text", "--bg"), ("--text", "--surface"), ("--text", "--surface-2"),
    ("--text", "--surface-3"), ("--muted", "--bg"), ("--muted", "--surface"),
    ("--muted", "--surface-2"), ("--on-accent", "--accent"), ("--on-accent", "--accent-strong"),
    ("--on-danger", "--danger-strong"), ("--warn", "--surface"),
]


def test_css_colours_meet_wcag_aa() -> None:
    css = (STATIC / "conference.css").read_text("utf-8")
    root = re.search(r":root\s*\{(.*?)\}", css, re.DOTALL)
    assert root
    props = dict(re.findall(r"(--[\w-]+):\s*(#[0-9a-fA-F]{3,6})\s*;", root.group(1)))
    assert contrast("#ffffff", "#000000") == pytest.approx(21.0)
    for text, background in TEXT_PAIRS:
        ratio = contrast(props[text], props[background])
        assert ratio >= 4.5, f"{text} on {background}: {ratio:.2f} < 4.5"
    # focus outlines and borders of pressed buttons: 3:1 against the page (non-text)
    assert contrast(props["--accent"], props["--bg"]) >= 3.0
