"""``/agent``: the agent workspace. Three parts, live (a 2 s timer) without touching what the agent types:

* **Inbox**: views with counts ("waiting for a person", "mine", "drafts to review", "bot", "closed"), rows
  with the customer's last message, how long they have waited, language, status and agent, longest waiting
  first; search; a click on a row opens the conversation: transcript (every message labelled with who wrote
  it), assign to me / to another agent, hand back, close, the reply box with the model's suggested replies
  (grounded first) and saved replies (type ``/`` and a few letters), and, folded away, each bot reply's
  n-best, grounding, attention heatmap, review and replay.
* **Review queue**: drafts (and the sampled share of sent replies) oldest first; the oldest opens by itself,
  and approve / edit / reject each take one key (listed on the page), then the next one opens.

Every handler re-checks the signed session, so nothing here trusts the browser; every value a customer, an
agent or an admin wrote is rendered as text.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

import gradio as gr

from chatbot.service.admin import AdminService
from chatbot.service.chat import ChatService, ReplayService
from chatbot.service.views import MessageView
from chatbot.service.workspace import VIEW_LABELS, VIEWS, Suggestion, Workspace
from web.customer import as_text
from web.errors import guarded
from web.heatmap import heatmap_html
from web.session import principal_from_request

QUEUE_COLUMNS = ["id", "customer said", "waiting", "lang", "status", "agent"]
REVIEW_COLUMNS = ["reply", "conv.", "waiting", "lang", "customer said", "bot reply"]
CANDIDATE_COLUMNS = ["rank", "candidate", "score", "not in the conversation or company facts"]
_LABEL = {"bot": "Bot", "agent": "Agent", "system": "Notice"}
UNGROUNDED_LABEL = "Not in the conversation or company facts: "
SHORTCUTS = [("A", "approve the reply as it is"), ("E", "edit: put the cursor in the editor"),
             ("Ctrl+Enter", "save the edit (in the editor)"), ("R", "reject"),
             ("1 … 9", "put candidate n in the editor"), ("Esc", "leave the editor (then A / R work again)")]

# Keyboard shortcuts of the review queue, installed once per page. A key typed into a text field stays text
# (only Ctrl+Enter in the editor and Esc act there; a clicked candidate or button is not a text field);
# nothing happens while another tab is shown.
KEYS_JS = """
() => {
  if (window.__agentKeys) return;
  window.__agentKeys = true;
  document.addEventListener('keydown', (e) => {
    const editor = document.querySelector('#review-editor textarea');
    if (!editor || !editor.offsetParent) return;
    const t = e.target;
    const choice = t && t.tagName === 'INPUT' && ['radio', 'checkbox', 'button', 'submit'].includes(t.type);
    const typing = t && (t.tagName === 'TEXTAREA' || (t.tagName === 'INPUT' && !choice) || t.isContentEditable);
    const press = (sel) => { const b = document.querySelector(sel); if (b) { e.preventDefault(); b.click(); } };
    // Saving leaves the editor, so the next draft's A / R / E keys act instead of typing into it.
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && t === editor) { editor.blur(); return press('#review-edit'); }
    if (e.key === 'Escape' && typing) { t.blur(); return; }
    if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key.toLowerCase();
    if (key === 'a') press('#review-approve');
    else if (key === 'r') press('#review-reject');
    else if (key === 'e') { e.preventDefault(); editor.focus(); }
    else if (/^[1-9]$/.test(key)) {
      const options = document.querySelectorAll('#review-candidates input[type=radio]');
      const option = options[Number(key) - 1];
      if (option) { e.preventDefault(); option.click(); }
    }
  });
}
"""


def ungrounded_details(meta: dict[str, Any] | None) -> list[str]:
    """The details of a stored bot reply that nobody gave (``meta["grounding"]``, see chatbot.service.grounding)."""
    grounding = (meta or {}).get("grounding") or {}
    return [str(d) for d in grounding.get("ungrounded") or []]


def _flagged(meta: dict[str, Any] | None) -> bool:
    """The reply needs an agent's eye: it states ungrounded details, or the check itself failed."""
    return bool(ungrounded_details(meta) or ((meta or {}).get("grounding") or {}).get("error"))


