"""ReplyGenerator and int8 serving with a real tiny Seq2Seq that knows three replies by heart."""

from __future__ import annotations

import math

import pytest
import torch

from chatbot.generation import GenerationConfig
from chatbot.generation.quantize import is_quantized, quantize_int8
from chatbot.model.checkpoint import save_checkpoint
from chatbot.service.generator import ReplyGenerator
from chatbot.settings import load_settings
from chatbot.text.tokenize import tokenize


def config_for(vocab, **kw) -> GenerationConfig:
    base = {"bos_token_id": vocab.bos_id, "eos_token_id": vocab.eos_id, "num_beams": 3, "num_return_sequences": 3,
            "max_new_tokens": 15, "repetition_penalty": 1.2, "no_repeat_ngram_size": 0}
    return GenerationConfig(**{**base, **kw})


def test_one_batched_call_writes_every_learned_reply(trained):
    config = config_for(trained.vocab)
    generator = ReplyGenerator(trained.model, trained.vocab, config)
    replies = generator.generate([turns for turns, _ in trained.pairs])
    assert [r.text for r in replies] == [reply for _, reply in trained.pairs]
    for reply in replies:
        assert reply.language == "en" and reply.decoding == config.to_dict()
        assert 0.5 < reply.confidence <= 1.0
        assert reply.candidates[0].text == reply.text and len(reply.candidates) == 3
        scores = [score for _, score in reply.candidates]
        assert scores == sorted(scores, reverse=True)


def test_token_logprob_is_the_score_without_the_length_penalty(trained):
    """A short and a long reply the model is equally sure of get the same per-token figure, which the
    hand-off threshold compares, though the length penalty scores them apart."""
    generator = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab, length_penalty=1.5))
    replies = generator.generate([turns for turns, _ in trained.pairs])
    for reply in replies:
        n = len(tokenize(reply.text, "en")) + 1  # its words and EOS, each scored
        assert reply.token_logprob == pytest.approx(reply.candidates[0].score * n**1.5 / n, rel=1e-5)
        assert reply.token_logprob != pytest.approx(reply.candidates[0].score, rel=1e-3)
        # confidence is the same per-token probability, shrunk only for a close runner-up
        assert 0.5 * math.exp(reply.token_logprob) - 1e-6 <= reply.confidence <= math.exp(reply.token_logprob) + 1e-6


def test_each_conversation_gets_the_reply_it_would_get_alone(trained):
    generator = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab))
    together = generator.generate([turns for turns, _ in trained.pairs])
    for (turns, _), reply in zip(trained.pairs, together):
        [alone] = generator.generate([turns])
        assert [c.text for c in alone.candidates] == [c.text for c in reply.candidates]
        assert [c.score for c in alone.candidates] == pytest.approx([c.score for c in reply.candidates], abs=1e-4)


def test_attention_is_a_heatmap_of_reply_tokens_over_context_tokens(trained):
    generator = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab))
    turns, text = trained.pairs[2]
    [reply] = generator.generate([turns])
    attention = reply.attention
    assert attention["target_tokens"] == tokenize(text, "en")
    assert attention["source_tokens"][:2] == ["<lang:en>", "<customer>"]
    assert len(attention["weights"]) == len(attention["target_tokens"])
    for row in attention["weights"]:
        assert len(row) == len(attention["source_tokens"]) and sum(row) == pytest.approx(1.0, abs=1e-3)
    assert generator.generate([turns], return_attention=False)[0].attention is None


def test_customer_words_are_not_parroted_when_ngram_blocking_is_on(trained):
    turns, learned = trained.pairs[1]
    free = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab))
    assert free.generate([turns])[0].text == learned  # copies "want a refund" from the customer
    blocked = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab, encoder_no_repeat_ngram_size=3))
    text = blocked.generate([turns])[0].text
    assert "want a refund" not in text and text


def test_greedy_and_sampling_configs_go_through_the_same_generator(trained):
    turns = [t for t, _ in trained.pairs]
    greedy = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab, num_beams=1, num_return_sequences=1))
    assert [r.text for r in greedy.generate(turns)] == [reply for _, reply in trained.pairs]
    sampler = ReplyGenerator(trained.model, trained.vocab,
                             config_for(trained.vocab, num_beams=1, num_return_sequences=2, do_sample=True, top_k=1))
    replies = sampler.generate(turns, generator=torch.Generator().manual_seed(0))
    assert [r.text for r in replies] == [reply for _, reply in trained.pairs]


def test_bad_input_is_refused_before_any_work(trained):
    generator = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab))
    assert generator.generate([]) == []
    with pytest.raises(ValueError, match="context 1 has no turns"):
        generator.generate([[("customer", "hello")], []])
    with pytest.raises(ValueError, match="context 0: unknown role"):
        generator.generate([[("robot", "hello")]])
    with pytest.raises(ValueError, match="not served"):
        generator.generate([[("customer", "hello")]], language="xx")
    with pytest.raises(ValueError, match="do not match the vocabulary"):
        ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab).replace(eos_token_id=5))


def test_int8_copy_keeps_the_replies_and_leaves_the_float_model_alone(trained):
    before = {k: v.clone() for k, v in trained.model.state_dict().items()}
    int8 = quantize_int8(trained.model)
    assert is_quantized(int8) and not is_quantized(trained.model)
    after = trained.model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    config = config_for(trained.vocab)
    expected = ReplyGenerator(trained.model, trained.vocab, config).generate([t for t, _ in trained.pairs])
    replies = ReplyGenerator(int8, trained.vocab, config).generate([t for t, _ in trained.pairs])
    assert [r.text for r in replies] == [r.text for r in expected]
    for q, f in zip(replies, expected):
        assert q.candidates[0].score == pytest.approx(f.candidates[0].score, abs=0.05)


