"""Every processor on hand-made score tensors: exact outputs, and inputs left untouched."""

from __future__ import annotations

import math

import pytest
import torch

from chatbot.generation import (
    ContextNGramBlock,
    CopyBonus,
    GenerationConfig,
    MinNewTokens,
    NoRepeatNGram,
    RepetitionPenalty,
    Temperature,
    TopK,
    TopP,
    build_processors,
)

INF = math.inf


def run_pure(proc, generated, scores):
    """Call ``proc`` and check it left both inputs exactly as they were."""
    generated_before, scores_before = generated.clone(), scores.clone()
    out = proc(generated, scores)
    assert torch.equal(generated, generated_before)
    assert torch.equal(scores, scores_before)
    return out


def test_repetition_penalty_divides_positive_and_multiplies_negative_scores():
    generated = torch.tensor([[1, 3, 3], [0, 0, 0]])
    scores = torch.tensor([[1.0, 2.0, -1.0, -4.0, 0.5], [-2.0, 4.0, 1.0, 1.0, 1.0]])
    out = run_pure(RepetitionPenalty(2.0), generated, scores)
    expected = torch.tensor([[1.0, 1.0, -1.0, -8.0, 0.5], [-4.0, 4.0, 1.0, 1.0, 1.0]])
    assert torch.equal(out, expected)


def test_repetition_penalty_with_nothing_generated_changes_nothing():
    scores = torch.tensor([[-1.0, -2.0]])
    assert torch.equal(run_pure(RepetitionPenalty(1.5), torch.zeros(1, 0, dtype=torch.long), scores), scores)


def test_no_repeat_ngram_blocks_the_token_that_would_repeat_a_bigram():
    # row 0: "5 6 5" -> next 6 would repeat (5, 6); row 1 has no repeatable prefix
    generated = torch.tensor([[5, 6, 5], [1, 2, 3]])
    scores = torch.zeros(2, 8)
    out = run_pure(NoRepeatNGram(2), generated, scores)
    expected = torch.zeros(2, 8)
    expected[0, 6] = -INF
    assert torch.equal(out, expected)


def test_no_repeat_trigram_blocks_every_continuation_seen_after_the_same_pair():
    generated = torch.tensor([[1, 2, 3, 1, 2, 4, 1, 2]])  # (1, 2) was followed by 3 and by 4
    scores = torch.arange(6, dtype=torch.float).view(1, 6)
    out = run_pure(NoRepeatNGram(3), generated, scores)
    assert out.tolist() == [[0.0, 1.0, 2.0, -INF, -INF, 5.0]]


def test_no_repeat_unigram_blocks_every_generated_token_and_short_rows_are_untouched():
    out = run_pure(NoRepeatNGram(1), torch.tensor([[2, 0]]), torch.zeros(1, 4))
    assert out.tolist() == [[-INF, 0.0, -INF, 0.0]]
    scores = torch.zeros(1, 4)
    assert torch.equal(run_pure(NoRepeatNGram(3), torch.tensor([[2, 2]]), scores), scores)


def test_context_ngram_block_uses_each_batch_rows_own_context():
    contexts = [[7, 8, 9], [8, 4]]  # batch row 0 said "7 8 9", batch row 1 said "8 4"
    block = ContextNGramBlock(2, contexts)
    # two beams per batch row, rows laid out batch-major
    generated = torch.tensor([[8], [7], [8], [5]])
    scores = torch.zeros(4, 10)
    out = run_pure(block, generated, scores)
    expected = torch.zeros(4, 10)
    expected[0, 9] = -INF  # 8 -> 9 copied from context 0
    expected[1, 8] = -INF  # 7 -> 8 copied from context 0
    expected[2, 4] = -INF  # 8 -> 4 copied from context 1
    assert torch.equal(out, expected)


def test_context_ngram_block_bound_to_a_row_layout():
    block = ContextNGramBlock(3, [[1, 2, 3], [1, 2, 4]]).for_rows(torch.tensor([1, 1, 0]))
    generated = torch.tensor([[1, 2], [0, 2], [1, 2]])
    out = run_pure(block, generated, torch.zeros(3, 6))
    assert out[0].tolist() == [0, 0, 0, 0, -INF, 0]
    assert out[1].tolist() == [0.0] * 6
    assert out[2].tolist() == [0, 0, 0, -INF, 0, 0]
    with pytest.raises(ValueError, match="bound to 3 rows"):
        block(generated[:2], torch.zeros(2, 6))


def test_context_ngram_block_rejects_rows_that_do_not_split_over_contexts():
    with pytest.raises(ValueError, match="do not split evenly"):
        ContextNGramBlock(2, [[1, 2], [3, 4]])(torch.tensor([[1], [1], [1]]), torch.zeros(3, 5))


def test_copy_bonus_adds_once_per_detail_word_of_each_rows_customer():
    # row 0's customer wrote ids 120 and 130 (130 twice) and the common id 7; row 1 wrote 125 and a
    # copied out-of-vocabulary word (extended id 205); -1 separates turns
    bonus = CopyBonus(0.5, [[120, 7, 130, -1, 130], [125, 205]], common_ids=100)
    scores = torch.full((4, 210), -2.0)
    scores[0, 121] = -INF
    out = run_pure(bonus, torch.zeros(4, 0, dtype=torch.long), scores)  # two beams per batch row
    expected = torch.full((4, 210), -2.0)
    expected[0, 121] = -INF
    expected[:2, 120] = expected[:2, 130] = -1.5  # once, although 130 was written twice
    expected[2:, 125] = expected[2:, 205] = -1.5
    assert torch.equal(out, expected)

    # the word just written gets no bonus (row 0 just wrote 130, row 3 205), one written earlier still does
    written = torch.tensor([[5, 130], [130, 5], [5, 5], [5, 205]])
    out = run_pure(bonus, written, torch.full((4, 210), -2.0))
    assert out[0, 130] == -2.0 and out[0, 120] == -1.5 and out[1, 130] == -1.5
    assert out[3, 205] == -2.0 and out[3, 125] == -1.5 and out[2, 205] == -1.5


