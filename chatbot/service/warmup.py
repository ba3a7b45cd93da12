"""Warm a freshly loaded model on a few representative requests before it takes traffic.

The first decode of a new model pays for everything that is loaded or built lazily on first use: the
language's tokenizer (jieba's dictionary for Chinese, a spaCy tokenizer per language), the int8 kernels,
torch's first dispatch of each operator and batch shape. In a fresh decoder process that is seconds (1.5 s for
the first English reply and 1.1 s for the first Chinese one on an idle core; 6-13 s were seen on a busy server),
and after a hot switch it fell on the first customers the new model answered. ``warm_up`` decodes, in every
language the model serves, one conversation alone and a small batch of them, so both the batch-of-one path
and the batched path have run once before the worker makes the model live. The old model serves meanwhile.

A warm-up decode that fails is recorded and logged, never raised: a model that cannot answer one language
(Chinese without the optional ``jieba``) must still serve the others, as it did before warm-up existed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Turn = tuple[str, str]

# One opening request and a few multi-turn ones per language: short and long contexts, digits, a name.
CONTEXTS: dict[str, list[list[Turn]]] = {
    "en": [
        [("customer", "hi, i would like to book a table for two tonight at 7 pm")],
        [("customer", "where is my order?"), ("agent", "could you give me your order number, please?"),
         ("customer", "it is 3348917502, i ordered it last monday")],
        [("customer", "i need to return a pair of jeans, they are the wrong size")],
        [("customer", "can you find me a flight to boston on friday?"), ("agent", "sure, where are you flying from?"),
         ("customer", "from san francisco, in the morning if possible")],
    ],
    "zh": [
        [("customer", "你好，我想订一张明天去北京的火车票")],
        [("customer", "我的订单还没到"), ("agent", "请提供您的订单号"), ("customer", "订单号是3348917502，上周一下的单")],
        [("customer", "请帮我找一家附近的川菜馆，四个人")],
        [("customer", "我想退货"), ("agent", "请问是什么原因呢？"), ("customer", "尺码不合适，太小了")],
    ],
    "de": [[("customer", "hallo, ich möchte einen tisch für zwei personen heute abend reservieren")],
           [("customer", "wo ist meine bestellung?"), ("agent", "wie lautet ihre bestellnummer?"),
            ("customer", "3348917502")]],
    "es": [[("customer", "hola, quiero reservar una mesa para dos esta noche")],
           [("customer", "¿dónde está mi pedido?"), ("agent", "¿cuál es su número de pedido?"),
            ("customer", "3348917502")]],
    "fr": [[("customer", "bonjour, je voudrais réserver une table pour deux ce soir")],
           [("customer", "où est ma commande ?"), ("agent", "quel est votre numéro de commande ?"),
            ("customer", "3348917502")]],
}
DEFAULT_LANGUAGES = ("en", "zh")  # a generator that does not say which languages it serves
BATCH_SIZES = (1, 4)


@dataclass
class WarmUp:
    """What a warm-up did: ``decodes`` generate calls (``replies`` conversations) in ``languages``."""

    decodes: int = 0
    replies: int = 0
    languages: tuple[str, ...] = ()
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"decodes": self.decodes, "replies": self.replies, "languages": list(self.languages),
                "seconds": round(self.seconds, 3), "errors": list(self.errors)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WarmUp:
        return cls(int(data["decodes"]), int(data["replies"]), tuple(data["languages"]), float(data["seconds"]),
                   list(data.get("errors") or []))

    @classmethod
    def total(cls, parts: Sequence[WarmUp]) -> WarmUp:
        """Several decoder processes warmed side by side: their decodes add up, the time is the longest."""
        languages = tuple(dict.fromkeys(lang for p in parts for lang in p.languages))
        return cls(sum(p.decodes for p in parts), sum(p.replies for p in parts), languages,
                   max((p.seconds for p in parts), default=0.0), [e for p in parts for e in p.errors])


def contexts_for(language: str, batch_size: int) -> list[list[Turn]]:
    """``batch_size`` representative conversations in ``language`` (English ones for a language without any)."""
    pool = CONTEXTS.get(language) or CONTEXTS["en"]
    return [pool[i % len(pool)] for i in range(batch_size)]


def warm_up(generator: Any, languages: Sequence[str] | None = None,
            batch_sizes: Sequence[int] = BATCH_SIZES) -> WarmUp:
    """Decode representative requests on ``generator`` so its first real ones are not the slow ones.

    A generator that warms itself (a decoder-process pool warms each child before it reports ready) exposes
    its report as ``warmed``; it is returned as it is, without decoding again.
    """
    done = getattr(generator, "warmed", None)
    if isinstance(done, WarmUp):
        return done
    langs = tuple(languages or getattr(generator, "languages", None) or DEFAULT_LANGUAGES)
    report = WarmUp(languages=langs)
    start = time.perf_counter()
    for language in langs:
        for size in batch_sizes:
            try:
                generator.generate(contexts_for(language, size), language=language)
            except Exception as exc:  # noqa: BLE001 - recorded; the model still serves its other languages
                report.errors.append(f"{language} x{size}: {type(exc).__name__}: {exc}")
                log.warning("warm-up decode failed (%s, batch of %d): %s", language, size, exc)
                continue
            report.decodes += 1
            report.replies += size
    report.seconds = time.perf_counter() - start
    return report