def grounding_note(meta: dict[str, Any] | None) -> str:
    """One plain-text line about the grounding check of a reply, "" when there is nothing to say."""
    grounding = (meta or {}).get("grounding") or {}
    details = ungrounded_details(meta)
    if details:
        return UNGROUNDED_LABEL + ", ".join(details)
    if grounding.get("error"):
        return f"The grounding check failed ({grounding['error']}): check every detail of this reply."
    picked = grounding.get("picked")
    if isinstance(picked, int) and picked > 0:
        return f"Candidate {picked + 1} was used: the higher-ranked ones state details nobody gave."
    return ""


def taught_note(meta: dict[str, Any] | None) -> str:
    """Why a taught answer came first though the model scored another candidate higher: the question an
    agent taught it for (chatbot.text.taught), so an agent can see which correction is speaking."""
    taught = (meta or {}).get("taught")
    if not isinstance(taught, dict) or not taught.get("question"):
        return ""
    return (f"Taught answer: an agent answered \"{taught['question']}\" this way (similarity "
            f"{float(taught.get('similarity', 0)):.2f}, +{float(taught.get('bonus', 0)):.3f} to its score).")


def grounding_html(meta: dict[str, Any] | None) -> str:
    """``grounding_note`` highlighted for the console, every value escaped: a detail comes from the model's
    words, and nothing in it may become markup. The taught-answer note follows it."""
    taught = taught_note(meta)
    taught_html = f'<div class="taught-note">{html.escape(taught)}</div>' if taught else ""
    details = ungrounded_details(meta)
    if details:
        marks = ", ".join(f"<mark>{html.escape(d)}</mark>" for d in details)
        return (f'<div class="ungrounded" role="alert"><b>⚠ {html.escape(UNGROUNDED_LABEL)}</b>{marks}</div>'
                + taught_html)
    note = grounding_note(meta)
    if not note:
        return taught_html
    if _flagged(meta):  # the check failed
        return f'<div class="ungrounded" role="alert"><b>⚠ {html.escape(note)}</b></div>' + taught_html
    return f'<div class="grounding-note">{html.escape(note)}</div>' + taught_html


def candidate_rows(message: MessageView) -> list[list[Any]]:
    """n-best rows with each candidate's ungrounded details; the candidate that was used is marked."""
    grounding = (message.meta or {}).get("grounding") or {}
    per_candidate = grounding.get("candidates") or []
    picked = grounding.get("picked")
    rows = []
    for rank, (text, score) in enumerate(message.candidates):
        missing = ", ".join(str(d) for d in per_candidate[rank]) if rank < len(per_candidate) else ""
        label: Any = f"{rank + 1} (used)" if picked == rank and rank > 0 else rank + 1
        if rank == 0 and taught_note(message.meta) and not (isinstance(picked, int) and picked > 0):
            label = "1 (taught)"
        rows.append([label, text, round(score, 3), missing])
    return rows


def transcript_rows(messages: list[MessageView]) -> list[dict[str, str]]:
    """Chat rows, each starting with who wrote it (never told by side or colour alone), escaped as text."""
    rows = []
    for m in messages:
        if m.role == "customer":
            rows.append({"role": "user", "content": as_text(f"Customer: {m.text}")})
            continue
        tag = _LABEL[m.role]
        if m.role == "bot":
            tag += f" #{m.id} [{m.review_state}"
            tag += f", score {m.confidence:.2f}]" if m.confidence is not None else "]"
        text = f"{tag}: {m.text}"
        if m.role == "bot" and _flagged(m.meta):
            text += f"\n⚠ {grounding_note(m.meta)}"
        elif m.role == "system" and (m.meta or {}).get("reason"):
            text += f" (why: {m.meta['reason']})"  # type: ignore[index]
        rows.append({"role": "assistant", "content": as_text(text)})
    return rows


