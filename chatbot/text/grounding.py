"""Grounding: the details a reply states (numbers, times, dates, amounts, ids, emails, phone numbers,
names) and whether the conversation or the company's facts said them first.

The bot has no access to the company's systems, so any order status, date, time, amount, phone number or
name it states must come from somewhere it can see: the conversation or the facts an admin wrote down.
A seq2seq model trained on task dialogues happily writes "a table for 2 at 12 pm on March 12th" to a
customer whose card was charged twice; this module finds those details so the service can prefer another
candidate or hand the reply to a person. Pure computation: strings in, details out; no I/O.

How a detail is matched, tolerant of format:

* every detail gets canonical *keys*: "7 pm", "7pm", "7:00 p.m." and "19:00" are all ``time:19:00``;
  "$20", "20 dollars" and "20.00" are ``num:20``; "two" is ``num:2``; "March 12th", "12 March" and
  "3月12日" are ``date:3-12``; "下午3点" is ``time:15:00``; phone numbers compare by their digits;
* the *evidence* (``Evidence.of(texts)``) holds the keys of every detail found in the sources plus what
  they imply: "March 12th" also grounds "March", "the 12th" and "12"; "7 pm" also grounds "7"; a bare
  "at 7" grounds "7 am" and "7 pm"; "the 12th" grounds "March 12th" (the month is implied by the calendar,
  the day is what the customer chose);
* a reply detail is grounded when one of its keys is in the evidence; names (runs of capitalised words
  found with spaCy's ``Matcher`` on a blank pipeline, small words such as "of" inside them, greetings and
  a lone word opening a sentence left out; for Chinese, jieba's dictionary tags for people, places and
  organisations when jieba is installed) are grounded when the same words occur in the sources, case and
  punctuation aside.

Every pattern runs in time linear in the text (a customer may send 20,000 characters of digits), and at
most ``MAX_MATCHES`` matches per pattern are read from one text: past that a source grounds less, never
more.

Only what is easy to get right is extracted: English number words, dates and times, Chinese numerals
with a measure word, times, dates and amounts; for German no names (every noun is capitalised). A reply
may thus state a detail that is missed here (a spelled-out address, a lowercase name); the check lowers
the rate of invented details, it does not prove there are none.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache
from itertools import islice
from typing import Any

from chatbot.text.special import PLACEHOLDERS

KINDS = ("placeholder", "email", "phone", "date", "time", "amount", "id", "number", "name")

# --- vocabulary ---------------------------------------------------------------------------------------

_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
_ORDINAL_UNITS = ["zeroth", "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
                  "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
                  "seventeenth", "eighteenth", "nineteenth"]
_ORDINAL_TENS = {"twentieth": 20, "thirtieth": 30}


def _word_numbers() -> tuple[dict[str, int], dict[str, int]]:
    cardinals = {w: i for i, w in enumerate(_UNITS)}
    ordinals = {w: i for i, w in enumerate(_ORDINAL_UNITS) if i}
    for tens, value in _TENS.items():
        cardinals[tens] = value
        for unit in range(1, 10):
            cardinals[f"{tens}-{_UNITS[unit]}"] = cardinals[f"{tens} {_UNITS[unit]}"] = value + unit
    ordinals.update(_ORDINAL_TENS)
    for tens, value in (("twenty", 20), ("thirty", 30)):
        for unit in range(1, 10):
            ordinals[f"{tens}-{_ORDINAL_UNITS[unit]}"] = ordinals[f"{tens} {_ORDINAL_UNITS[unit]}"] = value + unit
    return cardinals, ordinals


CARDINALS, ORDINALS = _word_numbers()
MONTHS = {name: i for i, name in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                            "september", "october", "november", "december"], 1)}
MONTHS.update({name[:3]: i for name, i in list(MONTHS.items())} | {"sept": 9})
WEEKDAYS = {name: i for i, name in enumerate(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday",
                                              "sunday"], 1)}
_ZH_WEEKDAYS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "日": 7, "天": 7}
_ZH_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "兩": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_ZH_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10_000, "萬": 10_000}
_CURRENCY_WORDS = ("dollars?|bucks|usd|us\\$|euros?|eur|pounds?|gbp|yuan|rmb|cny|yen|jpy")
_ZH_CURRENCY = "元|块|塊|美元|欧元|歐元|英镑|英鎊|日元|人民币|人民幣"
_ZH_MEASURE = ("位|个|個|人|张|張|间|間|天|晚|夜|次|件|份|台|辆|輛|本|杯|楼|樓|层|層|室|岁|歲|分钟|分鐘|小时|小時|"
               "公里|米|折|周|週|年|个月|個月|站|号|號|晚上|间房|间客房")

# --- patterns ---------------------------------------------------------------------------------------------
# ASCII boundaries, not \b: CJK characters are word characters, so "订单A1234已" has no \b around A1234.
_L = r"(?<![A-Za-z0-9])"
_R = r"(?![A-Za-z0-9])"
_ZHNUM = r"[零〇一二两兩三四五六七八九十百千万萬]+"
# Numbers start only where no digit or numeral precedes: a pattern that needs a suffix ("元", "点") then
# fails once per run instead of once per character (a 20,000-digit message would take seconds otherwise).
_NOT_AFTER_NUMERAL = r"(?<![\d.零〇一二两兩三四五六七八九十百千万萬])"
_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_ORD_WORDS = "|".join(sorted((re.escape(w) for w in ORDINALS), key=len, reverse=True))
_CARD_WORDS = "|".join(sorted((re.escape(w) for w in CARDINALS), key=len, reverse=True))
_MONTH_NAMES = "|".join(sorted(MONTHS, key=len, reverse=True))
_AMPM = r"(?:[ap]\.\s?m\.?|[ap]\s?m)(?![A-Za-z])"
_HOUR_WORD = "|".join(sorted((w for w in CARDINALS if 1 <= CARDINALS[w] <= 12), key=len, reverse=True))
_PERIOD_EN = r"in\s+the\s+(?P<period>morning|afternoon|evening|night)|at\s+(?P<period2>night)|(?P<period3>tonight)"
_ZH_PERIOD = "上午|早上|早晨|清晨|凌晨|中午|下午|傍晚|晚上|夜里|夜裡|今晚|明晚"

_I = re.IGNORECASE
PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("placeholder", re.compile("|".join(re.escape(p) for p in PLACEHOLDERS))),
    ("email", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")),
    # ISO dates before phone numbers: "2024-03-12" would look like one.
    ("date", re.compile(_L + r"(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})" + _R)),
    ("phone", re.compile(r"(?<![A-Za-z0-9+.,:/-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}"
                         + r"(?![A-Za-z0-9]|[.,:/-]\d)|(?<![A-Za-z0-9+.,:/-])\+?\d{7,15}(?![A-Za-z0-9]|[.,:/-]\d)")),
    ("date", re.compile(_L + r"(?P<a>\d{1,2})/(?P<b>\d{1,2})(?:/(?P<y>\d{2,4}))?" + _R)),
    ("date", re.compile(r"(?<![\w])(?P<month>" + _MONTH_NAMES + r")\.?\s+(?:the\s+)?(?P<day>" + _DAY + "|" + _ORD_WORDS
                        + r")(?:,?\s+(?P<y>\d{4}))?" + _R, _I)),
    ("date", re.compile(r"(?<![\w])(?:the\s+)?(?P<day>" + _DAY + "|" + _ORD_WORDS + r")\s+(?:of\s+)?(?P<month>"
                        + _MONTH_NAMES + r")\.?(?:,?\s+(?P<y>\d{4}))?" + _R, _I)),
    ("date", re.compile(r"(?<![\w])the\s+(?P<dayonly>(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)|" + _ORD_WORDS + r")" + _R, _I)),
    ("date", re.compile(r"(?<![\w])(?P<rel>day\s+after\s+tomorrow|tomorrow|tonight)(?![\w])", _I)),
    ("date", re.compile(r"(?<![\w])(?P<weekday>" + "|".join(WEEKDAYS) + r")s?(?![\w])", _I)),
    ("date", re.compile(r"(?<![\w])(?P<monthonly>" + "|".join(n for n in MONTHS if len(n) > 3 or n == "may")
                        + r")(?![\w])", _I)),
    ("date", re.compile(_NOT_AFTER_NUMERAL + r"(?:(?P<y>\d{4}|" + _ZHNUM + r")年)?(?P<m>\d{1,2}|" + _ZHNUM + r")月(?:(?P<d>\d{1,2}|" + _ZHNUM
                        + r")[日号號])?")),
    ("date", re.compile(r"(?<!月)" + _NOT_AFTER_NUMERAL + r"(?P<zhday>\d{1,2}|" + _ZHNUM + r")[日号號](?!子|期|本|元|语|語|文|楼|樓|线|線|码|碼|门|門|厅|廳)")),
    ("date", re.compile(r"(?:星期|礼拜|禮拜|周|週)(?P<zhweekday>[一二三四五六日天])")),
    ("date", re.compile(r"(?P<zhrel>大后天|後天|后天|明天|今晚|明晚)")),
    ("time", re.compile(r"(?:(?P<zhperiod>" + _ZH_PERIOD + r")\s*)?" + _NOT_AFTER_NUMERAL + r"(?P<h>\d{1,2}|" + _ZHNUM
                        + r")\s*[点點时時](?:\s*(?P<half>半)|"
                        r"\s*(?P<quarter>一刻|三刻)|\s*(?P<min>\d{1,2}|" + _ZHNUM + r")\s*分?)?")),
    ("time", re.compile(r"(?P<zhperiod>" + _ZH_PERIOD + r")\s*(?P<h>\d{1,2}):(?P<min>[0-5]\d)")),
    ("time", re.compile(_L + r"(?P<h>[01]?\d|2[0-3])(?:[:.](?P<min>[0-5]\d))?\s*(?P<ampm>" + _AMPM + ")", _I)),
    ("time", re.compile(r"(?<![\w])(?:(?P<halfpast>half\s+past)|(?P<qpast>quarter\s+past)|(?P<qto>quarter\s+to))?\s*"
                        r"(?P<h>\d{1,2}|" + _HOUR_WORD + r")(?::(?P<min>[0-5]\d))?\s+(?:o'?clock\s+)?(?:"
                        + _PERIOD_EN + r")(?![\w])", _I)),
    ("time", re.compile(r"(?<![\w])(?:(?P<halfpast>half\s+past)|(?P<qpast>quarter\s+past)|(?P<qto>quarter\s+to))\s+"
                        r"(?P<h>\d{1,2}|" + _HOUR_WORD + r")(?![\w:])", _I)),
    ("time", re.compile(r"(?<![\w])(?P<h>\d{1,2}|" + _HOUR_WORD + r")\s+o'?clock(?![\w])", _I)),
    ("time", re.compile(_L + r"(?P<h>[01]?\d|2[0-3]):(?P<min>[0-5]\d)" + _R)),
    ("time", re.compile(r"(?<![\w])(?P<named>noon|midday|midnight)(?![\w])|(?P<zhnamed>中午|午夜|半夜)(?![\d一二两三四五六七八九十点點])",
                        _I)),
    ("amount", re.compile(r"(?:[$€£¥￥]|(?<![A-Za-z])(?:usd|eur|gbp|rmb|cny)\s?)\s?(?P<v>" + _NUM + r")(?:\s?(?:k|million))?"
                          + _R, _I)),
    ("amount", re.compile(_L + r"(?P<v>" + _NUM + r")\s?(?:" + _CURRENCY_WORDS + r")(?![\w])", _I)),
    ("amount", re.compile(_NOT_AFTER_NUMERAL + r"(?P<v>\d+(?:\.\d+)?|" + _ZHNUM + r")\s?(?:" + _ZH_CURRENCY + r")")),
    # Bounded lengths: an id is short, and an unbounded look-ahead rescans a long run from every position.
    ("id", re.compile(r"#\s?(?P<digits>\d{3,40})" + _R + "|" + _L
                      + r"(?=[A-Za-z0-9-]{0,40}\d)(?=[A-Za-z0-9-]{0,40}[A-Za-z])(?![0-9]{1,40}(?:st|nd|rd|th|[a-z]{1,3})"
                      + _R + r")[A-Za-z0-9]{1,40}(?:-[A-Za-z0-9]{1,40}){0,5}" + _R)),
    ("number", re.compile(_L + r"(?P<v>" + _NUM + r")(?:st|nd|rd|th)?\s?%?" + _R)),
    ("number", re.compile(r"(?<![\w-])(?P<w>" + _CARD_WORDS + r")(?:\s+(?P<hundred>hundred|thousand))?(?![\w-])", _I)),
    ("number", re.compile(_NOT_AFTER_NUMERAL + r"(?P<zh>" + _ZHNUM + r")(?=" + _ZH_MEASURE + r")")),
]
_SOURCE_ONLY_NUMBERS = re.compile(r"(?<![\w-])(?P<w>" + _ORD_WORDS + "|a couple|a dozen" + r")(?![\w-])"
                                  + "|(?P<zh>" + _ZHNUM + ")", _I)
# "at 7" grounds "7 am" and "7 pm"; "at 7 am" is a time of its own and grounds only itself.
_BARE_HOUR = re.compile(r"(?<![\w])(?:at|around|about|by|after|before|until|till|from|to)\s+(?P<h>\d{1,2}|" + _HOUR_WORD
                        + r")(?![\w:])(?!\s*(?:[ap]\.?\s?m(?![A-Za-z])|o'?clock|in\s+the\s|tonight|at\s+night))", _I)
_ID_NOT = re.compile(r"^(?:\d+(?:st|nd|rd|th|am|pm|a|p|k|m|h|s|min|kg|km|mi|ft|lb|lbs|mb|gb|x)|mp3|mp4|3d|4k|2d|"
                     r"covid-19|wi-fi)$", _I)
# "one moment", "the one", "一个问题" (a question): too common to be a detail in a reply.
_WORD_ONE_IN_REPLY = {"zero", "one", "一", "壹"}


# --- the details ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    """One stated detail: its kind, its text in the reply, where, and the canonical keys that ground it."""

    kind: str
    text: str
    start: int
    end: int
    keys: frozenset[str]


def normalize(text: str) -> str:
    """NFKC (full-width digits and colons become ASCII) with typographic apostrophes made plain; the
    length may change, so offsets refer to this form."""
    return unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")


def _number(text: str) -> str | None:
    """Canonical decimal: "1,000" -> "1000", "20.00" -> "20", "1.5" -> "1.5"."""
    text = text.replace(",", "")
    if len(text) > 40:  # a digit string, not a quantity (and int() refuses over 4,300 digits)
        return text.lstrip("0") or "0"
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def zh_number(text: str) -> int | None:
    """A Chinese numeral up to the ten-thousands: 十二 -> 12, 两百零五 -> 205, 三万 -> 30000."""
    if not text or len(text) > 20:
        return None
    if all(ch in _ZH_DIGITS for ch in text):  # digit by digit: "二零二四"
        return int("".join(str(_ZH_DIGITS[ch]) for ch in text)) if len(text) > 1 else _ZH_DIGITS[text]
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _ZH_DIGITS:
            digit = _ZH_DIGITS[ch]
        elif ch in _ZH_UNITS:
            unit = _ZH_UNITS[ch]
            if unit == 10_000:
                total += (section + (digit or 0)) * unit
                section = 0
            else:
                section += (1 if digit is None else digit) * unit
            digit = None
        else:
            return None
    return total + section + (digit or 0)


def _int_of(text: str) -> int | None:
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if text in CARDINALS:
        return CARDINALS[text]
    if text in ORDINALS:
        return ORDINALS[text]
    stripped = re.sub(r"(st|nd|rd|th)$", "", text)
    if stripped.isdigit():
        return int(stripped)
    return zh_number(text)


def _time_keys(hour: int, minute: int, period: str | None) -> set[str]:
    """``time:HH:MM`` for a stated clock time; both readings when am/pm is not said."""
    if not (0 <= hour <= 24 and 0 <= minute < 60):
        return set()
    hour %= 24
    if period == "am":
        hours = {0 if hour == 12 else hour}
    elif period == "pm":
        hours = {hour if hour >= 12 else hour + 12}
    elif period == "noon":  # 中午12点, 中午1点
        hours = {hour if hour >= 11 else hour + 12}
    elif hour == 0 or hour > 12:
        hours = {hour}
    else:
        hours = {hour % 12, hour % 12 + 12}
    return {f"time:{h:02d}:{minute:02d}" for h in hours}


def _period(word: str | None) -> str | None:
    if not word:
        return None
    word = word.lower()
    if word in ("morning", "上午", "早上", "早晨", "清晨", "凌晨"):
        return "am"
    if word in ("中午",):
        return "noon"
    if word in ("afternoon", "evening", "night", "tonight", "下午", "傍晚", "晚上", "夜里", "夜裡", "今晚", "明晚"):
        return "pm"
    if word.startswith("a"):
        return "am"
    if word.startswith("p"):
        return "pm"
    return None


def _keys(kind: str, m: re.Match[str]) -> tuple[set[str], set[str]]:
    """(keys that ground the detail, further keys it implies when it appears in a source)."""
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    text = m.group(0)
    if kind == "placeholder":
        return {f"ph:{text}"}, set()
    if kind == "email":
        return {f"email:{text.lower()}"}, set()
    if kind == "phone":
        digits = re.sub(r"\D", "", text)
        return {f"phone:{digits}"}, set()
    if kind == "id":
        value = g.get("digits") or re.sub(r"[^0-9a-z]", "", text.lower())
        extra = {f"num:{value.lstrip('0') or '0'}"} if value.isdigit() else set()
        return {f"id:{value}"} | extra, set()
    if kind == "amount":
        value = g["v"]
        number = _number(value) if value[0].isdigit() else (str(zh_number(value)) if zh_number(value) is not None else None)
        if number is None:
            return set(), set()
        return {f"num:{number}"}, {f"amount:{number}"}
    if kind == "number":
        if "w" in g:
            value = CARDINALS.get(re.sub(r"\s+", " ", g["w"].lower()).replace(" ", "-"), CARDINALS.get(g["w"].lower()))
            if value is None:
                return set(), set()
            if "hundred" in g:
                value *= 100 if g["hundred"].lower() == "hundred" else 1000
            return {f"num:{value}"}, set()
        if "zh" in g:
            value = zh_number(g["zh"])
            return ({f"num:{value}"}, set()) if value is not None else (set(), set())
        number = _number(g["v"])
        if number is None:
            return set(), set()
        is_day = number.isdigit() and len(number) <= 2 and 1 <= int(number) <= 31
        return {f"num:{number}"}, ({f"day:{number}"} if is_day else set())
    if kind == "time":
        return _time_detail_keys(g)
    if kind == "date":
        return _date_keys(g)
    return set(), set()


def _time_detail_keys(g: dict[str, str]) -> tuple[set[str], set[str]]:
    if "named" in g or "zhnamed" in g:
        word = (g.get("named") or g.get("zhnamed") or "").lower()
        key = "time:00:00" if word in ("midnight", "午夜", "半夜") else "time:12:00"
        return {key}, set()
    hour = _int_of(g["h"])
    if hour is None:
        return set(), set()
    minute = 0
    if "min" in g:
        minute = _int_of(g["min"]) or 0
    if "half" in g or "halfpast" in g:
        minute = 30
    if "qpast" in g or g.get("quarter") == "一刻":
        minute = 15
    if g.get("quarter") == "三刻":
        minute = 45
    if "qto" in g:
        hour, minute = (hour - 1) % 24, 45
    period = _period(g.get("ampm") or g.get("period") or g.get("period2") or g.get("period3") or g.get("zhperiod"))
    keys = _time_keys(hour, minute, period)
    implied = {f"num:{hour % 12 or 12}", f"num:{hour}"} | ({f"num:{minute}"} if minute else set())
    return keys, implied


def _date_keys(g: dict[str, str]) -> tuple[set[str], set[str]]:
    if "rel" in g or "zhrel" in g:
        word = (g.get("rel") or g.get("zhrel") or "").lower()
        rel = {"tomorrow": "tomorrow", "明天": "tomorrow", "tonight": "tonight", "今晚": "tonight",
               "明晚": "tomorrow", "后天": "after-tomorrow", "後天": "after-tomorrow",
               "大后天": "in-3-days"}.get(re.sub(r"\s+", " ", word), "after-tomorrow")
        return {f"rel:{rel}"}, set()
    if "weekday" in g:
        return {f"weekday:{WEEKDAYS[g['weekday'].lower()]}"}, set()
    if "zhweekday" in g:
        return {f"weekday:{_ZH_WEEKDAYS[g['zhweekday']]}"}, set()
    if "monthonly" in g:
        return {f"month:{MONTHS[g['monthonly'].lower()]}"}, set()
    if "dayonly" in g or "zhday" in g:
        day = _int_of(g.get("dayonly") or g.get("zhday") or "")
        if day is None or not 1 <= day <= 31:
            return set(), set()
        return {f"day:{day}"}, {f"dayonly:{day}", f"num:{day}"}
    if "a" in g:  # 12/03: either order
        a, b = int(g["a"]), int(g["b"])
        keys = {f"date:{m}-{d}" for m, d in ((a, b), (b, a)) if 1 <= m <= 12 and 1 <= d <= 31}
        return keys, {f"num:{a}", f"num:{b}"} | {f"month:{k.split(':')[1].split('-')[0]}" for k in keys}
    month_text = g.get("month") or g.get("m") or ""
    month = MONTHS.get(month_text.lower().rstrip(".")) if not month_text[:1].isdigit() and month_text[:1] not in _ZH_DIGITS \
        and month_text[:1] not in _ZH_UNITS else _int_of(month_text)
    day_text = g.get("day") or g.get("d")
    if month is None or not 1 <= month <= 12:
        return set(), set()
    if day_text is None:  # 3月
        return {f"month:{month}"}, set()
    day = _int_of(day_text)
    if day is None or not 1 <= day <= 31:
        return set(), set()
    return {f"date:{month}-{day}", f"dayonly:{day}"}, {f"month:{month}", f"day:{day}", f"num:{day}"}


# Matches kept per pattern and text. A reply states a handful; a 20,000-character message of numbers would
# otherwise cost half a second. Past the cap a source grounds less (never more), so the check stays safe.
MAX_MATCHES = 1000


def _regex_details(text: str) -> list[tuple[Detail, set[str]]]:
    """Every non-overlapping pattern match, longest first (ties: the order of ``PATTERNS``)."""
    found: list[tuple[int, int, int, str, re.Match[str]]] = []
    for priority, (kind, pattern) in enumerate(PATTERNS):
        for m in islice(pattern.finditer(text), MAX_MATCHES):
            start, end = m.span()
            while start < end and text[start].isspace():
                start += 1
            if end > start:
                found.append((start, end, priority, kind, m))
    found.sort(key=lambda f: (-(f[1] - f[0]), f[2], f[0]))
    taken = bytearray(len(text))  # 1 where a kept detail lies: linear, however many numbers a text holds
    out: list[tuple[Detail, set[str]]] = []
    for start, end, _, kind, m in found:
        if any(taken[start:end]):
            continue
        surface = text[start:end].strip()
        if kind == "id" and _ID_NOT.match(surface) or kind == "phone" and len(re.sub(r"\D", "", surface)) < 7:
            continue
        if kind == "time" and _is_zh_a_little(m):
            continue
        if kind == "date" and m.groupdict().get("monthonly") and surface.lower() == "may" and not _may_is_month(text, start):
            continue
        keys, implied = _keys(kind, m)
        if not keys:
            continue
        taken[start:end] = b"\x01" * (end - start)
        out.append((Detail(kind, surface, start, end, frozenset(keys)), implied))
    out.sort(key=lambda d: d[0].start)
    return out


def _is_zh_a_little(m: re.Match[str]) -> bool:
    """"快一点" is "a bit faster", not one o'clock: a bare 一点 needs a time of day or 钟 to be a time."""
    g = m.groupdict()
    return (g.get("h") in ("一", "壹") and not g.get("zhperiod") and not g.get("min") and not g.get("half")
            and not g.get("quarter") and not m.string.startswith("钟", m.end()) and not m.string.startswith("鐘", m.end()))


