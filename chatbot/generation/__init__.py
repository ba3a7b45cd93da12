"""Reply decoding over any step model: settings, processors, beam/greedy/sampling search, int8, reply values.

Never imports the model package: the serving decoder (``chatbot.service.generator``) puts a checkpoint
and these together."""

from chatbot.generation.config import GenerationConfig, config_from_settings, resolve_config
from chatbot.generation.processors import (
    ContextNGramBlock,
    CopyBonus,
    MinNewTokens,
    NoRepeatNGram,
    Processor,
    RepetitionPenalty,
    ScriptConstraint,
    SuppressTokens,
    Temperature,
    TopK,
    TopP,
    build_processors,
)
from chatbot.generation.search import Hypothesis, StepModel, beam_search, decode, greedy_search, sample

__all__ = [
    "ContextNGramBlock",
    "CopyBonus",
    "GenerationConfig",
    "Hypothesis",
    "MinNewTokens",
    "NoRepeatNGram",
    "Processor",
    "RepetitionPenalty",
    "ScriptConstraint",
    "StepModel",
    "SuppressTokens",
    "Temperature",
    "TopK",
    "TopP",
    "beam_search",
    "build_processors",
    "config_from_settings",
    "decode",
    "greedy_search",
    "resolve_config",
    "sample",
]
