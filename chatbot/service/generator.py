"""The serving decoder: a checkpoint, its quantization and the decoding settings, built by one function.

``serving_generator`` is what serving (each decoder process), ``chatbot reply`` / ``chatbot chat``,
``chatbot eval``, the promotion gate and an agent's replay all decode with, so what is measured is what is
served. ``ReplyGenerator`` turns conversations into the model's tensors (context encoding, the copy
mechanism's batch), runs one batched search (``chatbot.generation``) and reads the replies back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from chatbot.generation.config import GenerationConfig, config_from_settings, resolve_config
from chatbot.generation.processors import ScriptConstraint, SuppressTokens, build_processors
from chatbot.generation.quantize import quantize_int8
from chatbot.generation.reply import (
    Candidate,
    Reply,
    Turn,
    customer_ids,
    foreign_script_masks,
    reply_confidence,
    rounded_weights,
    token_logprob,
)
from chatbot.generation.search import Hypothesis, StepModel, decode, score_replies
from chatbot.model.batch import collate, encode_pair
from chatbot.model.checkpoint import LoadedModel, load_checkpoint
from chatbot.text.context import encode_context
from chatbot.text.scripts import CJK_LANGUAGES
from chatbot.text.special import SPEAKER_TOKENS
from chatbot.text.taught import TaughtAnswers, answer_key, customer_side, load_taught
from chatbot.text.tokenize import SUPPORTED_LANGUAGES, detect_language, detokenize, tokenize
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab

if TYPE_CHECKING:
    from chatbot.settings import Settings

__all__ = ["Candidate", "Reply", "ReplyGenerator", "Turn", "context_window", "serving_generator"]


def serving_generator(directory: str | Path, settings: Settings, **decoding: Any) -> ReplyGenerator:
    """The decoder serving uses for the checkpoint in ``directory``: the settings' decoding (``decoding``
    overrides some, GenerationConfig names), int8 when ``settings.quantize_int8``, the model's trained
    context window, ``settings.torch_threads`` (one unless set)."""
    # One decode thread unless told otherwise: the worker is a single thread and the HTTP threads need the
    # other cores. torch's default (one thread per core) oversubscribes them: on a busy two-core machine a
    # batch of one took 300 ms with two threads instead of 25 ms with one.
    torch.set_num_threads(settings.torch_threads or 1)
    return ReplyGenerator.from_checkpoint(Path(directory), settings=settings, int8=settings.quantize_int8,
                                          **decoding)


def context_window(checkpoint_config: dict[str, Any], settings: Settings | None) -> tuple[int, int]:
    """(max_turns, max_tokens) of context the model was trained with, else the settings', else 6 and 200:
    a model reads the window it learned in, whatever the serving settings say."""
    train_cfg = (checkpoint_config.get("extra") or {}).get("train_config") or {}
    return (int(train_cfg.get("max_turns", settings.context_turns if settings else 6)),
            int(train_cfg.get("max_src_tokens", settings.context_max_tokens if settings else 200)))


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
        taught: TaughtAnswers | None = None,
        taught_weight: float = 0.0,
        taught_proposals: int = 2,
        taught_min_similarity: float = 0.35,
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
        # What agents taught the model (chatbot.text.taught): reorders its candidates, see _prefer_taught
        self.taught = taught if taught is not None and len(taught) and taught_weight > 0 else None
        self.taught_weight, self.taught_proposals = taught_weight, taught_proposals
        self.taught_min_similarity = taught_min_similarity
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
        loaded = load_checkpoint(directory)
        ids = {"bos_token_id": loaded.vocab.bos_id, "eos_token_id": loaded.vocab.eos_id}
        if settings is not None:
            config = config_from_settings(settings, **ids, **decoding)
        else:
            config = resolve_config(loaded.config.get("decoding", {}), **ids, **decoding)
        max_turns, max_tokens = context_window(loaded.config, settings)
        taught = {} if settings is None else {
            "taught": load_taught(Path(directory)), "taught_weight": settings.taught_weight,
            "taught_proposals": settings.taught_proposals, "taught_min_similarity": settings.taught_min_similarity}
        generator = cls(
            quantize_int8(loaded.model) if int8 else loaded.model,
            loaded.vocab,
            config,
            languages=loaded.languages or SUPPORTED_LANGUAGES,
            max_turns=max_turns,
            max_tokens=max_tokens,
            **taught,
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
        own_words = [customer_ids(src, ex.src_ext_ids) for src, ex in zip(sources, examples)]
        processors = self._processors(languages, own_words, [ex.src_ext_ids for ex in examples])

        with torch.inference_mode():
            state = self.model.encode(batch)
            results = decode(self.model, state, self.config, processors, return_attention=return_attention,
                             generator=generator)
            texts_of = [[detokenize(batch.ids_to_tokens(row, h.tokens, self.vocab), languages[row]) for h in hyps]
                        for row, hyps in enumerate(results)]
            support: list[list[Any]] = [[None] * len(hyps) for hyps in results]
            if self.taught is not None:
                questions = [customer_side(list(turns)[-self.max_turns :]) for turns in contexts]  # the model's window
                results, texts_of, support = self._prefer_taught(
                    questions, languages, sources, examples, own_words, state, results, texts_of, return_attention,
                    batch.src_ids.device)

        replies = []
        for row, hyps in enumerate(results):
            lang = languages[row]
            texts = texts_of[row]
            attention = None
            if return_attention and hyps[0].attention is not None:
                attention = {
                    "source_tokens": list(sources[row]),
                    "target_tokens": batch.ids_to_tokens(row, hyps[0].tokens, self.vocab),
                    "weights": rounded_weights(hyps[0].attention[:, : len(sources[row])]),
                }
            replies.append(Reply(
                text=texts[0],
                language=lang,
                confidence=reply_confidence(hyps[0], hyps[1] if len(hyps) > 1 else None, self.config.length_penalty),
                candidates=[Candidate(t, h.score) for t, h in zip(texts, hyps)],
                attention=attention,
                decoding=self.config.to_dict(),
                token_logprob=token_logprob(hyps[0], self.config.length_penalty),
                taught=support[row][0],
            ))
        return replies

    def _processors(self, languages: Sequence[str], own_words: Sequence[Sequence[int]],
                    src_ext_ids: Sequence[Sequence[int]]) -> list[Any]:
        """The decoding constraints of one batch, one row per request."""
        # Chinese names share the customer's words ("北京"): there only the word just written loses the copy bonus
        once = [lang not in CJK_LANGUAGES for lang in languages]
        processors = [self._suppress, *build_processors(self.config, context_ids=own_words, copy_once=once)]
        if self.config.script_constraint:  # before any sampling warper, so top-k/top-p see only allowed tokens
            processors.insert(1, ScriptConstraint(self._foreign_scripts, languages, src_ext_ids))
        return processors

    def _prefer_taught(self, questions: Sequence[str], languages: Sequence[str], sources: Sequence[Sequence[str]],
                       examples: Sequence[Any], own_words: Sequence[Sequence[int]], state: Any,
                       results: list[list[Hypothesis]], texts_of: list[list[str]], return_attention: bool,
                       device: torch.device) -> tuple[list[list[Hypothesis]], list[list[str]], list[list[Any]]]:
        """Each request's candidates reordered by score plus ``taught_weight`` times the similarity of the
        customer's words (in the model's window) to the closest question an agent taught that candidate for.

        The closest taught answers the search did not write are scored by the model first, as the search
        would have (``score_replies``, every constraint applied), and compete like the rest: the model must
        still find a taught answer plausible here, the memory only says which of its own candidates agents
        meant for a question like this one."""
        taught = self.taught
        assert taught is not None
        near = [taught.matches(question, self.taught_min_similarity) for question in questions]
        proposals: list[tuple[int, str, list[int]]] = []  # (request row, answer text, reply ids)
        for row, matches in enumerate(near):
            written = {answer_key(t) for t in texts_of[row]}
            unwritten = [m for key, m in matches.items() if key not in written]
            for match in sorted(unwritten, key=lambda m: -m.similarity)[: self.taught_proposals]:
                target = encode_pair(sources[row], tokenize(match.answer, languages[row]), self.vocab).tgt_ids or []
                if target and self.vocab.unk_id not in target:  # a word the model cannot write: not its reply
                    proposals.append((row, match.answer, target))
        if proposals:
            rows = [row for row, _, _ in proposals]
            scored = score_replies(
                self.model, self.model.reorder(state, torch.tensor(rows, device=device)), self.config,
                self._processors([languages[r] for r in rows], [own_words[r] for r in rows],
                                 [examples[r].src_ext_ids for r in rows]),
                [ids for _, _, ids in proposals], return_attention=return_attention)
            for (row, answer, _), hyp in zip(proposals, scored):
                if hyp is not None:
                    results[row] = [*results[row], hyp]
                    texts_of[row] = [*texts_of[row], answer]
        out_results, out_texts, out_support = [], [], []
        for row in range(len(questions)):
            matches = [near[row].get(answer_key(text)) for text in texts_of[row]]
            bonus = [self.taught_weight * m.similarity if m is not None else 0.0 for m in matches]
            order = sorted(range(len(texts_of[row])), key=lambda j: -(results[row][j].score + bonus[j]))
            order = order[: max(self.config.num_return_sequences, 1)]
            out_results.append([results[row][j] for j in order])
            out_texts.append([texts_of[row][j] for j in order])
            out_support.append([None if matches[j] is None else {
                "question": matches[j].question, "similarity": round(matches[j].similarity, 4),
                "bonus": round(bonus[j], 4)} for j in order])
        return out_results, out_texts, out_support
