"""The demo model shipped inside the package, found through the package (not the working directory).

``chatbot demo``, ``chatbot reply`` and ``chatbot chat`` fall back to it when the registry has no active
model, so a fresh install answers customers before anyone has trained anything.
"""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from chatbot.store.models import ModelVersion

SHIPPED_MODEL_NAME = "shipped-demo"


class ShippedModelMissing(FileNotFoundError):
    """The package was installed without its demo model (e.g. a wheel built without package data)."""


def shipped_model_dir() -> Path:
    """The demo checkpoint directory; raises ShippedModelMissing when the install lacks it."""
    directory = files("chatbot.shipped") / "demo"
    if not isinstance(directory, Path):  # a zip import: checkpoints are loaded by path, so that cannot work
        raise ShippedModelMissing(f"the chatbot package is not installed as plain files ({directory}); "
                                  "install it with pip (not as a zip) to use the shipped model")
    if not (directory / "config.json").is_file() or not (directory / "model.safetensors").is_file():
        raise ShippedModelMissing(
            f"the shipped demo model is missing from {directory}; reinstall the package "
            "(pip install -e .) or train it with scripts/train_demo_model"
        )
    return directory


def ensure_active_model(session: Session) -> tuple[ModelVersion, bool]:
    """The active model version, registering and promoting the shipped one when none is (never commits).

    Returns (active version, True if this call activated the shipped model). The version name carries the
    weights' hash, so a newer shipped model registers as a new version instead of reusing an old row; its
    path follows the package when the checkout or virtualenv moved.
    """
    from sqlalchemy import select

    from chatbot.model.checkpoint import CONFIG_FILE
    from chatbot.store import registry
    from chatbot.store.models import ModelVersion

    directory = shipped_model_dir()
    config = json.loads((directory / CONFIG_FILE).read_text("utf-8"))
    name = f"{SHIPPED_MODEL_NAME}-{config['weights']['sha256'][:12]}"
    active = registry.active_version(session)
    if active is not None:
        if active.name == name and active.path != str(directory):  # the package moved (new checkout or venv)
            active.path = str(directory)
        return active, False
    existing = session.scalar(select(ModelVersion).where(ModelVersion.name == name))
    if existing is None:
        existing = registry.register(session, name, str(directory), manifest={"source": "chatbot/shipped/demo"},
                                     metrics=(config.get("metrics") or {}).get("sgd_dev"),
                                     notes="shipped demo model (see MODEL_CARD.md)")
    elif existing.path != str(directory):
        existing.path = str(directory)
    return registry.promote(session, existing.id, reason="no active model: serving the shipped demo model"), True
