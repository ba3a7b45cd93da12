"""What a reply is, model-agnostically: the texts and scores of a search, a confidence for hand-off
decisions, the attention heatmap as plain JSON, and the per-vocabulary script masks.

Turning conversations into a model's tensors and loading a checkpoint live in the serving decoder
(``chatbot.service.generator.ReplyGenerator``): generation drives any ``StepModel`` and never imports
the model package.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch

from chatbot.generation.search import Hypothesis
from chatbot.text.scripts import has_foreign_letter
from chatbot.text.special import SPEAKER_TOKENS
from chatbot.text.vocab import Vocab

Turn = tuple[str, str]  # (role, text), role one of customer / agent / bot / system


class Candidate(NamedTuple):
    text: str
    score: float  # length-normalised, processed log-prob (see chatbot.generation.search)


@dataclass(frozen=True)
class Reply:
    """``attention`` is plain JSON for storage and the heatmap: ``{"source_tokens": [S], "target_tokens":
    [T], "weights": [T][S]}`` -- each reply token's attention over the context tokens (rows sum to 1)."""

    text: str
    language: str
    confidence: float  # in [0, 1], see reply_confidence
    candidates: list[Candidate]  # best first; candidates[0].text == text
    attention: dict[str, Any] | None
    decoding: dict[str, Any] = field(default_factory=dict)  # the GenerationConfig used
    token_logprob: float = 0.0  # the best reply's mean processed log-prob per scored token, see token_logprob
    # When the reply is an answer agents taught (chatbot.text.taught): the taught question closest to
    # the customer's message, its similarity and the bonus it gave the reply over the model's other candidates
    taught: dict[str, Any] | None = None


def token_logprob(hyp: Hypothesis, length_penalty: float) -> float:
    """The mean processed log-prob per scored token (its tokens, plus EOS when finished): the search score
    with the length normalisation undone. Unlike the score it does not depend on how long the reply is, so
    one threshold means the same for "不客气。" and for a booking confirmation."""
    if not math.isfinite(hyp.score):
        return -math.inf
    n = max(len(hyp.tokens) + (1 if hyp.finished else 0), 1)
    return hyp.score * n**length_penalty / n


def reply_confidence(best: Hypothesis, second: Hypothesis | None, length_penalty: float) -> float:
    """A number in [0, 1]: the best reply's per-token probability, shrunk when a rival scores nearly as well.

    ``p = exp(mean log-prob per scored token)`` is what the model believes of the reply token by token.
    The margin factor ``0.5 + 0.5 * (1 - exp(-n * delta))`` (``delta``: per-token log-prob lead over the
    second candidate, ``n`` scored tokens) is 1 for a clear winner and 1/2 for a tie, where the model
    cannot tell two replies apart. Both parts rise monotonically with the evidence; the product is not
    fitted to reviewed outcomes (that needs the agents' verdicts and belongs to the service).
    """
    if not math.isfinite(best.score):
        return 0.0
    n = len(best.tokens) + (1 if best.finished else 0)
    mean = token_logprob(best, length_penalty)
    p = math.exp(min(mean, 0.0))
    if second is None or not math.isfinite(second.score):
        return p
    lead = max(mean - token_logprob(second, length_penalty), 0.0)
    return p * (0.5 + 0.5 * (1.0 - math.exp(-n * lead)))


def foreign_script_masks(vocab: Vocab, languages: Sequence[str]) -> dict[str, torch.Tensor]:
    """Per language, BoolTensor [V]: which vocabulary tokens hold a letter of a script foreign to it
    (see ``chatbot.text.scripts``); languages without a constraint get no entry."""
    tokens = vocab.tokens
    masks = {}
    for language in languages:
        mask = torch.tensor([has_foreign_letter(t, language) for t in tokens], dtype=torch.bool)
        if bool(mask.any()):
            masks[language] = mask
    return masks


def rounded_weights(weights: torch.Tensor, places: int = 4) -> list[list[float]]:
    """``[[round(w, places) ...] ...]`` in one tensor pass: per-element ``round`` cost a third of a
    millisecond per reply. In float64, so ``k / 10**places`` is the same float that ``round`` returns."""
    scale = 10.0**places
    return (weights.double() * scale).round_().div_(scale).tolist()


def customer_ids(source: Sequence[str], ext_ids: Sequence[int]) -> list[int]:
    """The ids of the customer's own words, turns separated by -1, for the anti-parroting block."""
    speakers = set(SPEAKER_TOKENS.values())
    out: list[int] = []
    in_customer = False
    for token, i in zip(source, ext_ids):
        if token in speakers:
            in_customer = token == SPEAKER_TOKENS["customer"]
            out.append(-1)
        elif in_customer:
            out.append(int(i))
    return out
