"""PII redaction: find personal data in a message and replace it with typed placeholders.

Rule-based, so it is predictable and auditable: a spaCy pipeline (``spacy.blank(lang)``, Chinese text
split into single characters with embedded Latin/digit runs tokenized like English) and a ``Matcher``
over token attributes (LIKE_EMAIL, LIKE_URL, LIKE_NUM, SHAPE, IS_TITLE) finds the candidates; numeric
runs are then validated in Python (Luhn for cards, numbering-plan shapes for phones, check digits for
national ids). Values known to be personal for a conversation (ABCD ``scenario.personal``, the store's
customer record) are matched literally, case-insensitively, wherever they appear.

Names: after a cue ("my name is", "I'm", "this is", "name:", "call me", a title, a greeting), in title case,
and in lower case after "my name is"; without a cue, a first name from the name lexicon
(``chatbot.text.names``: Faker's lists of many locales) alone or followed by a capitalised surname
("Michael Brown"). A first name that is also a word or a place ("Will", "May", "Austin") needs a cue or
a known surname; a first name after a place prefix ("San Mateo") or before an organisation word ("Grace
Cathedral") is not a person. National ids (placeholder ``<PII>``): US social security numbers, UK
national insurance numbers, Chinese resident ids (18 characters, ISO 7064 check digit, a real birth date),
Indian Aadhaar numbers (12 digits, Verhoeff check digit) and Canadian social insurance numbers (Luhn),
by their written format; a bare 9- or 12-digit number only after its cue ("SSN", "Aadhaar").

``mask_card_numbers`` is the narrow, always-on mask the store applies on the way in: a full card number
is never stored, even in data that is kept unredacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

from chatbot.text.special import PLACEHOLDERS

LABELS = tuple(p.strip("<>") for p in PLACEHOLDERS)  # EMAIL, PHONE, CARD, URL, ADDRESS, NAME, ACCOUNT, ZIP, PII

# 13-19 digits, optionally grouped by single spaces or dashes.
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_CARD_CANDIDATE = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def verhoeff_valid(digits: str) -> bool:
    """The Verhoeff check digit (Aadhaar numbers): catches every single-digit error and adjacent swap."""
    check = 0
    for i, ch in enumerate(reversed(digits)):
        check = _VERHOEFF_D[check][_VERHOEFF_P[i % 8][int(ch)]]
    return check == 0


_VERHOEFF_D = [  # the dihedral group D5's multiplication table
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5], [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7], [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3], [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]]
_VERHOEFF_P = [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4], [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
               [8, 9, 1, 6, 0, 4, 3, 5, 2, 7], [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
               [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8]]


def us_ssn_valid(digits: str) -> bool:
    """Area 001-665 or 667-899, group 01-99, serial 0001-9999 (the SSA never issues the others)."""
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return len(digits) == 9 and area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def cn_resident_id_valid(text: str) -> bool:
    """18 characters: a region (first digit 1-8), a real birth date, a sequence, an ISO 7064 MOD 11-2 check."""
    from datetime import date

    if not re.fullmatch(r"[1-8]\d{16}[\dXx]", text):
        return False
    try:
        born = date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= date.today().year:
        return False
    total = sum(int(ch) * (2 ** (17 - i) % 11) for i, ch in enumerate(text[:17]))
    return "10X98765432"[total % 11] == text[17].upper()


def uk_nino_valid(text: str) -> bool:
    """Two prefix letters (not D F I Q U V, second not O, not BG GB KN NK NT TN ZZ), six digits, A-D."""
    compact = re.sub(r"\s", "", text).upper()
    match = re.fullmatch(r"([A-CEGHJ-PR-TW-Z])([A-CEGHJ-NPR-TW-Z])\d{6}[A-D]", compact)
    return bool(match) and compact[:2] not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ")


def mask_card_numbers(text: str) -> str:
    """Replace every Luhn-valid 13-19 digit card number with ``<CARD>``."""

    def repl(match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        return "<CARD>" if 13 <= len(digits) <= 19 and luhn_valid(digits) else match.group(0)

    return _CARD_CANDIDATE.sub(repl, text)


@dataclass(frozen=True, slots=True)
class PiiSpan:
    start: int  # character offsets into the text, end exclusive
    end: int
    label: str  # one of LABELS

    @property
    def placeholder(self) -> str:
        return f"<{self.label}>"


# Known-value field names (ABCD scenario, our own customer records) -> label.
KNOWN_FIELD_LABELS = {
    "customer_name": "NAME", "name": "NAME", "first_name": "NAME", "last_name": "NAME",
    "email": "EMAIL", "phone": "PHONE", "phone_number": "PHONE",
    "username": "ACCOUNT", "account_id": "ACCOUNT", "customer_id": "ACCOUNT", "order_id": "ACCOUNT",
    "street_address": "ADDRESS", "full_address": "ADDRESS", "address": "ADDRESS", "zip_code": "ZIP", "zip": "ZIP",
    "card": "CARD", "card_number": "CARD",
}
Known = Iterable[str] | Mapping[str, Any]

# When candidates overlap, the lower rank wins; among equal ranks the longer span.
_RANK = {"CARD": 0, "EMAIL": 1, "KNOWN": 2, "PII": 3, "ACCOUNT": 4, "PHONE": 5, "URL": 6, "ADDRESS": 7, "ZIP": 8,
         "NAME": 9}


def redact(text: str, language: str = "en", known: Known = (), keep: Sequence[str] = ()) -> str:
    """``text`` with every PII span replaced by its placeholder (``<EMAIL>``, ``<PHONE>``, ...), except spans
    that occur in one of the ``keep`` texts (details the company published: its phone number, address)."""
    spans = find_pii(text, language, known)
    return apply_spans(text, [s for s in spans if not any(text[s.start:s.end] in kept for kept in keep)])


def apply_spans(text: str, spans: list[PiiSpan]) -> str:
    out, last = [], 0
    for span in spans:
        out.append(text[last:span.start])
        out.append(span.placeholder)
        last = span.end
    out.append(text[last:])
    return "".join(out)


def find_pii(text: str, language: str = "en", known: Known = ()) -> list[PiiSpan]:
    """Non-overlapping PII spans in text order: the span-level API behind ``redact`` and the metrics."""
    if not text:
        return []
    candidates = _known_candidates(text, known)
    if any(ch.isalnum() for ch in text):
        candidates += _detector(_base_language(language)).find(text)
    return _resolve(candidates)


def _base_language(language: str) -> str:
    lang = (language or "en").lower().split("-")[0].split("_")[0]
    return "zh" if lang == "zh" else "en"


def _resolve(candidates: list[tuple[int, int, str, str]]) -> list[PiiSpan]:
    """Pick non-overlapping spans: best rank first, then longest, then leftmost."""
    chosen: list[PiiSpan] = []
    taken: list[tuple[int, int]] = []
    for start, end, label, rank_key in sorted(candidates, key=lambda c: (_RANK[c[3]], c[0] - c[1], c[0])):
        if start >= end or any(start < e and s < end for s, e in taken):
            continue
        taken.append((start, end))
        chosen.append(PiiSpan(start, end, label))
    return sorted(chosen, key=lambda s: s.start)


# --- known per-conversation values ------------------------------------------------------------------

def _known_candidates(text: str, known: Known) -> list[tuple[int, int, str, str]]:
    items = known.items() if isinstance(known, Mapping) else ((None, v) for v in known)
    found: list[tuple[int, int, str, str]] = []
    for key, value in items:
        if value is None or isinstance(value, (dict, list)):
            continue
        value = str(value).strip()
        if len(value) < 2 or not any(ch.isalnum() for ch in value):
            continue  # too short or no letters/digits: cannot identify anyone
        label = KNOWN_FIELD_LABELS.get(str(key).lower(), "") if key is not None else ""
        label = label or _guess_label(value)
        for pattern in _known_patterns(value, label):
            found += [(m.start(), m.end(), label, "KNOWN") for m in pattern.finditer(text)]
    return found


def _guess_label(value: str) -> str:
    if _EMAIL_RE.fullmatch(value):
        return "EMAIL"
    digits = re.sub(r"\D", "", value)
    if len(digits) >= 7 and re.fullmatch(r"[\d\s()+.-]+", value):
        return "CARD" if 13 <= len(digits) <= 19 and luhn_valid(digits) else "PHONE"
    return "PII"


_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@lru_cache(maxsize=4096)
def _known_patterns(value: str, label: str) -> tuple[re.Pattern[str], ...]:
    # The value itself, any run of whitespace standing for its spaces.
    patterns = [re.compile(r"\s+".join(re.escape(part) for part in value.split()), re.IGNORECASE)]
    digits = re.sub(r"\D", "", value)
    if label in ("PHONE", "CARD") and len(digits) >= 7:
        # The same digits written with other separators: (977) 625-2661 == 977.625.2661
        sep = r"[\s().+-]{0,3}"
        patterns.append(re.compile(r"(?<!\d)" + sep.join(digits) + r"(?!\d)"))
    if label == "NAME":
        # First or last name alone, when written as a name (capitalised).
        for part in value.split():
            if len(part) >= 3 and part.lower() != value.lower() and part[0].isalpha():
                patterns.append(re.compile(r"(?<!\w)" + re.escape(part[0].upper()) + "(?i:" + re.escape(part[1:])
                                           + r")(?!\w)"))
    return tuple(patterns)


# --- spaCy detector ----------------------------------------------------------------------------------

_CJK = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]")
_STREET = ["st", "street", "ave", "avenue", "rd", "road", "blvd", "boulevard", "ln", "lane", "dr", "drive",
           "way", "ct", "court", "pl", "place", "ter", "terrace", "pkwy", "parkway", "hwy", "highway", "cir",
           "circle", "sq", "square", "trl", "trail"]
_US_STATES = ["al", "ak", "az", "ar", "ca", "co", "ct", "de", "fl", "ga", "hi", "id", "il", "in", "ia", "ks",
              "ky", "la", "me", "md", "ma", "mi", "mn", "ms", "mo", "mt", "ne", "nv", "nh", "nj", "nm", "ny",
              "nc", "nd", "oh", "ok", "or", "pa", "ri", "sc", "sd", "tn", "tx", "ut", "vt", "va", "wa", "wv",
              "wi", "wy", "dc"]
# Tokens that introduce a value but are not part of it; trimmed off the left of cue matches.
_CUE_WORDS = {"my", "name", "is", "'s", "’s", "i", "'m", "’m", "am", "this", "call", "me", "order", "account",
              "hi", "hello", "hey", "dear", "thanks", "thank", "you", "bye", "goodbye",
              "acct", "member", "membership", "customer", "reference", "ref", "id", "number", "no", "no.", "num",
              "#", ":", "zip", "code", "postal", "postcode", "username", "user", "it",
              "我", "叫", "的", "名", "字", "是", "邮", "编", "住", "在", "地",
              "址", "寄", "到", "送", "：", "订", "单", "号", "账", "户", "会", "员", "卡"}
_NUM_TOKEN = r"^[+(]?\d[\d().\-]*\)?$"
_NUM_OR_SEP = r"^([+(]?\d[\d().\-]*\)?|[-().+/])$"


class _MixedTokenizer:
    """Chinese: one token per CJK character, English tokenization for Latin, digit and email runs."""

    def __init__(self, vocab: Any) -> None:
        import spacy

        self.vocab = vocab
        self._latin = spacy.blank("en").tokenizer

    def __call__(self, text: str) -> Any:
        from spacy.tokens import Doc

        words: list[str] = []
        spaces: list[bool] = []
        last = 0
        for match in _CJK.finditer(text):
            self._add_latin(text[last:match.start()], words, spaces)
            words.append(match.group(0))
            spaces.append(False)
            last = match.end()
        self._add_latin(text[last:], words, spaces)
        return Doc(self.vocab, words=words, spaces=spaces)

    def _add_latin(self, chunk: str, words: list[str], spaces: list[bool]) -> None:
        if chunk:
            for token in self._latin(chunk):
                words.append(token.text)
                spaces.append(bool(token.whitespace_))


class _Detector:
    def __init__(self, language: str) -> None:
        import spacy
        from spacy.matcher import Matcher

        self.nlp = spacy.blank(language)
        if language == "zh":
            self.nlp.tokenizer = _MixedTokenizer(self.nlp.vocab)
        self.matcher = Matcher(self.nlp.vocab)
        for key, patterns in _patterns(language).items():
            self.matcher.add(key, patterns, greedy="LONGEST")

    def find(self, text: str) -> list[tuple[int, int, str, str]]:
        # spaCy encodes to UTF-8, which a lone surrogate lacks: U+FFFD is one code point too, so spans still fit
        doc = self.nlp(_SURROGATE_RE.sub("\ufffd", text))
        found: list[tuple[int, int, str, str]] = []
        for match_id, start, end in self.matcher(doc):
            key = self.nlp.vocab.strings[match_id]
            label = key.split("_")[0]
            if label == "NUMRUN":
                found += _numbers(doc[start:end])
                continue
            if label in ("ZIP", "ACCOUNT") or key == "PII_CUE":
                start = end - 1  # the cue ("zip code", "order id", a state, "SSN") only locates the value
            elif key.endswith("_CUE"):
                while start < end and (doc[start].lower_ in _CUE_WORDS or doc[start].is_punct):
                    start += 1
                if start == end:
                    continue
            while end > start and doc[end - 1].is_punct:  # an optional trailing "," or "." matched
                end -= 1
            if label == "PII" and not _national_id(doc[start:end].text, key):
                continue
            if label == "NAME" and not _person(doc, start, end, key):
                continue
            span = doc[start:end]
            found.append((span.start_char, span.end_char, label, label))
        return found


_SENTENCE_END = {".", "!", "?", ":", ";", "\n", '"', "“", "(", "-"}
_SURNAME = r"^(?:[A-Z][a-z]+(?:'?[A-Z][a-z]+)*|[A-Z]'[A-Z][a-z]+)$"  # Smith, McCarthy, O'Brien
_ZH_ON_BEHALF = {"帮", "给", "替", "让", "请"}  # 帮我叫 ...: "call ... for me"
_PARTICLES = {"de", "da", "di", "del", "della", "du", "van", "von", "der", "den", "le", "la", "bin", "al"}


def _person(doc: Any, start: int, end: int, key: str) -> bool:
    """Whether a name candidate (cue already trimmed) is a person rather than a word, a place or a brand."""
    from chatbot.text.names import ORG_WORDS, PLACE_PREFIXES, lexicon

    lex = lexicon()
    first = doc[start]
    before = doc[start - 1] if start > 0 else None
    after = doc[end] if end < len(doc) else None
    if after is not None and after.lower_ in ORG_WORDS:
        return False  # Charles de Gaulle Airport, Maria Hernandez Park
    if first.lower_ in PLACE_PREFIXES or (before is not None and before.lower_ in PLACE_PREFIXES):
        return False  # San Mateo, Santa Clara, St. Louis; "this is San Jose"
    if key in ("NAME_LOWER_CUE", "NAME_VOC_CUE"):
        return True  # the cue says it is a name; the pattern kept ordinary words out
    if key == "NAME_CUE":
        if before is not None and before.text == "叫" and start >= 3 and doc[start - 3].text in _ZH_ON_BEHALF:
            return False  # 帮我叫个车: "call (a car) for me", not "my name is"
        return not all(t.lower_ in lex.common for t in doc[start:end])  # "I am Very Sorry"
    surname = doc[end - 1]
    if key == "NAME_FULL":
        return lex.is_clear_first(first.text) or surname.text in lex.last  # Michael Brown; Will Smith
    # NAME_SOLO: a clear first name alone, not part of a longer proper noun ("Citizen Kane", "Tom McCarthy",
    # "Charles de Gaulle"): the words around it are not capitalised, except a sentence's first word.
    if not lex.is_clear_first(first.text):
        return False
    if after is not None and (after.text[:1].isupper() and after.is_alpha and after.text != "I"
                              or after.lower_ in _PARTICLES
                              or (after.text == "-" and not after.whitespace_ and not first.whitespace_)):
        return False  # ... or a hyphenated word ("Johnny-on-the-spot")
    if before is None or before.text in _SENTENCE_END or not before.text[:1].isupper():
        return True
    # After a capitalised word only when that word is an ordinary one opening the sentence ("To Amir.")
    opens = start == 1 or doc[start - 2].text in _SENTENCE_END
    return opens and before.lower_ in lex.common


def _national_id(text: str, key: str) -> bool:
    """Check a national-id candidate: its format found it, its check digits or issuing rules confirm it."""
    digits = re.sub(r"\D", "", text)
    if key == "PII_CUE":  # a bare number after "SSN", "SIN", "Aadhaar", "social security number"
        if len(digits) == 9:
            return us_ssn_valid(digits) or (digits[0] not in "08" and luhn_valid(digits))
        return len(digits) == 12 and digits[0] in "23456789" and verhoeff_valid(digits)
    return cn_resident_id_valid(text) or uk_nino_valid(text)


@cache
def _detector(language: str) -> _Detector:
    return _Detector(language)


def _patterns(language: str) -> dict[str, list[list[dict[str, Any]]]]:
    from chatbot.text.names import MONTHS, ORG_WORDS, WEEKDAYS, lexicon

    lex = lexicon()
    first = sorted(lex.first)
    # A capitalised word that can follow "call me": never a stop word, month or weekday.
    title_word = {"IS_TITLE": True, "IS_ALPHA": True, "IS_STOP": False,
                  "LOWER": {"NOT_IN": sorted({*MONTHS, *WEEKDAYS})}}
    # A surname: capitalised (Smith, McCarthy, O'Brien), not an ordinary word or an organisation word, or a
    # known last name ("Brown" is also a colour) that is not an organisation word ("Hill").
    surname = {"TEXT": {"REGEX": _SURNAME}, "IS_STOP": False, "LOWER": {"NOT_IN": sorted(lex.common | ORG_WORDS)}}
    known_surname = {"ORTH": {"IN": sorted(lex.last)}, "LOWER": {"NOT_IN": sorted(ORG_WORDS)}}
    # A lower-case word after "my name is": never an ordinary word ("my name is spelled wrong").
    lower_name = {"IS_LOWER": True, "IS_ALPHA": True, "LOWER": {"NOT_IN": sorted(lex.common)}}
    initial = {"TEXT": {"REGEX": r"^[A-Z]\.?$"}, "OP": "?"}
    num = {"TEXT": {"REGEX": _NUM_TOKEN}}
    patterns: dict[str, list[list[dict[str, Any]]]] = {
        "EMAIL": [[{"LIKE_EMAIL": True}]],
        "URL": [[{"LIKE_URL": True, "LIKE_EMAIL": False}]],
        # A run of number groups and separators; _numbers() decides what (if anything) it holds.
        "NUMRUN": [[{"ORTH": {"IN": ["+", "("]}, "OP": "?"}, num, {"TEXT": {"REGEX": _NUM_OR_SEP}, "OP": "{0,12}"}]],
        "ACCOUNT_CUE": [[{"LOWER": {"IN": ["order", "account", "acct", "member", "membership", "customer",
                                           "reference", "ref", "confirmation", "tracking"]}},
                         {"LOWER": {"IN": ["id", "number", "no", "no.", "num", "#"]}},
                         {"ORTH": {"IN": [":", "#", "is", "-"]}, "OP": "{0,2}"},
                         {"TEXT": {"REGEX": r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9-]{3,}$"}}],
                        [{"LOWER": "username"}, {"ORTH": {"IN": [":", "is", "-"]}, "OP": "{0,2}"},
                         {"TEXT": {"REGEX": r"^[A-Za-z][A-Za-z0-9_.-]{2,}$"}, "LOWER": {"NOT_IN": ["is"]}}],
                        [{"LOWER": "user"}, {"LOWER": {"IN": ["name", "id"]}},  # not "user rating"
                         {"ORTH": {"IN": [":", "is", "-"]}, "OP": "{0,2}"},
                         {"TEXT": {"REGEX": r"^[A-Za-z][A-Za-z0-9_.-]{2,}$"}, "LOWER": {"NOT_IN": ["is"]}}]],
        "PII_ID": [[{"TEXT": {"REGEX": r"^[1-8]\d{16}[\dXx]$"}}],  # Chinese resident id
                   [{"TEXT": {"REGEX": r"^[A-Z]{2}\d{6}[A-D]$"}}],  # UK national insurance number
                   [{"TEXT": {"REGEX": r"^[A-Z]{2}$"}}, {"TEXT": {"REGEX": r"^\d\d$"}}, {"TEXT": {"REGEX": r"^\d\d$"}},
                    {"TEXT": {"REGEX": r"^\d\d$"}}, {"TEXT": {"REGEX": r"^[A-D]$"}}]],
        "PII_CUE": [[{"LOWER": {"IN": ["ssn", "sin", "aadhaar", "aadhar", "uid", "uidai"]}},
                     {"LOWER": {"IN": ["number", "no", "no.", "num", "#", ":", "is", "-"]}, "OP": "{0,3}"},
                     {"TEXT": {"REGEX": r"^(\d{9}|\d{12})$"}}],
                    [{"LOWER": "social"}, {"LOWER": {"IN": ["security", "insurance"]}},
                     {"LOWER": {"IN": ["number", "no", "no.", "num", "#", ":", "is", "-"]}, "OP": "{0,3}"},
                     {"TEXT": {"REGEX": r"^\d{9}$"}}]],
        "NAME_CUE": [[{"LOWER": "call"}, {"LOWER": "me"}, title_word, {**title_word, "OP": "?"}],
                     [{"LOWER": "my"}, {"LOWER": "name"}, {"LOWER": {"IN": ["is", "'s", "’s"]}},
                      {"IS_TITLE": True, "IS_ALPHA": True}, {"IS_TITLE": True, "IS_ALPHA": True, "OP": "?"}],
                     [{"LOWER": "name"}, {"ORTH": ":"}, {"IS_TITLE": True, "IS_ALPHA": True},
                      {"IS_TITLE": True, "IS_ALPHA": True, "OP": "?"}],
                     [{"LOWER": "i"}, {"LOWER": {"IN": ["'m", "’m", "am"]}},
                      {"IS_TITLE": True, "IS_ALPHA": True, "IS_STOP": False},
                      {"IS_TITLE": True, "IS_ALPHA": True, "IS_STOP": False}],
                     [{"LOWER": "this"}, {"LOWER": "is"}, {"IS_TITLE": True, "IS_ALPHA": True, "IS_STOP": False},
                      {"IS_TITLE": True, "IS_ALPHA": True, "IS_STOP": False}],
                     [{"LOWER": {"IN": ["mr", "mr.", "mrs", "mrs.", "ms", "ms.", "miss", "dr", "dr."]}},
                      {"ORTH": ".", "OP": "?"}, {"IS_TITLE": True, "IS_ALPHA": True},
                      {"IS_TITLE": True, "IS_ALPHA": True, "OP": "?"}]],
        "NAME_LOWER_CUE": [[{"LOWER": "my"}, {"LOWER": "name"}, {"LOWER": {"IN": ["is", "'s", "’s"]}}, lower_name,
                            {**lower_name, "OP": "{0,2}"}],
                           [{"LOWER": "name"}, {"ORTH": ":"}, lower_name, {**lower_name, "OP": "{0,2}"}]],
        "NAME_VOC_CUE": [[{"LOWER": {"IN": ["hi", "hello", "hey", "dear", "thanks", "bye", "goodbye"]}},
                          {"ORTH": ",", "OP": "?"}, {"ORTH": {"IN": first}}],
                         [{"LOWER": "thank"}, {"LOWER": "you"}, {"ORTH": ",", "OP": "?"}, {"ORTH": {"IN": first}}]],
        "NAME_FULL": [[{"ORTH": {"IN": first}}, initial, {"ORTH": ".", "OP": "?"}, surname, {**surname, "OP": "?"}],
                      [{"ORTH": {"IN": first}}, initial, {"ORTH": ".", "OP": "?"}, known_surname]],
        "NAME_SOLO": [[{"ORTH": {"IN": first}}]],
        "ADDRESS": [[{"TEXT": {"REGEX": r"^\d{1,6}[A-Za-z]?$"}},
                     {"TEXT": {"REGEX": r"^([A-Za-z]+|\d+(st|nd|rd|th))$"}, "LOWER": {"NOT_IN": _STREET}, "OP": "{1,4}"},
                     {"LOWER": {"IN": _STREET}}, {"ORTH": ".", "OP": "?"},
                     {"ORTH": ",", "OP": "?"},
                     {"LOWER": {"IN": ["apt", "apt.", "suite", "unit", "#", "ste", "ste."]}, "OP": "?"},
                     {"TEXT": {"REGEX": r"^#?\d+[A-Za-z]?$"}, "OP": "?"}]],
        "ZIP_CUE": [[{"LOWER": {"IN": _US_STATES}}, {"TEXT": {"REGEX": r"^\d{5}(-\d{4})?$"}}],
                    [{"LOWER": {"IN": ["zip", "postal", "postcode"]}}, {"LOWER": "code", "OP": "?"},
                     {"ORTH": {"IN": [":", "is", "-"]}, "OP": "{0,2}"}, {"TEXT": {"REGEX": r"^\d{5}(-\d{4})?$"}}]],
    }
    if language == "zh":
        cjk = {"TEXT": {"REGEX": r"^[\u4e00-\u9fff]$"}}
        patterns["NAME_CUE"] += [[{"ORTH": "我"}, {"ORTH": "叫"}, cjk, cjk, {**cjk, "OP": "?"}],
                                 [{"ORTH": "名"}, {"ORTH": "字"}, {"ORTH": "是"}, cjk, cjk, {**cjk, "OP": "?"}]]
        patterns["ADDRESS_CUE"] = [[{**cjk, "OP": "{1,14}"}, {"ORTH": {"IN": ["路", "街", "道", "巷", "弄", "村"]}},
                                    {"TEXT": {"REGEX": r"^\d+$"}}, {"ORTH": "号"},
                                    {"TEXT": {"REGEX": r"^[\u4e00-\u9fff\d]$|^\d+$"}, "OP": "{0,8}"},
                                    {"ORTH": {"IN": ["室", "楼", "层", "栋", "单元"]}, "OP": "?"}]]
        patterns["ZIP_CUE"].append([{"ORTH": "邮"}, {"ORTH": "编"}, {"ORTH": {"IN": ["是", ":", "："]}, "OP": "?"},
                                    {"TEXT": {"REGEX": r"^\d{6}$"}}])
        patterns["ACCOUNT_CUE"].append([{"ORTH": {"IN": ["订", "账", "会"]}}, {"ORTH": {"IN": ["单", "户", "员"]}},
                                        {"ORTH": "号", "OP": "?"}, {"ORTH": {"IN": ["是", ":", "："]}, "OP": "?"},
                                        {"TEXT": {"REGEX": r"^(?=.*\d)[A-Za-z0-9-]{4,}$"}}])
    return patterns


def _numbers(span: Any) -> list[tuple[int, int, str, str]]:
    """Card and phone numbers inside a run of number tokens: longest valid stretch first, left to right."""
    tokens = [t for t in span if any(ch.isdigit() for ch in t.text)]
    found: list[tuple[int, int, str, str]] = []
    i = 0
    while i < len(tokens):
        for j in range(len(tokens) - 1, i - 1, -1):
            start_tok, end_tok = tokens[i], tokens[j]
            start = start_tok.idx
            prev = start_tok.i - 1
            if prev >= span.start and span.doc[prev].text in ("+", "("):
                start = span.doc[prev].idx
            end = end_tok.idx + len(end_tok.text)
            text = span.doc.text[start:end]
            if text.endswith((".", "-")):
                continue
            label = _classify_number(text)
            if label:
                found.append((start, end, label, label))
                i = j + 1
                break
        else:
            i += 1
    return found


def _classify_number(text: str) -> str | None:
    digits = re.sub(r"\D", "", text)
    n = len(digits)
    # National ids by their written format (a bare 9 or 12 digits needs a cue: see PII_CUE).
    if re.fullmatch(r"\d{3}([- ])\d{2}\1\d{4}", text) and us_ssn_valid(digits):
        return "PII"  # US social security number 123-45-6789
    if n == 18 and re.fullmatch(r"\d{18}", text) and cn_resident_id_valid(text):
        return "PII"  # Chinese resident id (also ends in X: PII_ID)
    if re.fullmatch(r"[2-9]\d{3}([- ])\d{4}\1\d{4}", text) and verhoeff_valid(digits):
        return "PII"  # Aadhaar 2345 6789 0124
    if re.fullmatch(r"[1-79]\d{2}([- ])\d{3}\1\d{3}", text) and luhn_valid(digits):
        return "PII"  # Canadian social insurance number 130 692 544
    if 13 <= n <= 19 and luhn_valid(digits) and re.fullmatch(r"\d[\d -]*\d", text):
        return "CARD"
    separated = bool(re.search(r"[\s().-]", text))
    if text.startswith("+"):
        return "PHONE" if 8 <= n <= 15 else None
    if re.fullmatch(r"(86)?1[3-9]\d{9}", digits):
        return "PHONE"  # Chinese mobile
    if n == 10 and digits[0] in "23456789" and (separated or digits[3] in "23456789"):
        return "PHONE"  # North American 3-3-4
    if n == 11 and digits[0] == "1" and digits[1] in "23456789" and separated:
        return "PHONE"  # 1 + North American
    if 10 <= n <= 12 and digits[0] == "0" and separated:
        return "PHONE"  # trunk prefix + area code (UK, China landlines: 020 7946 0958, 010-88886666)
    if n == 7 and re.fullmatch(r"\d{3}[-.]\d{4}", text):
        return "PHONE"  # local 555-0134
    return None


# --- measuring -----------------------------------------------------------------------------------------

_MARK = re.compile(r"\[([A-Z]+)\|([^\]]+)\]")


def parse_marked(marked: str) -> tuple[str, list[PiiSpan]]:
    """``"call [PHONE|555-0134]"`` -> ("call 555-0134", [PiiSpan(5, 13, "PHONE")]): the labelled-set format."""
    plain: list[str] = []
    spans: list[PiiSpan] = []
    last = length = 0
    for match in _MARK.finditer(marked):
        before = marked[last:match.start()]
        plain.append(before)
        length += len(before)
        plain.append(match.group(2))
        spans.append(PiiSpan(length, length + len(match.group(2)), match.group(1)))
        length += len(match.group(2))
        last = match.end()
    plain.append(marked[last:])
    return "".join(plain), spans


def score(cases: Iterable[tuple[list[PiiSpan], list[PiiSpan]]]) -> dict[str, dict[str, float]]:
    """Per-label precision and recall over (gold, predicted) span lists.

    A gold span is recalled when predicted spans of its label cover all of its characters; a predicted
    span is correct when it overlaps a gold span of the same label. Covering is what matters for
    privacy; overlap keeps a boundary difference (``Mr. Patel`` vs ``Patel``) from counting twice.
    """
    counts: dict[str, list[int]] = {}
    for gold, predicted in cases:
        for g in gold:
            c = counts.setdefault(g.label, [0, 0, 0, 0])  # recalled, gold, correct, predicted
            covered = {i for p in predicted if p.label == g.label for i in range(max(p.start, g.start), min(p.end, g.end))}
            c[0] += len(covered) == g.end - g.start
            c[1] += 1
        for p in predicted:
            c = counts.setdefault(p.label, [0, 0, 0, 0])
            c[2] += any(g.label == p.label and g.start < p.end and p.start < g.end for g in gold)
            c[3] += 1
    return {label: {"precision": c[2] / c[3] if c[3] else 1.0, "recall": c[0] / c[1] if c[1] else 1.0,
                    "gold": c[1], "predicted": c[3]}
            for label, c in sorted(counts.items())}
