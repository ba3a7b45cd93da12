"""Growing a trained model's vocabulary with the words its new training data uses.

A vocabulary is fixed when a model is first trained. The shipped one was built from task dialogues and lacks
the everyday words of customer service ("delivery", "store", "gift", "cards", "support"): a customer's
"Do gift cards expire?" reads as "Do <unk> <unk> expire?", indistinguishable from any other <unk> question,
and an agent's "Standard delivery takes 3 to 5 days." can only be learned as "Standard <unk> takes ...". So a
fine-tune first appends the missing words that enough conversations use.

The grown model computes what the old one did: a new word's embedding starts as <unk>'s (the encoder reads
the same vectors as before), and the output biases of <unk> and of the n new words become <unk>'s minus
log(n + 1): they share the probability the old model gave <unk>, and every other word keeps its own.

Except for the words only the replies use. An agent's "We accept Visa, Mastercard and PayPal." teaches
"Visa" to the decoder, but no customer wrote it, so as an input word it would learn nothing but what the
(tied) output side drags it to, and a later "Is Visa accepted?" reads as noise. Such a word starts with the
meaning of the questions its replies answered: the idf-weighted mean embedding of their known words, at
those words' typical length (``answer_word_starts``). The encoder then reads it as a word about payments;
the old words' probabilities move only by the little these rows take at the output.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from chatbot.model.seq2seq import Seq2Seq
from chatbot.text.vocab import UNK_ID, Vocab
from training.sources import Pair


def new_words(pairs: Sequence[Pair], vocab: Vocab, *, min_conversations: int, limit: int) -> list[str]:
    """Tokens the vocabulary lacks, used in at least ``min_conversations`` distinct conversations, most
    widely used first (ties alphabetical), at most ``limit``.

    Counted by conversation, not occurrence: one customer repeating a word (a surname the redaction missed)
    does not put it into a model that ships with its vocabulary."""
    from chatbot.text.tokenize import tokenize

    users: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        for text in (*(text for _, text in p.context), p.reply):
            for token in tokenize(text, p.language):
                if vocab.index(token) == UNK_ID:
                    users[token].add(p.conversation)
    ranked = sorted((t for t, convs in users.items() if len(convs) >= min_conversations),
                    key=lambda t: (-len(users[t]), t))
    return ranked[:limit]


def _last_question(pair: Pair) -> str:
    return next((text for role, text in reversed(pair.context) if role == "customer"), "")


@torch.no_grad()
def answer_word_starts(pairs: Sequence[Pair], vocab: Vocab, words: Sequence[str], embedding: torch.Tensor,
                       background: Sequence[Pair] = ()) -> dict[str, torch.Tensor]:
    """Start embeddings for those of ``words`` that no customer turn of ``pairs`` uses but some reply does:
    the mean embedding [E] of the known words of the customer questions those replies answer, rescaled to
    those words' mean length. Each word weighs its count times its squared inverse document frequency over
    the questions of ``pairs`` and ``background`` (earlier training data), so the question's few content
    words ("pay", "accept") set the meaning and its many function words ("do", "you", "?") hardly do."""
    from chatbot.text.tokenize import tokenize

    def question_ids(pair: Pair) -> list[int]:
        return [vocab.index(t) for t in tokenize(_last_question(pair), pair.language)]

    questions = [question_ids(p) for p in pairs]
    document_frequency = Counter(i for ids in [*questions, *map(question_ids, background)] for i in set(ids))
    documents = len(pairs) + len(background)
    idf = {i: math.log(documents / df) for i, df in document_frequency.items()}
    asked = {t for p in pairs for _, text in p.context for t in tokenize(text, p.language)}
    wanted = set(words) - asked
    answered: dict[str, Counter[int]] = defaultdict(Counter)  # word -> question word id -> occurrences
    for pair, ids in zip(pairs, questions):
        for token in set(tokenize(pair.reply, pair.language)) & wanted:
            answered[token].update(i for i in ids if i != UNK_ID and idf[i] > 0)
    starts: dict[str, torch.Tensor] = {}
    for token, counts in answered.items():
        if not counts:
            continue
        ids = torch.tensor(list(counts))
        weights = torch.tensor([counts[i] * idf[i] ** 2 for i in counts], dtype=embedding.dtype)
        rows = embedding[ids]  # [n, E]
        mean = (weights[:, None] * rows).sum(0) / weights.sum()
        length = (weights * rows.norm(dim=-1)).sum() / weights.sum()
        starts[token] = mean * (length / mean.norm().clamp_min(1e-8))
    return starts


@torch.no_grad()
def grow_vocabulary(model: Seq2Seq, vocab: Vocab, words: Sequence[str],
                    starts: Mapping[str, torch.Tensor] | None = None) -> tuple[Seq2Seq, Vocab]:
    """A copy of ``model`` and ``vocab`` with ``words`` appended (see the module docstring for their start);
    a word in ``starts`` gets that input embedding instead of <unk>'s."""
    grown_vocab = Vocab([*vocab.tokens, *words])
    grown = Seq2Seq(dataclasses.replace(model.config, vocab_size=len(grown_vocab)))
    n = len(words)
    state = model.state_dict()
    for name in state.keys() & {"out_bias", "lm_head.bias"}:  # tied or untied output layer
        bias = state[name].clone()
        bias[UNK_ID] -= math.log(n + 1)
        state[name] = torch.cat([bias, bias[UNK_ID].expand(n)])
    for name in state.keys() & {"embedding.weight", "lm_head.weight"}:
        state[name] = torch.cat([state[name], state[name][UNK_ID].expand(n, -1)])
    for i, word in enumerate(words):
        if starts and word in starts:
            state["embedding.weight"][len(vocab) + i] = starts[word]
    grown.load_state_dict(state)  # strict: a vocabulary-sized tensor this function missed fails here
    return grown.eval(), grown_vocab


