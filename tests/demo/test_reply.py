"""`chatbot reply` and `chatbot chat` with a real tiny checkpoint: model choice, language, JSON, errors."""

from __future__ import annotations

import json
import math

import pytest

from chatbot.settings import load_settings
from chatbot.store import registry
from chatbot.store.manager import ConversationStore


def reply_json(cli, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = cli("reply", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_reply_json_has_the_issue_shape_and_follows_the_message_language(cli, tiny_model):
    out = reply_json(cli, "where is my order", "--model", str(tiny_model))
    assert set(out) == {"reply", "confidence", "language", "token_logprob", "candidates", "grounding", "handoff"}
    assert out["grounding"]["picked"] == 0 and out["grounding"]["ungrounded"] == []
    assert out["reply"] == "it ships today."
    assert out["language"] == "en"
    assert 0.0 < out["confidence"] <= math.exp(out["token_logprob"]) + 1e-3
    assert out["candidates"][0]["text"] == out["reply"]
    assert all(set(c) == {"text", "score"} for c in out["candidates"])

    zh = reply_json(cli, "我的订单在哪里", "--model", str(tiny_model))
    assert zh["language"] == "zh"
    assert zh["reply"] == "您的订单今天发货。"


def test_language_option_overrides_detection(cli, tiny_model):
    out = reply_json(cli, "我的订单在哪里", "--model", str(tiny_model), "--language", "en")
    assert out["language"] == "en"


def test_decoding_options_reach_the_search(cli, tiny_model):
    out = reply_json(cli, "i want a refund", "--model", str(tiny_model), "--num-beams", "4",
                     "--num-return-sequences", "4", "--repetition-penalty", "1.3")
    assert out["reply"] == "your refund is on its way."
    scores = [c["score"] for c in out["candidates"]]
    assert len(scores) == 4 and scores == sorted(scores, reverse=True)
    assert len({c["text"] for c in out["candidates"]}) == 4


def test_plain_output_is_the_reply_on_stdout(cli, tiny_model):
    result = cli("reply", "where is my order", "--model", str(tiny_model))
    assert result.exit_code == 0
    assert result.stdout.strip() == "it ships today."
    assert "confidence" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["   "], "empty"),
    (["hi", "--model", "/nonexistent/model"], "not found"),
    (["hi", "--num-beams", "2", "--num-return-sequences", "3"], "cannot exceed num_beams"),
    (["hi", "--language", "xx"], "language"),
])
def test_bad_input_is_one_clear_error(cli, tiny_model, args, message):
    if "--model" not in args:
        args = [*args, "--model", str(tiny_model)]
    result = cli("reply", *args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error:") and message in result.stderr
    assert "Traceback" not in result.output


def test_without_model_the_registry_active_version_serves(cli, env, tiny_model):
    settings = load_settings(data_dir=env["CHATBOT_DATA_DIR"])
    with ConversationStore(settings) as store, store.transaction() as s:
        registry.promote(s, registry.register(s, "tiny", str(tiny_model)).id)
    result = cli("reply", "where is my order", "--json")
    assert result.exit_code == 0, result.output
    assert "active model version" in result.stderr
    assert json.loads(result.stdout)["reply"] == "it ships today."


def test_without_model_or_database_the_shipped_model_serves_and_no_database_is_created(cli, env):
    result = cli("reply", "Hello", "--json", "--num-beams", "2")
    assert result.exit_code == 0, result.output
    assert "shipped demo model" in result.stderr
    assert json.loads(result.stdout)["reply"].strip()
    assert not (load_settings(data_dir=env["CHATBOT_DATA_DIR"]).data_dir / "chatbot.db").exists()


def test_chat_keeps_the_conversation_and_resets(cli, tiny_model):
    result = cli("chat", "--model", str(tiny_model), input="where is my order\n/reset\n我的订单在哪里\n\n/quit\n")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "bot> " in line]
    assert len(lines) == 2
    assert lines[0].endswith("bot> it ships today.")
    assert lines[1].endswith("bot> 您的订单今天发货。")
    assert "(new conversation)" in result.stderr


