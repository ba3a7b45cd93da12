"""The learning loop on ``/admin``: shadow testing of candidates (choose one, read how it compares, promote it)
and correction analytics (review rates per version and day, the most-corrected replies, edit distance, what the
last nightly job learned).

Built into the admin page's Blocks by ``build_learning``. Every value comes from the service layer as plain
data; tables are plain-text dataframes and result lines go through ``md_text``, so replies, corrections and
version names show as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import pandas as pd

from chatbot.service.analytics import AnalyticsService, NightlyLearned
from chatbot.service.auth import Principal
from chatbot.service.chat import ChatService
from chatbot.service.shadow import ShadowService, ShadowStats
from web.escape import md_text

SHADOW_COLUMNS = ["id", "name", "status", "shadowing now", "shadow replies", "reviewed",
                  "agents approved the active reply", "reviews with agents' text", "candidate chrF vs agents",
                  "active chrF vs agents"]
RATE_COLUMNS = ["day", "version", "reviews", "approve", "edit", "reject"]
CORRECTED_COLUMNS = ["the bot said", "corrections", "edits", "rejections", "an agent wrote instead"]
DISTANCE_COLUMNS = ["version", "edits", "mean edit distance (0 same, 1 all new)"]
LEARNED_COLUMNS = ["customer", "agent wrote", "active model", "new model", "active chrF", "new chrF", "learned"]


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def shadow_rows(stats: list[ShadowStats]) -> list[list[Any]]:
    return [[s.version_id, s.name, s.status, "yes" if s.shadowing else "",
             s.shadowed, s.reviewed, _share(s.approved_share), s.corrected, _num(s.candidate_chrf),
             _num(s.active_chrf)] for s in stats]


def learned_summary(learned: NightlyLearned | None) -> str:
    if learned is None:
        return "No nightly run has held-out agent corrections yet."
    return md_text(f"Nightly job {learned.job_id} ({learned.decision}, candidate version "
                   f"{learned.candidate_id}): the new model is closer to what agents wrote than the active model "
                   f"on {learned.learned} of {len(learned.corrections)} held-out corrections it never trained on.")


def learned_rows(learned: NightlyLearned | None) -> list[list[Any]]:
    if learned is None:
        return []
    return [[c.customer, c.agent, c.active_reply or "", c.candidate_reply, _num(c.active_chrf),
             _num(c.candidate_chrf), {True: "yes", False: "no", None: "-"}[c.learned]] for c in learned.corrections]


class LearningHandlers:
    """The two sections' handlers; ``admin`` re-checks the admin session on every call."""

    def __init__(self, service: ChatService, admin: Callable[[gr.Request], Principal]) -> None:
        self.service = service
        self.admin = admin
        self.analytics = AnalyticsService(service)
        self.shadows = ShadowService(service.store)

    def refresh(self, request: gr.Request) -> tuple[Any, ...]:
        who = self.admin(request)
        rates = self.analytics.review_rates(who)
        frame = pd.DataFrame([{"day": r.day, "series": f"{r.version} · {action}", "rate": getattr(r, f"{action}_rate")}
                              for r in rates for action in ("approve", "edit", "reject")],
                             columns=["day", "series", "rate"])
        rate_rows = [[r.day, r.version, r.reviews, _share(r.approve_rate), _share(r.edit_rate), _share(r.reject_rate)]
                     for r in rates]
        corrected_rows = [[c.bot_text, c.corrections, c.edits, c.rejections, c.example or ""]
                          for c in self.analytics.most_corrected(who)]
        distance_rows = [[d.version, d.edits, f"{d.mean_distance:.3f}"] for d in self.analytics.edit_distances(who)]
        learned = self.analytics.last_nightly_learned(who)
        return (shadow_rows(self.shadows.stats(who)), frame, rate_rows, corrected_rows, distance_rows,
                learned_summary(learned), learned_rows(learned))

    @staticmethod
    def _need_id(value: float | None) -> int:
        if not value:
            raise ValueError("Give the id of a registered version (see the model versions table).")
        return int(value)

    def shadow_on(self, version_id: float | None, request: gr.Request) -> str:
        return md_text(self.shadows.set_shadow(self.admin(request), self._need_id(version_id)))

    def shadow_off(self, request: gr.Request) -> str:
        return md_text(self.shadows.set_shadow(self.admin(request), None))

    def promote(self, version_id: float | None, request: gr.Request) -> str:
        return md_text(self.service.set_model(self.admin(request), "promote", self._need_id(version_id)))