def _may_is_month(text: str, start: int) -> bool:
    """"May" the month, not "May I help you": only after a preposition or before a year."""
    before = text[:start].lower().rstrip()
    return bool(re.search(r"(?<![\w])(in|of|since|until|till|early|late|mid|from|through)$", before)) or bool(
        re.match(r"May,?\s+\d{4}", text[start:]))


# --- names ----------------------------------------------------------------------------------------------

_NAME_LANGUAGES = ("en", "es", "fr")
_LEADING_WORDS = frozenset({
    "sure", "okay", "ok", "great", "perfect", "alright", "thanks", "thank", "sorry", "hello", "hi", "hey", "yes", "yeah",
    "no", "unfortunately", "certainly", "absolutely", "welcome", "goodbye", "bye", "dear", "done", "however",
    "currently", "got", "noted", "confirming", "confirm", "good", "excellent", "wonderful", "awesome", "cool", "fine",
    "oh", "oops", "hmm", "well", "mr", "mrs", "ms", "dr", "let", "would", "could", "should", "shall", "will", "can",
    "may", "might", "must", "do", "does", "did", "is", "are", "was", "were", "have", "has", "had", "what", "which",
    "where", "when", "who", "how", "why", "there", "here", "your", "you", "my", "our", "we", "i", "it", "they",
    "please", "bonjour", "merci", "hola", "gracias", "oui", "non", "si", "sí", "vale", "d'accord", "entendu",
})
_NAME_CONNECTORS = ["'s", "of", "the", "de", "del", "la", "le", "du", "des", "y", "and", "&", "van", "von", "da", "di"]
_CAPITALISED = r"^[A-ZÀ-ÖØ-Þ][\w'&.\-]*$"
_LONG_WORD = re.compile(r"\S{41,}")
_SENTENCE_OPENERS = frozenset(".!?:;\n…。！？：；\"“”'(")


