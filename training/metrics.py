"""Reply-quality metrics: BLEU, chrF, ROUGE-L, METEOR, distinct-n, entity-copy recall and script mixing.

Pure functions over strings so evaluation, the promotion gate, distillation and the retrieval baseline
all score replies the same way. ROUGE-L and distinct-n count the product's own tokens (so Chinese is
split into words, not characters or whole sentences); BLEU and chrF follow sacrebleu for comparability
with published numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Tokenizer = Callable[[str], list[str]]


def _product_tokens(text: str) -> list[str]:
    """Lower-cased product tokens; the language is detected per text (Chinese is split into words)."""
    from chatbot.text.tokenize import detect_language, tokenize

    return [t.lower() for t in tokenize(text, detect_language(text))]


# --- sacrebleu ------------------------------------------------------------------------------------

def bleu(hypotheses: Sequence[str], references: Sequence[str], language: str = "en") -> float:
    """Corpus BLEU (0-100); Chinese uses sacrebleu's ``zh`` tokenizer."""
    import sacrebleu

    _check_lengths(hypotheses, references)
    tokenize = "zh" if language == "zh" else "13a"
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)], tokenize=tokenize).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus chrF (0-100)."""
    import sacrebleu

    _check_lengths(hypotheses, references)
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


# --- ROUGE-L -------------------------------------------------------------------------------------

def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence length, O(len(a) * len(b)) time, O(len(b)) memory."""
    if not a or not b:
        return 0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0] * (len(b) + 1)
        for j, y in enumerate(b, 1):
            cur[j] = prev[j - 1] + 1 if x == y else max(prev[j], cur[j - 1])
        prev = cur
    return prev[-1]


def rouge_l_pair(hypothesis: Sequence[str], reference: Sequence[str]) -> float:
    """ROUGE-L F-measure (beta = 1, as in Google's ``rouge-score``) of two token lists."""
    lcs = lcs_length(reference, hypothesis)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hypothesis), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def rouge_l(hypotheses: Sequence[str], references: Sequence[str], tokenizer: Tokenizer | None = None) -> float:
    """Mean sentence-level ROUGE-L F-measure (0-1) on product tokens."""
    _check_lengths(hypotheses, references)
    tok = tokenizer or _product_tokens
    if not hypotheses:
        return 0.0
    return sum(rouge_l_pair(tok(h), tok(r)) for h, r in zip(hypotheses, references)) / len(hypotheses)


# --- METEOR (nltk: exact + stem stages) -----------------------------------------------------------

class _NoSynonyms:
    """Stands in for WordNet, which is data to download (not shipped, never fetched): nltk's METEOR then
    runs its exact and Porter-stem stages only."""

    def synsets(self, *args: object, **kwargs: object) -> list[object]:
        return []


def meteor(hypotheses: Sequence[str], references: Sequence[str], tokenizer: Tokenizer | None = None) -> float:
    """Mean sentence METEOR (0-1), nltk's implementation (Lavie & Agarwal 2007 parameters) with exact and
    Porter-stem matching; no synonym stage (WordNet is not shipped). Tokens come lower-cased from
    ``tokenizer``. Each word is stemmed once per call (nltk stems every word of every pair again)."""
    from nltk.stem.porter import PorterStemmer
    from nltk.translate.meteor_score import single_meteor_score

    _check_lengths(hypotheses, references)
    if not hypotheses:
        return 0.0
    tok = tokenizer or _product_tokens

    class CachedStemmer(PorterStemmer):
        def __init__(self) -> None:
            super().__init__()
            self.cache: dict[str, str] = {}

        def stem(self, word: str, to_lowercase: bool = True) -> str:
            if word not in self.cache:
                self.cache[word] = super().stem(word, to_lowercase)
            return self.cache[word]

    stemmer, synonyms = CachedStemmer(), _NoSynonyms()
    return sum(single_meteor_score(tok(r), tok(h), stemmer=stemmer, wordnet=synonyms)  # type: ignore[arg-type]
               for h, r in zip(hypotheses, references)) / len(hypotheses)


# --- diversity -----------------------------------------------------------------------------------

def distinct_n(hypotheses: Sequence[str], n: int, tokenizer: Tokenizer | None = None) -> float:
    """Distinct n-grams over all n-grams of all replies (Li et al., 2016); low means generic replies."""
    tok = tokenizer or _product_tokens
    total, seen = 0, set()
    for h in hypotheses:
        tokens = tok(h)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