def test_from_checkpoint_serves_float_and_int8_with_settings_and_overrides(trained, tmp_path):
    directory = save_checkpoint(tmp_path / "model", trained.model, trained.vocab,
                                decoding={"num_beams": 2, "max_new_tokens": 15, "repetition_penalty": 1.2})
    plain = ReplyGenerator.from_checkpoint(directory)
    assert plain.config.num_beams == 2 and plain.loaded is not None and plain.loaded.directory == directory
    settings = load_settings(data_dir=tmp_path, num_beams=4, num_return_sequences=2, max_new_tokens=15,
                             no_repeat_ngram_size=0)
    served = ReplyGenerator.from_checkpoint(directory, settings=settings, int8=True, num_beams=1)
    assert is_quantized(served.model)
    assert (served.config.num_beams, served.config.num_return_sequences) == (1, 1)
    turns = [t for t, _ in trained.pairs]
    expected = [reply for _, reply in trained.pairs]
    assert [r.text for r in plain.generate(turns)] == expected
    assert [r.text for r in served.generate(turns)] == expected


def taught_generator(trained, entries, weight=10.0, **kw):
    from chatbot.text.taught import TaughtAnswers

    return ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab), taught=TaughtAnswers.build(entries),
                          taught_weight=weight, **kw)


def test_a_taught_answer_the_search_missed_is_scored_by_the_model_and_preferred(trained):
    """An agent taught "your booking is cancelled." for "where is my order": the search does not write it
    (the model knows "it ships today."), so the model scores it as the search would and the taught
    question's similarity (1.0) lifts it first; the candidates keep the model's own scores."""
    from chatbot.text.taught import TaughtEntry

    turns = [("customer", "where is my order")]
    plain = ReplyGenerator(trained.model, trained.vocab, config_for(trained.vocab)).generate([turns])[0]
    assert plain.text == "it ships today." and plain.taught is None
    assert "your booking is cancelled." not in [c.text for c in plain.candidates]

    generator = taught_generator(trained, [TaughtEntry("where is my order", "your booking is cancelled.")])
    [reply] = generator.generate([turns])
    assert reply.text == "your booking is cancelled."
    assert reply.taught == {"question": "where is my order", "similarity": 1.0, "bonus": 10.0}
    taught_score = reply.candidates[0].score
    assert math.isfinite(taught_score) and taught_score < plain.candidates[0].score  # the model's, no bonus in it
    assert reply.candidates[1:] == plain.candidates[:2]  # still num_return_sequences long
    assert reply.attention is not None and reply.attention["target_tokens"] == ["your", "booking", "is", "cancelled", "."]  # its own tokens' attention
    assert reply.token_logprob < plain.token_logprob

    # a small weight cannot outvote a model that is sure of its reply
    assert taught_generator(trained, [TaughtEntry("where is my order", "your booking is cancelled.")],
                            weight=0.01).generate([turns])[0].text == "it ships today."


def test_taught_answers_leave_unrelated_and_unwritable_questions_alone(trained):
    from chatbot.text.taught import TaughtEntry

    generator = taught_generator(trained, [TaughtEntry("where is my order", "your booking is cancelled."),
                                           TaughtEntry("i want a refund", "refunds take zzyzx days.")])
    contexts = [turns for turns, _ in trained.pairs]
    replies = generator.generate(contexts)
    # "where is my order" is taught; the refund answer holds a word the model cannot write ("zzyzx" is not in
    # its vocabulary or the customer's words), so it is no candidate; "cancel my booking" is like nothing taught
    assert [r.text for r in replies] == ["your booking is cancelled.", "you want a refund, it is on its way.",
                                         "your booking is cancelled."]
    assert replies[1].taught is None and replies[2].taught is None
    # each conversation still gets the reply it would get alone
    for turns, reply in zip(contexts, replies):
        [alone] = generator.generate([turns])
        assert alone.text == reply.text and alone.taught == reply.taught
    off = taught_generator(trained, [TaughtEntry("where is my order", "your booking is cancelled.")], weight=0.0)
    assert off.taught is None and off.generate(contexts[:1])[0].text == "it ships today."


def test_from_checkpoint_reads_the_taught_answers_beside_the_weights(trained, tmp_path):
    from chatbot.text.taught import TAUGHT_FILE, TaughtAnswers, TaughtEntry, save_taught

    directory = save_checkpoint(tmp_path / "model", trained.model, trained.vocab, decoding={"max_new_tokens": 15})
    save_taught(TaughtAnswers.build([TaughtEntry("where is my order", "your booking is cancelled.")]), directory)
    settings = load_settings(data_dir=tmp_path, num_beams=3, max_new_tokens=15, no_repeat_ngram_size=0,
                             taught_weight=10)
    turns = [[("customer", "where is my order")]]
    assert ReplyGenerator.from_checkpoint(directory, settings=settings).generate(turns)[0].text == \
        "your booking is cancelled."
    off = load_settings(data_dir=tmp_path, num_beams=3, max_new_tokens=15, no_repeat_ngram_size=0, taught_weight=0)
    assert ReplyGenerator.from_checkpoint(directory, settings=off).generate(turns)[0].text == "it ships today."
    (directory / TAUGHT_FILE).write_text("{broken", encoding="utf-8")
    with pytest.raises(ValueError, match="damaged taught-answers file"):
        ReplyGenerator.from_checkpoint(directory, settings=settings)
