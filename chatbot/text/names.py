"""Person-name lexicon for redaction: first and last names from Faker's person lists, and which of them are
too ambiguous to be taken for a name on their own.

Faker (MIT, maintained) keeps first- and last-name lists for many locales, drawn from census and registry
frequency lists; the customers of a service in English or Chinese write names from all over the world, so
the lists of several locales are merged (Latin script only: a name in another script is caught by its
language's own rules). A first name that is also an ordinary English word ("Will", "May", "Grace"), a
month or weekday, or a place a customer books a trip to ("Austin", "Charlotte", "Sydney") is *ambiguous*:
the redactor takes it for a name only with more evidence (a cue such as "my name is", or a known last name
after it), so "Will you book it?" and "a hotel in Austin" stay as they are.

Loaded once, lazily (``lexicon()``): the redactor does not pay for it until it builds its matcher.
"""

# ruff: noqa: SIM905 - the word lists below read (and diff) better as text than as list literals
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from functools import cache

# Locales whose person providers have Latin-script first and last names (zh_CN / zh_TW: their romanized lists).
LOCALES = ("en_US", "en_GB", "en_IE", "en_NZ", "en_IN", "es_ES", "es_MX", "es_CO", "fr_FR", "de_DE", "it_IT",
           "pt_BR", "pt_PT", "nl_NL", "pl_PL", "sv_SE", "zh_CN", "zh_TW")

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# First names that are common English words (beyond Faker's lorem word list) or brand names.
NAME_WORDS = frozenset("""
amber angel april autumn baker bill bishop brook buck bud buddy candy carol chance chase cliff dale dawn dean
destiny dusty ebony faith forest frank gene grace guy harmony heather holly honey hope hunter iris ivy jack
jade jasmine jewel jay joy june justice king lane lee major mark max may mercy miles misty nick norm page
patience pearl penny prince ray reed rich river robin rocky rose ruby rusty sage sandy sky skye sonny star
sterling stone storm summer sunny trinity violet wade will willow winter wolf worth young
lady love till grit hero happy lucky blue golden silver noble gay marvel christian
""".split())

# Words that follow "my name is" without being a name, and conversation words Faker's lorem list lacks.
COMMON_WORDS = frozenset("""
hi hello hey thanks thank please sorry yes no ok okay sure great fine good bye goodbye spelled misspelled
spelt incorrect correct wrong missing listed different changed still also right there here vs
""".split())

# Places customers travel to, whose names are also first names (US cities and states first, then the world).
PLACE_NAMES = frozenset("""
alexandria arlington augusta aurora austin beverly brighton brooklyn camden campbell carmel carolina carson chandler
charlotte chelsea cheyenne clayton cleveland clifton columbia dakota dallas denver devon eugene florence
frederick georgia hamilton helena houston india irving israel jackson jordan kent kingston lafayette lincoln
logan madison marion milan montgomery nancy orlando paris phoenix preston raleigh regina salvador santiago
savannah sherman sofia sydney tracy troy tyler valencia vernon victoria virginia warren washington
""".split())

# Tokens after a capitalised first name that make the pair a place or an organisation, not a person.
ORG_WORDS = frozenset("""
airport apartments arena ave avenue bank bar bay beach bistro blvd boulevard bridge brothers bros brewery cafe
cathedral center centre church cinema city clinic club co college company condos corp county court creek
dental diner drive festival field garden gardens grill hall heights hill hills hospital hotel house inn
island kitchen lake lane library lodge mall market medical motel mountain museum orchestra palace park
parkway place plaza pub restaurant resort river road school square st stadium station street studio
suites theater theatre tower town trail university valley village way winery
""".split())

# Title-case tokens before a name that make it part of a place ("San Mateo", "Santa Clara", "St. Louis").
PLACE_PREFIXES = frozenset("""
san santa santo st st. saint ste fort ft port mount mt lake new north south east west el la las los le
cape glen palo del de
""".split())


@dataclass(frozen=True)
class NameLexicon:
    first: frozenset[str]  # title case ("Priya")
    last: frozenset[str]  # title case ("Patel")
    ambiguous: frozenset[str]  # lowercase first names that also are words or places
    common: frozenset[str]  # lowercase ordinary words (never a name by themselves)

    def is_first(self, token: str) -> bool:
        return token in self.first

    def is_clear_first(self, token: str) -> bool:
        """A first name that is not also an ordinary word or a place."""
        return token in self.first and token.lower() not in self.ambiguous


_LATIN_NAME = re.compile(r"^[A-Z][a-z\u00e0-\u00ff']+(?:-[A-Z][a-z\u00e0-\u00ff']+)?$")


def _names(provider: type, *attributes: str) -> set[str]:
    names: set[str] = set()
    for attribute in attributes:
        value = getattr(provider, attribute, None) or ()
        names.update(n for n in value if isinstance(n, str) and _LATIN_NAME.match(n) and len(n) >= 2)
    return names


@cache
def lexicon() -> NameLexicon:
    """The merged lists (a few thousand names); built once per process."""
    from faker.providers.lorem.en_US import Provider as Lorem
    from spacy.lang.en.stop_words import STOP_WORDS

    first: set[str] = set()
    last: set[str] = set()
    for locale in LOCALES:
        provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        first |= _names(provider, "first_names", "first_names_female", "first_names_male", "first_romanized_names")
        last |= _names(provider, "last_names", "last_romanized_names")
    common = {w.lower() for w in Lorem.word_list} | set(STOP_WORDS) | set(MONTHS) | set(WEEKDAYS) | COMMON_WORDS
    ambiguous = {n.lower() for n in first if n.lower() in common} | NAME_WORDS | PLACE_NAMES
    return NameLexicon(frozenset(first), frozenset(last), frozenset(ambiguous), frozenset(common))