# --- entity copying ------------------------------------------------------------------------------

def copyable_entities(context: str, reference: str, slot_values: Sequence[str]) -> list[str]:
    """Slot values that the reference reply uses and the context already contains (so a reply can copy them)."""
    ctx, ref = context.lower(), reference.lower()
    out: list[str] = []
    for value in slot_values:
        v = value.strip().lower()
        if v and v in ref and v in ctx and v not in out:
            out.append(v)
    return out


def entity_copy_counts(context: str, reference: str, hypothesis: str, slot_values: Sequence[str]) -> tuple[int, int]:
    """(copied, copyable) for one example."""
    wanted = copyable_entities(context, reference, slot_values)
    hyp = hypothesis.lower()
    return sum(1 for v in wanted if v in hyp), len(wanted)


def entity_copy_recall(
    contexts: Sequence[str], references: Sequence[str], hypotheses: Sequence[str], slot_values: Sequence[Sequence[str]]
) -> float | None:
    """Micro-averaged fraction of copyable slot values the replies contain; None when nothing was copyable."""
    _check_lengths(hypotheses, references)
    copied = copyable = 0
    for c, r, h, s in zip(contexts, references, hypotheses, slot_values):
        a, b = entity_copy_counts(c, r, h, s)
        copied += a
        copyable += b
    return copied / copyable if copyable else None


# --- script mixing -------------------------------------------------------------------------------

def mixes_scripts(reply: str, conversation: str, language: str) -> bool:
    """Whether ``reply`` mixes scripts: for Chinese a Latin-script word, for a Latin-script language a CJK
    character, that ``conversation`` does not hold (words compared case-insensitively). Digits,
    punctuation and placeholders are neutral; other languages never mix. Same definition as the decoding
    constraint (``chatbot.text.scripts``), so a constrained model scores 0."""
    from chatbot.text.scripts import foreign_words

    allowed = {w.casefold() for w in foreign_words(conversation, language)}
    return any(w.casefold() not in allowed for w in foreign_words(reply, language))


def mixing_rate(hypotheses: Sequence[str], contexts: Sequence[str], languages: Sequence[str]) -> float:
    """Share of replies that mix scripts (see :func:`mixes_scripts`); 0 without replies."""
    if not len(hypotheses) == len(contexts) == len(languages):
        raise ValueError(f"{len(hypotheses)} hypotheses, {len(contexts)} contexts, {len(languages)} languages")
    if not hypotheses:
        return 0.0
    return sum(mixes_scripts(h, c, l) for h, c, l in zip(hypotheses, contexts, languages)) / len(hypotheses)


# --- all together --------------------------------------------------------------------------------

@dataclass
class Scored:
    """Inputs of a metric report; one entry per evaluated example."""

    contexts: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    hypotheses: list[str] = field(default_factory=list)
    slot_values: list[list[str]] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)  # per example; empty: text_metrics' ``language`` for all


def text_metrics(scored: Scored, language: str = "en") -> dict[str, float | int | None]:
    """Every generation metric of the eval report except perplexity (which needs the model)."""
    hyps, refs = scored.hypotheses, scored.references
    n = len(hyps)
    lengths = [len(_product_tokens(h)) for h in hyps]
    languages = scored.languages or [language] * n
    return {
        "bleu": bleu(hyps, refs, language) if n else 0.0,
        "chrf": chrf(hyps, refs) if n else 0.0,
        "rouge_l": rouge_l(hyps, refs),
        "meteor": meteor(hyps, refs),
        "distinct_1": distinct_n(hyps, 1),
        "distinct_2": distinct_n(hyps, 2),
        "entity_copy_recall": entity_copy_recall(scored.contexts, refs, hyps, scored.slot_values),
        "mixing_rate": mixing_rate(hyps, scored.contexts, languages) if scored.contexts or not n else None,
        "n": n,
        "avg_len": sum(lengths) / n if n else 0.0,
    }


def perplexity(total_nll: float, total_tokens: int) -> float | None:
    """exp(mean token negative log-likelihood), capped to stay JSON-serialisable; None without tokens."""
    if total_tokens == 0:
        return None
    return math.exp(min(total_nll / total_tokens, 50.0))


def _check_lengths(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
