"""Taught answers: the agents' corrections a model was trained on, kept beside its weights so that serving
can tell which of the model's own candidate replies an agent taught for a question like the customer's.

The model proposes and scores; this memory only reorders. A search's n-best often holds the taught answer
a hair behind a neighbouring one (a K = 10 night's "Will my gift card run out?": the delivery answer at
-0.091 per token, the gift-card answer at -0.098), because the model learned each fact from a handful of
phrasings and leans on single words ("time", "cards"). Each candidate that is a taught answer gains
``weight * similarity``, the similarity being the closest of the questions it was taught for to the
customer's message (cosine of character n-gram tf-idf vectors, which sees "gift card" in "gift cards" and
works for Chinese without a segmenter). Taught answers the search did not reach are proposed for the model
to score (``chatbot.service.generator``), so the model still has to find them plausible in context.

Pure text computation (no torch: erasure in the store layer rewrites these files) and one small JSON file
(``taught.json`` in the model directory; every entry keeps its ``conversation_id`` so that erasure can
remove a customer's questions from it, see ``chatbot.store.files``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from chatbot.files import replace_private_text
from chatbot.text.tokenize import normalize

TAUGHT_FILE = "taught.json"
FORMAT = 1
NGRAMS = (2, 3, 4)
_NOT_WORD = re.compile(r"[^\w]+")


@dataclass(frozen=True)
class TaughtEntry:
    question: str  # the customer's side of the window the agent answered (customer_side)
    answer: str  # what the agent wrote
    language: str = "en"
    conversation_id: int | None = None  # erasure finds the customer's rows by it


@dataclass(frozen=True)
class Match:
    answer: str
    similarity: float  # in [0, 1]
    question: str  # the taught question closest to the customer's message


def _grams(text: str) -> Counter[str]:
    """Character n-grams of the casefolded words, spaces marking word edges: "gift cards" and "gift card"
    share most of theirs; a Chinese sentence is its own character n-grams."""
    words = _NOT_WORD.sub(" ", normalize(text).casefold()).strip()
    padded = f" {words} "
    return Counter(padded[i : i + n] for n in NGRAMS for i in range(len(padded) - n + 1))


def customer_side(turns: Sequence[tuple[str, str]]) -> str:
    """The customer's words of a conversation window, oldest first: what is compared with a taught question
    (which is itself the customer's side of the window the agent corrected). A question asked inside another
    task ("Find me an Italian restaurant ... Could you give me their phone number?") is then far from a taught
    opener ("Give me your phone number."), while a greeting before a taught question changes little."""
    return " ".join(text for role, text in turns if role == "customer")


def answer_key(text: str) -> str:
    """What two spellings of one answer share: the reply a model writes ("purchase .") against the one an
    agent typed ("purchase.")."""
    return _NOT_WORD.sub(" ", normalize(text).casefold()).strip()


class TaughtAnswers:
    """The questions agents answered, indexed for ``nearest``; ``idf`` over the entries' questions and the
    ``background`` questions given at build time (so "how do I" weighs little and "gift" much)."""

    def __init__(self, entries: Sequence[TaughtEntry], idf: dict[str, float], default_idf: float) -> None:
        self.entries = list(entries)
        self.idf, self.default_idf = idf, default_idf
        self._keys = [answer_key(e.answer) for e in self.entries]  # what a candidate reply is matched by
        # gram -> [(entry, weight)]: a message is compared with the questions sharing one of its n-grams only
        self._postings: dict[str, list[tuple[int, float]]] = {}
        for i, e in enumerate(self.entries):
            for gram, weight in self._vector(e.question).items():
                self._postings.setdefault(gram, []).append((i, weight))

    @classmethod
    def build(cls, entries: Iterable[TaughtEntry], background: Iterable[str] = ()) -> TaughtAnswers:
        """Latest wins: of entries with the same question (casefolded), the last one given is kept, so an
        answer an agent changed later replaces the old one."""
        by_question: dict[str, TaughtEntry] = {}
        for e in entries:
            if normalize(e.question) and normalize(e.answer):
                by_question.pop(answer_key(e.question), None)
                by_question[answer_key(e.question)] = e
        kept = list(by_question.values())
        documents = [set(_grams(e.question)) for e in kept] + [set(_grams(q)) for q in background]
        df: Counter[str] = Counter(g for doc in documents for g in doc)
        n = len(documents)
        own = {g for e in kept for g in _grams(e.question)}
        idf = {g: math.log((1 + n) / (1 + df[g])) + 1.0 for g in own}
        return cls(kept, idf, math.log(1 + n) + 1.0)

    def __len__(self) -> int:
        return len(self.entries)

    def _vector(self, text: str) -> dict[str, float]:
        counts = _grams(text)
        vector = {g: c * self.idf.get(g, self.default_idf) for g, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {g: v / norm for g, v in vector.items()}

    def matches(self, question: str, min_similarity: float = 0.0) -> dict[str, Match]:
        """Per taught answer (by ``answer_key``), its question closest to ``question``, if at least
        ``min_similarity`` (and above 0) similar."""
        if not self.entries or not normalize(question):
            return {}
        similarity: dict[int, float] = {}
        for gram, weight in self._vector(question).items():
            for i, other in self._postings.get(gram, ()):
                similarity[i] = similarity.get(i, 0.0) + weight * other
        best: dict[str, Match] = {}
        for i, value in similarity.items():
            entry, key = self.entries[i], self._keys[i]
            if value >= min_similarity and (key not in best or value > best[key].similarity):
                best[key] = Match(entry.answer, min(value, 1.0), entry.question)
        return best

    def nearest(self, question: str, limit: int = 3, min_similarity: float = 0.0) -> list[Match]:
        """The taught answers closest to ``question``, one per answer (its closest question), best first."""
        return sorted(self.matches(question, min_similarity).values(), key=lambda m: -m.similarity)[:limit]

    def without(self, conversation_ids: set[int]) -> TaughtAnswers:
        """Erasure: no entry of those conversations, and no n-gram in ``idf`` that only their questions had
        (the table would otherwise keep pieces of the customer's words)."""
        kept = [e for e in self.entries if e.conversation_id not in conversation_ids]
        grams = {g for e in kept for g in _grams(e.question)}
        return TaughtAnswers(kept, {g: v for g, v in self.idf.items() if g in grams}, self.default_idf)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "default_idf": self.default_idf, "idf": self.idf,
                "entries": [asdict(e) for e in self.entries]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaughtAnswers:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a taught-answers file of format {FORMAT}")
        entries = [TaughtEntry(str(e["question"]), str(e["answer"]), str(e.get("language", "en")),
                               e.get("conversation_id")) for e in data["entries"]]
        return cls(entries, {str(k): float(v) for k, v in data["idf"].items()}, float(data["default_idf"]))


def save_taught(taught: TaughtAnswers, model_dir: Path) -> Path:
    """Written atomically, owner-only: it quotes customers."""
    path = Path(model_dir) / TAUGHT_FILE
    replace_private_text(path, json.dumps(taught.to_dict(), ensure_ascii=False))
    return path


def load_taught(model_dir: Path) -> TaughtAnswers | None:
    """The model's taught answers; None when it has none. A damaged file is an error, not an empty memory:
    serving it silently without would undo what agents taught."""
    path = Path(model_dir) / TAUGHT_FILE
    if not path.is_file():
        return None
    try:
        return TaughtAnswers.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: damaged taught-answers file ({exc})") from None
