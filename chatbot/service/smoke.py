"""Can this model serve? A few real replies with finite scores, checked before it may become active.

Registering a version checks its files once; they can still be truncated or replaced afterwards, and a
checkpoint whose weights hold NaN loads without complaint and then scores every candidate NaN (which no
handoff threshold catches: every comparison with NaN is false). ``smoke_test`` decodes a handful of
representative conversations (``chatbot.service.warmup.CONTEXTS``) in each language the model serves,
and refuses the model unless the first language decodes and every reply has at least one candidate, no NaN
score and a finite best score and confidence (a later language that fails to decode, e.g. Chinese without
the optional ``jieba``, is only logged, as in the warm-up). Promotion, rollback and the worker's loading of a model all run it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chatbot.service.warmup import DEFAULT_LANGUAGES, contexts_for

log = logging.getLogger(__name__)


class ModelNotServable(ValueError):
    """The model failed to load or its smoke test: it must not become (or stay) the one that serves.
    A ``ValueError``: the CLI and the admin page show it as a refusal with its reason."""


@dataclass(frozen=True)
class SmokeReport:
    replies: int
    languages: tuple[str, ...]


def smoke_test(generator: Any, languages: Sequence[str] | None = None, per_language: int = 2) -> SmokeReport:
    """``per_language`` replies in each served language; ``ModelNotServable`` naming the first bad one."""
    langs = tuple(languages or getattr(generator, "languages", None) or DEFAULT_LANGUAGES)
    replies = 0
    for position, language in enumerate(langs):
        contexts = contexts_for(language, per_language)
        try:
            out = generator.generate(contexts, language=language)
        except Exception as exc:
            if position > 0:  # e.g. Chinese without the optional jieba: the model still serves the others
                log.warning("smoke test: %s replies failed: %s", language, exc)
                continue
            raise ModelNotServable(f"decoding a {language} reply failed: {type(exc).__name__}: {exc}") from exc
        if len(out) != len(contexts):
            raise ModelNotServable(f"asked for {len(contexts)} {language} replies, got {len(out)}")
        for reply in out:
            _check_reply(reply, language)
        replies += len(out)
    return SmokeReport(replies, langs)


def _check_reply(reply: Any, language: str) -> None:
    candidates = list(getattr(reply, "candidates", None) or [])
    if not candidates:
        raise ModelNotServable(f"a {language} reply came back without candidates")
    scores = [float(score) for _, score in candidates]
    best, confidence = scores[0], float(getattr(reply, "confidence", 0.0))
    # A lower-ranked candidate may legitimately end at -inf (every continuation blocked); NaN never is.
    if any(math.isnan(s) for s in scores) or not math.isfinite(best) or not math.isfinite(confidence):
        raise ModelNotServable(f"a {language} reply scored {best} (confidence {confidence}): the weights are "
                               "broken (NaN or infinite)")
