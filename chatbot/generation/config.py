"""Decoding settings with Hugging Face names and meanings, checked once at construction.

Validating here means a bad value from a settings file or an agent's request fails with a clear message
before any model work starts, instead of producing silent garbage mid-search.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatbot.settings import Settings


@dataclass(frozen=True, kw_only=True)
class GenerationConfig:
    """How to decode a reply; field names and meanings follow ``transformers.GenerationConfig``.

    ``early_stopping`` (beam search): ``False`` stops a batch row once no live beam, ended now, would beat
    the kept hypotheses (HF's default heuristic); ``"never"`` uses the exact bound over every length up
    to ``max_new_tokens`` (slower with ``length_penalty > 0``); ``True`` stops at ``num_beams`` ended ones.

    ``encoder_no_repeat_ngram_size`` blocks n-grams of the customer's own words (anti-parroting). Keep it
    well above the length of a name or a time: a task bot must repeat "Blue Bottle in San Jose at 7 pm"
    to confirm a booking, and a block of 3 measurably cut entity copying on SGD dev.

    ``copy_bonus`` is added to the log-probability of the customer's detail words (``CopyBonus``): the
    opposite push, so a confirmation repeats the time and name the customer gave.

    ``script_constraint`` keeps a reply in its language's script: a Chinese reply writes no Latin-script word
    and a Latin-script one no CJK character that the conversation does not hold (``ReplyGenerator`` applies
    it, since it needs the vocabulary). Switch it off only to measure what it prevents.

    ``bos_token_id`` / ``eos_token_id`` have no defaults: they belong to a vocabulary, and a guessed id
    would decode silently wrong.
    """

    bos_token_id: int
    eos_token_id: int
    num_beams: int = 5
    max_new_tokens: int = 40
    min_new_tokens: int = 0
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    encoder_no_repeat_ngram_size: int = 0
    copy_bonus: float = 0.0
    script_constraint: bool = True
    length_penalty: float = 1.0
    early_stopping: bool | str = False
    num_return_sequences: int = 1
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0

    def __post_init__(self) -> None:
        problems = list(_problems(self))
        if problems:
            raise ValueError("invalid GenerationConfig: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> GenerationConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


#: Settings fields that are GenerationConfig fields of the same name: the serving decoding. Written once,
#: here; ``config_from_settings`` and the training run's recorded decoding both read it.
SETTINGS_DECODING: tuple[str, ...] = (
    "num_beams", "max_new_tokens", "repetition_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "copy_bonus", "script_constraint", "length_penalty", "num_return_sequences",
)
#: Of those, what a checkpoint records as the decoding it was trained for (``training.train.decoding_of``):
#: how many alternatives a caller wants and the script switch belong to the caller, not to the model.
RECORDED_DECODING: tuple[str, ...] = (
    "num_beams", "max_new_tokens", "repetition_penalty", "no_repeat_ngram_size", "encoder_no_repeat_ngram_size",
    "length_penalty",
)
#: Fields a settings file, a checkpoint or a caller may set; the token ids belong to the vocabulary.
SETTABLE: frozenset[str] = frozenset(f.name for f in dataclasses.fields(GenerationConfig)) - {"bos_token_id",
                                                                                              "eos_token_id"}


def settings_decoding(settings: Settings, keys: tuple[str, ...] = SETTINGS_DECODING) -> dict[str, Any]:
    """The decoding fields of ``settings`` (all of ``SETTINGS_DECODING`` unless ``keys`` says fewer)."""
    return {k: getattr(settings, k) for k in keys}


def check_decoding(decoding: dict[str, Any]) -> dict[str, Any]:
    """``decoding`` unchanged when every key is settable and the values make a valid config, else ValueError;
    for values checked long before a vocabulary exists (a training recipe)."""
    unknown = sorted(set(decoding) - SETTABLE)
    if unknown:
        raise ValueError(f"unknown decoding settings: {', '.join(unknown)}")
    GenerationConfig(bos_token_id=1, eos_token_id=2, **decoding)
    return decoding


def resolve_config(base: dict[str, Any], *, bos_token_id: int, eos_token_id: int,
                   **overrides: Any) -> GenerationConfig:
    """The one place decoding settings are merged: ``base`` (the settings' or a checkpoint's recorded
    decoding; keys GenerationConfig does not know are ignored), then ``overrides`` (a caller's, e.g.
    ``chatbot reply --num-beams``).

    ``num_return_sequences`` from ``base`` is a wish, cut to the beams there are (settings ask for 3
    alternatives and may decode with fewer beams); an override that lowers ``num_beams`` cuts it again.
    An explicit ``num_return_sequences`` override is taken as given and validated.
    """
    fields = {k: v for k, v in base.items() if k in SETTABLE}
    default_beams = GenerationConfig.__dataclass_fields__["num_beams"].default
    if not fields.get("do_sample", False):
        fields["num_return_sequences"] = min(fields.get("num_return_sequences", 1),
                                             fields.get("num_beams", default_beams))
    if overrides:
        overrides.setdefault("num_return_sequences", min(fields.get("num_return_sequences", 1),
                                                         overrides.get("num_beams", fields.get("num_beams",
                                                                                               default_beams))))
    return GenerationConfig(**{**fields, **overrides}, bos_token_id=bos_token_id, eos_token_id=eos_token_id)


def config_from_settings(settings: Settings, *, bos_token_id: int, eos_token_id: int,
                         **overrides: Any) -> GenerationConfig:
    """The serving decode config: the product settings plus the ids of the loaded vocabulary (and a
    caller's ``overrides``, see ``resolve_config``)."""
    return resolve_config(settings_decoding(settings), bos_token_id=bos_token_id, eos_token_id=eos_token_id,
                          **overrides)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _problems(c: GenerationConfig):
    for name in ("bos_token_id", "eos_token_id"):
        value = getattr(c, name)
        if not _is_int(value) or value < 0:
            yield f"{name} must be a non-negative int, got {value!r}"
    for name, low in (("num_beams", 1), ("max_new_tokens", 1), ("num_return_sequences", 1),
                      ("min_new_tokens", 0), ("no_repeat_ngram_size", 0),
                      ("encoder_no_repeat_ngram_size", 0), ("top_k", 0)):
        value = getattr(c, name)
        if not _is_int(value) or value < low:
            yield f"{name} must be an int >= {low}, got {value!r}"
    for name in ("repetition_penalty", "temperature"):
        value = getattr(c, name)
        if not _is_number(value) or value <= 0:
            yield f"{name} must be a finite number > 0, got {value!r}"
    if not _is_number(c.top_p) or not 0 < c.top_p <= 1:
        yield f"top_p must be in (0, 1], got {c.top_p!r}"
    if not _is_number(c.copy_bonus) or c.copy_bonus < 0:
        yield f"copy_bonus must be a finite number >= 0, got {c.copy_bonus!r}"
    if not _is_number(c.length_penalty):
        yield f"length_penalty must be a finite number, got {c.length_penalty!r}"
    if not (isinstance(c.early_stopping, bool) or c.early_stopping == "never"):
        yield f"early_stopping must be True, False or 'never', got {c.early_stopping!r}"
    for name in ("do_sample", "script_constraint"):
        if not isinstance(getattr(c, name), bool):
            yield f"{name} must be a bool, got {getattr(c, name)!r}"
    if _is_int(c.min_new_tokens) and _is_int(c.max_new_tokens) and c.min_new_tokens > c.max_new_tokens:
        yield f"min_new_tokens ({c.min_new_tokens}) exceeds max_new_tokens ({c.max_new_tokens})"
    if c.do_sample is True and c.num_beams != 1:
        yield "do_sample with num_beams > 1 (beam sampling) is not supported; use num_beams=1"
    if (c.do_sample is False and _is_int(c.num_beams) and _is_int(c.num_return_sequences)
            and c.num_return_sequences > c.num_beams):
        yield (f"num_return_sequences ({c.num_return_sequences}) cannot exceed num_beams ({c.num_beams}) "
               "without sampling")
