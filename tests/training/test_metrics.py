"""Metric correctness against reference implementations (rouge-score, nltk METEOR, sacrebleu)."""

from __future__ import annotations

import pytest

from training import metrics

SENTENCES = [
    ("the cat sat on the mat", "the cat was sitting on the mat"),
    ("your flight leaves at nine", "the flight to denver leaves at nine in the morning"),
    ("i booked a table for two", "i have booked a table for two people at the restaurant"),
    ("no match here", "completely different words"),
    ("running runs ran", "he runs while running"),
]


def _ws(text: str) -> list[str]:
    return text.lower().split()


def test_rouge_l_matches_rouge_score_package():
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    hyps, refs = [h for h, _ in SENTENCES], [r for _, r in SENTENCES]
    expected = sum(scorer.score(r, h)["rougeL"].fmeasure for h, r in SENTENCES) / len(SENTENCES)
    assert metrics.rouge_l(hyps, refs, tokenizer=_ws) == pytest.approx(expected, abs=1e-9)


def test_rouge_l_on_product_tokens_matches_rouge_score_on_plain_english():
    pytest.importorskip("chatbot.text.tokenize")
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"])
    for hyp, ref in SENTENCES:
        assert metrics.rouge_l([hyp], [ref]) == pytest.approx(scorer.score(ref, hyp)["rougeL"].fmeasure, abs=1e-9)


def test_rouge_l_counts_chinese_words():
    pytest.importorskip("chatbot.text.tokenize")
    score = metrics.rouge_l(["我想订一张去北京的机票"], ["我想订一张去上海的机票"])
    assert 0.3 < score < 1.0


def test_lcs_length():
    assert metrics.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4
    assert metrics.lcs_length([], ["a"]) == 0


def test_meteor_matches_nltk_without_synonyms():
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import single_meteor_score

    class NoSynonyms:  # WordNet is not shipped; exact + stem stages only
        def synsets(self, *args, **kwargs):
            return []

    for hyp, ref in SENTENCES:
        expected = single_meteor_score(_ws(ref), _ws(hyp), stemmer=PorterStemmer(), wordnet=NoSynonyms())
        assert metrics.meteor([hyp], [ref], tokenizer=_ws) == pytest.approx(expected, abs=1e-9), (hyp, ref)


def test_meteor_is_nltks_also_with_repeated_words():
    """Repeated words are where alignments differ (a hand-written greedy aligner disagreed with nltk on 132
    of 2,000 such pairs); the product's METEOR is nltk's, whatever the words."""
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import single_meteor_score

    class NoSynonyms:
        def synsets(self, *args, **kwargs):
            return []

    cases = [("the booked booking b c", "booked the booked"), ("booking booking booking c a", "booking booked a b")]
    for hyp, ref in cases:
        expected = single_meteor_score(_ws(ref), _ws(hyp), stemmer=PorterStemmer(), wordnet=NoSynonyms())
        assert metrics.meteor([hyp], [ref], tokenizer=_ws) == pytest.approx(expected, abs=1e-12), (hyp, ref)
    assert metrics.meteor([h for h, _ in cases], [r for _, r in cases], tokenizer=_ws) == pytest.approx(
        sum(single_meteor_score(_ws(r), _ws(h), stemmer=PorterStemmer(), wordnet=NoSynonyms()) for h, r in cases) / 2)


def test_meteor_stem_matching_scores_above_exact_only():
    stem_only = metrics.meteor(["booking flights"], ["booked flight"], tokenizer=_ws)
    assert stem_only > 0.0
    assert metrics.meteor(["zzz"], ["booked flight"], tokenizer=_ws) == 0.0


def test_bleu_and_chrf_follow_sacrebleu():
    import sacrebleu

    hyps, refs = [h for h, _ in SENTENCES], [r for _, r in SENTENCES]
    assert metrics.bleu(hyps, refs) == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert metrics.chrf(hyps, refs) == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert metrics.bleu(refs, refs) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="hypotheses"):
        metrics.bleu(hyps, refs[:-1])


