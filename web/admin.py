"""``/admin``: model versions with metrics, promote / rollback, nightly job reports, daily charts, shadow
testing and correction analytics (``web.learning``), the company facts the bot may state details from, and
customer erasure. Admin sessions only; every handler re-checks the session and goes through the service, which
audits each change. Facts are shown in a plain
text table and result box: whatever an admin types there stays text, never HTML or Markdown."""

from __future__ import annotations

import json
from typing import Any

import gradio as gr
import pandas as pd

from chatbot.service.admin import AdminService
from chatbot.service.auth import Principal
from chatbot.service.chat import ChatService
from chatbot.service.facts import FactsService, FactView
from web.customer import LANGUAGES
from web.errors import guarded
from web.escape import md_text
from web.learning import build_learning
from web.session import principal_from_request

MODEL_COLUMNS = ["id", "name", "status", "created", "promoted", "metrics"]
JOB_COLUMNS = ["id", "status", "started", "finished", "report / error"]
DAY_COLUMNS = ["day", "conversations", "handoff_rate", "approval_rate", "edit_rate", "csat"]
FACT_COLUMNS = ["id", "title", "text", "language", "updated (UTC)"]


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


def fact_rows(facts: list[FactView]) -> list[list[Any]]:
    return [[f.id, f.title, f.text, f.language, _when(f.updated_at)] for f in facts]


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


def guard(fn: Any) -> Any:
    """``guarded`` for the admin page: a lost session says to sign in as an admin."""
    return guarded(fn, "an admin")


