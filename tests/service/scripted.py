"""A stand-in for the model behind the worker's ``Generator`` interface, for exact scores and held decodes."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Reply:
    text: str
    language: str | None
    confidence: float
    candidates: list[tuple[str, float]]
    attention: Any
    decoding: dict[str, Any]
    token_logprob: float = 0.0
    taught: dict[str, Any] | None = None


@dataclass
class ScriptedReplies:
    """Answers "re: <last customer text>" with the given best score; can hold decodes behind a gate.

    ``scripts`` maps a customer text to the exact n-best ``(text, score)`` list to answer it with, best first
    (the grounding tests need candidates that state particular details at particular scores).
    """

    score: float = -0.5
    runner_up: float = -2.0
    token_logprob: float = -0.8  # the best reply's mean log-prob per token
    gate: threading.Event = field(default_factory=lambda: _open_event())
    started: threading.Event = field(default_factory=threading.Event)
    batch_sizes: list[int] = field(default_factory=list)
    languages: list[str | None] = field(default_factory=list)  # the language of every decoded batch
    scripts: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    taught: dict[str, dict[str, Any]] = field(default_factory=dict)  # customer text -> Reply.taught

    def generate(self, contexts: list[list[tuple[str, str]]], language: str | None = None) -> list[Reply]:
        self.batch_sizes.append(len(contexts))
        self.languages.append(language)
        self.started.set()
        assert self.gate.wait(10), "test gate never opened"
        out = []
        for context in contexts:
            text = f"re: {context[-1][1]}"
            candidates = [(text, self.score), ("other", self.runner_up)]
            if context[-1][1] in self.scripts:
                candidates = list(self.scripts[context[-1][1]])
                text = candidates[0][0]
            out.append(Reply(text, language, self.score, candidates,
                             {"source": [t for _, turn in context for t in turn.split()], "target": text.split(),
                              "weights": [[0.5] * sum(len(turn.split()) for _, turn in context)] * len(text.split())},
                             {"num_beams": 2}, token_logprob=self.token_logprob, taught=self.taught.get(context[-1][1])))
        return out


def _open_event() -> threading.Event:
    event = threading.Event()
    event.set()
    return event