def waited(since: datetime | None, now: datetime | None = None) -> str:
    """How long since ``since``, as people say it: "just now", "45 s", "12 min", "3 h 05 min", "2 d 4 h";
    "" when nobody is waiting."""
    if since is None:
        return ""
    seconds = max(0, int(((now or datetime.now(timezone.utc)) - since).total_seconds()))
    if seconds < 10:
        return "just now"
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours = minutes // 60
    if hours < 24:
        return f"{hours} h {minutes % 60:02d} min"
    return f"{hours // 24} d {hours % 24} h"


def _short(text: str | None, n: int = 90) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _suggestion_label(s: Suggestion) -> str:
    if s.source == "saved":
        return f"{s.title}: {_short(s.text, 70)}"
    mark = "✓ grounded" if s.grounded else "⚠ not grounded: " + ", ".join(s.ungrounded)
    return f"{_short(s.text, 80)}  ({mark})"


def _as_state(s: Suggestion) -> dict[str, Any]:
    return {"text": s.text, "source": s.source, "rank": s.rank, "fact_id": s.fact_id}


def _of_state(d: dict[str, Any] | None) -> Suggestion | None:
    if not d:
        return None
    return Suggestion(str(d["text"]), str(d["source"]), rank=d.get("rank"), fact_id=d.get("fact_id"))