def test_distinct_n():
    assert metrics.distinct_n(["a b a b"], 1, tokenizer=_ws) == pytest.approx(2 / 4)
    assert metrics.distinct_n(["a b a b"], 2, tokenizer=_ws) == pytest.approx(2 / 3)
    assert metrics.distinct_n(["a", "a"], 2, tokenizer=_ws) == 0.0


def test_entity_copy_recall_counts_only_values_in_context_and_reference():
    contexts = ["I want to fly to Denver on March 3rd", "Book Sushi Zen please"]
    references = ["Your flight to Denver on March 3rd is booked", "Sushi Zen is booked for 7 pm"]
    hypotheses = ["Flight to denver booked", "Sushi Zen is booked"]
    slots = [["Denver", "March 3rd", "United"], ["Sushi Zen", "7 pm"]]
    # copyable: Denver, March 3rd (United not in reference), Sushi Zen (7 pm not in context) -> 2 of 3
    assert metrics.entity_copy_recall(contexts, references, hypotheses, slots) == pytest.approx(2 / 3)
    assert metrics.entity_copy_recall(["x"], ["y"], ["z"], [["Denver"]]) is None


def test_perplexity():
    import math

    assert metrics.perplexity(10 * math.log(4), 10) == pytest.approx(4.0)
    assert metrics.perplexity(0.0, 0) is None


@pytest.mark.parametrize("reply, conversation, language, mixes", [
    ("你不是我you want me to什么?", "你想要什么？", "zh", True),  # the shipped model's drift
    ("They are located at 510-其他Park.", "Where is the park?", "en", True),
    ("Park 在哪里？", "Where is Park Street?", "zh", False),  # the word is in the conversation
    ("park 在哪里？", "Where is PARK Street?", "zh", False),  # compared case-insensitively
    ("ｉＰｈｏｎｅ 15 有货。", "我想买 iPhone", "zh", False),  # fullwidth letters are the same word
    ("iPhone 15 有货。", "我想买 iPad", "zh", True),  # a word, not a letter set: iPad does not allow iPhone
    ("Café 在这里", "Is there a cafe?", "zh", True),  # accented letters are Latin too
    ("请发邮件到 <EMAIL>，订单 42 号。", "我的订单", "zh", False),  # placeholders, digits, punctuation
    ("Your order 其他 is here", "订单 其他", "en", False),  # the CJK characters are in the conversation
    ("Your order 其 is here", "订单 其他", "de", False),  # characters, not words, for Latin languages
    ("Your order 他们 is here", "订单 其他", "fr", True),  # 们 is not in the conversation
    ("Bitte「warten」Sie。", "Hallo", "de", False),  # CJK punctuation is neutral
    ("はい, sure", "hello", "es", True),  # kana are CJK
    ("Hello 你好", "hi", "xx", False),  # a language without a constraint never mixes
])
def test_mixes_scripts(reply, conversation, language, mixes):
    assert metrics.mixes_scripts(reply, conversation, language) is mixes


def test_mixing_rate_is_reported_per_example_language():
    scored = metrics.Scored(["你好", "hello", "hello"], ["好的", "hi", "ok"], ["你好 ok", "hi 好", "hello there"],
                            [[], [], []])
    # zh: "ok" is foreign; en: "好" is foreign; en: no CJK at all
    assert metrics.mixing_rate(scored.hypotheses, scored.contexts, ["zh", "en", "en"]) == pytest.approx(2 / 3)
    assert metrics.text_metrics(scored, language="en")["mixing_rate"] == pytest.approx(1 / 3)  # 你好 is in row 0
    scored.languages = ["zh", "en", "en"]
    assert metrics.text_metrics(scored, language="en")["mixing_rate"] == pytest.approx(2 / 3)
    scored.languages = ["zh", "zh", "zh"]
    assert metrics.text_metrics(scored)["mixing_rate"] == 1.0  # "hi", "there" are not in the conversation
    assert metrics.mixing_rate([], [], []) == 0.0
    with pytest.raises(ValueError):
        metrics.mixing_rate(["a"], [], ["en"])
