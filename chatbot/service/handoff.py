"""When a conversation should go to a person: pure rules, no database.

Three reasons, checked in this order: the customer asks for a person; the bot's best reply is not
confident enough (its mean log-probability per token or its search score is under a threshold, or it
barely beats the runner-up, which means the model is torn between different answers); or the customer
already disliked several bot replies in this conversation. A fourth, ``UNGROUNDED`` (every candidate within the margin
states a detail nobody gave), needs the conversation and the company facts and is decided by the service
with ``chatbot.service.grounding``. A fifth, ``REPEATING``: every candidate the service could send says
again what the customer was already told (``repeats``), so the bot is going round in circles ("What time would
you like to book the table for?" after the customer gave the time and confirmed) and a person should take over.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chatbot.settings import Settings


class HandoffReason(str, Enum):
    ASKED = "asked_for_human"
    LOW_CONFIDENCE = "low_confidence"
    LOW_RATINGS = "low_ratings"
    UNGROUNDED = "ungrounded_details"  # decided by the service (chatbot.service.grounding), not by ``decide``
    UNANSWERED = "unanswered"  # a stored message the bot could not answer (a fault, a restart): chatbot.service.recovery
    REPEATING = "repeating"  # every sendable reply says again what the customer was already told (``repeats``)


@dataclass(frozen=True)
class HandoffRules:
    min_score: float
    min_margin: float
    max_low_ratings: int
    min_token_logprob: float = -math.inf

    @classmethod
    def of(cls, settings: Settings) -> HandoffRules:
        """The rules the settings give (the service and `chatbot reply` / `chat` apply the same ones)."""
        return cls(settings.handoff_min_score, settings.handoff_min_margin, settings.handoff_low_ratings,
                   settings.handoff_min_token_logprob)


# Phrases people use to ask for a person, in the languages we serve; matched on accent-folded lowercase.
_ASK_PATTERNS = [
    (r"\b(talk|speak|chat)\s+(to|with)\s+(a|an|some|the)?\s*(real\s+)?(human|person|agent|someone|somebody|"
     r"representative|rep|operator|manager|supervisor)\b"),
    r"\b(real|live)\s+(human|person|agent)\b",
    r"\b(human|live)\s+(agent|support|help)\b",
    r"\b(customer\s+service\s+)?representative\b",
    r"^\s*(human|agent|operator|person)\s*[.!?]*\s*$",
    r"\b(parler|discuter)\s+(a|avec)\s+(un|une|quelqu'?un)\s*(humain|conseiller|conseillere|personne|agent)?\b",
    r"\b(un|une)\s+(humain|conseiller|conseillere|vraie personne)\b",
    r"\b(mit\s+)?(einem|einer)\s+(menschen|mitarbeiter|mitarbeiterin|berater|beraterin)\b",
    r"\b(hablar|habla)\s+con\s+(una|un|alguien)\s*(persona|agente|humano|asesor)?\b",
    r"\b(una\s+persona\s+real|un\s+humano|un\s+agente)\b",
    r"人工(客服|服务)?|转人工|真人",
]
_ASK = re.compile("|".join(f"(?:{p})" for p in _ASK_PATTERNS))


def fold(text: str) -> str:
    """Lowercase without accents, so "conseillère" and "CONSEILLERE" match the same pattern."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def asks_for_human(text: str) -> bool:
    return bool(_ASK.search(fold(text)))


def low_confidence(candidates: Sequence[tuple[str, float]], rules: HandoffRules,
                   token_logprob: float | None = None) -> str | None:
    """Which confidence rule the best reply breaks, in words for the operator, or ``None``: its mean log-prob
    per token (``token_logprob``, when known) under ``min_token_logprob``, its search score under
    ``min_score``, or its score within ``min_margin`` of the runner-up's."""
    if not candidates:
        return "no candidate"
    if token_logprob is not None and token_logprob < rules.min_token_logprob:
        return (f"mean log-prob per token {token_logprob:.3f} under CHATBOT_HANDOFF_MIN_TOKEN_LOGPROB "
                f"{rules.min_token_logprob}")
    best = candidates[0][1]
    if best < rules.min_score:
        return f"score {best:.3f} under CHATBOT_HANDOFF_MIN_SCORE {rules.min_score}"
    if len(candidates) > 1 and rules.min_margin > 0 and best - candidates[1][1] < rules.min_margin:
        return (f"lead {best - candidates[1][1]:.3f} over the runner-up under CHATBOT_HANDOFF_MIN_MARGIN "
                f"{rules.min_margin}")
    return None


_UNIT = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]|[^\W_]+")  # a CJK character, or a run of letters/digits
MIN_REPEAT_WORDS = 4  # "You're welcome." / "不客气。" said twice to two thank-yous is no loop
REPEAT_SHARE = 0.8  # "...book the table?" after "...book the table for?" is the same question


def _units(text: str) -> list[str]:
    """Words (case and accents folded, punctuation dropped), a Chinese character each."""
    return _UNIT.findall(fold(text))


def _contains(longer: list[str], shorter: list[str]) -> bool:
    n = len(shorter)
    return any(longer[i:i + n] == shorter for i in range(len(longer) - n + 1))


def repeats(reply: str, context: Sequence[tuple[str, str]]) -> bool:
    """Whether ``reply`` says again what the customer was already told in ``context`` (the turns the reply is
    generated from, oldest first): the same words in the same order, case and punctuation aside, or all but
    a word or two of them ("What time would you like to book the table?" after "... book the table for?":
    one holds the other and is at least ``REPEAT_SHARE`` of its length). A bot going round in circles comes
    back to an earlier question as well as to the last one. Replies shorter than ``MIN_REPEAT_WORDS`` words
    (two Chinese characters a word) never count: courtesies recur."""
    mine = _units(reply)
    cjk = sum(len(u) == 1 and "\u3400" <= u <= "\ufaff" for u in mine)
    if len(mine) - cjk + cjk / 2 < MIN_REPEAT_WORDS:
        return False
    for role, text in context:
        if role == "customer":
            continue
        said = _units(text)
        shorter, longer = sorted((mine, said), key=len)
        if len(shorter) >= REPEAT_SHARE * len(longer) and _contains(longer, shorter):
            return True
    return False