class AgentConsole:
    """The console's handlers, one method per event. Each re-checks the signed session (``who``) before it
    reads or writes anything, so none of them trusts what the browser sends."""

    def __init__(self, service: ChatService) -> None:
        self.service = service
        self.replays = ReplayService(service)
        self.admin_views = AdminService(service)
        self.space = Workspace(service)

    def who(self, request: gr.Request):  # type: ignore[no-untyped-def]
        return principal_from_request(self.service, request)

    # --- inbox --------------------------------------------------------------------------------------------
    def inbox(self, view: str | None, search: str | None, request: gr.Request):
        principal = self.who(request)
        counts = self.space.counts(principal)
        choices = [(f"{VIEW_LABELS[v]} ({counts[v]})", v) for v in VIEWS]
        now = datetime.now(timezone.utc)
        rows = [[r.id, _short(r.preview), waited(r.waiting_since, now), r.language, r.status, r.agent_name or ""]
                for r in self.space.inbox(principal, view or "waiting", search or None)]
        return gr.update(choices=choices), rows or [["", "nothing here", "", "", "", ""]]

    @staticmethod
    def pick_row(evt: gr.SelectData, table: Any) -> Any:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            return int(table.iloc[row, 0]) if hasattr(table, "iloc") else int(table[row][0])
        except (IndexError, ValueError, TypeError):
            return gr.skip()

    def staff_choices(self, request: gr.Request):
        return gr.update(choices=[(name, uid) for uid, name in self.space.staff(self.who(request))])

    # --- one conversation -------------------------------------------------------------------------------
    def open_conversation(self, conversation_id: float | None, selected: int | None, request: gr.Request):
        none = gr.update(choices=[], value=None)
        if not conversation_id:
            return [], "<p>Click a conversation in the inbox to open it.</p>", none, none, []
        principal = self.who(request)
        conversation, messages = self.service.transcript(principal, int(conversation_id))
        bots = [(f"#{m.id}: {m.text[:60]}", m.id) for m in messages if m.role == "bot"]
        agent = next((name for uid, name in self.space.staff(principal) if uid == conversation.assigned_agent_id),
                     None)
        head = (f"<h3>Conversation {conversation.id}</h3><p>Status <b>{html.escape(conversation.status)}</b>"
                + (f", handled by <b>{html.escape(agent)}</b>" if agent else "")
                + f" · language {html.escape(conversation.language)}</p>")
        suggestions = self.space.suggestions(principal, conversation.id)
        offered = gr.update(choices=[(_suggestion_label(s), i) for i, s in enumerate(suggestions)], value=None)
        ids = [m_id for _, m_id in bots]
        # Leave the reply picked alone when it is still there: a refresh that started before the agent picked
        # another would otherwise set the old one back and clobber the editor and the replay panel.
        picked = gr.update(choices=bots) if selected in ids else gr.update(choices=bots, value=ids[-1] if ids else None)
        return transcript_rows(messages), head, picked, offered, [_as_state(s) for s in suggestions]

    def show_reply(self, conversation_id: float | None, message_id: int | None, request: gr.Request):
        if not conversation_id or not message_id:
            return [], "", "<p>Select a bot reply.</p>", ""
        _, messages = self.service.transcript(self.who(request), int(conversation_id))
        message = next((m for m in messages if m.id == message_id), None)
        if message is None:
            return [], "", "<p>Select a bot reply.</p>", ""
        return candidate_rows(message), grounding_html(message.meta), heatmap_html(message.attention), message.text

    def _act(self, action: str, conversation_id: float | None, request: gr.Request) -> str:
        if not conversation_id:
            return "Open a conversation first."
        getattr(self.service, action)(self.who(request), int(conversation_id))
        return f"Done: {action.replace('_', ' ')} on conversation {int(conversation_id)}."

    def take_over(self, conversation_id: float | None, request: gr.Request) -> str:
        return self._act("take_over", conversation_id, request)

    def hand_back(self, conversation_id: float | None, request: gr.Request) -> str:
        return self._act("hand_back", conversation_id, request)

    def close(self, conversation_id: float | None, request: gr.Request) -> str:
        return self._act("close", conversation_id, request)

    def assign(self, conversation_id: float | None, agent_id: int | None, request: gr.Request) -> str:
        if not conversation_id or not agent_id:
            return "Open a conversation and pick an agent first."
        name = self.space.assign(self.who(request), int(conversation_id), int(agent_id))
        return f"Conversation {int(conversation_id)} is now handled by {html.escape(name)}."

    def _review(self, action: str, message_id: int | None, corrected: str, request: gr.Request) -> str:
        if not message_id:
            return "Select a bot reply first."
        result = self.service.review(self.who(request), int(message_id), action,
                                     corrected if action == "edit" else None)
        return f"Reply #{result.id} is now {result.review_state}."

    def approve_reply(self, message_id: int | None, corrected: str, request: gr.Request) -> str:
        return self._review("approve", message_id, corrected, request)

    def edit_reply(self, message_id: int | None, corrected: str, request: gr.Request) -> str:
        return self._review("edit", message_id, corrected, request)

    def reject_reply(self, message_id: int | None, corrected: str, request: gr.Request) -> str:
        return self._review("reject", message_id, corrected, request)

    # --- suggestions, saved replies, sending ------------------------------------------------------------
    @staticmethod
    def insert_choice(evt: gr.SelectData, listed: list[dict[str, Any]]):
        """A click on a suggested or saved reply puts its text in the reply box and remembers which it was."""
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(listed):
            return gr.skip(), gr.skip()
        return listed[index]["text"], listed[index]

    def saved_matches(self, text: str, conversation_id: float | None, request: gr.Request):
        """Typing ``/`` and a few letters lists the saved replies that match; otherwise all of them."""
        query = text[1:] if text.startswith("/") else ""
        if text and not text.startswith("/"):
            return gr.skip(), gr.skip()
        language = None
        if conversation_id:
            language = self.service.transcript(self.who(request), int(conversation_id))[0].language
        found = self.space.saved_replies(self.who(request), query, language)
        return (gr.update(choices=[(_suggestion_label(s), i) for i, s in enumerate(found)], value=None),
                [_as_state(s) for s in found])

    def send(self, conversation_id: float | None, text: str, used: dict[str, Any] | None,
             offered: list[dict[str, Any]], found: list[dict[str, Any]], request: gr.Request):
        if text.startswith("/") and found:  # Enter on "/open": the first saved reply that matches
            return "", found[0]["text"], found[0]
        if not conversation_id:
            return "Open a conversation first.", text, used
        self.space.send(self.who(request), int(conversation_id), text, _of_state(used),
                        shown=len(offered) + (1 if used and used.get("source") == "saved" else 0))
        return "Sent.", "", None

    # --- replay -------------------------------------------------------------------------------------------
    def versions(self, request: gr.Request):
        choices = [(f"{v.name} ({v.status})", v.id) for v in self.admin_views.versions(self.who(request))]
        return gr.update(choices=[("active model", 0), *choices], value=0)

    def replay(self, message_id: int | None, version_id: int | None, beams: float, penalty: float,
               length_penalty: float, request: gr.Request):
        if not message_id:
            return "", [], "Select a bot reply first."
        result = self.replays.replay(self.who(request), int(message_id), version_id or None, num_beams=int(beams),
                                     repetition_penalty=float(penalty), length_penalty=float(length_penalty))
        candidates = [[rank + 1, text, round(score, 3)] for rank, (text, score) in enumerate(result.candidates)]
        return result.text, candidates, "Replayed (nothing was sent to the customer)."

    # --- review queue -----------------------------------------------------------------------------------
    def review_view(self, current: int | None, request: gr.Request, *, force_next: bool = False):
        """The queue, and the item to show: the current one while it waits (so a refresh never clobbers the
        editor), else the oldest."""
        items = self.space.review_queue(self.who(request))
        now = datetime.now(timezone.utc)
        rows = [[i.message_id, i.conversation_id, waited(i.created_at, now), i.language, _short(i.customer_text, 60),
                 _short(i.text, 60)] for i in items]
        table = rows or [["", "", "", "", "nothing to review", ""]]
        if not force_next and current in [i.message_id for i in items]:
            return table, current, gr.skip(), gr.skip(), gr.skip()
        if not items:
            return table, None, "<p>Nothing to review. New drafts open here by themselves.</p>", \
                gr.update(choices=[], value=None), ""
        item = items[0]
        _, messages = self.service.transcript(self.who(request), item.conversation_id)
        message = next(m for m in messages if m.id == item.message_id)
        kind = "draft, waiting for approval" if item.review_state == "draft" else "sent, sampled for review"
        head = (f'<div id="review-item" data-message="{item.message_id}"><p><b>Conversation {item.conversation_id}</b>'
                f" · reply #{item.message_id} ({kind}) · waiting {html.escape(waited(item.created_at, now))}"
                f" · language {html.escape(item.language)}</p>"
                f'<p class="said"><b>Customer:</b> {html.escape(item.customer_text or "")}</p>'
                f'<p class="said"><b>Bot:</b> {html.escape(message.text)}</p>{grounding_html(message.meta)}</div>')
        choices = [(f"{rank + 1}. {text}  (score {score:.2f})", rank)
                   for rank, (text, score) in enumerate(message.candidates)]
        return table, item.message_id, head, gr.update(choices=choices, value=None), message.text

    def review_refresh(self, current: int | None, request: gr.Request):
        return self.review_view(current, request)

    def _queue_act(self, action: str, current: int | None, editor: str, request: gr.Request):
        if not current:
            return ("Nothing is open to review.", *self.review_view(None, request))
        result = self.service.review(self.who(request), int(current), action, editor if action == "edit" else None)
        return (f"Reply #{result.id} is now {result.review_state}.",
                *self.review_view(None, request, force_next=True))

    def queue_approve(self, current: int | None, editor: str, request: gr.Request):
        return self._queue_act("approve", current, editor, request)

    def queue_edit(self, current: int | None, editor: str, request: gr.Request):
        return self._queue_act("edit", current, editor, request)

    def queue_reject(self, current: int | None, editor: str, request: gr.Request):
        return self._queue_act("reject", current, editor, request)

    def review_candidate(self, evt: gr.SelectData, current: int | None, request: gr.Request):
        if not current or not isinstance(evt.index, int):
            return gr.skip()
        item = next((i for i in self.space.review_queue(self.who(request)) if i.message_id == current), None)
        if item is None:
            return gr.skip()
        _, messages = self.service.transcript(self.who(request), item.conversation_id)
        message = next(m for m in messages if m.id == current)
        return message.candidates[evt.index][0] if evt.index < len(message.candidates) else gr.skip()


