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
# (only Ctrl+Enter in the editor and Esc act there); nothing happens while another tab is shown.
KEYS_JS = """
() => {
  if (window.__agentKeys) return;
  window.__agentKeys = true;
  document.addEventListener('keydown', (e) => {
    const editor = document.querySelector('#review-editor textarea');
    if (!editor || !editor.offsetParent) return;
    const t = e.target;
    const typing = t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable);
    const press = (sel) => { const b = document.querySelector(sel); if (b) { e.preventDefault(); b.click(); } };
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey) && t === editor) return press('#review-edit');
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


def grounding_html(meta: dict[str, Any] | None) -> str:
    """``grounding_note`` highlighted for the console, every value escaped: a detail comes from the model's
    words, and nothing in it may become markup."""
    details = ungrounded_details(meta)
    if details:
        marks = ", ".join(f"<mark>{html.escape(d)}</mark>" for d in details)
        return f'<div class="ungrounded" role="alert"><b>⚠ {html.escape(UNGROUNDED_LABEL)}</b>{marks}</div>'
    note = grounding_note(meta)
    if not note:
        return ""
    if _flagged(meta):  # the check failed
        return f'<div class="ungrounded" role="alert"><b>⚠ {html.escape(note)}</b></div>'
    return f'<div class="grounding-note">{html.escape(note)}</div>'


def candidate_rows(message: MessageView) -> list[list[Any]]:
    """n-best rows with each candidate's ungrounded details; the candidate that was used is marked."""
    grounding = (message.meta or {}).get("grounding") or {}
    per_candidate = grounding.get("candidates") or []
    picked = grounding.get("picked")
    rows = []
    for rank, (text, score) in enumerate(message.candidates):
        missing = ", ".join(str(d) for d in per_candidate[rank]) if rank < len(per_candidate) else ""
        label = f"{rank + 1} (used)" if picked == rank and rank > 0 else rank + 1
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