class AdminPage:
    """The admin page's handlers; each re-checks that the session is an admin's before it reads or changes
    anything (the service audits each change)."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.views = AdminService(service)
        self.facts = FactsService(service)

    def admin(self, request: gr.Request) -> Principal:
        principal = principal_from_request(self.service, request)
        principal.require("admin")
        return principal

    def overview(self, request: gr.Request):
        who = self.admin(request)
        models = [[v.id, v.name, v.status, _when(v.created_at), _when(v.promoted_at), _metrics(v.metrics)]
                  for v in self.views.versions(who)]
        nightly = [[j.id, j.status, _when(j.started_at), _when(j.finished_at), _job_summary(j.report, j.error)]
                   for j in self.views.nightly_jobs(who)]
        return models, nightly, *charts(self.views.daily(who))

    def serving_text(self, request: gr.Request) -> str:
        """Which model answers; when the active version cannot load, that and why (plain text)."""
        self.admin(request)
        status = self.service.serving_status()
        if status["problem"]:
            return f"⚠ {status['problem']}. Reason: {status['reason']}"
        return f"Serving {status['model']}." if status["model"] else "No model is serving."

    def promote_version(self, version_id: float | None, request: gr.Request) -> str:
        who = self.admin(request)
        if not version_id:
            return "Give the id of the version to promote."
        return md_text(self.service.set_model(who, "promote", int(version_id)))  # the text names a version

    def roll_back(self, version_id: float | None, request: gr.Request) -> str:
        who = self.admin(request)
        return md_text(self.service.set_model(who, "rollback", int(version_id) if version_id else None))

    def erase(self, conversation_id: float | None, confirm: bool, request: gr.Request) -> str:
        who = self.admin(request)
        if not conversation_id or not confirm:
            return "Give a conversation id and tick the confirmation box."
        report = self.service.erase_conversation_customer(who, int(conversation_id))
        return (f"Erased the customer of conversation {int(conversation_id)}: {report['conversations']} "
                f"conversation(s), {report['messages']} message(s).")

    def list_facts(self, request: gr.Request) -> list[list[Any]]:
        return fact_rows(self.facts.list(self.admin(request)))

    def add_fact(self, title: str, text: str, language: str, request: gr.Request) -> str:
        fact = self.facts.add(self.admin(request), title or "", text or "", language or "en")
        return f"Added fact {fact.id}: {fact.title}"

    def save_fact(self, fact_id: float | None, title: str, text: str, language: str, request: gr.Request) -> str:
        who = self.admin(request)
        if not fact_id:
            return "Pick a fact from the table (or give its id) to save changes."
        fact = self.facts.update(who, int(fact_id), title or "", text or "", language or "en")
        return f"Saved fact {fact.id}: {fact.title}"

    def delete_fact(self, fact_id: float | None, request: gr.Request) -> str:
        who = self.admin(request)
        if not fact_id:
            return "Pick a fact from the table (or give its id) to delete it."
        self.facts.delete(who, int(fact_id))
        return f"Deleted fact {int(fact_id)}."

    @staticmethod
    def pick_fact(evt: gr.SelectData, table: Any) -> Any:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            values = list(table.iloc[row]) if hasattr(table, "iloc") else list(table[row])
            return int(values[0]), values[1], values[2], values[3]
        except (IndexError, ValueError, TypeError):
            return gr.skip(), gr.skip(), gr.skip(), gr.skip()


def build_admin(service: ChatService) -> gr.Blocks:
    """Lay out the page and wire its events to ``AdminPage``'s handlers."""
    page = AdminPage(service)
    with gr.Blocks(title="Admin") as demo:
        gr.Markdown("## Admin  ·  [agent console](/agent)  ·  [sign out](/logout)")
        serving = gr.Textbox(label="Serving now", interactive=False, elem_id="admin-serving")
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
        refresh_learning, learning_outputs = build_learning(
            service, page.admin, guard, (guard(page.overview), [models, jobs, conversations, rates, csat]))
        with gr.Accordion("Company facts: what the bot may state besides the conversation", open=True,
                          elem_id="admin-facts-section"):
            fact_table = gr.Dataframe(headers=FACT_COLUMNS, datatype="str", interactive=False, wrap=True,
                                      label="Facts (opening hours, policies, phone numbers...)", elem_id="admin-facts")
            with gr.Row():
                fact_id = gr.Number(label="Fact id (pick a row to edit)", precision=0, elem_id="admin-fact-id")
                fact_language = gr.Dropdown(LANGUAGES, value="en", label="Language", elem_id="admin-fact-language")
            fact_title = gr.Textbox(label="Title", max_length=200, elem_id="admin-fact-title")
            fact_text = gr.Textbox(label="Text", lines=3, max_length=service.settings.max_message_chars,
                                   elem_id="admin-fact-text")
            with gr.Row():
                add_fact_btn = gr.Button("Add as a new fact", variant="primary", elem_id="admin-fact-add")
                save_fact_btn = gr.Button("Save changes", elem_id="admin-fact-save")
                delete_fact_btn = gr.Button("Delete", variant="stop", elem_id="admin-fact-delete")
            fact_result = gr.Textbox(show_label=False, interactive=False, elem_id="admin-fact-result")
        with gr.Accordion("Erase a customer's data", open=False, elem_id="admin-erase"):
            erase_id = gr.Number(label="Conversation id", precision=0, elem_id="admin-erase-id")
            erase_ok = gr.Checkbox(label="I understand this deletes all of this customer's conversations",
                                   elem_id="admin-erase-confirm")
            erase_btn = gr.Button("Erase", variant="stop", elem_id="admin-erase-button")

        outputs = [models, jobs, conversations, rates, csat]
        demo.load(guard(page.overview), None, outputs)
        demo.load(guard(page.serving_text), None, serving, api_name="serving")
        demo.load(guard(refresh_learning), None, learning_outputs)
        promote_btn.click(guard(page.promote_version), version, result).then(guard(page.overview), None, outputs)
        rollback_btn.click(guard(page.roll_back), version, result).then(guard(page.overview), None, outputs)
        erase_btn.click(guard(page.erase), [erase_id, erase_ok], result).then(guard(page.overview), None, outputs)
        demo.load(guard(page.list_facts), None, fact_table, api_name="list_facts")
        fact_table.select(page.pick_fact, fact_table, [fact_id, fact_title, fact_text, fact_language])
        form = [fact_title, fact_text, fact_language]
        add_fact_btn.click(guard(page.add_fact), form, fact_result, api_name="add_fact").then(
            guard(page.list_facts), None, fact_table)
        save_fact_btn.click(guard(page.save_fact), [fact_id, *form], fact_result, api_name="save_fact").then(
            guard(page.list_facts), None, fact_table)
        delete_fact_btn.click(guard(page.delete_fact), fact_id, fact_result, api_name="delete_fact").then(
            guard(page.list_facts), None, fact_table)
    return demo