class InboxTab:
    """The inbox tab's components: the queue on the left, the open conversation on the right."""

    def __init__(self, settings: Any) -> None:
        self.offered = gr.State([])  # the suggestions shown, as dicts
        self.found = gr.State([])  # the saved replies listed
        self.used = gr.State(None)  # the suggestion or saved reply last put into the reply box
        with gr.Tab("Inbox", id="inbox"), gr.Row(equal_height=False):
            with gr.Column(scale=5, min_width=420):
                self.view = gr.Radio(choices=[(VIEW_LABELS[v], v) for v in VIEWS], value="waiting",
                                     label="View", elem_id="inbox-view")
                self.search = gr.Textbox(label="Search conversations (text or id)", elem_id="inbox-search",
                                         placeholder="e.g. refund, parcel, 42")
                self.queue = gr.Dataframe(headers=QUEUE_COLUMNS, label="Conversations (longest waiting first)",
                                          interactive=False, wrap=True, datatype="str", elem_id="agent-queue",
                                          column_widths=["8%", "36%", "15%", "9%", "14%", "18%"], max_height=520)
                self.conversation = gr.Number(label="Open conversation by id", precision=0,
                                              elem_id="agent-conversation")
            with gr.Column(scale=7, min_width=520):
                self.header = gr.HTML("<p>Click a conversation in the inbox to open it.</p>", elem_id="agent-header")
                self.transcript = gr.Chatbot(label="Transcript", render_markdown=False, sanitize_html=True,
                                             height=360, elem_id="agent-transcript", feedback_options=None)
                with gr.Row():
                    self.take_btn = gr.Button("Assign to me", variant="primary", elem_id="agent-take-over")
                    self.assignee = gr.Dropdown(label="Agent", choices=[], show_label=False, min_width=120,
                                                elem_id="agent-assign-to", scale=1)
                    self.assign_btn = gr.Button("Assign", elem_id="agent-assign")
                    self.back_btn = gr.Button("Hand back to bot", elem_id="agent-hand-back")
                    self.close_btn = gr.Button("Close", variant="stop", elem_id="agent-close")
                self.suggested = gr.Radio(choices=[], label="Suggested replies (click to put in the reply box)",
                                          elem_id="agent-suggestions", interactive=True)
                self.saved = gr.Radio(choices=[], label="Saved replies (type / and a few letters, or click)",
                                      elem_id="agent-saved", interactive=True)
                with gr.Row():
                    self.reply_box = gr.Textbox(placeholder="Reply to the customer (after taking over); "
                                                "/ for saved replies", show_label=False, scale=5,
                                                elem_id="agent-reply")
                    self.reply_btn = gr.Button("Send", scale=1, elem_id="agent-send")
                self.info = gr.Markdown(elem_id="agent-info")
                with gr.Accordion("Bot replies: n-best, grounding, attention, review, replay", open=False,
                                  elem_id="agent-details"):
                    self._details(settings)

    def _details(self, settings: Any) -> None:
        self.bot_reply = gr.Dropdown(label="Bot reply", choices=[], elem_id="agent-bot-reply")
        self.grounding = gr.HTML(elem_id="agent-grounding")
        self.candidates = gr.Dataframe(headers=CANDIDATE_COLUMNS, label="n-best candidates", datatype="str",
                                       interactive=False, wrap=True, elem_id="agent-candidates")
        self.heatmap = gr.HTML(label="Attention", elem_id="agent-heatmap")
        self.corrected = gr.Textbox(label="Corrected reply", lines=2, elem_id="agent-corrected")
        with gr.Row():
            self.approve_btn = gr.Button("Approve", elem_id="agent-approve")
            self.edit_btn = gr.Button("Save edit", elem_id="agent-edit")
            self.reject_btn = gr.Button("Reject", variant="stop", elem_id="agent-reject")
        with gr.Accordion("Replay with another model or settings", open=False):
            self.version = gr.Dropdown(label="Model version", choices=[("active model", 0)], value=0,
                                       elem_id="agent-replay-version")
            self.beams = gr.Slider(1, 10, value=settings.num_beams, step=1, label="num_beams")
            self.penalty = gr.Slider(1.0, 2.0, value=settings.repetition_penalty, step=0.05,
                                     label="repetition_penalty")
            self.length_penalty = gr.Slider(0.0, 2.0, value=settings.length_penalty, step=0.1,
                                            label="length_penalty")
            self.replay_btn = gr.Button("Replay", elem_id="agent-replay")
            with gr.Row():
                self.sent_text = gr.Textbox(label="Sent", interactive=False, elem_id="agent-sent")
                self.replay_text = gr.Textbox(label="Replayed", interactive=False, elem_id="agent-replayed")
            self.replay_candidates = gr.Dataframe(headers=["rank", "candidate", "score"], interactive=False)


