"""Normalisation, tokenization and detokenization for the supported languages.

Case policy: text keeps its case. The copy mechanism must reproduce names and order ids exactly
("Smith", "AB12cd"), and lower-casing would need a fragile restore step; the price is a somewhat larger
cased vocabulary, which the copy mechanism covers for rare words anyway.

Special tokens (``<pad>``, speaker tokens, ``<lang:xx>``) and redaction placeholders (``<EMAIL>``...) are
never split. Emoji sequences (ZWJ families, skin tones, flags, runs of emoji) stay one token.

Detokenization is rule based: no spaces in Chinese (except between two Latin/digit tokens), no space before
closing punctuation or clitics ("don't", "it's") in the European languages. For text in canonical form
(``normalize`` applied, single spaces, no space before punctuation) ``detokenize(tokenize(t)) == t``.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from functools import cache

from chatbot.text.special import BOS, EOS, PAD, PLACEHOLDERS, SPEAKER_TOKENS, UNK, language_token

SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "zh", "de", "es", "fr")

_FIXED_SPECIALS = (PAD, BOS, EOS, UNK, *dict.fromkeys(SPEAKER_TOKENS.values()), *PLACEHOLDERS)
_SPECIAL_RE = re.compile(
    "(" + "|".join(re.escape(t) for t in _FIXED_SPECIALS) + "|" + re.escape(language_token("X")).replace("X", "[a-z]{2,3}") + ")"
)
_CONTROL_TOKENS = frozenset({PAD, BOS, EOS})
_WS_RE = re.compile(r"\s+")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ffff]")
_LATIN_WORD_RE = re.compile(r"[^\W\d_]+")

# (token, followed_by_space) pairs: the common currency of the segmenters below.
_Piece = tuple[str, bool]


def normalize(text: str) -> str:
    """Unicode NFKC, whitespace runs collapsed to one space, stripped. Case is kept (see module doc).

    A lone surrogate (JSON's ``"\\ud800"`` decodes to one) has no UTF-8 form and would crash the segmenters:
    it becomes U+FFFD, as the web layer does for stored text."""
    return _WS_RE.sub(" ", unicodedata.normalize("NFKC", _SURROGATE_RE.sub("\ufffd", text))).strip()


def _check_language(language: str) -> str:
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; supported: {', '.join(SUPPORTED_LANGUAGES)}")
    return language


@cache
def _segmenter(language: str) -> Callable[[str], list[_Piece]]:
    """One cached segmenter per language: spaCy blank tokenizer, jieba for Chinese (per character without)."""
    if language == "zh":
        try:
            import jieba
        except ImportError:
            return _segment_zh_chars
        jieba.setLogLevel(logging.WARNING)
        tokenizer = jieba.Tokenizer()
        tokenizer.initialize()
        return lambda text: _pieces_from_words(tokenizer.lcut(text, HMM=True))
    import spacy

    nlp = spacy.blank(language)
    return lambda text: [(t.text, bool(t.whitespace_)) for t in nlp.make_doc(text)]


def _pieces_from_words(words: Iterable[str]) -> list[_Piece]:
    """Turn a segmentation that keeps whitespace as tokens (jieba) into (token, followed_by_space)."""
    pieces: list[_Piece] = []
    for word in words:
        if word.isspace():
            if pieces:
                pieces[-1] = (pieces[-1][0], True)
        elif word:
            pieces.append((word, False))
    return pieces


_ZH_CHAR_RE = re.compile(r"\s+|[A-Za-z0-9]+|.", re.DOTALL)


def _segment_zh_chars(text: str) -> list[_Piece]:
    return _pieces_from_words(m.group(0) for m in _ZH_CHAR_RE.finditer(text))


def _is_emoji_part(token: str) -> bool:
    return all(
        unicodedata.category(ch) in ("So", "Sk", "Mn", "Me", "Cf") or 0x1F3FB <= ord(ch) <= 0x1F3FF for ch in token
    )


def _merge_emoji(pieces: list[_Piece]) -> list[_Piece]:
    """Glue emoji pieces written without a space in between (ZWJ sequences, modifiers, runs)."""
    merged: list[_Piece] = []
    for text, space in pieces:
        if merged and not merged[-1][1] and _is_emoji_part(text) and _is_emoji_part(merged[-1][0]):
            merged[-1] = (merged[-1][0] + text, space)
        else:
            merged.append((text, space))
    return merged


def tokenize(text: str, language: str) -> list[str]:
    """Split normalised ``text`` into tokens; special tokens and placeholders stay whole."""
    segment = _segmenter(_check_language(language))
    tokens: list[str] = []
    for i, part in enumerate(_SPECIAL_RE.split(normalize(text))):
        if i % 2 == 1:
            tokens.append(part)
        elif part.strip():
            tokens.extend(t for t, _ in _merge_emoji(segment(part.strip())))
    return tokens


# --- detokenization ------------------------------------------------------------------------------

_NO_SPACE_BEFORE = frozenset(".,!?;:%)]}…»" + "。，、；：！？）》」』】")
_NO_SPACE_AFTER = frozenset("([{$#¿¡«" + "（《「『【")
_JOINERS = frozenset({"-", "/", "–"})  # written between words without spaces: "e-mail", "and/or"
_CLITIC_RE = re.compile(r"^(n't|'[a-zA-Z]{1,2})$", re.IGNORECASE)  # n't 's 're 'll 've 'm 'd
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")


def _attaches_left(token: str) -> bool:
    return (
        all(ch in _NO_SPACE_BEFORE for ch in token)
        or bool(_CLITIC_RE.match(token))
        or token in _JOINERS
    )


def _attaches_right(token: str) -> bool:
    # "L'", "d'" (French elisions), opening brackets, currency signs, hyphens between words.
    return token in _NO_SPACE_AFTER or token in _JOINERS or (len(token) > 1 and token.endswith("'"))


def detokenize(tokens: Iterable[str], language: str) -> str:
    """Join tokens back into natural text; ``<pad>``/``<bos>``/``<eos>`` are dropped."""
    _check_language(language)
    words = [t for t in tokens if t not in _CONTROL_TOKENS]
    if language == "zh":
        return _detokenize_zh(words)
    out: list[str] = []
    open_quote = False
    glue_next = True  # no space before the first token
    for token in words:
        if token == '"':
            # Straight quotes alternate: an opening one sticks to the next word, a closing one to the last.
            glue = glue_next or open_quote
            glue_after = not open_quote
            open_quote = not open_quote
        else:
            glue = glue_next or _attaches_left(token)
            glue_after = _attaches_right(token)
        if out and not glue:
            out.append(" ")
        out.append(token)
        glue_next = glue_after
    return "".join(out)


def _detokenize_zh(words: list[str]) -> str:
    out: list[str] = []
    for token in words:
        if out and _ASCII_ALNUM.match(token[0]) and _ASCII_ALNUM.match(out[-1][-1]):
            out.append(" ")  # keep Latin words and numbers apart: "iPhone 15"
        out.append(token)
    return "".join(out)


def _script_counts(text: str) -> tuple[int, list[str]]:
    """CJK characters, and the Latin-script words of the rest."""
    return len(_CJK_RE.findall(text)), _LATIN_WORD_RE.findall(_CJK_RE.sub(" ", text))


def detect_language(text: str) -> str:
    """"zh" when CJK characters outnumber Latin-script words (one character ~ one word), else "en"."""
    cjk, words = _script_counts(text)
    return "zh" if cjk > len(words) else "en"


def written_language(text: str, chosen: str) -> str:
    """The language a customer writes ``text`` in, given the language the conversation was started in.

    A customer who leaves a page's language menu at English and writes Chinese wants Chinese replies (and
    one who picked Chinese and writes English, English ones): the script decides between Chinese and the
    Latin-script languages, and within a script the choice stands ("fr" stays "fr"). Text with no words of
    the other script (a number, an order id such as "A1234", an emoji) keeps the choice, and so does a name
    in the other script inside a sentence ("book 北京饭店 please": a Chinese word is about two characters).
    """
    cjk, latin = _script_counts(text)
    words = sum(len(w) > 1 for w in latin)
    if chosen == "zh":
        return "en" if words and not cjk else chosen
    return "zh" if cjk > 2 * words else chosen