def build_learning(service: ChatService, admin: Callable[[gr.Request], Principal],
                   guard: Callable[[Any], Any], on_change: tuple[Callable[..., Any], list[Any]]
                   ) -> tuple[Callable[..., Any], list[Any]]:
    """Add the two sections to the Blocks being built; returns ``(refresh, outputs)`` for ``demo.load``.
    ``on_change`` (the page's refresh and its outputs) runs after a promotion from the shadow section."""
    handlers = LearningHandlers(service, admin)
    share = service.settings.shadow_share
    with gr.Accordion("Shadow testing: a candidate answers live messages in the background, never sent",
                      open=True, elem_id="admin-shadow-section"):
        gr.Markdown(f"The shadowed version answers {share:.0%} of the messages the bot answers (when the decoder "
                    "is free) and its reply is kept beside the active model's. Once agents review the active "
                    "reply, the table compares both with what the agents finally wrote (chrF, 0-100; approved "
                    "replies count as written). Rejected replies have no agents' text.")
        table = gr.Dataframe(headers=SHADOW_COLUMNS, datatype="str", interactive=False, wrap=True,
                             label="Shadowed versions", elem_id="admin-shadow")
        with gr.Row():
            version = gr.Number(label="Version id", precision=0, elem_id="admin-shadow-version")
            start_btn = gr.Button("Shadow this version", elem_id="admin-shadow-start")
            stop_btn = gr.Button("Stop shadowing", elem_id="admin-shadow-stop")
            promote_btn = gr.Button("Promote", variant="primary", elem_id="admin-shadow-promote")
        result = gr.Markdown(elem_id="admin-shadow-result")

    with gr.Accordion("Correction analytics: what agents do with the bot's replies", open=True,
                      elem_id="admin-analytics-section"):
        rates_plot = gr.ScatterPlot(x="day", y="rate", color="series", title="Review outcomes per version and day",
                                    y_lim=[0, 1], x_label_angle=-45, elem_id="admin-chart-review-rates")
        rates_table = gr.Dataframe(headers=RATE_COLUMNS, datatype="str", interactive=False,
                                   label="Approve / edit / reject rates per model version and day (UTC)",
                                   elem_id="admin-review-rates")
        corrected = gr.Dataframe(headers=CORRECTED_COLUMNS, datatype="str", interactive=False, wrap=True,
                                 label="Most-corrected replies (last 30 days)", elem_id="admin-most-corrected")
        distance = gr.Dataframe(headers=DISTANCE_COLUMNS, datatype="str", interactive=False,
                                label="How much agents change a reply they edit (normalised Levenshtein)",
                                elem_id="admin-edit-distance")
        learned_md = gr.Markdown(elem_id="admin-nightly-learned-summary")
        learned_table = gr.Dataframe(headers=LEARNED_COLUMNS, datatype="str", interactive=False, wrap=True,
                                     label="What the last nightly learned: held-out agent corrections",
                                     elem_id="admin-nightly-learned")

    outputs = [table, rates_plot, rates_table, corrected, distance, learned_md, learned_table]
    refresh = guard(handlers.refresh)
    page_refresh, page_outputs = on_change
    start_btn.click(guard(handlers.shadow_on), version, result).then(refresh, None, outputs)
    stop_btn.click(guard(handlers.shadow_off), None, result).then(refresh, None, outputs)
    promote_btn.click(guard(handlers.promote), version, result).then(refresh, None, outputs).then(
        page_refresh, None, page_outputs)
    return handlers.refresh, outputs
