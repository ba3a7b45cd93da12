"""chatterbot-corpus YAML files.

Input: one ``*.yml`` file, a directory of them, or ``chatterbot:<language>`` for a language directory of
the installed ``chatterbot-corpus`` package (``chatterbot:english``, ``chatterbot:chinese``; as a training
``--data`` spec, ``chatterbot:english`` works too: a bare language name that is not an existing path, or one file of it,
``chatterbot:english/greetings.yml``). Each file is
``{"categories": [...], "conversations": [[turn, turn, ...], ...]}``.

Mapping: turns alternate, the first is the customer's: even turns -> customer, odd turns -> agent.
External id: ``<language directory>/<file stem>/<index>``. The language comes from the directory name
(``english`` -> ``en``, ``chinese`` -> ``zh``, ...) unless ``--language`` is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from training.importers.base import Item, add_turn, expand_files, per_file
from training.importers.reading import MAX_RECORD_CHARS, open_text
from training.importers.records import BadRecord, ConversationRecord, ImportFormatError

SOURCE = "chatterbot"
LANGUAGES = {
    "bengali": "bn", "chinese": "zh", "dutch": "nl", "english": "en", "french": "fr", "german": "de",
    "hebrew": "he", "hindi": "hi", "hinglish": "hi-latn", "indonesian": "id", "italian": "it", "japanese": "ja",
    "korean": "ko", "marathi": "mr", "oriya": "or", "persian": "fa", "portuguese": "pt", "russian": "ru",
    "spanish": "es", "swedish": "sv", "tamil": "ta", "telugu": "te", "thai": "th", "traditionalchinese": "zh-tw",
    "turkish": "tr", "ukrainian": "uk", "urdu": "ur", "yoruba": "yo",
}
PREFIX = "chatterbot:"


def resolve(spec: str | Path) -> Path:
    """``chatterbot:english`` (or ``chatterbot:english/greetings.yml``) -> the installed package's data."""
    text = str(spec)
    if not text.startswith(PREFIX):
        # `--data chatterbot:english` arrives here as the bare language name.
        if Path(text).exists() or text.strip().split("/")[0].lower() not in LANGUAGES:
            return Path(text)
        text = PREFIX + text
    import chatterbot_corpus

    name, _, file = text[len(PREFIX):].strip().partition("/")
    name = name.lower()
    directory = Path(chatterbot_corpus.__file__).parent / "data" / name
    if not directory.is_dir():
        raise ImportFormatError(text, "", f"chatterbot-corpus has no language {name!r} "
                                f"(available: {', '.join(sorted(LANGUAGES))})")
    return directory / file if file else directory


def read(path: Path, language: str | None) -> Iterator[Item]:
    files = expand_files(resolve(path), ("*.yml", "*.yaml"), "chatterbot YAML")
    return per_file(files, lambda f: _read_file(f, language))


def _read_file(path: Path, language: str | None) -> Iterator[Item]:
    with open_text(path) as text:
        content = text.read(MAX_RECORD_CHARS + 1)
    if len(content) > MAX_RECORD_CHARS:
        raise ImportFormatError(path, "", f"YAML file longer than {MAX_RECORD_CHARS:,} characters")
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ImportFormatError(path, where, f"malformed YAML: {getattr(exc, 'problem', None) or exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("conversations"), list):
        raise ImportFormatError(path, "", "expected a mapping with a 'conversations' list "
                                "(is this a chatterbot-corpus file?)")
    lang = language or LANGUAGES.get(path.parent.name.lower(), "en")
    categories = [str(c) for c in doc.get("categories") or []]
    for index, turns in enumerate(doc["conversations"]):
        position = f"conversation {index}"
        try:
            yield _conversation(turns, path, position, index, lang, categories)
        except ImportFormatError as exc:
            yield BadRecord(exc)


def _conversation(turns: Any, path: Path, position: str, index: int, language: str,
                  categories: list[str]) -> ConversationRecord:
    if not isinstance(turns, list):
        raise ImportFormatError(path, position, f"expected a list of turns, found {type(turns).__name__}")
    record = ConversationRecord(SOURCE, f"{path.parent.name}/{path.stem}/{index}", language, [],
                                meta={"categories": categories}, origin=f"{path} {position}")
    for t, turn in enumerate(turns):
        if isinstance(turn, (int, float)) and not isinstance(turn, bool):
            turn = str(turn)  # YAML reads "42" as a number
        add_turn(record, "customer" if t % 2 == 0 else "agent", turn, path, f"{position}, turn {t}")
    return record
