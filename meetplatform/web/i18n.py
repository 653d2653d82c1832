"""The pages' languages: message catalogues, choosing a language, translating HTML.

The catalogues are JSON files, one per language, under ``static/i18n/<lang>.json``: the
conference page's modules fetch the same files (``static/conference/i18n.js``), so the
server-rendered pages and the page's script speak from one source. Each file maps keys to
messages with ``{name}`` placeholders; its ``_meta`` entry names the language and its
writing direction (``"dir": "rtl"`` for Arabic or Hebrew), so adding a language is adding a
file. English (``en.json``) is the fallback for anything missing.

Server-rendered text is translated two ways:

- templates mark their text with ``data-i18n="key"`` (and attributes with
  ``data-i18n-label``, ``data-i18n-placeholder``, ``data-i18n-title``):
  :meth:`Catalogues.localise_html` fills them in, and the page's script does the same in
  the browser (where the seat or the embedding site may choose another language);
- page code keeps its English sentences (the error and "ended" tables, the refusals): the
  English catalogue is the gettext-style index from an English sentence to its key, and
  :meth:`Catalogues.english` returns the sentence in another language, or unchanged when
  the catalogue does not know it (a sentence with values filled in).

The language is chosen from, in order: an explicit choice (BBB's
``userdata-bbb_override_default_locale``, the embed's ``lang`` option), the browser's
``Accept-Language``, English.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from twisted.web.iweb import IRequest

__all__ = ["CATALOGUES", "CATALOGUE_DIR", "Catalogues", "parse_accept_language"]

CATALOGUE_DIR = Path(__file__).parent / "static" / "i18n"
FALLBACK = "en"

_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_TEXT_ELEMENT = re.compile(
    r'(<(?P<tag>[a-zA-Z0-9]+)\b[^>]*?\bdata-i18n="(?P<key>[^"]+)"[^>]*>)[^<]*(</(?P=tag)>)')
_TAG = re.compile(r"<[a-zA-Z][^>]*>")
_ATTRIBUTES = {"label": "aria-label", "placeholder": "placeholder", "title": "title"}


def parse_accept_language(header: str | None) -> list[str]:
    """The language tags of an ``Accept-Language`` header, most wanted first (q=0 dropped)."""
    if not header:
        return []
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")):
        parts = [p.strip() for p in item.split(";")]
        tag = parts[0]
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in parts[1:]:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        if quality > 0:
            weighted.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


@dataclass
class Catalogues:
    """Every language's messages, read once from the JSON files."""

    messages: dict[str, dict[str, str]]
    meta: dict[str, dict[str, str]]
    _by_english: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path = CATALOGUE_DIR) -> Catalogues:
        messages: dict[str, dict[str, str]] = {}
        meta: dict[str, dict[str, str]] = {}
        for path in sorted(directory.glob("*.json")):
            data = json.loads(path.read_text("utf-8"))
            meta[path.stem] = {str(k): str(v) for k, v in dict(data.pop("_meta", {})).items()}
            messages[path.stem] = {str(k): str(v) for k, v in data.items()}
        if FALLBACK not in messages:
            raise RuntimeError(f"no {FALLBACK}.json in {directory}")
        by_english = {text: key for key, text in messages[FALLBACK].items()}
        return cls(messages=messages, meta=meta, _by_english=by_english)

    @property
    def languages(self) -> tuple[str, ...]:
        """The language tags there are catalogues for, English first."""
        return (FALLBACK, *sorted(lang for lang in self.messages if lang != FALLBACK))

    def match(self, tag: str | None) -> str | None:
        """The catalogue for a language tag (``pt_BR``, ``pt-br``, ``pt``, ``de-AT``...)."""
        if not tag:
            return None
        wanted = tag.strip().replace("_", "-").lower()
        if not wanted:
            return None
        lower = {lang.lower(): lang for lang in self.messages}
        if wanted in lower:
            return lower[wanted]
        primary = wanted.split("-")[0]
        if primary in lower:
            return lower[primary]
        for known_lower, lang in sorted(lower.items()):
            if known_lower.split("-")[0] == primary:
                return lang
        return None

    def choose(self, *preferred: str | None, accept_language: str | None = None) -> str:
        """The first explicit choice that has a catalogue, else the browser's, else English."""
        for tag in [*preferred, *parse_accept_language(accept_language)]:
            found = self.match(tag)
            if found:
                return found
        return FALLBACK

    def for_request(self, request: IRequest, *preferred: str | None) -> str:
        """:meth:`choose` with the request's ``Accept-Language``."""
        raw = request.getHeader(b"accept-language")
        header = raw.decode("latin-1") if isinstance(raw, bytes) else raw
        return self.choose(*preferred, accept_language=header)

    def direction(self, lang: str) -> str:
        """``rtl`` or ``ltr``, from the catalogue's ``_meta``."""
        return "rtl" if self.meta.get(lang, {}).get("dir") == "rtl" else "ltr"

    def text(self, lang: str, key: str, **params: object) -> str:
        """The message ``key`` in ``lang`` (English when missing), placeholders filled."""
        template = self.messages.get(lang, {}).get(key)
        if template is None:
            template = self.messages[FALLBACK].get(key, key)
        return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), template)

    def english(self, lang: str, sentence: str) -> str:
        """``sentence`` (an English message of the catalogue) in ``lang``; unknown text as is."""
        key = self._by_english.get(sentence)
        if key is None or lang == FALLBACK:
            return sentence
        return self.messages.get(lang, {}).get(key, sentence)

    def localise_html(self, page: str, lang: str) -> str:
        """Fill the ``data-i18n*`` marked text and attributes of ``page`` in ``lang``."""
        if lang == FALLBACK:
            return page

        def element(match: re.Match[str]) -> str:
            return match.group(1) + html.escape(self.text(lang, match.group("key")),
                                                quote=False) + match.group(4)

        def tag(match: re.Match[str]) -> str:
            source = match.group(0)
            for suffix, attribute in _ATTRIBUTES.items():
                found = re.search(rf'\bdata-i18n-{suffix}="([^"]+)"', source)
                if not found:
                    continue
                value = html.escape(self.text(lang, found.group(1)), quote=True)
                pattern = re.compile(rf'(\s){re.escape(attribute)}="[^"]*"')
                present = pattern.search(source)
                if present:
                    source = (source[:present.start()] + f' {attribute}="{value}"'
                              + source[present.end():])
                else:
                    source = source[:-1] + f' {attribute}="{value}">'
            return source

        return _TAG.sub(tag, _TEXT_ELEMENT.sub(element, page))

    def placeholders(self, lang: str) -> Mapping[str, frozenset[str]]:
        """Each key's placeholder names in ``lang`` (the catalogue test compares them)."""
        return {key: frozenset(_PLACEHOLDER.findall(text))
                for key, text in self.messages.get(lang, {}).items()}

    def keys(self, lang: str) -> Iterable[str]:
        return self.messages.get(lang, {}).keys()


#: The catalogues of the package, read at import (they are part of the code).
CATALOGUES = Catalogues.load()
