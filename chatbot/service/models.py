"""Which model serves, and loading it: the registry's active version, else ``settings.model_dir``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from chatbot.settings import Settings
from chatbot.store import registry
from chatbot.store.manager import ConversationStore


@dataclass(frozen=True)
class ModelRef:
    """A hashable name for a model: registry version (``version_id``) or a plain directory (``None``)."""

    version_id: int | None
    path: str

    def __str__(self) -> str:
        return f"version {self.version_id} ({self.path})" if self.version_id is not None else self.path


def active_model(store: ConversationStore, settings: Settings) -> ModelRef | None:
    """The registry's active version wins; ``settings.model_dir`` is the fallback for a fresh install."""
    with store.transaction(read_only=True) as s:
        version = registry.active_version(s)
        if version is not None:
            return ModelRef(version.id, version.path)
    return ModelRef(None, str(settings.model_dir)) if settings.model_dir is not None else None


def version_ref(store: ConversationStore, version_id: int) -> ModelRef:
    with store.transaction(read_only=True) as s:
        version = registry.get_version(s, version_id)
        return ModelRef(version.id, version.path)


def load_generator(ref: ModelRef, settings: Settings, **decoding: Any) -> Any:
    """A ``ReplyGenerator`` for ``ref`` with the serving decode settings (``decoding`` overrides some)."""
    import torch

    from chatbot.generation.reply import ReplyGenerator

    # One decode thread unless told otherwise: the worker is a single thread and the HTTP threads need the
    # other cores. torch's default (one thread per core) oversubscribes them: on a busy two-core machine a
    # batch of one took 300 ms with two threads instead of 25 ms with one.
    torch.set_num_threads(settings.torch_threads or 1)
    return ReplyGenerator.from_checkpoint(Path(ref.path), settings=settings, int8=settings.quantize_int8, **decoding)


def load_served(ref: ModelRef, settings: Settings) -> Any:
    """The generation worker's model: in a decoder process of its own unless ``settings.decode_process`` is off."""
    if settings.decode_process:
        from chatbot.service.decoder_process import ProcessGenerator

        return ProcessGenerator(ref.path, settings, processes=settings.decoders)
    return load_generator(ref, settings)


def loader(settings: Settings) -> partial[Any]:
    """``load(ref)`` for the generation worker."""
    return partial(load_served, settings=settings)
