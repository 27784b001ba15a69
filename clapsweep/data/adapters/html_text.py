"""Freesound's HTML descriptions and titles as plain text (FSD50K captions)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from clapsweep.data.adapters.metadata import _collapse

# Tags that sit inside a line of text (no word break); any other tag (<br />, <p>, <li>, ...)
# separates the words on either side of it.
_INLINE_TAGS = frozenset(
    "a abbr b big cite code em font i kbd mark q s small span strike strong sub sup tt u".split()
)
# A bare URL, with the whitespace before it; trailing punctuation stays with the sentence.
_URL = re.compile(r"""\s*\b(?:https?://|www\.)\S*[^\s.,;:!?'")\]]""", re.IGNORECASE)
# Brackets left empty once the URL inside them is gone: "(http://x.org)".
_EMPTY_BRACKETS = re.compile(r"\s*(?:\(\s*\)|\[\s*\])")


class _VisibleText(HTMLParser):
    """The text a browser would show: tag contents kept, tags dropped, entities unescaped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)  # entities in text go through html.unescape
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag not in _INLINE_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _INLINE_TAGS:
            self.parts.append(" ")


def _strip_html(text: str) -> str:
    """Freesound's HTML description as plain text: a link keeps its text and loses its URL, tags
    go, entities are unescaped, bare URLs are removed and whitespace is collapsed."""
    parser = _VisibleText()
    parser.feed(str(text))
    parser.close()
    plain = _URL.sub("", "".join(parser.parts))
    return _collapse(_EMPTY_BRACKETS.sub("", plain))
