"""Writing scripts: which letters are foreign to a reply's language.

A reply must not mix scripts: a Chinese reply writes no Latin-script word, and a reply in a Latin-script
language no CJK character, unless the conversation itself holds it (a customer's "iPhone", a street
name). Only letters carry a script here; digits, punctuation, symbols, emoji and the special tokens
(``<EMAIL>``, speaker and language tokens) are neutral in every language. Decoding bans the tokens with
foreign letters (``chatbot.generation.processors.ScriptConstraint``) and the evaluation counts replies
that still mix (``training.metrics.mixes_scripts``); both use the definitions below so they agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from functools import cache

from chatbot.text.special import BOS, EOS, PAD, PLACEHOLDERS, SPEAKER_TOKENS, UNK, language_token
from chatbot.text.tokenize import normalize

LATIN_SCRIPT_LANGUAGES = frozenset({"en", "de", "es", "fr"})
CJK_LANGUAGES = frozenset({"zh"})

_CJK_NAMES = ("CJK ", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC")
_SPECIALS = (PAD, BOS, EOS, UNK, *dict.fromkeys(SPEAKER_TOKENS.values()), *PLACEHOLDERS)
_SPECIAL_RE = re.compile(
    "|".join(re.escape(t) for t in _SPECIALS) + "|" + re.escape(language_token("X")).replace("X", "[a-z]{2,3}")
)


@cache
def is_latin_letter(ch: str) -> bool:
    """A letter of the Latin script (``a``, ``é``, ``ß``, fullwidth ``Ａ``...)."""
    return unicodedata.category(ch).startswith("L") and "LATIN" in unicodedata.name(ch, "")


@cache
def is_cjk_letter(ch: str) -> bool:
    """A Han ideograph, kana, hangul or bopomofo letter; CJK punctuation (。，「) is neutral."""
    return (unicodedata.category(ch).startswith("L") or unicodedata.category(ch) == "Nl") \
        and unicodedata.name(ch, "").startswith(_CJK_NAMES)


def foreign_letter(language: str) -> Callable[[str], bool] | None:
    """The test for a letter foreign to ``language``; None for a language with no constraint."""
    if language in CJK_LANGUAGES:
        return is_latin_letter
    if language in LATIN_SCRIPT_LANGUAGES:
        return is_cjk_letter
    return None


def is_special(token: str) -> bool:
    """Control, speaker and language tokens and redaction placeholders: script-neutral."""
    return _SPECIAL_RE.fullmatch(token) is not None


def has_foreign_letter(token: str, language: str) -> bool:
    """Whether a token holds a letter foreign to ``language`` (special tokens never do)."""
    foreign = foreign_letter(language)
    return foreign is not None and not is_special(token) and any(map(foreign, token))


def foreign_words(text: str, language: str) -> list[str]:
    """The foreign-script units of ``text`` for ``language``: Latin-letter runs (words) for Chinese, single
    CJK characters for the Latin-script languages; special tokens are skipped. Text is NFKC-normalised
    first, as the tokenizer does, so fullwidth ``ｉＰｈｏｎｅ`` and ``iPhone`` are the same word."""
    foreign = foreign_letter(language)
    if foreign is None:
        return []
    text = _SPECIAL_RE.sub(" ", normalize(text))
    if foreign is is_cjk_letter:
        return [ch for ch in text if is_cjk_letter(ch)]
    words, current = [], []
    for ch in text:
        if is_latin_letter(ch):
            current.append(ch)
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words
