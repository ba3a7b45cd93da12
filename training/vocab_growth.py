"""Growing a trained model's vocabulary with the words its new training data uses.

A vocabulary is fixed when a model is first trained. The shipped one was built from task dialogues and lacks
the everyday words of customer service ("delivery", "store", "gift", "cards", "support"): a customer's
"Do gift cards expire?" reads as "Do <unk> <unk> expire?", indistinguishable from any other <unk> question,
and an agent's "Standard delivery takes 3 to 5 days." can only be learned as "Standard <unk> takes ...". So a
fine-tune first appends the missing words that enough conversations use.

The grown model computes what the old one did: a new word's embedding starts as <unk>'s (the encoder reads
the same vectors as before), and the output biases of <unk> and of the n new words become <unk>'s minus
log(n + 1): they share the probability the old model gave <unk>, and every other word keeps its own.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
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


@torch.no_grad()
def grow_vocabulary(model: Seq2Seq, vocab: Vocab, words: Sequence[str]) -> tuple[Seq2Seq, Vocab]:
    """A copy of ``model`` and ``vocab`` with ``words`` appended (see the module docstring for their start)."""
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
    grown.load_state_dict(state)  # strict: a vocabulary-sized tensor this function missed fails here
    return grown.eval(), grown_vocab


def grow_checkpoint(model_dir: Path, pairs: Sequence[Pair], out: Path, *, limit: int,
                    min_conversations: int) -> tuple[Path, int]:
    """The model to fine-tune: the one in ``model_dir`` with the words ``pairs`` use that it lacks appended,
    saved to ``out``; ``model_dir`` itself when it lacks none. Returns it and how many words were added."""
    from chatbot.model.checkpoint import load_checkpoint, save_checkpoint
    from chatbot.text.tokenize import SUPPORTED_LANGUAGES

    loaded = load_checkpoint(model_dir)
    words = new_words(pairs, loaded.vocab, min_conversations=min_conversations, limit=limit)
    if not words:
        return Path(model_dir), 0
    model, vocab = grow_vocabulary(loaded.model, loaded.vocab, words)
    config = loaded.config
    save_checkpoint(out, model, vocab, manifest=config.get("manifest"), decoding=config.get("decoding"),
                    extra=config.get("extra"), languages=loaded.languages or SUPPORTED_LANGUAGES)
    return Path(out), len(words)


def first_new_word(model_dir: Path, added: int) -> int:
    """The vocabulary id of the first of the ``added`` words ``grow_checkpoint`` appended in ``model_dir``: a
    fine-tune's ``new_words_from``, so those rows can learn faster than the trained ones."""
    return len(Vocab.load(Path(model_dir) / "vocab.json")) - added
