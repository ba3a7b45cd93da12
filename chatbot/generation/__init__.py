"""Reply decoding: processors, beam/greedy/sampling search over a step interface, int8 serving, replies."""

from chatbot.generation.config import GenerationConfig, config_from_settings
from chatbot.generation.processors import (
    ContextNGramBlock,
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
from chatbot.generation.search import Hypothesis, StepModel, beam_search, greedy_search, sample

__all__ = [
    "ContextNGramBlock",
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
    "greedy_search",
    "sample",
]
