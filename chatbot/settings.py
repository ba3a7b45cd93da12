"""One settings object for the whole product.

Built once at the entry point (CLI, web app, nightly job) and passed down explicitly; nothing else in
the code base reads the environment. Sources, strongest first: explicit keyword arguments, environment
variables with the ``CHATBOT_`` prefix, an optional TOML file (``--config`` or ``CHATBOT_CONFIG``), defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def default_data_dir() -> Path:
    """Per-user data directory (``~/.local/share/chatbot`` on Linux)."""
    return platformdirs.user_data_path("chatbot")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHATBOT_", extra="forbid", validate_default=True)

    # --- storage -------------------------------------------------------------------------------
    data_dir: Path = Field(default_factory=default_data_dir, description="Where the SQLite file, "
                           "exports, nightly reports and trained models live by default.")
    database_url: str = Field("", description="SQLAlchemy URL; empty means an SQLite file in data_dir.")
    db_pool_size: int = Field(5, ge=1)
    db_connect_timeout_s: float = Field(5.0, gt=0)
    max_message_chars: int = Field(20_000, ge=1, description="Longer messages are refused, not cut.")

    # --- model and generation -----------------------------------------------------------------------
    model_dir: Path | None = Field(None, description="Serve this checkpoint directory instead of the "
                                   "registry's active version.")
    torch_threads: int = Field(0, ge=0, description="torch.set_num_threads; 0 keeps torch's default "
                               "(serving: 1, for its single decode thread).")
    context_turns: int = Field(6, ge=1)
    context_max_tokens: int = Field(200, ge=8)
    num_beams: int = Field(5, ge=1)
    max_new_tokens: int = Field(40, ge=1)
    repetition_penalty: float = Field(1.2, gt=0)
    no_repeat_ngram_size: int = Field(3, ge=0)
    encoder_no_repeat_ngram_size: int = Field(0, ge=0, description="Block n-grams of this size copied from "
                                              "the customer's words (0: off; a task bot repeats names).")
    script_constraint: bool = Field(True, description="Replies never mix scripts: no Latin-script word in a "
                                    "Chinese reply, no CJK character in a Latin-script one, unless the "
                                    "conversation holds it. Switch off only to measure.")
    copy_bonus: float = Field(1.0, ge=0, description="Added to the log-probability of the customer's detail "
                              "words, so replies confirm the name and time the customer gave (0: off).")
    length_penalty: float = Field(1.5, description="Beam scores are divided by length ** length_penalty; "
                                  "above 1 stops the search preferring short replies that drop the details.")
    num_return_sequences: int = Field(3, ge=1)
    quantize_int8: bool = Field(True, description="Serve with dynamically quantized int8 linear layers.")
    taught_weight: float = Field(0.2, ge=0, description="A candidate reply that agents taught (the model "
                                 "directory's taught.json, written by the nightly) gains this times the "
                                 "similarity (0-1) of the customer's words in the model's window to the "
                                 "closest question it was taught for, in search-score units (0: off).")
    taught_proposals: int = Field(2, ge=0, description="Taught answers, closest first, that the model scores "
                                  "beside its own candidates when its search did not write them.")
    taught_min_similarity: float = Field(0.35, ge=0, le=1, description="Taught questions less similar than "
                                         "this to the customer's words neither propose nor support a reply (at "
                                         "0.2 a restaurant's \"their phone number\" got the support number).")

    # --- service ------------------------------------------------------------------------------------
    review_mode: Literal["auto", "draft"] = "auto"
    review_sample_share: float = Field(0.0, ge=0, le=1, description="In auto review mode, the share of sent "
                                       "bot replies (by message id, so every replica picks the same ones) that "
                                       "the agent console's review queue offers for a second look; drafts are "
                                       "always in it.")
    handoff_min_score: float = Field(-2.5, description="The best candidate's search score (log-prob / "
                                     "length^length_penalty) below which the conversation goes to a person. "
                                     "The length penalty weighs hardest on short replies (\"谢谢\" -> "
                                     "\"不客气。\" scores -0.69, a booking confirmation -0.2), so no threshold "
                                     "on it separates weak replies from small talk; the default -2.5 is below "
                                     "every score the shipped decoding gives and hands nothing off. Use "
                                     "handoff_min_token_logprob.")
    handoff_min_token_logprob: float = Field(-1.4, description="The best candidate's mean log-prob per token "
                                             "below which the conversation goes to a person: the model is "
                                             "unsure of its reply word by word, whatever its length. With the "
                                             "shipped model -1.4 hands off no SGD or CrossWOZ dev reply and no "
                                             "English small talk, and hands off the broken Chinese small talk "
                                             "(\"晚安\" -> \"你喜欢的晚安吗?\", -1.57); -1.0 would also hand off "
                                             "41% of replies to customer-service questions the model cannot "
                                             "know, and 20% of English small talk. See benchmarks/handoff.py.")
    handoff_min_margin: float = Field(0.0, ge=0)
    handoff_repeats: bool = Field(True, description="When the reply would say again what the customer was "
                                  "already told (the same words, or all but one or two; 4 words or more), "
                                  "send another candidate within grounding_margin that does not, else hand the "
                                  "conversation to a person: the bot is going round in circles. In self-play "
                                  "over 100 SGD dev dialogues 8.3% of the shipped model's replies repeated, "
                                  "1.9% went to a person (benchmarks/repeats.py).")
    handoff_low_ratings: int = Field(2, ge=1, description="Disliked bot replies in one conversation "
                                     "before it goes to a person.")
    grounding: bool = Field(True, description="Check the details of each reply (numbers, times, dates, "
                            "amounts, ids, phones, names) against the conversation and the company facts; "
                            "an ungrounded reply yields to a grounded candidate or goes to an agent.")
    grounding_margin: float = Field(0.15, ge=0, description="How much lower (length-normalised log-prob "
                                    "per token) a grounded candidate may score than the best one and still "
                                    "be sent instead of it.")
    decode_process: bool = Field(True, description="Decode in a child process with its own interpreter lock "
                                 "(the web threads and beam search no longer take turns on one).")
    decoders: int = Field(2, ge=1, description="Batches decoded at once, each in a decoder process of its "
                          "own (a thread when decode_process is off): the next batch starts while one decodes.")
    model_warmup: bool = Field(True, description="Warm each newly loaded model (a conversation alone and a "
                               "small batch in every language it serves, in each decoder process) before it "
                               "serves; after a hot switch the old model answers meanwhile.")
    batch_max_size: int = Field(32, ge=1)
    batch_max_wait_ms: float = Field(5.0, ge=0)
    queue_max_size: int = Field(256, ge=1)
    shadow_share: float = Field(0.25, ge=0, le=1, description="Share of live customer messages that the "
                                "shadowed candidate (chosen in /admin or `chatbot models shadow`) also answers "
                                "in the background, never sent; 0 turns shadow testing off.")
    shadow_queue_size: int = Field(4, ge=1, description="Shadow decodes waiting at most; more are dropped "
                                   "(as is every sample while customers wait for the decoder), never queued "
                                   "behind or ahead of a customer.")

    # --- web ----------------------------------------------------------------------------------------
    company_name: str = Field("Demo Company", min_length=1, max_length=100,
                              description="Shown in the customer page's title and welcome text.")
    help_topics: str = Field(
        "restaurant, hotel, flight, bus, train, car and event bookings, coffee orders, and, in Chinese, "
        "Beijing hotels, restaurants and sights", min_length=1, max_length=500,
        description="What the bot can help with, said in the customer page's welcome text; the default "
        "describes what the shipped demo model was trained on.")
    help_topics_zh: str = Field(
        "英文的餐厅、酒店、机票、巴士、火车、租车和活动预订以及咖啡点单，中文的北京酒店、餐厅和景点查询",
        min_length=1, max_length=500, description="help_topics in Chinese, for the page a Chinese-speaking "
        "customer sees.")
    example_questions: list[str] = Field(
        default_factory=lambda: ["I'd like to book a table for two at 7 pm tonight.",
                                 "Can you find me a flight to Seattle next Friday?",
                                 "你好，我想找一家评分4.5分以上的酒店。",
                                 "请问故宫的门票多少钱？"],
        description="Example messages the customer page offers to click (both languages in the demo).")
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    request_threads: int = Field(40, ge=1, description="Requests worked on at once (the thread pool of the "
                                 "blocking handlers); 1 makes a one-request-at-a-time server.")
    access_log: bool = Field(True, description="Log one line per HTTP request.")
    max_body_bytes: int = Field(1_000_000, ge=1024, description="Larger request bodies are refused with 413 "
                                "before they are read (chunked ones as soon as they pass it).")
    secret_key: SecretStr = Field(SecretStr(""), description="Signs agent sessions; generated if empty.")
    demo_password: SecretStr = Field(SecretStr(""), description="Password `chatbot demo` gives the demo agent "
                                     "and admin it creates; generated (and printed once) if empty.")
    session_max_age_s: int = Field(12 * 3600, ge=60, description="Staff sessions end this long after login "
                                   "(and at once on logout, password or role change, user removal).")
    cookie_secure: bool | None = Field(None, description="The session cookie's Secure flag; unset: on when "
                                       "the request came over HTTPS (set true behind a TLS proxy).")
    trusted_origins: list[str] = Field(default_factory=list, description="Origins (scheme://host:port) besides "
                                       "the server's own that may send state-changing staff requests.")
    login_max_failures: int = Field(5, ge=1, description="Failed logins of one account within the window "
                                    "before further attempts get HTTP 429 until the window has passed.")
    login_max_failures_per_address: int = Field(20, ge=1, description="Failed logins from one client address "
                                                "within the window before it gets HTTP 429.")
    login_failure_window_s: float = Field(900.0, gt=0, description="The login throttling window.")
    unanswered_grace_s: float = Field(60.0, gt=0, description="A customer message still without an answer "
                                      "this long after it was stored (a fault, a restart) is answered or "
                                      "handed to a person by the recovery sweep.")
    unanswered_sweep_s: float = Field(30.0, gt=0, description="How often each server runs that sweep "
                                      "(also once at startup).")

    # --- training -----------------------------------------------------------------------------------
    nightly_dir: Path | None = Field(None, description="Reports and candidate models; default data_dir/nightly.")
    nightly_eval_data: list[str] = Field(default_factory=list, description="Extra --data specs (e.g. "
                                         "sgd:PATH/dev) added to the gate's fixed evaluation set.")
    nightly_eval_limit: int = Field(300, ge=1, description="Evaluation pairs per source in the gate.")
    nightly_dev_fraction: float = Field(0.1, gt=0, lt=1, description="Share of exported conversations "
                                        "held out of nightly training for the gate.")
    nightly_max_minutes: float = Field(15.0, gt=0)
    nightly_train_config: Path | None = Field(None, description="Training config TOML for nightly runs "
                                              "(TrainConfig fields over the nightly defaults).")
    nightly_steps: int = Field(1000, ge=1, description="Optimizer steps of a nightly fine-tune (the LR schedule "
                               "ends there; warmup is a tenth of them). 500 learned as much but left the gate's "
                               "perplexity at x1.044 on 10 taught facts, next to its x1.05 rejection; 1,000: x1.020.")
    nightly_lr: float = Field(7e-4, gt=0, description="Peak learning rate of a nightly fine-tune (3e-4 learned "
                              "1 of 10 taught facts, 7e-4 with corrections x80 6 of 10; 1e-3 raised general "
                              "perplexity x1.08 beyond the gate's margin when replaying the shipped model's whole "
                              "data mix; benchmarks/learning.py).")
    nightly_replay_ratio: float = Field(4.0, ge=0, description="Earlier training pairs replayed per new pair, "
                                        "so learning what agents taught does not forget the rest.")
    nightly_replay_min: int = Field(2000, ge=0, description="Replayed pairs at least (as many as there are). "
                                    "The sample is also sized to fill the fine-tune's steps without repeating a "
                                    "pair: rehearsing the same pairs for epochs raises general perplexity.")
    nightly_replay_data: list[str] = Field(default_factory=list, description="--data specs the replay sample "
                                           "also draws from (e.g. the corpora the active model was trained on).")
    nightly_replay_recipe: Path | None = Field(None, description="A training recipe (TOML with [[data]] tables, "
                                               "e.g. the active model's training/recipes/shipped.toml) whose "
                                               "training part the replay sample also draws from, each source by "
                                               "its weight; spec paths are relative to where the job runs.")
    nightly_correction_repeat: int = Field(80, ge=1, description="Times each agent correction is repeated in "
                                           "a nightly training set (on top of the export's weight).")
    nightly_new_words: int = Field(500, ge=0, description="Words a fine-tune may add to its base model's "
                                   "vocabulary (those the new training data uses and the model lacks; 0 keeps "
                                   "the vocabulary): what agents teach is often in words the model never had.")
    nightly_new_word_lr_scale: float = Field(30.0, ge=1, description="How many times as far per step an added "
                                             "word's embedding and output rows move as the rest of the model: "
                                             "they start as <unk> and must learn a meaning in one fine-tune. On "
                                             "10 taught facts 1 learned 6 of them on unseen phrasings, 10: 7, 20: "
                                             "8, 30: 9, 60: 8 (benchmarks/learning.py).")
    nightly_answer_words_from_questions: bool = Field(True, description="An added word that only replies use "
                                                      "(an agent's \"We accept Visa\", no customer's) starts with "
                                                      "the meaning of the questions it answered instead of <unk>'s, "
                                                      "so a later \"Is Visa accepted?\" reads as a payment question.")
    nightly_answer_word_lr_scale: float = Field(5.0, ge=1, description="nightly_new_word_lr_scale for the "
                                                "input embedding of such a word (its output bias still moves "
                                                "at the new words' pace): at 30 the output side overwrote the "
                                                "meaning it started with (\"Visa\" ended nearest \"2008\", "
                                                "\"Vanilla\"). On 10 taught facts 1 and 5 both answered \"Is "
                                                "Visa accepted?\" (benchmarks/learning.py).")
    nightly_new_word_conversations: int = Field(2, ge=1, description="Distinct conversations that must use a "
                                                "word before it is added (one customer's rare word is not).")
    nightly_correction_holdout: float = Field(0.25, gt=0, lt=1, description="Share of corrected conversations "
                                              "held out of training for the gate (every k-th of each taught "
                                              "answer, in hash order).")
    nightly_stale_lock_s: float = Field(600.0, gt=0, description="A nightly job without a heartbeat "
                                        "for this long is considered dead and its lock taken over.")
    gate_chrf_margin: float = Field(1.0, ge=0, description="chrF points a candidate may lose.")
    gate_perplexity_margin: float = Field(0.05, ge=0, description="Relative perplexity increase allowed.")
    gate_entity_margin: float = Field(0.02, ge=0, description="Entity-copy recall a candidate may lose.")
    gate_min_corrections: int = Field(2, ge=1, description="Held-out agent corrections the gate needs before "
                                      "it can say a candidate learned them; fewer is 'not enough evidence'.")
    gate_confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence of the gate's bootstrap intervals.")
    gate_resamples: int = Field(1000, ge=100, description="Bootstrap resamples per interval.")
    gate_taught_answers_margin: float = Field(0.02, ge=0, le=1, description="Share of general evaluation replies "
                                              "that may newly give a taught answer (an agent's correction) before "
                                              "the gate calls it a leak.")

    @field_validator("data_dir", "model_dir", "nightly_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _config_file_from(init_settings)
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    # --- derived values -----------------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'chatbot.db'}"

    @property
    def effective_nightly_dir(self) -> Path:
        return self.nightly_dir or self.data_dir / "nightly"

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain JSON-able values, with secrets and passwords masked."""
        out: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            out[name] = value
        out["effective_database_url"] = mask_url(self.effective_database_url)
        out["database_url"] = mask_url(self.database_url) if self.database_url else ""
        return out


_CONFIG_KEY = "_config_file"


def _config_file_from(init_settings: PydanticBaseSettingsSource) -> Path | None:
    init_kwargs = getattr(init_settings, "init_kwargs", {})
    path = init_kwargs.pop(_CONFIG_KEY, None) if isinstance(init_kwargs, dict) else None
    return Path(path) if path else None


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings once: ``config_file`` (or ``$CHATBOT_CONFIG``) is an optional TOML file."""
    config_file = config_file or os.environ.get("CHATBOT_CONFIG") or None
    if config_file is not None:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"config file not found: {path}")
        overrides[_CONFIG_KEY] = path
    return Settings(**overrides)


def mask_url(url: str) -> str:
    """Hide the password of a database URL."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL we can parse: show nothing secret
        return "<unparseable url>"
