"""What admins do to the running product: erase a customer, promote or roll back the model, and see which
model answers. The read-only figures of the admin page are in ``chatbot.service.admin``; staff accounts
in ``chatbot.service.staff``.
"""

from __future__ import annotations

from typing import Any

from chatbot.service.auth import Principal
from chatbot.service.batching import GenerationWorker
from chatbot.settings import Settings
from chatbot.store import conversations as repo
from chatbot.store import registry
from chatbot.store.db import InvalidValue, NotFound, check_id
from chatbot.store.files import reclaim_space
from chatbot.store.manager import ConversationStore
from chatbot.store.retention import forget_customer


class AdminConsole:
    def __init__(self, store: ConversationStore, settings: Settings, worker: GenerationWorker | None) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker

    def erase_conversation_customer(self, who: Principal, conversation_id: int) -> dict[str, Any]:
        """Delete everything of the customer behind a conversation (right to erasure)."""
        who.require("admin")
        with self.store.transaction() as s:
            conversation = repo.get_conversation(s, conversation_id)
            if conversation.customer_id is None:
                raise NotFound(f"conversation {conversation_id} has no customer record to erase")
            report = forget_customer(s, str(conversation.customer_id), actor_id=who.user_id).as_dict()
        try:  # the deleted rows' text leaves the database files where the engine allows (see README)
            report["reclaimed"] = reclaim_space(self.store.engine)
        except Exception as exc:  # noqa: BLE001 - erased either way; the next VACUUM reclaims the space
            report["reclaimed"] = f"not run: {exc}"
        return report

    def set_model(self, who: Principal, action: str, version_id: int | None = None) -> str:
        """Promote a version or roll back; the worker of every replica picks the change up by itself.

        The version that would become active is loaded and smoke-tested first (``check_servable``): one
        that cannot load or scores NaN is refused with ``ModelNotServable`` and nothing changes."""
        from chatbot.service.models import check_servable, ref_of, version_ref  # loads the decoder code

        who.require("admin")
        if action == "promote" and version_id is not None:
            target = version_ref(self.store, check_id(version_id, "model version"))
        elif action == "rollback":
            with self.store.transaction(read_only=True) as s:
                target = ref_of(registry.rollback_target(s))
        else:
            raise InvalidValue(f"unknown model action {action!r}")
        check_servable(target, self.settings)
        with self.store.transaction() as s:
            if action == "promote" and version_id is not None:
                version = registry.promote(s, version_id, actor_id=who.user_id, reason="admin console")
            elif action == "rollback":
                version = registry.rollback(s, actor_id=who.user_id)
            else:
                raise InvalidValue(f"unknown model action {action!r}")
            return f"{version.name} (version {version.id}) is now active"

    def serving_status(self) -> dict[str, Any]:
        """Which model answers, and whether it is the one that should: ``problem`` (public, names versions
        only) and ``reason`` (for admins: why the active version could not load) when it is not."""
        worker = self.worker
        key = worker.model_key if worker is not None else None
        failure = worker.load_failure if worker is not None else None
        status: dict[str, Any] = {"model": _label(key), "problem": None, "reason": None}
        if failure is not None:
            serving = f"serving {_label(key)} instead" if key is not None else "no model is serving"
            status["problem"] = f"model {_label(failure.key)} could not be loaded; {serving}"
            status["reason"] = failure.reason
        return status


def _label(key: Any) -> str | None:
    """A model's public name (``ModelRef.label``): never its path."""
    if key is None:
        return None
    return str(getattr(key, "label", None) or "unnamed model")