class ReviewTab:
    """The review queue's components: the queue on the left, the open item and its editor on the right."""

    def __init__(self) -> None:
        with gr.Tab("Review queue", id="review"):
            gr.Markdown("**Keys:** " + " · ".join(f"`{k}` {what}" for k, what in SHORTCUTS), elem_id="review-keys")
            with gr.Row(equal_height=False):
                with gr.Column(scale=5, min_width=420):
                    self.table = gr.Dataframe(headers=REVIEW_COLUMNS, label="To review (oldest first)",
                                              interactive=False, wrap=True, datatype="str", elem_id="review-queue",
                                              max_height=560, column_widths=["10%", "10%", "14%", "8%", "29%", "29%"])
                with gr.Column(scale=7, min_width=520):
                    self.head = gr.HTML("<p>Nothing to review yet.</p>", elem_id="review-current")
                    self.candidates = gr.Radio(choices=[], label="n-best (click or press 1-9 to edit from it)",
                                               elem_id="review-candidates", interactive=True)
                    self.editor = gr.Textbox(label="Reply the customer will see (edit here)", lines=3,
                                             elem_id="review-editor")
                    with gr.Row():
                        self.approve = gr.Button("Approve (A)", variant="primary", elem_id="review-approve")
                        self.edit = gr.Button("Save edit (Ctrl+Enter)", elem_id="review-edit")
                        self.reject = gr.Button("Reject (R)", variant="stop", elem_id="review-reject")
                    self.info = gr.Markdown(elem_id="review-info")
        self.current = gr.State(None)  # the message id open in the review queue
        self.outputs = [self.table, self.current, self.head, self.candidates, self.editor]  # what a refresh renders