def test_copy_bonus_once_withholds_it_from_every_word_already_written_in_marked_rows():
    # row 0 (once): "policy" (130) written two steps ago gets nothing, so "refund policy policy" and
    # "policy refund policy" lose their pull; row 1 (a Chinese conversation): only the word just written
    bonus = CopyBonus(0.5, [[120, 130], [120, 130]], common_ids=100, once=[True, False])
    written = torch.tensor([[130, 5], [130, 5]])  # one beam per batch row
    out = run_pure(bonus, written, torch.full((2, 140), -2.0))
    assert out[0, 130] == -2.0 and out[0, 120] == -1.5
    assert out[1, 130] == -1.5 and out[1, 120] == -1.5
    bound = bonus.for_rows(torch.tensor([1, 0]))  # the flag travels with its row
    out = run_pure(bound, written, torch.full((2, 140), -2.0))
    assert out[0, 130] == -1.5 and out[1, 130] == -2.0
    with pytest.raises(ValueError, match="once has 1 entries for 2 rows"):
        CopyBonus(0.5, [[120], [130]], once=[True])


def test_copy_bonus_bound_to_a_row_layout_and_off_at_zero():
    bonus = CopyBonus(1.0, [[101], [102]], common_ids=100).for_rows(torch.tensor([1, 0, 1]))
    out = run_pure(bonus, torch.zeros(3, 0, dtype=torch.long), torch.zeros(3, 104))
    assert out.nonzero().tolist() == [[0, 102], [1, 101], [2, 102]]
    with pytest.raises(ValueError, match="bound to 3 rows"):
        bonus(torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 104))
    with pytest.raises(ValueError, match="copy bonus must be >= 0"):
        CopyBonus(-1.0, [[101]])
    config = GenerationConfig(bos_token_id=1, eos_token_id=2)
    assert not any(isinstance(p, CopyBonus) for p in build_processors(config, context_ids=[[101]]))
    assert any(isinstance(p, CopyBonus) for p in build_processors(config.replace(copy_bonus=1.0),
                                                                   context_ids=[[101]]))


def test_min_new_tokens_blocks_eos_until_enough_tokens():
    proc = MinNewTokens(2, eos_token_id=1)
    scores = torch.tensor([[-1.0, -0.5, -2.0]])
    assert run_pure(proc, torch.tensor([[4]]), scores).tolist() == [[-1.0, -INF, -2.0]]
    assert torch.equal(run_pure(proc, torch.tensor([[4, 4]]), scores), scores)


def test_temperature_top_k_and_top_p():
    scores = torch.tensor([[2.0, 0.0, 1.0, -1.0]])
    assert run_pure(Temperature(2.0), torch.zeros(1, 0, dtype=torch.long), scores).tolist() == [[1.0, 0.0, 0.5, -0.5]]
    assert run_pure(TopK(2), torch.zeros(1, 0, dtype=torch.long), scores).tolist() == [[2.0, -INF, 1.0, -INF]]
    probs = torch.log(torch.tensor([[0.1, 0.5, 0.3, 0.1]]))
    # keep the smallest best set reaching 0.75: {0.5, 0.3}
    out = run_pure(TopP(0.75), torch.zeros(1, 0, dtype=torch.long), probs)
    assert torch.isinf(out[0, [0, 3]]).all() and torch.equal(out[0, [1, 2]], probs[0, [1, 2]])
    # a tiny top_p still keeps the single best token
    out = run_pure(TopP(0.01), torch.zeros(1, 0, dtype=torch.long), probs)
    assert torch.isfinite(out).tolist() == [[False, True, False, False]]


@pytest.mark.parametrize("make", [lambda: RepetitionPenalty(0), lambda: NoRepeatNGram(0), lambda: TopP(1.5),
                                  lambda: TopK(0), lambda: Temperature(0.0), lambda: ContextNGramBlock(2, [])])
def test_processors_reject_nonsense(make):
    with pytest.raises(ValueError):
        make()


def test_build_processors_follows_the_config_in_order():
    config = GenerationConfig(bos_token_id=1, eos_token_id=2, num_beams=1, repetition_penalty=1.2,
                              no_repeat_ngram_size=3, encoder_no_repeat_ngram_size=4, min_new_tokens=2,
                              do_sample=True, temperature=0.7, top_k=50, top_p=0.9)
    procs = build_processors(config, context_ids=[[4, 5, 6, 7]])
    assert [type(p).__name__ for p in procs] == [
        "RepetitionPenalty", "NoRepeatNGram", "ContextNGramBlock", "MinNewTokens", "Temperature", "TopK", "TopP"]
    assert procs[2].n == 4  # the context block has its own size, not no_repeat_ngram_size
    no_context_block = config.replace(encoder_no_repeat_ngram_size=0)
    assert "ContextNGramBlock" not in [type(p).__name__ for p in build_processors(no_context_block, [[4, 5, 6]])]
    assert build_processors(GenerationConfig(bos_token_id=1, eos_token_id=2)) == []
