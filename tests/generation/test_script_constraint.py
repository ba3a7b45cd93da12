"""Replies never mix scripts: the ScriptConstraint processor on hand-made tables, inside beam search, and
through ReplyGenerator with a model scripted to prefer a foreign-script word."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from chatbot.generation import GenerationConfig, ScriptConstraint, beam_search, config_from_settings
from chatbot.generation.reply import foreign_script_masks
from chatbot.model.batch import Seq2SeqBatch
from chatbot.service.generator import ReplyGenerator
from chatbot.settings import load_settings
from chatbot.text.vocab import SPECIAL_TOKENS, Vocab
from tests.generation.scripted import EOS, ScriptedModel

INF = math.inf

# A six-token vocabulary (0 BOS, 1 EOS) plus two copy-extended ids (6, 7):
#   2 "好" (CJK), 3 "ok" (Latin), 4 "。" (neutral), 5 "yes" (Latin)   -- for zh, 3 and 5 are foreign
#   for en, 2 is foreign
MASKS = {"zh": torch.tensor([False, False, False, True, False, True]),
         "en": torch.tensor([False, False, True, False, False, False])}


def run_pure(proc, generated, scores):
    generated_before, scores_before = generated.clone(), scores.clone()
    out = proc(generated, scores)
    assert torch.equal(generated, generated_before) and torch.equal(scores, scores_before)
    in_place = scores.clone()
    proc.apply_(generated, in_place)
    assert torch.equal(in_place, out)
    return out


def banned(row: torch.Tensor) -> list[int]:
    return [i for i, v in enumerate(row.tolist()) if v == -INF]


def test_each_row_bans_the_script_foreign_to_its_own_language_and_nothing_else():
    scores = torch.randn(3, 8)
    out = run_pure(ScriptConstraint(MASKS, ["zh", "en", "xx"], [[], [], []]), torch.zeros(3, 0, dtype=torch.long),
                   scores)
    assert banned(out[0]) == [3, 5]
    assert banned(out[1]) == [2]
    assert torch.equal(out[2], scores[2])  # a language without a mask is not constrained
    keep = torch.ones_like(scores, dtype=torch.bool)
    keep[0, [3, 5]] = keep[1, 2] = False
    assert torch.equal(out[keep], scores[keep])  # neutral, native and copy-extended ids keep their scores


def test_a_foreign_token_is_allowed_in_the_row_whose_conversation_holds_it():
    # row 0 wrote "ok" (3) and a copied word (7); row 1 wrote "好" (2); -1 separates turns
    constraint = ScriptConstraint(MASKS, ["zh", "zh", "en"], [[3, -1, 7], [4], torch.tensor([2, 6])])
    out = run_pure(constraint, torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 8))
    assert banned(out[0]) == [5]  # "ok" allowed here only ...
    assert banned(out[1]) == [3, 5]  # ... not in another zh row
    assert banned(out[2]) == []
    assert out[:, 6:].eq(0).all()  # copied words are never banned


def test_rows_of_beams_follow_their_batch_row_after_expansion_and_after_rows_finish():
    constraint = ScriptConstraint(MASKS, ["zh", "en"], [[], [2]])
    en_only = ScriptConstraint(MASKS, ["zh", "en"], [[], []])
    generated = torch.zeros(6, 2, dtype=torch.long)
    unbound = run_pure(en_only, generated, torch.zeros(6, 8))  # 2 batch rows x 3 beams, batch-major
    bound = run_pure(en_only.for_rows(torch.tensor([0, 0, 0, 1, 1, 1])), generated, torch.zeros(6, 8))
    assert torch.equal(unbound, bound)
    assert [banned(r) for r in bound] == [[3, 5]] * 3 + [[2]] * 3
    # batch row 0 finished: the three remaining rows all belong to batch row 1
    rest = run_pure(en_only.for_rows(torch.tensor([1, 1, 1])), generated[:3], torch.zeros(3, 8))
    assert [banned(r) for r in rest] == [[2]] * 3
    rest = run_pure(constraint.for_rows(torch.tensor([1, 0, 1])), generated[:3], torch.zeros(3, 8))
    assert [banned(r) for r in rest] == [[], [3, 5], []]
    with pytest.raises(ValueError, match="bound to 3 rows"):
        constraint.for_rows(torch.tensor([1, 1, 1]))(generated, torch.zeros(6, 8))


@pytest.mark.parametrize("make", [
    lambda: ScriptConstraint(MASKS, ["zh"], [[], []]),
    lambda: ScriptConstraint(MASKS, [], []),
    lambda: ScriptConstraint({"zh": torch.zeros(6, dtype=torch.bool), "en": torch.zeros(5, dtype=torch.bool)},
                             ["zh"], [[]]),
    lambda: ScriptConstraint({"zh": torch.zeros(6)}, ["zh"], [[]]),
])
def test_nonsense_is_refused(make):
    with pytest.raises(ValueError):
        make()


def test_rows_that_do_not_split_over_batch_rows_and_too_narrow_scores_are_refused():
    constraint = ScriptConstraint(MASKS, ["zh", "en"], [[], []])
    with pytest.raises(ValueError, match="do not split"):
        constraint(torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 8))
    with pytest.raises(ValueError, match="vocabulary of 6"):
        constraint(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 5))


def test_beam_search_keeps_each_rows_script_even_after_the_other_row_finished():
    # Row 0 (zh) prefers Latin "ok" then "yes"; row 1 (en) prefers "好" and ends after one token, so the
    # search drops it and rebinds the constraint to row 0's beams alone.
    tables = {
        0: {(): {3: 0.6, 2: 0.4}, (2,): {5: 0.7, 4: 0.3}, (2, 4): {EOS: 1.0}, (3,): {EOS: 1.0},
            (2, 5): {EOS: 1.0}},
        1: {(): {2: 0.9, 4: 0.1}, (2,): {EOS: 1.0}, (4,): {EOS: 1.0}},
    }

    def script(row, prefix):
        probs = [0.0] * 8
        for token, p in tables[row].get(prefix, {EOS: 1.0}).items():
            probs[token] = p
        return probs

    config = GenerationConfig(bos_token_id=0, eos_token_id=EOS, num_beams=2, num_return_sequences=2,
                              max_new_tokens=5)
    model = ScriptedModel(script, 8)
    free = beam_search(model, model.start([0, 1]), config, [])
    assert [free[0][0].tokens, free[1][0].tokens] == [[3], [2]]
    constraint = ScriptConstraint(MASKS, ["zh", "en"], [[], []])
    kept = beam_search(model, model.start([0, 1]), config, [constraint])
    assert [h.tokens for h in kept[0]] == [[2, 4]]  # "ok" and "yes" banned: 好。 is the only finite reply
    assert [h.tokens for h in kept[1]] == [[4]]
    allowed = ScriptConstraint(MASKS, ["zh", "en"], [[5], []])  # the customer wrote "yes"
    assert beam_search(model, model.start([0, 1]), config, [allowed])[0][0].tokens == [2, 5]


# --- through ReplyGenerator ---------------------------------------------------------------------------

VOCAB = Vocab([*SPECIAL_TOKENS, "你好", "好的", "you", "Park", "其他", "hello", "!"])
PREFERENCES = {  # first reply token by the conversation's language token; each reply is one token then EOS
    "<lang:zh>": [("Zyx", 0.5), ("you", 0.3), ("好的", 0.2)],  # Latin words first, "Zyx" only by copying
    "<lang:en>": [("其他", 0.6), ("Park", 0.4)],
}


@dataclass
class _State:
    prefix: torch.Tensor  # [N, t] generated so far
    first: torch.Tensor  # [N, W] log-probs of the first reply token
    attention: torch.Tensor | None = None


class PrefersForeign:
    """A step model that answers with its preferred first token (see PREFERENCES), then ends."""

    def encode(self, batch: Seq2SeqBatch) -> _State:
        width = batch.ext_vocab_size
        first = torch.full((len(batch), width), -INF)
        for row in range(len(batch)):
            for text, p in PREFERENCES[VOCAB.token(int(batch.src_ids[row, 0]))]:
                if text in VOCAB:
                    first[row, VOCAB.index(text)] = math.log(p)
                elif text in batch.src_oov[row]:
                    first[row, len(VOCAB) + batch.src_oov[row].index(text)] = math.log(p)
        return _State(torch.zeros(len(batch), 0, dtype=torch.long), first)

    def step(self, tokens: torch.Tensor, state: _State) -> tuple[torch.Tensor, _State]:
        if state.prefix.size(1) == 0:
            log_probs = state.first.clone()
        else:
            log_probs = torch.full_like(state.first, -INF)
            log_probs[:, VOCAB.eos_id] = 0.0
        return log_probs, _State(torch.cat([state.prefix, tokens[:, None]], dim=1), state.first)

    def reorder(self, state: _State, index: torch.Tensor) -> _State:
        return _State(state.prefix[index], state.first[index])


CONVERSATIONS = [
    [("customer", "你好")],  # zh: wants "you"
    [("customer", "hello !")],  # en: wants "其他"
    [("customer", "你好"), ("agent", "you")],  # zh, "you" is in the conversation
    [("customer", "hello hello !"), ("agent", "其他")],  # en, "其他" is in the conversation
    [("customer", "你好 Zyx")],  # zh, "Zyx" can only be copied (extended id)
]


@pytest.mark.parametrize("num_beams", [1, 3])
def test_reply_generator_never_writes_a_foreign_script_word_the_conversation_lacks(num_beams):
    config = GenerationConfig(bos_token_id=VOCAB.bos_id, eos_token_id=VOCAB.eos_id, num_beams=num_beams,
                              max_new_tokens=5)
    on = ReplyGenerator(PrefersForeign(), VOCAB, config).generate(CONVERSATIONS, return_attention=False)
    off = ReplyGenerator(PrefersForeign(), VOCAB, config.replace(script_constraint=False)).generate(
        CONVERSATIONS, return_attention=False)
    assert [r.language for r in on] == ["zh", "en", "zh", "en", "zh"]
    assert [r.text for r in off] == ["you", "其他", "you", "其他", "Zyx"]
    assert [r.text for r in on] == ["好的", "Park", "you", "其他", "Zyx"]
    assert on[0].decoding["script_constraint"] is True and off[0].decoding["script_constraint"] is False


def test_masks_leave_special_tokens_alone_and_are_built_once_per_generator(monkeypatch):
    masks = foreign_script_masks(VOCAB, ("en", "zh", "de"))
    assert set(masks) == {"en", "zh", "de"}
    # <EMAIL>, <customer>, <lang:en>... hold Latin letters but are neutral
    assert [VOCAB.token(i) for i in masks["zh"].nonzero().flatten().tolist()] == ["you", "Park", "hello"]
    assert [VOCAB.token(i) for i in masks["en"].nonzero().flatten().tolist()] == ["你好", "好的", "其他"]
    assert torch.equal(masks["de"], masks["en"])
    generator = ReplyGenerator(PrefersForeign(), VOCAB, GenerationConfig(bos_token_id=1, eos_token_id=2))

    def per_token_work(*args):
        raise AssertionError("token scripts classified while generating")

    monkeypatch.setattr("chatbot.generation.reply.has_foreign_letter", per_token_work)
    assert [r.text for r in generator.generate(CONVERSATIONS[:2], return_attention=False)] == ["好的", "Park"]


def test_the_setting_reaches_the_generation_config(tmp_path, monkeypatch):
    assert config_from_settings(load_settings(data_dir=tmp_path), bos_token_id=1, eos_token_id=2).script_constraint
    monkeypatch.setenv("CHATBOT_SCRIPT_CONSTRAINT", "false")
    assert not config_from_settings(load_settings(data_dir=tmp_path), bos_token_id=1, eos_token_id=2).script_constraint
    with pytest.raises(ValueError, match="script_constraint must be a bool"):
        GenerationConfig(bos_token_id=1, eos_token_id=2, script_constraint="no")