@cache
def _name_matcher(language: str) -> Any:
    """A blank spaCy pipeline (tokenizer only) and a Matcher for capitalised words and the small words that
    join them inside a name ("Bank of America"). One-token patterns, merged into runs by ``_latin_names``:
    a ``"+"`` pattern would make the Matcher list every sub-span of a long run (quadratic)."""
    import spacy
    from spacy.matcher import Matcher

    nlp = spacy.blank(language)
    matcher = Matcher(nlp.vocab)
    matcher.add("CAPITALISED", [[{"TEXT": {"REGEX": _CAPITALISED}}]])
    matcher.add("CONNECTOR", [[{"LOWER": {"IN": _NAME_CONNECTORS}}]])
    return nlp, matcher


def _is_generic(token: Any) -> bool:
    return token.is_stop or token.lower_.strip(".'") in _LEADING_WORDS or token.is_punct


def _opens_sentence(text: str, index: int) -> bool:
    while index > 0 and text[index - 1].isspace():
        index -= 1
    return index == 0 or text[index - 1] in _SENTENCE_OPENERS


def _latin_names(text: str, language: str, taken: bytearray) -> list[Detail]:
    nlp, matcher = _name_matcher(language)
    # No name is one 40-character word; blanking such runs (same length, offsets kept) spares the tokenizer's
    # affix rules, which are quadratic in the length of a word.
    doc = nlp.make_doc(_LONG_WORD.sub(lambda m: " " * len(m.group()), text))
    kinds = {start: nlp.vocab.strings[match_id] for match_id, start, _ in matcher(doc)}
    runs: list[list[Any]] = []
    current: list[Any] = []
    for token in doc:
        # Pieces a pattern already took ("March" in "March 12th") end a run.
        free = not any(taken[token.idx : token.idx + len(token.text)])
        kind = kinds.get(token.i)
        joins = kind == "CONNECTOR" and bool(current) and kinds.get(token.i + 1) == "CAPITALISED"
        if free and (kind == "CAPITALISED" or joins):
            current.append(token)
            continue
        if current:
            runs.append(current)
        current = []
    if current:
        runs.append(current)
    out: list[Detail] = []
    for tokens in runs:
        while tokens and _is_generic(tokens[0]):
            tokens.pop(0)
        while tokens and (_is_generic(tokens[-1]) or tokens[-1].lower_ in _NAME_CONNECTORS):
            tokens.pop()
        if not tokens:
            continue
        first = tokens[0]
        if len(tokens) == 1 and (_opens_sentence(text, first.idx) and not first.is_upper or len(first.text) < 2):
            continue  # one capitalised word opening a sentence says nothing about being a name
        begin, finish = first.idx, tokens[-1].idx + len(tokens[-1].text)
        surface = text[begin:finish].strip(".")
        out.append(Detail("name", surface, begin, begin + len(surface), frozenset({f"name:{fold(surface)}"})))
    return out