HIDDEN = {"show_progress": "hidden"}


def _wire_inbox(console: AgentConsole, tab: InboxTab, timer: gr.Timer) -> None:
    """The inbox's events; after every action the conversation (and, where it moved, the inbox) re-renders."""
    c, offered, found, used = console, tab.offered, tab.found, tab.used
    listing = ([tab.view, tab.search], [tab.view, tab.queue])
    opened = ([tab.conversation, tab.bot_reply], [tab.transcript, tab.header, tab.bot_reply, tab.suggested, offered])
    saved = ([tab.reply_box, tab.conversation], [tab.saved, found])

    timer.tick(guarded(c.inbox), *listing, **HIDDEN)
    timer.tick(guarded(c.open_conversation), *opened, **HIDDEN)
    tab.view.input(guarded(c.inbox), *listing)
    tab.search.input(guarded(c.inbox), *listing, **HIDDEN)
    tab.queue.select(c.pick_row, tab.queue, tab.conversation)
    tab.conversation.change(guarded(c.open_conversation), *opened).then(guarded(c.saved_matches), *saved)
    tab.bot_reply.change(guarded(c.show_reply), [tab.conversation, tab.bot_reply],
                         [tab.candidates, tab.grounding, tab.heatmap, tab.corrected], api_name="show_reply").then(
        lambda text: text, tab.corrected, tab.sent_text)
    for button, handler in ((tab.take_btn, c.take_over), (tab.back_btn, c.hand_back), (tab.close_btn, c.close)):
        button.click(guarded(handler), tab.conversation, tab.info).then(
            guarded(c.open_conversation), *opened).then(guarded(c.inbox), *listing)
    tab.assign_btn.click(guarded(c.assign), [tab.conversation, tab.assignee], tab.info).then(
        guarded(c.open_conversation), *opened).then(guarded(c.inbox), *listing)
    for button, handler in ((tab.approve_btn, c.approve_reply), (tab.edit_btn, c.edit_reply),
                            (tab.reject_btn, c.reject_reply)):
        button.click(guarded(handler), [tab.bot_reply, tab.corrected], tab.info).then(
            guarded(c.open_conversation), *opened)
    tab.suggested.select(c.insert_choice, offered, [tab.reply_box, used])
    tab.saved.select(c.insert_choice, found, [tab.reply_box, used])
    tab.reply_box.input(guarded(c.saved_matches), *saved, **HIDDEN)
    for trigger in (tab.reply_box.submit, tab.reply_btn.click):
        trigger(guarded(c.send), [tab.conversation, tab.reply_box, used, offered, found],
                [tab.info, tab.reply_box, used]).then(
            guarded(c.open_conversation), *opened).then(guarded(c.saved_matches), *saved)
    tab.replay_btn.click(guarded(c.replay), [tab.bot_reply, tab.version, tab.beams, tab.penalty, tab.length_penalty],
                         [tab.replay_text, tab.replay_candidates, tab.info])


