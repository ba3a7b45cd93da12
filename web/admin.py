"""``/admin``: model versions with metrics, promote / rollback, nightly job reports, daily charts and
customer erasure. Admin sessions only; every action goes through the service, which audits it."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd
from sqlalchemy import select

from chatbot.service.auth import AuthError
from chatbot.service.chat import ChatService
from chatbot.service.dashboard import daily_stats
from chatbot.store import registry
from chatbot.store.db import StoreError
from chatbot.store.models import Job
from web.session import principal_from_request

MODEL_COLUMNS = ["id", "name", "status", "created", "promoted", "metrics"]
JOB_COLUMNS = ["id", "kind", "status", "started", "finished", "report / error"]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def build_admin(service: ChatService) -> gr.Blocks:
    def admin(request: gr.Request):
        try:
            principal = principal_from_request(service, request)
            principal.require("admin")
        except AuthError as exc:
            raise gr.Error(f"{exc} — sign in as an admin at /login") from exc
        return principal

    def overview(request: gr.Request):
        admin(request)
        with service.store.transaction(read_only=True) as s:
            models = [[v.id, v.name, v.status, _when(v.created_at), _when(v.promoted_at),
                       json.dumps(v.metrics or {}, sort_keys=True)[:200]] for v in registry.list_versions(s)]
            jobs = [[j.id, j.kind, j.status, _when(j.started_at), _when(j.finished_at),
                     (j.error or json.dumps(j.report or {}, default=str))[:300]]
                    for j in s.scalars(select(Job).order_by(Job.started_at.desc()).limit(30))]
            days = pd.DataFrame(daily_stats(s), columns=["day", "conversations", "handoff_rate", "approval_rate",
                                                        "edit_rate", "csat"])
        rates = days.melt(id_vars="day", value_vars=["handoff_rate", "approval_rate", "edit_rate"],
                          var_name="rate", value_name="value").dropna()
        return models, jobs, days[["day", "conversations"]], rates, days[["day", "csat"]].dropna()

    def model_action(action: str):
        def run(version_id: float | None, request: gr.Request) -> str:
            try:
                return service.set_model(admin(request), action, int(version_id) if version_id else None)
            except (StoreError, ValueError) as exc:
                raise gr.Error(str(exc)) from exc
        return run

    def erase(conversation_id: float | None, confirm: bool, request: gr.Request) -> str:
        if not conversation_id or not confirm:
            return "Give a conversation id and tick the confirmation box."
        try:
            report = service.erase_conversation_customer(admin(request), int(conversation_id))
        except StoreError as exc:
            raise gr.Error(str(exc)) from exc
        return f"Erased: {json.dumps(report)}"

    with gr.Blocks(title="Admin") as demo:
        gr.Markdown("## Admin  ·  [agent console](/agent)  ·  [sign out](/logout)")
        models = gr.Dataframe(headers=MODEL_COLUMNS, label="Model versions", interactive=False, elem_id="admin-models")
        with gr.Row():
            version = gr.Number(label="Version id", precision=0)
            promote_btn = gr.Button("Promote", variant="primary", elem_id="admin-promote")
            rollback_btn = gr.Button("Roll back", elem_id="admin-rollback")
        result = gr.Markdown()
        jobs = gr.Dataframe(headers=JOB_COLUMNS, label="Nightly jobs", interactive=False)
        with gr.Row():
            conversations = gr.BarPlot(x="day", y="conversations", title="Conversations per day")
            rates = gr.LinePlot(x="day", y="value", color="rate", title="Handoff, approval and edit rates")
            csat = gr.LinePlot(x="day", y="csat", title="CSAT (1-5)")
        with gr.Accordion("Erase a customer's data", open=False):
            erase_id = gr.Number(label="Conversation id", precision=0)
            erase_ok = gr.Checkbox(label="I understand this deletes all of this customer's conversations")
            erase_btn = gr.Button("Erase", variant="stop")

        outputs = [models, jobs, conversations, rates, csat]
        demo.load(overview, None, outputs)
        promote_btn.click(model_action("promote"), version, result).then(overview, None, outputs)
        rollback_btn.click(model_action("rollback"), version, result).then(overview, None, outputs)
        erase_btn.click(erase, [erase_id, erase_ok], result).then(overview, None, outputs)
    return demo