_ZH_NAME_FLAGS = ("nr", "nrfg", "nrt", "ns", "nt")


def _chinese_names(text: str, taken: bytearray) -> list[Detail]:
    """People, places and organisations from jieba's dictionary tags (skipped when jieba is missing)."""
    try:
        import jieba.posseg as pseg
    except ImportError:
        return []
    _quiet_jieba()
    out: list[Detail] = []
    position = 0
    for word, flag in pseg.cut(text):
        start = text.find(word, position)
        if start < 0:
            continue
        position = start + len(word)
        if flag in _ZH_NAME_FLAGS and len(word) >= 2 and re.search(r"[\u4e00-\u9fff]", word) and not any(
                taken[start:position]):
            out.append(Detail("name", word, start, position, frozenset({f"name:{word}"})))
    return out


@cache
def _quiet_jieba() -> None:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)


def fold(text: str) -> str:
    """Lowercase words separated by single spaces, for matching names whatever their case or punctuation."""
    return " ".join(re.findall(r"[^\W_]+", normalize(text).casefold()))


# --- public API -----------------------------------------------------------------------------------------


def extract(text: str, language: str | None = None) -> list[Detail]:
    """The details a reply states, in order of appearance (offsets refer to ``normalize(text)``).

    ``language`` picks the name rules (capitalisation for en/es/fr, jieba tags for zh, none for de);
    ``None`` guesses English or Chinese from the characters.
    """
    if len(text) > CACHED_CHARS:
        return list(_extract_uncached(text, language))
    return list(_extract(text, language))