def decide(
    customer_text: str,
    candidates: Sequence[tuple[str, float]] | None,
    low_ratings: int,
    rules: HandoffRules,
    token_logprob: float | None = None,
) -> HandoffReason | None:
    """Why this turn should go to a person, or ``None`` to let the bot answer.

    ``candidates`` is ``None`` when no reply was generated yet (checking the customer's words alone);
    ``token_logprob`` is the best candidate's mean log-prob per token (``Reply.token_logprob``).
    """
    if asks_for_human(customer_text):
        return HandoffReason.ASKED
    if low_ratings >= rules.max_low_ratings:
        return HandoffReason.LOW_RATINGS
    if candidates is not None and low_confidence(candidates, rules, token_logprob) is not None:
        return HandoffReason.LOW_CONFIDENCE
    return None


# What the customer reads when a person takes over, in the conversation's language: a Chinese customer who
# writes "请转人工" must not be answered in English. Languages without an entry get English.
NOTICES: dict[str, dict[HandoffReason, str]] = {
    "en": {
        HandoffReason.ASKED: "Of course. A person from our team will join this conversation shortly.",
        HandoffReason.LOW_CONFIDENCE: "I want to get this right, so a person from our team will join shortly.",
        HandoffReason.LOW_RATINGS: "Sorry I have not been helpful. A person from our team will join shortly.",
        HandoffReason.UNGROUNDED: "I want to get this right, so a person from our team will join shortly.",
        HandoffReason.UNANSWERED: "Sorry for the wait. A person from our team will join this conversation shortly.",
        HandoffReason.REPEATING: "I don't seem to be getting this right, so a person from our team will join shortly.",
    },
    "zh": {
        HandoffReason.ASKED: "好的，我们的工作人员马上就来为您服务。",
        HandoffReason.LOW_CONFIDENCE: "为了给您准确的答复，我们的工作人员马上就来为您服务。",
        HandoffReason.LOW_RATINGS: "抱歉没能帮到您，我们的工作人员马上就来为您服务。",
        HandoffReason.UNGROUNDED: "为了给您准确的答复，我们的工作人员马上就来为您服务。",
        HandoffReason.UNANSWERED: "抱歉让您久等了，我们的工作人员马上就来为您服务。",
        HandoffReason.REPEATING: "抱歉我没能理解清楚，我们的工作人员马上就来为您服务。",
    },
    "de": {
        HandoffReason.ASKED: "Gerne. Eine Person aus unserem Team kommt gleich in dieses Gespräch.",
        HandoffReason.LOW_CONFIDENCE: "Damit Sie die richtige Antwort bekommen, kommt gleich eine Person aus unserem "
                                      "Team dazu.",
        HandoffReason.LOW_RATINGS: "Entschuldigung, dass ich Ihnen nicht helfen konnte. Eine Person aus unserem Team "
                                   "kommt gleich dazu.",
        HandoffReason.UNGROUNDED: "Damit Sie die richtige Antwort bekommen, kommt gleich eine Person aus unserem "
                                  "Team dazu.",
        HandoffReason.UNANSWERED: "Entschuldigung für die Wartezeit. Eine Person aus unserem Team kommt gleich dazu.",
        HandoffReason.REPEATING: "Ich komme hier nicht weiter. Eine Person aus unserem Team kommt gleich dazu.",
    },
    "es": {
        HandoffReason.ASKED: "Por supuesto. Una persona de nuestro equipo se unirá a esta conversación enseguida.",
        HandoffReason.LOW_CONFIDENCE: "Para darle la respuesta correcta, una persona de nuestro equipo se unirá "
                                      "enseguida.",
        HandoffReason.LOW_RATINGS: "Siento no haberle ayudado. Una persona de nuestro equipo se unirá enseguida.",
        HandoffReason.UNGROUNDED: "Para darle la respuesta correcta, una persona de nuestro equipo se unirá "
                                  "enseguida.",
        HandoffReason.UNANSWERED: "Perdone la espera. Una persona de nuestro equipo se unirá enseguida.",
        HandoffReason.REPEATING: "Parece que no le estoy entendiendo bien. Una persona de nuestro equipo se unirá "
                                 "enseguida.",
    },
    "fr": {
        HandoffReason.ASKED: "Bien sûr. Une personne de notre équipe va rejoindre cette conversation.",
        HandoffReason.LOW_CONFIDENCE: "Pour vous donner la bonne réponse, une personne de notre équipe va vous "
                                      "rejoindre.",
        HandoffReason.LOW_RATINGS: "Désolé de ne pas avoir pu vous aider. Une personne de notre équipe va vous "
                                   "rejoindre.",
        HandoffReason.UNGROUNDED: "Pour vous donner la bonne réponse, une personne de notre équipe va vous "
                                  "rejoindre.",
        HandoffReason.UNANSWERED: "Désolé pour l'attente. Une personne de notre équipe va vous rejoindre.",
        HandoffReason.REPEATING: "Je n'arrive pas à vous aider correctement. Une personne de notre équipe va vous "
                                 "rejoindre.",
    },
}


def notice(reason: HandoffReason, language: str | None) -> str:
    """The hand-off notice for ``reason`` in ``language`` (English where we have no translation)."""
    return NOTICES.get(language or "en", NOTICES["en"])[reason]
