"""Fuzzing the tokenizer and the redactor with any unicode at all (issue 19): lone surrogates, NUL and other
controls, combining marks, emoji sequences, bidi overrides, private use, unassigned code points. Neither
may raise, and what they return keeps its shape (tokens without whitespace, sane spans, a string)."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chatbot.text.redact import find_pii, mask_card_numbers, redact
from chatbot.text.tokenize import SUPPORTED_LANGUAGES, detect_language, detokenize, normalize, tokenize
from tests.fuzzing import fuzz_settings

# categories=None: every code point, surrogates included (which other property tests leave out).
ANY = st.characters(codec=None, categories=None)
PIECES = st.sampled_from(["\x00", "\ud800", "\udfff", "\u202e", "\u0301", "👩‍👩‍👧", "🇺🇸", "\ufeff", "\u3000", "ﬁ",
                          "<EMAIL>", "<bos>", "4111 1111 1111 1111", "a@b.co", "(415) 555-0134", "张伟", "13812345678",
                          "\n\t", "\U000e0001", "\U0010ffff"])
TEXTS = st.lists(st.text(alphabet=ANY, max_size=30) | PIECES, max_size=12).map("".join)
LANGUAGES = st.sampled_from(SUPPORTED_LANGUAGES)


@fuzz_settings(300)
@given(text=TEXTS, language=LANGUAGES)
def test_the_tokenizer_takes_anything(text: str, language: str) -> None:
    normalize(text)
    tokens = tokenize(text, language)
    assert all(isinstance(t, str) and t and not any(c.isspace() for c in t) for t in tokens), tokens
    assert isinstance(detokenize(tokens, language), str)
    assert detect_language(text) in SUPPORTED_LANGUAGES


@fuzz_settings(300)
@given(text=TEXTS, language=LANGUAGES, known=st.lists(st.text(alphabet=ANY, max_size=12), max_size=3))
def test_the_redactor_takes_anything(text: str, language: str, known: list[str]) -> None:
    spans = find_pii(text, language, known=known)
    assert all(0 <= s.start < s.end <= len(text) for s in spans)
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))
    assert isinstance(redact(text, language, known=known), str)
    assert isinstance(mask_card_numbers(text), str)