# Texts up to this long are cached (most messages and every reply); longer ones are read each time, so the
# caches stay a few megabytes whatever customers send.
CACHED_CHARS = 1000


@lru_cache(maxsize=4096)
def _extract(text: str, language: str | None) -> tuple[Detail, ...]:
    """Cached: the same candidates ("Is there anything else I can help you with?") come back all day."""
    return _extract_uncached(text, language)


def _extract_uncached(text: str, language: str | None) -> tuple[Detail, ...]:
    text = normalize(text)
    details = [d for d, _ in _regex_details(text)]
    details = [d for d in details if not (d.kind == "number" and d.text.lower() in _WORD_ONE_IN_REPLY)]
    if language is None:
        from chatbot.text.tokenize import detect_language

        language = detect_language(text)
    taken = bytearray(len(text))
    for d in details:
        taken[d.start : d.end] = b"\x01" * (d.end - d.start)
    if language in _NAME_LANGUAGES:
        details += _latin_names(text, language, taken)
    elif language == "zh":
        details += _chinese_names(text, taken)
    return tuple(sorted(details, key=lambda d: d.start))


@dataclass(frozen=True)
class Evidence:
    """What a set of source texts (the conversation, the company facts) states, ready for matching."""

    keys: frozenset[str]
    phones: tuple[str, ...]
    folded: str  # " word word ... " for whole-word name matching
    plain: str  # NFKC text for CJK names (no spaces to match on)

    @classmethod
    def of(cls, texts: Iterable[str]) -> Evidence:
        keys: set[str] = set()
        phones: list[str] = []
        folded, plain = [], []
        for text in texts:
            text_keys, text_phones, text_folded, text_plain = _text_evidence(text)
            keys |= text_keys
            phones += text_phones
            folded.append(text_folded)
            plain.append(text_plain)
        return cls(frozenset(keys), tuple(dict.fromkeys(phones)), " " + " ".join(folded) + " ", "\n".join(plain))

    def grounds(self, detail: Detail) -> bool:
        if detail.kind == "name":
            if re.search(r"[\u3400-\u9fff]", detail.text):
                return detail.text in self.plain
            return f" {fold(detail.text)} " in self.folded
        if detail.kind == "phone":
            digits = next(iter(detail.keys)).split(":", 1)[1]
            return any(_same_phone(digits, known) for known in self.phones) or bool(detail.keys & self.keys)
        return bool(detail.keys & self.keys)


