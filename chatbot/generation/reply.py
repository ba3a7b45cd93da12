"""From conversations to reply texts: context encoding, one batched search, detokenization, confidence.

All waiting conversations go through a single ``encode`` and a single search, so every beam of every
request shares each model step. The result keeps what the service and the agents' console need: the
reply, a few alternatives, a confidence for hand-off decisions, and the attention heatmap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from chatbot.generation.config import GenerationConfig, config_from_settings
from chatbot.generation.processors import ScriptConstraint, SuppressTokens, build_processors
from chatbot.generation.quantize import quantize_int8
from chatbot.generation.search import Hypothesis, StepModel, beam_search, greedy_search, sample
from chatbot.model.batch import collate, encode_pair
from chatbot.text.context import encode_context
from chatbot.text.scripts import has_foreign_letter
from chatbot.text.special import SPEAKER_TOKENS
from chatbot.text.tokenize import SUPPORTED_LANGUAGES, detect_language, detokenize
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

if TYPE_CHECKING:
    from chatbot.model.checkpoint import LoadedModel
    from chatbot.settings import Settings

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
    mean = best.score * max(n, 1) ** length_penalty / max(n, 1)  # undo the length normalisation
    p = math.exp(min(mean, 0.0))
    if second is None or not math.isfinite(second.score):
        return p
    m = len(second.tokens) + (1 if second.finished else 0)
    second_mean = second.score * max(m, 1) ** length_penalty / max(m, 1)
    lead = max(mean - second_mean, 0.0)
    return p * (0.5 + 0.5 * (1.0 - math.exp(-n * lead)))


class ReplyGenerator:
    """Writes replies for many conversations at once with one model; safe to share across requests
    (it holds no per-request state)."""

    def __init__(
        self,
        model: StepModel,
        vocab: Vocab,
        config: GenerationConfig,
        *,
        languages: Sequence[str] = SUPPORTED_LANGUAGES,
        default_language: str = "en",
        max_turns: int = 6,
        max_tokens: int = 200,
    ) -> None:
        if config.bos_token_id != vocab.bos_id or config.eos_token_id != vocab.eos_id:
            raise ValueError(f"config BOS/EOS ids ({config.bos_token_id}, {config.eos_token_id}) do not match "
                             f"the vocabulary ({vocab.bos_id}, {vocab.eos_id})")
        if default_language not in languages:
            raise ValueError(f"default language {default_language!r} is not one of {list(languages)}")
        self.model, self.vocab, self.config = model, vocab, config
        self.languages, self.default_language = tuple(languages), default_language
        self.max_turns, self.max_tokens = max_turns, max_tokens
        self.loaded: LoadedModel | None = None  # the checkpoint, when built by from_checkpoint
        # Never write control, speaker or language tokens; placeholders (<EMAIL>...) stay writable.
        never = [vocab.pad_id, vocab.bos_id, vocab.unk_id]
        never += [vocab.index(t) for t in SPECIAL_TOKENS if t in set(SPEAKER_TOKENS.values()) or t.startswith("<lang:")]
        self._suppress = SuppressTokens(never)
        # Built once per vocabulary, so the script constraint costs one masked fill per step.
        self._foreign_scripts = foreign_script_masks(vocab, self.languages)

    @classmethod
    def from_checkpoint(
        cls,
        directory: str | Path,
        *,
        int8: bool = False,
        settings: Settings | None = None,
        **decoding: Any,
    ) -> ReplyGenerator:
        """Load a checkpoint (optionally quantized to int8) ready to serve.

        Decoding settings, weakest first: the checkpoint's recorded ``decoding``, replaced by the serving
        ``settings`` when given, then ``decoding`` keyword overrides (GenerationConfig field names). The
        context limits are the ones the model was trained with, else the settings'.
        """
        from chatbot.model.checkpoint import load_checkpoint

        loaded = load_checkpoint(directory)
        ids = {"bos_token_id": loaded.vocab.bos_id, "eos_token_id": loaded.vocab.eos_id}
        if settings is not None:
            config = config_from_settings(settings, **ids)
        else:
            fields = GenerationConfig.__dataclass_fields__
            config = GenerationConfig(**{k: v for k, v in loaded.config.get("decoding", {}).items() if k in fields},
                                      **ids)
        if decoding:
            decoding.setdefault("num_return_sequences",
                                min(config.num_return_sequences, decoding.get("num_beams", config.num_beams)))
            config = config.replace(**decoding)
        train_cfg = (loaded.config.get("extra") or {}).get("train_config") or {}
        generator = cls(
            quantize_int8(loaded.model) if int8 else loaded.model,
            loaded.vocab,
            config,
            languages=loaded.languages or SUPPORTED_LANGUAGES,
            max_turns=int(train_cfg.get("max_turns", settings.context_turns if settings else 6)),
            max_tokens=int(train_cfg.get("max_src_tokens", settings.context_max_tokens if settings else 200)),
        )
        generator.loaded = loaded
        return generator

    def _language_of(self, turns: Sequence[Turn]) -> str:
        customer = " ".join(text for role, text in turns if role == "customer") or " ".join(t for _, t in turns)
        language = detect_language(customer)
        return language if language in self.languages else self.default_language

    def generate(
        self,
        contexts: Sequence[Sequence[Turn]],
        language: str | None = None,
        *,
        return_attention: bool = True,
        generator: torch.Generator | None = None,
    ) -> list[Reply]:
        """One reply per conversation (turns oldest first). ``language`` None detects it per conversation
        from the customer's words. Every context is checked before any model work starts."""
        if not contexts:
            return []
        if language is not None and language not in self.languages:
            raise ValueError(f"language {language!r} is not served by this model ({', '.join(self.languages)})")
        languages, sources, examples = [], [], []
        for i, turns in enumerate(contexts):
            if not turns:
                raise ValueError(f"context {i} has no turns")
            lang = language or self._language_of(turns)
            try:
                tokens = encode_context(turns, lang, max_turns=self.max_turns, max_tokens=self.max_tokens)
            except ValueError as exc:
                raise ValueError(f"context {i}: {exc}") from None
            languages.append(lang)
            sources.append(tokens)
            examples.append(encode_pair(tokens, None, self.vocab))
        batch = collate(examples, self.vocab)
        customer_ids = [_customer_ids(src, ex.src_ext_ids) for src, ex in zip(sources, examples)]
        processors = [self._suppress, *build_processors(self.config, context_ids=customer_ids)]
        if self.config.script_constraint:  # before any sampling warper, so top-k/top-p see only allowed tokens
            script = ScriptConstraint(self._foreign_scripts, languages, [ex.src_ext_ids for ex in examples])
            processors.insert(1, script)

        with torch.inference_mode():
            state = self.model.encode(batch)
            if self.config.do_sample:
                results = sample(self.model, state, self.config, processors, return_attention=return_attention,
                                 generator=generator)
            elif self.config.num_beams == 1:
                results = greedy_search(self.model, state, self.config, processors, return_attention=return_attention)
            else:
                results = beam_search(self.model, state, self.config, processors, return_attention=return_attention)

        replies = []
        for row, hyps in enumerate(results):
            lang = languages[row]
            texts = [detokenize(batch.ids_to_tokens(row, h.tokens, self.vocab), lang) for h in hyps]
            attention = None
            if return_attention and hyps[0].attention is not None:
                attention = {
                    "source_tokens": list(sources[row]),
                    "target_tokens": batch.ids_to_tokens(row, hyps[0].tokens, self.vocab),
                    "weights": _rounded(hyps[0].attention[:, : len(sources[row])]),
                }
            replies.append(Reply(
                text=texts[0],
                language=lang,
                confidence=reply_confidence(hyps[0], hyps[1] if len(hyps) > 1 else None, self.config.length_penalty),
                candidates=[Candidate(t, h.score) for t, h in zip(texts, hyps)],
                attention=attention,
                decoding=self.config.to_dict(),
            ))
        return replies


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


def _rounded(weights: torch.Tensor, places: int = 4) -> list[list[float]]:
    """``[[round(w, places) ...] ...]`` in one tensor pass: per-element ``round`` cost a third of a
    millisecond per reply. In float64, so ``k / 10**places`` is the same float that ``round`` returns."""
    scale = 10.0**places
    return (weights.double() * scale).round_().div_(scale).tolist()


def _customer_ids(source: Sequence[str], ext_ids: Sequence[int]) -> list[int]:
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
