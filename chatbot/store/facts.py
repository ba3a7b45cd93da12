"""Repository functions for company facts. Each takes a ``Session`` and never commits.

Facts are short texts an admin maintains (opening hours, policies, phone numbers); with the conversation
they are everything the bot may state details from (see ``chatbot.text.grounding``). Titles and texts
go through the same text policy as messages (empty and over-long refused, NUL removed, card numbers
masked), so nothing reaches the grounding check or the admin page that a message could not hold.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from chatbot.store import audit
from chatbot.store.db import InvalidValue, NotFound
from chatbot.store.models import CompanyFact, utcnow
from chatbot.store.textpolicy import DEFAULT_MAX_CHARS, clean_text
from chatbot.text.tokenize import SUPPORTED_LANGUAGES

TITLE_MAX_CHARS = 200


def list_facts(session: Session, language: str | None = None) -> list[CompanyFact]:
    """Every fact (or those in ``language``), by title then id, as the admin page lists them."""
    query = select(CompanyFact).order_by(CompanyFact.title, CompanyFact.id)
    if language is not None:
        query = query.where(CompanyFact.language == language)
    return list(session.scalars(query))


def fact_texts(session: Session) -> list[str]:
    """Title and text of every fact, in id order: what the grounding check reads for each reply (two
    columns, no ORM objects: it runs on every customer message)."""
    return [f"{title}\n{text}" for title, text in session.execute(_FACT_TEXTS)]


def get_fact(session: Session, fact_id: int) -> CompanyFact:
    fact = session.get(CompanyFact, fact_id)
    if fact is None:
        raise NotFound(f"fact {fact_id} does not exist")
    return fact


def add_fact(
    session: Session, title: str, text: str, language: str = "en", *, actor_id: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> CompanyFact:
    """A new fact; ``InvalidValue`` (or ``InvalidMessage``) for an empty or over-long title or text or an
    unknown language. Audited with the admin as actor."""
    fact = CompanyFact(updated_by=actor_id, **_checked(title, text, language, max_chars))
    session.add(fact)
    session.flush()
    audit.record(session, actor_id, "fact.create", f"fact:{fact.id}", {"title": fact.title})
    return fact


def update_fact(
    session: Session, fact_id: int, title: str, text: str, language: str, *, actor_id: int | None = None,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> CompanyFact:
    """Replace a fact's title, text and language (row-locked); ``NotFound`` if it is gone."""
    values = _checked(title, text, language, max_chars)
    fact = session.get(CompanyFact, fact_id, with_for_update=True, populate_existing=True)
    if fact is None:
        raise NotFound(f"fact {fact_id} does not exist")
    for name, value in values.items():
        setattr(fact, name, value)
    fact.updated_at = utcnow()
    fact.updated_by = actor_id
    session.flush()
    audit.record(session, actor_id, "fact.update", f"fact:{fact.id}", {"title": fact.title})
    return fact


def delete_fact(session: Session, fact_id: int, *, actor_id: int | None = None) -> None:
    """Delete a fact; ``NotFound`` if it does not exist."""
    fact = session.get(CompanyFact, fact_id, with_for_update=True)
    if fact is None:
        raise NotFound(f"fact {fact_id} does not exist")
    title = fact.title
    session.delete(fact)
    session.flush()
    audit.record(session, actor_id, "fact.delete", f"fact:{fact_id}", {"title": title})


def _checked(title: str, text: str, language: str, max_chars: int) -> dict[str, str]:
    if language not in SUPPORTED_LANGUAGES:
        raise InvalidValue(f"unknown language {language!r}; expected one of {', '.join(SUPPORTED_LANGUAGES)}")
    return {"title": _clean(title, "title", TITLE_MAX_CHARS), "text": _clean(text, "text", max_chars),
            "language": language}


def _clean(value: object, what: str, max_chars: int) -> str:
    """The message text policy, with the refusal naming the field; surrounding whitespace dropped."""
    if not isinstance(value, str) or not value.strip():
        raise InvalidValue(f"a fact needs a {what}")
    if len(value.strip()) > max_chars:
        raise InvalidValue(f"the {what} is {len(value.strip()):,} characters long; the limit is {max_chars:,}")
    return clean_text(value.strip(), max_chars)


_FACT_TEXTS = select(CompanyFact.title, CompanyFact.text).order_by(CompanyFact.id)