def build_agent(service: ChatService) -> gr.Blocks:
    replays = ReplayService(service)
    admin_views = AdminService(service)
    space = Workspace(service)

    def who(request: gr.Request):
        return principal_from_request(service, request)

    # --- inbox --------------------------------------------------------------------------------------------
    def inbox(view: str | None, search: str | None, request: gr.Request):
        principal = who(request)
        counts = space.counts(principal)
        choices = [(f"{VIEW_LABELS[v]} ({counts[v]})", v) for v in VIEWS]
        now = datetime.now(timezone.utc)
        rows = [[r.id, _short(r.preview), waited(r.waiting_since, now), r.language, r.status, r.agent_name or ""]
                for r in space.inbox(principal, view or "waiting", search or None)]
        return gr.update(choices=choices), rows or [["", "nothing here", "", "", "", ""]]

    def pick_row(evt: gr.SelectData, table: Any) -> Any:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            return int(table.iloc[row, 0]) if hasattr(table, "iloc") else int(table[row][0])
        except (IndexError, ValueError, TypeError):
            return gr.skip()

    def staff_choices(request: gr.Request):
        return gr.update(choices=[(name, uid) for uid, name in space.staff(who(request))])

    # --- one conversation -------------------------------------------------------------------------------
    def open_conversation(conversation_id: float | None, selected: int | None, request: gr.Request):
        none = gr.update(choices=[], value=None)
        if not conversation_id:
            return [], "<p>Click a conversation in the inbox to open it.</p>", none, none, []
        principal = who(request)
        conversation, messages = service.transcript(principal, int(conversation_id))
        bots = [(f"#{m.id}: {m.text[:60]}", m.id) for m in messages if m.role == "bot"]
        agent = next((name for uid, name in space.staff(principal) if uid == conversation.assigned_agent_id), None)
        head = (f"<h3>Conversation {conversation.id}</h3><p>Status <b>{html.escape(conversation.status)}</b>"
                + (f", handled by <b>{html.escape(agent)}</b>" if agent else "")
                + f" · language {html.escape(conversation.language)}</p>")
        suggestions = space.suggestions(principal, conversation.id)
        offered = gr.update(choices=[(_suggestion_label(s), i) for i, s in enumerate(suggestions)], value=None)
        ids = [m_id for _, m_id in bots]
        # Leave the reply picked alone when it is still there: a refresh that started before the agent picked
        # another would otherwise set the old one back and clobber the editor and the replay panel.
        picked = gr.update(choices=bots) if selected in ids else gr.update(choices=bots, value=ids[-1] if ids else None)
        return transcript_rows(messages), head, picked, offered, [_as_state(s) for s in suggestions]

    def show_reply(conversation_id: float | None, message_id: int | None, request: gr.Request):
        if not conversation_id or not message_id:
            return [], "", "<p>Select a bot reply.</p>", ""
        _, messages = service.transcript(who(request), int(conversation_id))
        message = next((m for m in messages if m.id == message_id), None)
        if message is None:
            return [], "", "<p>Select a bot reply.</p>", ""
        return candidate_rows(message), grounding_html(message.meta), heatmap_html(message.attention), message.text

    def act(action: str):
        def run(conversation_id: float | None, request: gr.Request) -> str:
            if not conversation_id:
                return "Open a conversation first."
            getattr(service, action)(who(request), int(conversation_id))
            return f"Done: {action.replace('_', ' ')} on conversation {int(conversation_id)}."
        return run

    def assign(conversation_id: float | None, agent_id: int | None, request: gr.Request) -> str:
        if not conversation_id or not agent_id:
            return "Open a conversation and pick an agent first."
        name = space.assign(who(request), int(conversation_id), int(agent_id))
        return f"Conversation {int(conversation_id)} is now handled by {html.escape(name)}."

    def review(action: str):
        def run(message_id: int | None, corrected: str, request: gr.Request) -> str:
            if not message_id:
                return "Select a bot reply first."
            result = service.review(who(request), int(message_id), action, corrected if action == "edit" else None)
            return f"Reply #{result.id} is now {result.review_state}."
        return run

    # --- suggestions, saved replies, sending ------------------------------------------------------------
    def insert_suggestion(evt: gr.SelectData, offered: list[dict[str, Any]]):
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(offered):
            return gr.skip(), gr.skip()
        return offered[index]["text"], offered[index]

    def saved_matches(text: str, conversation_id: float | None, request: gr.Request):
        """Typing ``/` and a few letters lists the saved replies that match; otherwise all of them."""
        query = text[1:] if text.startswith("/") else ""
        if text and not text.startswith("/"):
            return gr.skip(), gr.skip()
        language = None
        if conversation_id:
            language = service.transcript(who(request), int(conversation_id))[0].language
        found = space.saved_replies(who(request), query, language)
        return (gr.update(choices=[(_suggestion_label(s), i) for i, s in enumerate(found)], value=None),
                [_as_state(s) for s in found])

    def insert_saved(evt: gr.SelectData, found: list[dict[str, Any]]):
        index = evt.index if isinstance(evt.index, int) else None
        if index is None or not 0 <= index < len(found):
            return gr.skip(), gr.skip()
        return found[index]["text"], found[index]

    def send(conversation_id: float | None, text: str, used: dict[str, Any] | None,
             offered: list[dict[str, Any]], found: list[dict[str, Any]], request: gr.Request):
        if text.startswith("/") and found:  # Enter on "/open": the first saved reply that matches
            return "", found[0]["text"], found[0]
        if not conversation_id:
            return "Open a conversation first.", text, used
        space.send(who(request), int(conversation_id), text, _of_state(used),
                   shown=len(offered) + (1 if used and used.get("source") == "saved" else 0))
        return "Sent.", "", None

    # --- replay -------------------------------------------------------------------------------------------
    def versions(request: gr.Request):
        choices = [(f"{v.name} ({v.status})", v.id) for v in admin_views.versions(who(request))]
        return gr.update(choices=[("active model", 0), *choices], value=0)

    def replay(message_id: int | None, version_id: int | None, beams: float, penalty: float,
               length_penalty: float, request: gr.Request):
        if not message_id:
            return "", [], "Select a bot reply first."
        result = replays.replay(who(request), int(message_id), version_id or None, num_beams=int(beams),
                                repetition_penalty=float(penalty), length_penalty=float(length_penalty))
        candidates = [[rank + 1, text, round(score, 3)] for rank, (text, score) in enumerate(result.candidates)]
        return result.text, candidates, "Replayed (nothing was sent to the customer)."

    # --- review queue -----------------------------------------------------------------------------------
    def review_view(current: int | None, request: gr.Request, *, force_next: bool = False):
        """The queue, and the item to show: the current one while it waits (so a refresh never clobbers the
        editor), else the oldest."""
        items = space.review_queue(who(request))
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
        _, messages = service.transcript(who(request), item.conversation_id)
        message = next(m for m in messages if m.id == item.message_id)
        kind = "draft, waiting for approval" if item.review_state == "draft" else "sent, sampled for review"
        head = (f'<div id="review-item" data-message="{item.message_id}"><p><b>Conversation {item.conversation_id}</b>'
                f" · reply #{item.message_id} ({kind}) · waiting {html.escape(waited(item.created_at, now))}"
                f" · language {html.escape(item.language)}</p>"
                f'<p class="said"><b>Customer:</b> {html.escape(item.customer_text or "")}</p>'
                f'<p class="said"><b>Bot:</b> {html.escape(message.text)}</p>{grounding_html(message.meta)}</div>')
        choices = [(f"{rank + 1}. {text}  (score {score:.2f})", rank) for rank, (text, score) in enumerate(message.candidates)]
        return table, item.message_id, head, gr.update(choices=choices, value=None), message.text

    def review_refresh(current: int | None, request: gr.Request):
        return review_view(current, request)

    def review_act(action: str):
        def run(current: int | None, editor: str, request: gr.Request):
            if not current:
                return ("Nothing is open to review.", *review_view(None, request))
            result = service.review(who(request), int(current), action, editor if action == "edit" else None)
            return (f"Reply #{result.id} is now {result.review_state}.",
                    *review_view(None, request, force_next=True))
        return run

    def review_candidate(evt: gr.SelectData, current: int | None, request: gr.Request):
        if not current or not isinstance(evt.index, int):
            return gr.skip()
        item = next((i for i in space.review_queue(who(request)) if i.message_id == current), None)
        if item is None:
            return gr.skip()
        _, messages = service.transcript(who(request), item.conversation_id)
        message = next(m for m in messages if m.id == current)
        return message.candidates[evt.index][0] if evt.index < len(message.candidates) else gr.skip()

    with gr.Blocks(title="Agent console") as demo:
        gr.Markdown("## Agent console  ·  [admin](/admin)  ·  [sign out](/logout)")
        offered_state = gr.State([])  # the suggestions shown, as dicts
        found_state = gr.State([])  # the saved replies listed
        used_state = gr.State(None)  # the suggestion or saved reply last put into the reply box
        review_current = gr.State(None)  # the message id open in the review queue
        with gr.Tabs():
            with gr.Tab("Inbox", id="inbox"), gr.Row(equal_height=False):
                with gr.Column(scale=5, min_width=420):
                    view = gr.Radio(choices=[(VIEW_LABELS[v], v) for v in VIEWS], value="waiting",
                                    label="View", elem_id="inbox-view")
                    search = gr.Textbox(label="Search conversations (text or id)", elem_id="inbox-search",
                                        placeholder="e.g. refund, parcel, 42")
                    queue = gr.Dataframe(headers=QUEUE_COLUMNS, label="Conversations (longest waiting first)",
                                         interactive=False, wrap=True, datatype="str", elem_id="agent-queue",
                                         column_widths=["8%", "36%", "15%", "9%", "14%", "18%"],
                                         max_height=520)
                    conversation = gr.Number(label="Open conversation by id", precision=0,
                                             elem_id="agent-conversation")
                with gr.Column(scale=7, min_width=520):
                    header = gr.HTML("<p>Click a conversation in the inbox to open it.</p>",
                                     elem_id="agent-header")
                    transcript = gr.Chatbot(label="Transcript", render_markdown=False, sanitize_html=True,
                                            height=360, elem_id="agent-transcript", feedback_options=None)
                    with gr.Row():
                        take_btn = gr.Button("Assign to me", variant="primary", elem_id="agent-take-over")
                        assignee = gr.Dropdown(label="Agent", choices=[], show_label=False, min_width=120,
                                               elem_id="agent-assign-to", scale=1)
                        assign_btn = gr.Button("Assign", elem_id="agent-assign")
                        back_btn = gr.Button("Hand back to bot", elem_id="agent-hand-back")
                        close_btn = gr.Button("Close", variant="stop", elem_id="agent-close")
                    suggested = gr.Radio(choices=[], label="Suggested replies (click to put in the reply box)",
                                         elem_id="agent-suggestions", interactive=True)
                    saved = gr.Radio(choices=[], label="Saved replies (type / and a few letters, or click)",
                                     elem_id="agent-saved", interactive=True)
                    with gr.Row():
                        reply_box = gr.Textbox(placeholder="Reply to the customer (after taking over); "
                                               "/ for saved replies", show_label=False, scale=5,
                                               elem_id="agent-reply")
                        reply_btn = gr.Button("Send", scale=1, elem_id="agent-send")
                    info = gr.Markdown(elem_id="agent-info")
                    with gr.Accordion("Bot replies: n-best, grounding, attention, review, replay", open=False,
                                      elem_id="agent-details"):
                        bot_reply = gr.Dropdown(label="Bot reply", choices=[], elem_id="agent-bot-reply")
                        grounding = gr.HTML(elem_id="agent-grounding")
                        candidates = gr.Dataframe(headers=CANDIDATE_COLUMNS, label="n-best candidates",
                                                  datatype="str", interactive=False, wrap=True,
                                                  elem_id="agent-candidates")
                        heatmap = gr.HTML(label="Attention", elem_id="agent-heatmap")
                        corrected = gr.Textbox(label="Corrected reply", lines=2, elem_id="agent-corrected")
                        with gr.Row():
                            approve_btn = gr.Button("Approve", elem_id="agent-approve")
                            edit_btn = gr.Button("Save edit", elem_id="agent-edit")
                            reject_btn = gr.Button("Reject", variant="stop", elem_id="agent-reject")
                        with gr.Accordion("Replay with another model or settings", open=False):
                            version = gr.Dropdown(label="Model version", choices=[("active model", 0)], value=0,
                                                  elem_id="agent-replay-version")
                            beams = gr.Slider(1, 10, value=service.settings.num_beams, step=1, label="num_beams")
                            penalty = gr.Slider(1.0, 2.0, value=service.settings.repetition_penalty, step=0.05,
                                                label="repetition_penalty")
                            length_penalty = gr.Slider(0.0, 2.0, value=service.settings.length_penalty,
                                                       step=0.1, label="length_penalty")
                            replay_btn = gr.Button("Replay", elem_id="agent-replay")
                            with gr.Row():
                                sent_text = gr.Textbox(label="Sent", interactive=False, elem_id="agent-sent")
                                replay_text = gr.Textbox(label="Replayed", interactive=False,
                                                         elem_id="agent-replayed")
                            replay_candidates = gr.Dataframe(headers=["rank", "candidate", "score"],
                                                             interactive=False)
            with gr.Tab("Review queue", id="review"):
                gr.Markdown("**Keys:** " + " · ".join(f"`{k}` {what}" for k, what in SHORTCUTS),
                            elem_id="review-keys")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=420):
                        review_table = gr.Dataframe(headers=REVIEW_COLUMNS, label="To review (oldest first)",
                                                    interactive=False, wrap=True, datatype="str",
                                                    elem_id="review-queue", max_height=560,
                                                    column_widths=["10%", "10%", "14%", "8%", "29%", "29%"])
                    with gr.Column(scale=7, min_width=520):
                        review_head = gr.HTML("<p>Nothing to review yet.</p>", elem_id="review-current")
                        review_candidates = gr.Radio(choices=[], label="n-best (click or press 1-9 to edit from it)",
                                                     elem_id="review-candidates", interactive=True)
                        review_editor = gr.Textbox(label="Reply the customer will see (edit here)", lines=3,
                                                   elem_id="review-editor")
                        with gr.Row():
                            review_approve = gr.Button("Approve (A)", variant="primary", elem_id="review-approve")
                            review_edit = gr.Button("Save edit (Ctrl+Enter)", elem_id="review-edit")
                            review_reject = gr.Button("Reject (R)", variant="stop", elem_id="review-reject")
                        review_info = gr.Markdown(elem_id="review-info")
        timer = gr.Timer(2.0)
        review_timer = gr.Timer(1.0)  # new drafts show up within a second: approving them is the fast path

        hidden = {"show_progress": "hidden"}
        conversation_view = [transcript, header, bot_reply, suggested, offered_state]
        review_outputs = [review_table, review_current, review_head, review_candidates, review_editor]
        demo.load(None, None, None, js=KEYS_JS)
        demo.load(guarded(inbox), [view, search], [view, queue])
        demo.load(guarded(versions), None, version)
        demo.load(guarded(staff_choices), None, assignee)
        demo.load(guarded(saved_matches), [reply_box, conversation], [saved, found_state])
        demo.load(guarded(review_refresh), review_current, review_outputs)
        timer.tick(guarded(inbox), [view, search], [view, queue], **hidden)
        timer.tick(guarded(open_conversation), [conversation, bot_reply], conversation_view, **hidden)
        review_timer.tick(guarded(review_refresh), review_current, review_outputs, **hidden)
        view.input(guarded(inbox), [view, search], [view, queue])
        search.input(guarded(inbox), [view, search], [view, queue], **hidden)
        queue.select(pick_row, queue, conversation)
        conversation.change(guarded(open_conversation), [conversation, bot_reply], conversation_view).then(
            guarded(saved_matches), [reply_box, conversation], [saved, found_state])
        bot_reply.change(guarded(show_reply), [conversation, bot_reply], [candidates, grounding, heatmap, corrected],
                         api_name="show_reply").then(
            lambda text: text, corrected, sent_text)
        for button, action in ((take_btn, "take_over"), (back_btn, "hand_back"), (close_btn, "close")):
            button.click(guarded(act(action)), conversation, info).then(
                guarded(open_conversation), [conversation, bot_reply], conversation_view).then(
                guarded(inbox), [view, search], [view, queue])
        assign_btn.click(guarded(assign), [conversation, assignee], info).then(
            guarded(open_conversation), [conversation, bot_reply], conversation_view).then(
            guarded(inbox), [view, search], [view, queue])
        for button, action in ((approve_btn, "approve"), (edit_btn, "edit"), (reject_btn, "reject")):
            button.click(guarded(review(action)), [bot_reply, corrected], info).then(
                guarded(open_conversation), [conversation, bot_reply], conversation_view)
        suggested.select(insert_suggestion, offered_state, [reply_box, used_state])
        saved.select(insert_saved, found_state, [reply_box, used_state])
        reply_box.input(guarded(saved_matches), [reply_box, conversation], [saved, found_state], **hidden)
        for trigger in (reply_box.submit, reply_btn.click):
            trigger(guarded(send), [conversation, reply_box, used_state, offered_state, found_state],
                    [info, reply_box, used_state]).then(
                guarded(open_conversation), [conversation, bot_reply], conversation_view).then(
                guarded(saved_matches), [reply_box, conversation], [saved, found_state])
        replay_btn.click(guarded(replay), [bot_reply, version, beams, penalty, length_penalty],
                         [replay_text, replay_candidates, info])
        for button, action in ((review_approve, "approve"), (review_edit, "edit"), (review_reject, "reject")):
            button.click(guarded(review_act(action)), [review_current, review_editor], [review_info, *review_outputs])
        review_candidates.select(guarded(review_candidate), review_current, review_editor)
    return demo
