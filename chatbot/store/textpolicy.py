"""What message text the store accepts, and how it is normalised before it is written.

Policy (the same on SQLite and PostgreSQL, tested in ``tests/store/test_bad_input.py``):

* not a ``str`` -> ``InvalidMessage``;
* longer than ``max_chars`` (``settings.max_message_chars``, default 20,000) -> ``InvalidMessage``; text is
  refused whole, never truncated, so nothing is silently lost;
* lone UTF-16 surrogates (e.g. from a broken JSON ``\\ud83d`` escape) become U+FFFD; a valid surrogate
  pair is joined into its character;
* NUL characters are removed (PostgreSQL text cannot hold them);
* empty or whitespace-only after that -> ``InvalidMessage``;
* full payment card numbers (Luhn-valid, 13-19 digits) are replaced by ``<CARD>`` via
  ``chatbot.text.redact.mask_card_numbers``: the store never holds one, not even unredacted.

A live conversation's language must be one the product supports (``check_language``, applied by the
service to conversations customers start; imported corpora keep their own codes), exactly as written:
"EN" or "it" are refused with the list of allowed codes, since every later reply is decoded in it.

Leading and trailing whitespace is kept: the text is stored as the customer typed it.
"""

from __future__ import annotations

import re

from chatbot.store.db import InvalidMessage, InvalidValue
from chatbot.text.redact import mask_card_numbers
from chatbot.text.tokenize import SUPPORTED_LANGUAGES

DEFAULT_MAX_CHARS = 20_000
_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: object, max_chars: int = DEFAULT_MAX_CHARS, *, allow_empty: bool = False) -> str:
    """Apply the policy above; ``allow_empty`` is for n-best candidates, where "" is a real output."""
    if not isinstance(text, str):
        raise InvalidMessage(f"message text must be a string, not {type(text).__name__}")
    if len(text) > max_chars:
        raise InvalidMessage(f"message is {len(text):,} characters long; the limit is {max_chars:,}")
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    text = text.replace("\x00", "")
    if not allow_empty and not text.strip():
        raise InvalidMessage("message text is empty")
    return mask_card_numbers(text)


def check_language(language: object) -> str:
    """``language`` if it is a supported code (lower case, as the tokenizer and the models name them)."""
    if not isinstance(language, str) or language not in SUPPORTED_LANGUAGES:
        raise InvalidValue(f"unsupported language {language!r}; use one of: {', '.join(SUPPORTED_LANGUAGES)}")
    return language
