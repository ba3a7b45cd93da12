"""Flatten a multi-turn conversation into the model's source sequence.

The reply depends on the recent conversation, not only the last message: the source is the language
token followed by the last ``max_turns`` turns, each introduced by its speaker token. When that is longer
than ``max_tokens`` the oldest tokens are dropped (truncation from the left), because the end of the
conversation matters most; the speaker token of a turn cut in half is kept so the model still knows who
was talking.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import overload

from chatbot.text.special import SPEAKER_TOKENS, language_token
from chatbot.text.tokenize import tokenize
from chatbot.text.vocab import Vocab

ROLES = tuple(SPEAKER_TOKENS)  # customer, agent, bot, system


@overload
def encode_context(
    turns: Iterable[tuple[str, str]], language: str, vocab: None = None, *, max_turns: int = 6, max_tokens: int = 200
) -> list[str]: ...


@overload
def encode_context(
    turns: Iterable[tuple[str, str]], language: str, vocab: Vocab, *, max_turns: int = 6, max_tokens: int = 200
) -> list[int]: ...


def encode_context(
    turns: Iterable[tuple[str, str]],
    language: str,
    vocab: Vocab | None = None,
    *,
    max_turns: int = 6,
    max_tokens: int = 200,
) -> list[str] | list[int]:
    """Source tokens for ``turns`` ((role, text) pairs, oldest first); ids instead when ``vocab`` is given."""
    if max_turns < 1:
        raise ValueError("max_turns must be >= 1")
    if max_tokens < 3:
        raise ValueError("max_tokens must be >= 3 (language token, speaker token, one word)")
    turns = list(turns)
    for role, _ in turns:
        if role not in SPEAKER_TOKENS:
            raise ValueError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    body: list[str] = []
    speaker_at: list[str] = []  # the speaker of each body position, to re-open a truncated turn
    for role, text in turns[-max_turns:]:
        speaker = SPEAKER_TOKENS[role]
        turn = [speaker, *tokenize(text, language)]
        body.extend(turn)
        speaker_at.extend([speaker] * len(turn))
    budget = max_tokens - 1  # the language token always stays
    if len(body) > budget:
        speakers = set(SPEAKER_TOKENS.values())
        cut = len(body) - budget
        if body[cut] not in speakers:  # cut inside a turn: make room to keep who was speaking
            cut += 1
        reopen = [speaker_at[cut]] if body[cut] not in speakers else []
        body = [*reopen, *body[cut:]]
    tokens = [language_token(language), *body]
    return vocab.encode(tokens) if vocab is not None else tokens