def _wire_review(console: AgentConsole, tab: ReviewTab, timer: gr.Timer) -> None:
    """The review queue's events; each action opens the next item."""
    outputs = tab.outputs
    timer.tick(guarded(console.review_refresh), tab.current, outputs, **HIDDEN)
    for button, handler in ((tab.approve, console.queue_approve), (tab.edit, console.queue_edit),
                            (tab.reject, console.queue_reject)):
        button.click(guarded(handler), [tab.current, tab.editor], [tab.info, *outputs])
    tab.candidates.select(guarded(console.review_candidate), tab.current, tab.editor)


def build_agent(service: ChatService) -> gr.Blocks:
    """Lay out the console and wire its events to ``AgentConsole``'s handlers."""
    console = AgentConsole(service)
    with gr.Blocks(title="Agent console") as demo:
        gr.Markdown("## Agent console  ·  [admin](/admin)  ·  [sign out](/logout)")
        with gr.Tabs():
            inbox = InboxTab(service.settings)
            review = ReviewTab()
        demo.load(None, None, None, js=KEYS_JS)
        demo.load(guarded(console.inbox), [inbox.view, inbox.search], [inbox.view, inbox.queue])
        demo.load(guarded(console.versions), None, inbox.version)
        demo.load(guarded(console.staff_choices), None, inbox.assignee)
        demo.load(guarded(console.saved_matches), [inbox.reply_box, inbox.conversation], [inbox.saved, inbox.found])
        demo.load(guarded(console.review_refresh), review.current, review.outputs)
        _wire_inbox(console, inbox, gr.Timer(2.0))
        _wire_review(console, review, gr.Timer(1.0))  # new drafts show up within a second: the fast path
    return demo
