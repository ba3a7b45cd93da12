"""Which model serves, and loading it: the registry's active version, else ``settings.model_dir``."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chatbot.service.decoder_process import ProcessGenerator
from chatbot.service.smoke import ModelNotServable, SmokeReport, smoke_test
from chatbot.settings import Settings
from chatbot.store import registry
from chatbot.store.manager import ConversationStore

if TYPE_CHECKING:
    from chatbot.service.generator import ReplyGenerator


@dataclass(frozen=True)
class ModelRef:
    """A hashable name for a model: registry version (``version_id``) or a plain directory (``None``).

    ``name`` (the registry's version name) is what anyone outside the server is told; the path is not
    compared and never leaves the server's logs."""

    version_id: int | None
    path: str
    name: str = field(default="", compare=False)

    def __str__(self) -> str:
        return f"version {self.version_id} ({self.path})" if self.version_id is not None else self.path

    @property
    def label(self) -> str:
        """A public name: the version name, else ``version N``, else the directory's last part."""
        if self.name:
            return self.name
        return f"version {self.version_id}" if self.version_id is not None else Path(self.path).name


def ref_of(version: registry.ModelVersion) -> ModelRef:
    """The worker's key for a registered version."""
    return ModelRef(version.id, version.path, version.name)


def active_model(store: ConversationStore, settings: Settings) -> ModelRef | None:
    """The registry's active version wins; ``settings.model_dir`` is the fallback for a fresh install."""
    with store.transaction(read_only=True) as s:
        version = registry.active_version(s)
        if version is not None:
            return ref_of(version)
    return ModelRef(None, str(settings.model_dir)) if settings.model_dir is not None else None


def fallback_models(store: ConversationStore, settings: Settings) -> list[ModelRef]:
    """What to serve when the active version cannot load: the versions that served before it (promotion
    history, latest first), then ``settings.model_dir``."""
    with store.transaction(read_only=True) as s:
        refs = [ref_of(v) for v in registry.fallbacks(s)]
    if settings.model_dir is not None:
        refs.append(ModelRef(None, str(settings.model_dir)))
    return refs


def version_ref(store: ConversationStore, version_id: int) -> ModelRef:
    with store.transaction(read_only=True) as s:
        return ref_of(registry.get_version(s, version_id))


def check_servable(ref: ModelRef, settings: Settings) -> SmokeReport:
    """Load ``ref`` in this process and smoke-test it (``chatbot.service.smoke``) before it may serve;
    ``ModelNotServable`` with the reason (truncated or missing files, NaN weights, a decode that fails)."""
    try:
        generator = load_generator(ref, settings)
    except Exception as exc:
        raise ModelNotServable(f"model {ref.label} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    loaded = getattr(generator, "loaded", None)
    if loaded is not None and not _finite(loaded.model):
        raise ModelNotServable(f"model {ref.label} cannot serve: its weights hold NaN or infinite values")
    try:
        return smoke_test(generator)
    except ModelNotServable as exc:
        raise ModelNotServable(f"model {ref.label} cannot serve: {exc}") from exc


def _finite(model: Any) -> bool:
    import torch

    return all(bool(torch.isfinite(t).all()) for t in model.state_dict().values() if t.is_floating_point())


def load_generator(ref: ModelRef, settings: Settings, **decoding: Any) -> ReplyGenerator:
    """The serving decoder for ``ref`` (``chatbot.service.generator.serving_generator``: the settings'
    decoding, ``decoding`` overriding some, int8 when serving quantizes, the model's own context window).
    Imported here, not at the top: a server decoding in child processes never loads torch itself."""
    from chatbot.service.generator import serving_generator

    return serving_generator(ref.path, settings, **decoding)


def load_served(ref: ModelRef, settings: Settings) -> Any:
    """The generation worker's model: in a decoder process of its own unless ``settings.decode_process`` is off."""
    if settings.decode_process:
        return ProcessGenerator(ref.path, settings, processes=settings.decoders)
    return load_generator(ref, settings)


def loader(settings: Settings) -> partial[Any]:
    """``load(ref)`` for the generation worker."""
    return partial(load_served, settings=settings)