def test_chat_ends_cleanly_at_end_of_input(cli, tiny_model):
    result = cli("chat", "--model", str(tiny_model), input="i want a refund\n")
    assert result.exit_code == 0
    assert "bot> your refund is on its way." in result.stdout


def test_a_reply_stating_a_detail_nobody_gave_is_flagged_until_a_company_fact_gives_it(cli, env, tiny_model):
    result = cli("reply", "can i book a table", "--model", str(tiny_model))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "your table is booked for 7 pm."  # the model's best, shown as it is
    assert "not sent on its own by the service: ungrounded details: 7 pm" in result.stderr
    out = reply_json(cli, "can i book a table", "--model", str(tiny_model))
    assert out["grounding"]["picked"] is None and out["grounding"]["ungrounded"] == ["7 pm"]

    given = reply_json(cli, "can i book a table at 7 pm", "--model", str(tiny_model))
    if "7 pm" in given["reply"]:  # the customer's own time may be repeated
        assert "7 pm" not in given["grounding"]["ungrounded"]

    settings = load_settings(data_dir=env["CHATBOT_DATA_DIR"])
    with ConversationStore(settings) as store, store.transaction() as s:
        from chatbot.store.facts import add_fact

        add_fact(s, "Tables", "Evening tables are booked for 7 pm.")
    out = reply_json(cli, "can i book a table", "--model", str(tiny_model))
    assert out["reply"] == "your table is booked for 7 pm." and out["grounding"]["picked"] == 0

    result = cli("chat", "--model", str(tiny_model), input="can i book a table\n/quit\n")
    assert "bot> your table is booked for 7 pm." in result.stdout and "ungrounded" not in result.stderr


def test_grounding_can_be_turned_off(cli, env, tiny_model):
    env["CHATBOT_GROUNDING"] = "false"
    result = cli("reply", "can i book a table", "--model", str(tiny_model), "--json")
    assert result.exit_code == 0, result.output
    assert "grounding" not in json.loads(result.stdout)


def test_in_chat_a_flagged_reply_does_not_ground_its_own_repetition(cli, tiny_model):
    result = cli("chat", "--model", str(tiny_model), input="can i book a table\ncan i book a table\n/quit\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.count("bot> your table is booked for 7 pm.") == 2
    assert result.stderr.count("ungrounded details: 7 pm") == 2


def test_a_turn_the_service_would_give_to_a_person_says_so(cli, env, tiny_model):
    sure = reply_json(cli, "where is my order", "--model", str(tiny_model))
    best = sure["candidates"][0]["score"]
    env["CHATBOT_HANDOFF_MIN_SCORE"] = str(best - 0.01)
    assert reply_json(cli, "where is my order", "--model", str(tiny_model))["handoff"] is None

    env["CHATBOT_HANDOFF_MIN_SCORE"] = str(best + 0.01)  # the same reply, now under the threshold
    out = reply_json(cli, "where is my order", "--model", str(tiny_model))
    assert out["handoff"] == "low_confidence" and out["reply"] == sure["reply"]
    result = cli("reply", "where is my order", "--model", str(tiny_model))
    assert result.stdout.strip() == sure["reply"]
    assert f"under CHATBOT_HANDOFF_MIN_SCORE {best + 0.01}" in result.stderr and "a person would answer" in result.stderr
    chat = cli("chat", "--model", str(tiny_model), input="where is my order\n/quit\n")
    assert "a person would answer" in chat.stderr

    env["CHATBOT_HANDOFF_MIN_SCORE"] = "-1e9"
    per_token = sure["token_logprob"]
    env["CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB"] = str(per_token - 0.01)
    assert reply_json(cli, "where is my order", "--model", str(tiny_model))["handoff"] is None
    env["CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB"] = str(per_token + 0.01)
    assert reply_json(cli, "where is my order", "--model", str(tiny_model))["handoff"] == "low_confidence"
    result = cli("reply", "where is my order", "--model", str(tiny_model))
    assert f"under CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB {per_token + 0.01}" in result.stderr

    env["CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB"] = "-1e9"
    assert reply_json(cli, "can i talk to a human please", "--model", str(tiny_model))["handoff"] == "asked_for_human"