def grow_checkpoint(model_dir: Path, pairs: Sequence[Pair], out: Path, *, limit: int,
                    min_conversations: int, answer_words_from_questions: bool = True,
                    background: Sequence[Pair] = ()) -> tuple[Path, int]:
    """The model to fine-tune: the one in ``model_dir`` with the words ``pairs`` use that it lacks appended,
    saved to ``out``; ``model_dir`` itself when it lacks none. Returns it and how many words were added.
    ``answer_words_from_questions``: words only replies use start from their questions (``answer_word_starts``,
    with ``background`` for word frequencies)."""
    from chatbot.model.checkpoint import load_checkpoint, save_checkpoint
    from chatbot.text.tokenize import SUPPORTED_LANGUAGES

    loaded = load_checkpoint(model_dir)
    words = new_words(pairs, loaded.vocab, min_conversations=min_conversations, limit=limit)
    if not words:
        return Path(model_dir), 0
    starts = (answer_word_starts(pairs, loaded.vocab, words, loaded.model.embedding.weight, background)
              if answer_words_from_questions else None)
    model, vocab = grow_vocabulary(loaded.model, loaded.vocab, words, starts)
    config = loaded.config
    extra = {**(config.get("extra") or {}), "answer_words": sorted(starts or {})}
    save_checkpoint(out, model, vocab, manifest=config.get("manifest"), decoding=config.get("decoding"),
                    extra=extra, languages=loaded.languages or SUPPORTED_LANGUAGES)
    return Path(out), len(words)


def first_new_word(model_dir: Path, added: int) -> int:
    """The vocabulary id of the first of the ``added`` words ``grow_checkpoint`` appended in ``model_dir``: a
    fine-tune's ``new_words_from``, so those rows can learn faster than the trained ones."""
    return len(Vocab.load(Path(model_dir) / "vocab.json")) - added


def answer_word_ids(model_dir: Path) -> list[int]:
    """The vocabulary ids of the words ``grow_checkpoint`` started from their questions in ``model_dir``: a
    fine-tune's ``answer_words``, so the meaning they start with is not overwritten at the new words' pace."""
    from chatbot.model.checkpoint import load_checkpoint

    loaded = load_checkpoint(model_dir)
    return [loaded.vocab.index(w) for w in (loaded.config.get("extra") or {}).get("answer_words", [])]
