"""``/admin``: model versions with metrics, promote / rollback, nightly job reports, daily charts and
customer erasure. Admin sessions only; every handler re-checks the session and goes through the service,
which audits each change."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from chatbot.service.admin import AdminService
from chatbot.service.auth import Principal
from chatbot.service.chat import ChatService
from web.errors import guarded
from web.session import principal_from_request

MODEL_COLUMNS = ["id", "name", "status", "created", "promoted", "metrics"]
JOB_COLUMNS = ["id", "status", "started", "finished", "report / error"]
DAY_COLUMNS = ["day", "conversations", "handoff_rate", "approval_rate", "edit_rate", "csat"]


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else ""


def _metrics(metrics: dict[str, Any]) -> str:
    """``chrf=41.2 · perplexity=12.3``: numbers rounded, nested values left out (they belong in reports)."""
    parts = [f"{k}={round(v, 3) if isinstance(v, float) else v}" for k, v in sorted(metrics.items())
             if isinstance(v, (int, float, str)) and not isinstance(v, bool)]
    return " · ".join(parts)[:300]


def _job_summary(report: dict[str, Any], error: str | None) -> str:
    if error:
        return f"error: {error}"[:300]
    shown = {k: v for k, v in report.items() if k != "owner"}  # who ran it is not news
    return json.dumps(shown, default=str, sort_keys=True)[:300]


def charts(days: list[dict[str, Any]], window: int = 14) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Frames for the three plots over the last ``window`` days: conversations per day (quiet days are 0
    bars, not missing), the three rates (long form) and CSAT (days without values have no point)."""
    frame = pd.DataFrame(days, columns=DAY_COLUMNS).set_index("day")
    end = pd.Timestamp.now(tz="UTC").normalize()
    every_day = [d.date().isoformat() for d in pd.date_range(end - pd.Timedelta(days=window - 1), end)]
    frame = frame.reindex(sorted(set(every_day) | set(frame.index))).rename_axis("day").reset_index()
    frame["conversations"] = frame["conversations"].fillna(0).astype(int)
    rates = frame.melt(id_vars="day", value_vars=["handoff_rate", "approval_rate", "edit_rate"],
                       var_name="rate", value_name="value").dropna()
    return frame[["day", "conversations"]], rates, frame[["day", "csat"]].dropna()


def build_admin(service: ChatService) -> gr.Blocks:
    views = AdminService(service)

    def guard(fn: Any) -> Any:
        return guarded(fn, "an admin")

    def admin(request: gr.Request) -> Principal:
        principal = principal_from_request(service, request)
        principal.require("admin")
        return principal

    def overview(request: gr.Request):
        who = admin(request)
        models = [[v.id, v.name, v.status, _when(v.created_at), _when(v.promoted_at), _metrics(v.metrics)]
                  for v in views.versions(who)]
        nightly = [[j.id, j.status, _when(j.started_at), _when(j.finished_at), _job_summary(j.report, j.error)]
                   for j in views.nightly_jobs(who)]
        return models, nightly, *charts(views.daily(who))

    def model_action(action: str):
        def run(version_id: float | None, request: gr.Request) -> str:
            who = admin(request)
            if action == "promote" and not version_id:
                return "Give the id of the version to promote."
            return service.set_model(who, action, int(version_id) if version_id else None)
        return run

    def erase(conversation_id: float | None, confirm: bool, request: gr.Request) -> str:
        who = admin(request)
        if not conversation_id or not confirm:
            return "Give a conversation id and tick the confirmation box."
        report = service.erase_conversation_customer(who, int(conversation_id))
        return (f"Erased the customer of conversation {int(conversation_id)}: {report['conversations']} "
                f"conversation(s), {report['messages']} message(s).")

    with gr.Blocks(title="Admin") as demo:
        gr.Markdown("## Admin  ·  [agent console](/agent)  ·  [sign out](/logout)")
        models = gr.Dataframe(headers=MODEL_COLUMNS, label="Model versions", interactive=False, elem_id="admin-models")
        with gr.Row():
            version = gr.Number(label="Version id", precision=0, elem_id="admin-version")
            promote_btn = gr.Button("Promote", variant="primary", elem_id="admin-promote")
            rollback_btn = gr.Button("Roll back", elem_id="admin-rollback")
        result = gr.Markdown(elem_id="admin-result")
        jobs = gr.Dataframe(headers=JOB_COLUMNS, label="Nightly jobs", interactive=False, elem_id="admin-jobs")
        with gr.Row():
            conversations = gr.BarPlot(x="day", y="conversations", title="Conversations per day", y_lim=[0, None],
                                       x_label_angle=-45, elem_id="admin-chart-conversations")
            # points, not lines: a rate exists only on days with traffic, and one day must still show
            rates = gr.ScatterPlot(x="day", y="value", color="rate", title="Handoff, approval and edit rates",
                                   y_lim=[0, 1], x_label_angle=-45, elem_id="admin-chart-rates")
            csat = gr.ScatterPlot(x="day", y="csat", title="CSAT (1-5)", y_lim=[1, 5], x_label_angle=-45,
                                  elem_id="admin-chart-csat")
        with gr.Accordion("Erase a customer's data", open=False, elem_id="admin-erase"):
            erase_id = gr.Number(label="Conversation id", precision=0, elem_id="admin-erase-id")
            erase_ok = gr.Checkbox(label="I understand this deletes all of this customer's conversations",
                                   elem_id="admin-erase-confirm")
            erase_btn = gr.Button("Erase", variant="stop", elem_id="admin-erase-button")

        outputs = [models, jobs, conversations, rates, csat]
        demo.load(guard(overview), None, outputs)
        promote_btn.click(guard(model_action("promote")), version, result).then(guard(overview), None, outputs)
        rollback_btn.click(guard(model_action("rollback")), version, result).then(guard(overview), None, outputs)
        erase_btn.click(guard(erase), [erase_id, erase_ok], result).then(guard(overview), None, outputs)
    return demo
