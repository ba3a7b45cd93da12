"""Token <-> id mapping built from training pairs, stored as JSON next to the model.

Special tokens come first with fixed ids (pad=0, bos=1, eos=2, unk=3), followed by the speaker tokens, one
language token per supported language and the redaction placeholders, so every model can read contexts
and write placeholders whatever its training data held.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from chatbot.text.special import BOS, EOS, PAD, PLACEHOLDERS, SPEAKER_TOKENS, UNK, language_token
from chatbot.text.tokenize import SUPPORTED_LANGUAGES

VOCAB_FORMAT = "chatbot-vocab"
VOCAB_VERSION = 1

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

SPECIAL_TOKENS: tuple[str, ...] = tuple(
    dict.fromkeys(
        [PAD, BOS, EOS, UNK, *SPEAKER_TOKENS.values(), *(language_token(l) for l in SUPPORTED_LANGUAGES), *PLACEHOLDERS]
    )
)


class VocabError(ValueError):
    """A vocabulary file or argument that cannot be used."""


class Vocab:
    def __init__(self, tokens: Sequence[str]) -> None:
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise VocabError("vocabulary must start with the special tokens in their fixed order")
        if len(set(tokens)) != len(tokens):
            dup = next(t for t, n in Counter(tokens).items() if n > 1)
            raise VocabError(f"duplicate token in vocabulary: {dup!r}")
        if not all(isinstance(t, str) and t for t in tokens):
            raise VocabError("vocabulary tokens must be non-empty strings")
        self._itos = tokens
        self._stoi = {t: i for i, t in enumerate(tokens)}

    @classmethod
    def build(
        cls, token_lists: Iterable[Iterable[str]], min_freq: int = 2, max_size: int | None = 12_000
    ) -> Vocab:
        """Most frequent tokens first (ties alphabetical, so builds are reproducible).

        ``max_size`` bounds the whole vocabulary, special tokens included.
        """
        if min_freq < 1:
            raise VocabError("min_freq must be >= 1")
        if max_size is not None and max_size < len(SPECIAL_TOKENS):
            raise VocabError(f"max_size must be at least {len(SPECIAL_TOKENS)} (the special tokens)")
        counts: Counter[str] = Counter()
        for tokens in token_lists:
            counts.update(tokens)
        specials = set(SPECIAL_TOKENS)
        ranked = sorted(
            (t for t, n in counts.items() if n >= min_freq and t not in specials), key=lambda t: (-counts[t], t)
        )
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIAL_TOKENS)]
        return cls([*SPECIAL_TOKENS, *ranked])

    # --- persistence ------------------------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({"format": VOCAB_FORMAT, "version": VOCAB_VERSION, "tokens": self._itos}, ensure_ascii=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temp file + rename): a crash never leaves half a vocabulary."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocab:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise VocabError(f"vocabulary file not found: {path}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VocabError(f"vocabulary file {path} is not valid JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("format") != VOCAB_FORMAT or not isinstance(data.get("tokens"), list):
            raise VocabError(f"{path} is not a {VOCAB_FORMAT} file")
        if not isinstance(data.get("version"), int) or data["version"] > VOCAB_VERSION:
            raise VocabError(f"{path} has vocabulary version {data.get('version')!r}; this build reads {VOCAB_VERSION}")
        try:
            return cls(data["tokens"])
        except VocabError as exc:
            raise VocabError(f"{path}: {exc}") from None

    def sha256(self) -> str:
        """Identity of the token list: a model is only valid with the vocabulary it was trained on."""
        return hashlib.sha256(json.dumps(self._itos, ensure_ascii=False).encode("utf-8")).hexdigest()

    # --- mapping ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._itos)

    def __contains__(self, token: object) -> bool:
        return token in self._stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._itos == other._itos

    def __hash__(self) -> int:
        return hash(tuple(self._itos))

    def index(self, token: str) -> int:
        """Id of ``token``, ``unk_id`` when it is not in the vocabulary."""
        return self._stoi.get(token, self.unk_id)

    def token(self, index: int) -> str:
        return self._itos[index]

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self._stoi.get(t, self.unk_id) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self._itos[i] for i in ids]

    @property
    def tokens(self) -> list[str]:
        return list(self._itos)

    @property
    def pad_id(self) -> int:
        return PAD_ID

    @property
    def bos_id(self) -> int:
        return BOS_ID

    @property
    def eos_id(self) -> int:
        return EOS_ID

    @property
    def unk_id(self) -> int:
        return UNK_ID
