"""User- and admin-controlled values inside Markdown: shown as the literal text, never as markup.

``gr.Markdown`` renders Markdown *and* HTML, so a stored value like ``<img src=/x>`` or ``![](/x)`` would make
the reader's browser fetch ``/x``. ``md_text`` turns a value into Markdown that displays exactly its
characters: HTML specials become entities, every other ASCII punctuation mark is backslash-escaped
(CommonMark allows that for each of them) and line breaks become spaces, so it stays inline.
"""

from __future__ import annotations

import html

_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
_MARKDOWN_PUNCTUATION = frozenset("\\`*_{}[]()#+-.!|~:'=$%^;,?@/")


def md_text(value: object) -> str:
    """``value`` as Markdown that renders as its literal text (for ``gr.Markdown``)."""
    out = []
    for char in " ".join(str(value).splitlines()):
        if char in _ENTITIES:
            out.append(_ENTITIES[char])
        elif char in _MARKDOWN_PUNCTUATION:
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def html_text(value: object) -> str:
    """``value`` escaped for a place that renders HTML (``gr.Error``/``gr.Warning`` messages, ``gr.HTML``)."""
    return html.escape(str(value))
