"""Search behaviour on scripted log-prob tables: exact, with no network in the way."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from chatbot.generation import (
    GenerationConfig,
    Hypothesis,
    beam_search,
    build_processors,
    greedy_search,
    sample,
)
from tests.generation.scripted import BOS, EOS, ScriptedModel, random_script, table

V = 5  # BOS, EOS, and the words 2, 3, 4


def dist(probs: dict[int, float], vocab_size: int = V) -> list[float]:
    out = [0.0] * vocab_size
    for token, p in probs.items():
        out[token] = p
    return out


def cfg(**kw) -> GenerationConfig:
    return GenerationConfig(**{"bos_token_id": BOS, "eos_token_id": EOS, **kw})


# greedy takes 2 (0.5) then 4 (0.4): p = 0.2; the reply "3" has p = 0.4 * 0.9 = 0.36
TRAP = {(): dist({2: 0.5, 3: 0.4, EOS: 0.1}), (2,): dist({4: 0.4, 3: 0.3, 2: 0.3}), (3,): dist({EOS: 0.9, 2: 0.1})}


def test_greedy_falls_into_the_trap_and_two_beams_find_the_better_reply():
    model = ScriptedModel(table(TRAP, V), V)
    config = cfg(num_beams=2, length_penalty=0.0, max_new_tokens=5)
    [[greedy]] = greedy_search(model, model.start([0]), config.replace(num_beams=1))
    assert greedy.tokens == [2, 4] and greedy.score == pytest.approx(math.log(0.2), abs=1e-6)
    [[best, second]] = beam_search(model, model.start([0]), config.replace(num_return_sequences=2))
    assert best.tokens == [3] and best.score == pytest.approx(math.log(0.36), abs=1e-6)
    assert second.tokens == [2, 4] and best.finished and second.finished


def test_one_beam_is_exactly_greedy():
    model = ScriptedModel(random_script(3, V), V)
    config = cfg(num_beams=1, max_new_tokens=6, repetition_penalty=1.3, no_repeat_ngram_size=2)
    assert beam_search(model, model.start([0, 1, 2]), config) == greedy_search(model, model.start([0, 1, 2]), config)


# short reply [2]: p 0.36 over 2 scored tokens; long reply [3, 3, 3]: p 0.3078 over 4 scored tokens
LENGTHS = {
    (): dist({2: 0.6, 3: 0.4}), (2,): dist({EOS: 0.6, 4: 0.4}), (3,): dist({3: 0.95, EOS: 0.05}),
    (3, 3): dist({3: 0.9, EOS: 0.1}), (3, 3, 3): dist({EOS: 0.9, 4: 0.1}),
}


@pytest.mark.parametrize("length_penalty, expected", [(0.0, [2]), (1.0, [3, 3, 3])])
def test_length_penalty_decides_between_short_and_long_replies(length_penalty, expected):
    model = ScriptedModel(table(LENGTHS, V), V)
    [[best, *_]] = beam_search(model, model.start([0]), cfg(num_beams=2, num_return_sequences=2,
                                                            length_penalty=length_penalty, max_new_tokens=8))
    assert best.tokens == expected
    p = 0.36 if expected == [2] else 0.4 * 0.95 * 0.9 * 0.9
    assert best.score == pytest.approx(math.log(p) / (len(expected) + 1) ** length_penalty, abs=1e-6)
    assert model.step_calls < 8  # stopped early: nothing live could beat the kept replies


def recompute(model: ScriptedModel, row: int, hyp: Hypothesis, config: GenerationConfig, context=None) -> float:
    """The score of ``hyp`` from its tokens alone, feeding them one by one."""
    procs = build_processors(config, context_ids=None if context is None else [context])
    state = model.start([row])
    total, last = 0.0, torch.tensor([BOS])
    chosen = hyp.tokens + ([EOS] if hyp.finished else [])
    for i, token in enumerate(chosen):
        log_probs, state = model.step(last, state)
        scores = log_probs
        for proc in procs:
            scores = proc(torch.tensor([hyp.tokens[:i]], dtype=torch.long), scores)
        total += float(scores[0, token])
        last = torch.tensor([token])
    return total / len(chosen) ** config.length_penalty


@pytest.mark.parametrize("search, extra", [(beam_search, {"num_beams": 3, "num_return_sequences": 3}),
                                           (greedy_search, {"num_beams": 1})])
def test_scores_equal_a_recomputation_from_the_returned_tokens(search, extra):
    config = cfg(max_new_tokens=7, repetition_penalty=1.4, no_repeat_ngram_size=2, length_penalty=0.8, **extra)
    model = ScriptedModel(random_script(11, V), V)
    contexts = [[2, 3, 4], [4, 4, 2], [3, 2, 3]]
    results = search(model, model.start([0, 1, 2]), config, build_processors(config, contexts))
    for row, hyps in enumerate(results):
        assert len(hyps) == config.num_return_sequences
        assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
        for hyp in hyps:
            assert EOS not in hyp.tokens and BOS not in hyp.tokens
            assert recompute(model, row, hyp, config, contexts[row]) == pytest.approx(hyp.score, abs=1e-5)


@pytest.mark.parametrize("extra", [{"num_beams": 4, "num_return_sequences": 2}, {"num_beams": 1},
                                   {"num_beams": 3, "early_stopping": "never"}, {"num_beams": 3, "early_stopping": True}])
def test_each_batch_row_equals_that_row_decoded_alone(extra):
    config = cfg(max_new_tokens=8, repetition_penalty=1.2, no_repeat_ngram_size=2, **extra)
    contexts = [[2, 2, 3], [3, 4, 2], [4, 3, 4], [2, 3, 4], [3, 3, 3]]
    model = ScriptedModel(random_script(5, V), V, source_len=4)
    together = beam_search(model, model.start(range(5)), config, build_processors(config, contexts),
                           return_attention=True)
    assert model.step_calls <= config.max_new_tokens  # one step per generated token for the whole batch
    lengths = {len(hyps[0].tokens) for hyps in together}
    assert len(lengths) > 1  # rows ended at different steps, so dropping finished rows was exercised
    for row in range(5):
        [alone] = beam_search(model, model.start([row]), config, build_processors(config, [contexts[row]]),
                              return_attention=True)
        assert [(h.tokens, h.finished) for h in alone] == [(h.tokens, h.finished) for h in together[row]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in together[row]], abs=1e-6)
        for a, b in zip(alone, together[row]):
            assert torch.equal(a.attention, b.attention)


@pytest.mark.parametrize("num_beams", [1, 3, 4])
def test_attention_follows_each_token_through_reordering(num_beams):
    config = cfg(num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=6)
    kinds = set()
    for seed in (21, 22, 23):
        model = ScriptedModel(random_script(seed, V), V, source_len=7)
        for hyps in beam_search(model, model.start([0, 1, 2]), config, return_attention=True):
            for hyp in hyps:
                kinds.add(hyp.finished)
                assert hyp.attention.shape == (len(hyp.tokens), 7)
                for j in range(len(hyp.tokens)):
                    assert torch.equal(hyp.attention[j], model.attention_for(hyp.tokens[:j]))
    assert kinds == {True, False}  # replies that ended with EOS and replies cut at max_new_tokens
    assert beam_search(model, model.start([0]), config)[0][0].attention is None


def test_sampled_replies_carry_the_attention_of_their_own_tokens():
    config = cfg(do_sample=True, num_beams=1, num_return_sequences=6, max_new_tokens=8)
    model = ScriptedModel(random_script(5, V), V, source_len=7)
    replies = sample(model, model.start([0, 1, 2]), config, return_attention=True,
                     generator=torch.Generator().manual_seed(3))
    lengths = {len(h.tokens) for hyps in replies for h in hyps}
    assert len(lengths) > 2  # rows ended at several steps and left the state, shifting the rows after them
    for hyps in replies:
        for hyp in hyps:
            assert hyp.attention.shape == (len(hyp.tokens), 7)
            for j in range(len(hyp.tokens)):
                assert torch.equal(hyp.attention[j], model.attention_for(hyp.tokens[:j]))


@pytest.mark.parametrize("num_beams", [1, 3])
def test_min_and_max_new_tokens(num_beams):
    model = ScriptedModel(random_script(8, V), V)
    config = cfg(num_beams=num_beams, max_new_tokens=6, min_new_tokens=4)
    for [hyp] in beam_search(model, model.start([0, 1, 2, 3]), config):
        assert len(hyp.tokens) >= 4
    # a script that never ends: every reply is cut at max_new_tokens and scored over its tokens only
    endless = ScriptedModel(lambda row, prefix: dist({2: 0.5, 3: 0.3, 4: 0.2}), V)
    config = cfg(num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=5, length_penalty=1.0)
    [hyps] = beam_search(endless, endless.start([0]), config)
    assert endless.step_calls == 5
    for hyp in hyps:
        assert len(hyp.tokens) == 5 and not hyp.finished
        assert recompute(endless, 0, hyp, config) == pytest.approx(hyp.score, abs=1e-6)


def test_exact_early_stopping_never_does_worse_than_the_heuristic():
    for seed in range(6):
        model = ScriptedModel(random_script(seed, V), V)
        config = cfg(num_beams=2, max_new_tokens=7, length_penalty=1.0)
        heuristic = beam_search(model, model.start([0, 1]), config)
        exact = beam_search(model, model.start([0, 1]), config.replace(early_stopping="never"))
        for h, e in zip(heuristic, exact):
            assert e[0].score >= h[0].score


def test_wrong_search_for_the_config_is_refused():
    model = ScriptedModel(random_script(0, V), V)
    with pytest.raises(ValueError, match="use sample"):
        beam_search(model, model.start([0]), cfg(num_beams=1, do_sample=True))
    with pytest.raises(ValueError, match="one sequence"):
        greedy_search(model, model.start([0]), cfg(num_beams=2, num_return_sequences=2))
    with pytest.raises(ValueError, match="reports no attention"):
        class Blind(ScriptedModel):
            def step(self, tokens, state):
                log_probs, state = super().step(tokens, state)
                state.attention = None
                return log_probs, state
        blind = Blind(random_script(0, V), V)
        beam_search(blind, blind.start([0]), cfg(num_beams=2), return_attention=True)


def test_sampling_follows_the_distribution_and_is_reproducible():
    model = ScriptedModel(table({(): dist({2: 0.7, 3: 0.3})}, V), V)
    config = cfg(num_beams=1, do_sample=True, num_return_sequences=400, max_new_tokens=3)
    [draws] = sample(model, model.start([0]), config, generator=torch.Generator().manual_seed(1))
    assert len(draws) == 400 and model.step_calls == 2  # all 400 draws share each step
    share = sum(h.tokens == [2] for h in draws) / 400
    assert 0.62 < share < 0.78  # 0.7 +- 4 standard deviations
    assert draws[0].tokens == [2] and draws[0].score == pytest.approx(math.log(0.7) / 2, abs=1e-6)
    again = sample(model, model.start([0]), config, generator=torch.Generator().manual_seed(1))[0]
    assert [h.tokens for h in again] == [h.tokens for h in draws]


def test_sampling_with_top_k_one_is_greedy():
    model = ScriptedModel(random_script(4, V), V)
    config = cfg(num_beams=1, max_new_tokens=6, repetition_penalty=1.3)
    greedy = greedy_search(model, model.start([0, 1, 2]), config)
    sampled = sample(model, model.start([0, 1, 2]), config.replace(do_sample=True, top_k=1, temperature=0.5),
                     generator=torch.Generator().manual_seed(0))
    assert [h[0].tokens for h in sampled] == [h[0].tokens for h in greedy]


def brute_force_best(model: ScriptedModel, row: int, config: GenerationConfig) -> tuple[list[int], float]:
    """Score every possible reply (words 2..V-1, ended by EOS or cut at max_new_tokens) and keep the best."""
    best: tuple[list[int], float] = ([], -math.inf)
    words = range(2, model.vocab_size)
    for length in range(config.max_new_tokens + 1):
        for tokens in itertools.product(words, repeat=length):
            hyp = Hypothesis(list(tokens), 0.0, finished=length < config.max_new_tokens)
            score = recompute(model, row, hyp, config)
            if score > best[1]:
                best = (list(tokens), score)
    return best


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), penalty=st.sampled_from([1.0, 1.5]), ngram=st.sampled_from([0, 1, 2]),
       rows=st.integers(1, 3))
def test_wide_beam_returns_the_brute_force_best_reply(seed, penalty, ngram, rows):
    # 2 words, at most 3 new tokens: 1 + 2 + 4 replies ending in EOS and 8 cut ones = 15 <= 16 beams
    vocab = 4
    model = ScriptedModel(random_script(seed, vocab), vocab)
    config = cfg(num_beams=16, max_new_tokens=3, length_penalty=0.0, repetition_penalty=penalty,
                 no_repeat_ngram_size=ngram)
    results = beam_search(model, model.start(range(rows)), config)
    for row in range(rows):
        tokens, score = brute_force_best(model, row, config)
        assert results[row][0].tokens == tokens
        assert results[row][0].score == pytest.approx(score, abs=1e-5)


def test_the_first_step_runs_once_per_request_and_later_steps_once_per_beam():
    model = ScriptedModel(random_script(3, 6), 6)
    config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, num_beams=3, max_new_tokens=2, min_new_tokens=2)
    result = beam_search(model, model.start([0, 1]), config)
    assert [len(h[0].tokens) for h in result] == [2, 2]
    assert model.step_calls == 2 and model.rows_stepped == 2 + 2 * 3  # BOS rows are not duplicated k times


class _BareTensorState:
    """The simplest state the step interface allows: one tensor [N, t] of the tokens fed so far."""

    def __init__(self, script_model: ScriptedModel) -> None:
        self.inner = script_model

    def step(self, tokens: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from tests.generation.scripted import ScriptedState

        scripted = ScriptedState(torch.zeros(state.size(0), dtype=torch.long), state)
        log_probs, after = self.inner.step(tokens, scripted)
        return log_probs, after.prefix

    @staticmethod
    def reorder(state: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return state.index_select(0, index)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_a_bare_tensor_state_decodes_like_a_dataclass_state(num_beams):
    script = random_script(vocab_size=6, seed=3)
    reference = ScriptedModel(script, vocab_size=6)
    config = GenerationConfig(bos_token_id=BOS, eos_token_id=EOS, num_beams=num_beams, max_new_tokens=6,
                              num_return_sequences=num_beams)
    search = beam_search if num_beams > 1 else greedy_search
    want = search(reference, reference.start([0]), config, [])
    bare = _BareTensorState(ScriptedModel(script, vocab_size=6))
    got = search(bare, torch.zeros(1, 0, dtype=torch.long), config, [])
    assert [[h.tokens for h in row] for row in got] == [[h.tokens for h in row] for row in want]
    assert [h.score for row in got for h in row] == pytest.approx([h.score for row in want for h in row])


def test_a_given_reply_is_scored_as_the_search_scores_the_replies_it_finds():
    """score_replies is how serving scores a taught answer its search did not write: every processor
    applied, the same length normalisation, so its score competes fairly with the search's own."""
    from chatbot.generation.search import score_replies

    config = cfg(max_new_tokens=7, repetition_penalty=1.4, no_repeat_ngram_size=2, length_penalty=0.8,
                 num_beams=3, num_return_sequences=3)
    model = ScriptedModel(random_script(11, V), V)
    contexts = [[2, 3, 4], [4, 4, 2]]
    found = beam_search(model, model.start([0, 1]), config, build_processors(config, contexts))
    rows = [0, 0, 1, 1]
    replies = [found[0][0].tokens, found[0][2].tokens, found[1][1].tokens, [2, 2, 3]]
    scored = score_replies(model, model.start(rows), config, build_processors(config, [contexts[r] for r in rows]),
                           replies)
    assert [h.tokens for h in scored[:3]] == replies[:3]
    assert [h.score for h in scored[:3]] == pytest.approx([found[0][0].score, found[0][2].score, found[1][1].score],
                                                          abs=1e-5)
    assert scored[3] is not None and scored[3].score == pytest.approx(
        recompute(model, 1, scored[3], config, contexts[1]), abs=1e-5)
    # a reply the search could not write is no candidate: "2 3 2 3" repeats the bigram (2, 3) that
    # no_repeat_ngram_size=2 forbids; eight tokens (no bigram twice) need more than max_new_tokens=7
    long = [2, 2, 3, 3, 4, 4, 2, 4]
    blocked = score_replies(model, model.start([0, 0]), config, build_processors(config, [contexts[0]] * 2),
                            [[2, 3, 2, 3], long])
    assert blocked == [None, None]
    roomy = cfg(**{**config.to_dict(), "max_new_tokens": 9, "bos_token_id": BOS, "eos_token_id": EOS})
    [fits] = score_replies(model, model.start([0]), roomy, build_processors(roomy, [contexts[0]]), [long])
    assert fits is not None and fits.tokens == long