def _text_evidence(raw: str) -> tuple[frozenset[str], tuple[str, ...], str, str]:
    return _read_evidence(raw) if len(raw) > CACHED_CHARS else _cached_evidence(raw)


@lru_cache(maxsize=8192)
def _cached_evidence(raw: str) -> tuple[frozenset[str], tuple[str, ...], str, str]:
    """Cached: every turn of a conversation is a source again for each later reply, and re-reading it would
    cost more than the check itself."""
    return _read_evidence(raw)


def _read_evidence(raw: str) -> tuple[frozenset[str], tuple[str, ...], str, str]:
    """One source text's keys, phone digits, folded and plain forms."""
    text = normalize(raw)
    keys: set[str] = set()
    phones: list[str] = []
    for detail, implied in _regex_details(text):
        # A reply's "March 12th" is grounded by a customer's "the 12th" (dayonly), never by "April 12th".
        keys |= {k for k in detail.keys if not k.startswith("dayonly:")} | implied
        if detail.kind == "phone":
            phones.append(next(iter(detail.keys)).split(":", 1)[1])
    for m in _SOURCE_ONLY_NUMBERS.finditer(text):
        value = _source_number(m)
        if value is not None:
            keys.add(f"num:{value}")
    for m in _BARE_HOUR.finditer(text):
        hour = _int_of(m.group("h"))
        if hour is not None:
            keys |= _time_keys(hour, 0, None)
    phones += re.findall(r"\d{7,}", re.sub(r"(?<=\d)[\s().-]+(?=\d)", "", text))
    return frozenset(keys), tuple(phones), fold(text), text


def _source_number(m: re.Match[str]) -> int | None:
    if m.group("zh"):
        return zh_number(m.group("zh"))
    word = m.group("w").lower()
    return {"a couple": 2, "a dozen": 12}.get(word, ORDINALS.get(word))


def _same_phone(a: str, b: str) -> bool:
    """Same number with or without a country or trunk prefix: the shorter is the end of the longer."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 7 and long.endswith(short)


def ungrounded(reply: str, evidence: Evidence | Sequence[Evidence], language: str | None = None) -> list[Detail]:
    """The details of ``reply`` that no evidence grounds, in order; each distinct text once."""
    sources = (evidence,) if isinstance(evidence, Evidence) else tuple(evidence)
    out: dict[str, Detail] = {}
    for detail in extract(reply, language):
        if not any(source.grounds(detail) for source in sources):
            out.setdefault(detail.text, detail)
    return list(out.values())
