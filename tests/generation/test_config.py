from __future__ import annotations

import pytest

from chatbot.generation import GenerationConfig, config_from_settings
from chatbot.settings import load_settings


@pytest.mark.parametrize("bad", [
    {"num_beams": 0}, {"repetition_penalty": 0.0}, {"repetition_penalty": -1.0}, {"top_p": 1.5}, {"top_p": 0.0},
    {"max_new_tokens": 0}, {"min_new_tokens": 9, "max_new_tokens": 5}, {"temperature": 0.0},
    {"num_return_sequences": 6, "num_beams": 5}, {"do_sample": True, "num_beams": 3}, {"top_k": -1},
    {"length_penalty": float("nan")}, {"eos_token_id": -1}, {"num_beams": 2.5}, {"early_stopping": "sometimes"},
    {"no_repeat_ngram_size": -2}, {"encoder_no_repeat_ngram_size": -1},
])
def test_nonsense_is_refused_with_a_clear_error(bad):
    with pytest.raises(ValueError, match="invalid GenerationConfig: .*" + next(iter(bad))):
        GenerationConfig(**{"bos_token_id": 1, "eos_token_id": 2, **bad})


def test_valid_config_round_trips_and_replaces():
    config = GenerationConfig(bos_token_id=1, eos_token_id=2, num_beams=4, num_return_sequences=4)
    assert config.to_dict()["num_beams"] == 4
    assert GenerationConfig(**config.to_dict()) == config
    assert config.replace(num_beams=1, num_return_sequences=1).num_beams == 1
    with pytest.raises(ValueError):
        config.replace(num_beams=0)


def test_config_from_settings_takes_the_serving_values(tmp_path):
    settings = load_settings(data_dir=tmp_path, num_beams=4, repetition_penalty=1.3, num_return_sequences=3)
    config = config_from_settings(settings, bos_token_id=1, eos_token_id=2)
    assert (config.num_beams, config.repetition_penalty, config.num_return_sequences) == (4, 1.3, 3)
    assert config.no_repeat_ngram_size == settings.no_repeat_ngram_size
    assert config.max_new_tokens == settings.max_new_tokens
