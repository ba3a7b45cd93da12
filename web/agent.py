"""``/agent``: the console. Queue (pending first, refreshed live), transcript, n-best candidates with
scores, attention heatmap, review (approve / edit / reject), take over / hand back / close, a reply box,
and replay of any bot reply with another model or decoding settings. Every handler re-checks the signed
session, so nothing here trusts the browser."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from chatbot.service.admin import AdminService
from chatbot.service.chat import ChatService, ReplayService
from chatbot.service.views import MessageView
from web.customer import as_text
from web.errors import guarded
from web.heatmap import heatmap_html
from web.session import principal_from_request

QUEUE_COLUMNS = ["id", "status", "language", "last activity (UTC)", "agent"]
CANDIDATE_COLUMNS = ["rank", "candidate", "score", "not in the conversation or company facts"]
_LABEL = {"bot": "Bot", "agent": "Agent", "system": "Notice"}
UNGROUNDED_LABEL = "Not in the conversation or company facts: "


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
    rows = []
    for m in messages:
        if m.role == "customer":
            rows.append({"role": "user", "content": as_text(m.text)})
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


def build_agent(service: ChatService) -> gr.Blocks:
    replays = ReplayService(service)
    admin_views = AdminService(service)

    def who(request: gr.Request):
        return principal_from_request(service, request)

    def queue_table(request: gr.Request) -> list[list[Any]]:
        rows = service.queue(who(request))
        return [[c.id, c.status, c.language, c.updated_at.strftime("%Y-%m-%d %H:%M:%S"), c.assigned_agent_id or ""]
                for c in rows]

    def open_conversation(conversation_id: float | None, selected: int | None, request: gr.Request):
        if not conversation_id:
            return [], "Pick a conversation from the queue.", gr.update(choices=[], value=None)
        conversation, messages = service.transcript(who(request), int(conversation_id))
        bots = [(f"#{m.id}: {m.text[:60]}", m.id) for m in messages if m.role == "bot"]
        head = f"**Conversation {conversation.id}** — status **{conversation.status}**, language {conversation.language}"
        ids = [m_id for _, m_id in bots]
        if selected in ids:
            # Leave the value alone: a refresh that started before the agent picked another reply would
            # otherwise set the old one back and clobber the editor and the replay panel.
            return transcript_rows(messages), head, gr.update(choices=bots)
        return transcript_rows(messages), head, gr.update(choices=bots, value=ids[-1] if ids else None)

    def pick_from_queue(evt: gr.SelectData, table: Any) -> Any:
        row = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        try:
            return int(table.iloc[row, 0]) if hasattr(table, "iloc") else int(table[row][0])
        except (IndexError, ValueError, TypeError):
            return gr.skip()

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
                return "Pick a conversation first."
            principal = who(request)
            getattr(service, action)(principal, int(conversation_id))
            return f"Done: {action.replace('_', ' ')} on conversation {int(conversation_id)}."
        return run

    def review(action: str):
        def run(message_id: int | None, corrected: str, request: gr.Request) -> str:
            if not message_id:
                return "Select a bot reply first."
            result = service.review(who(request), int(message_id), action, corrected if action == "edit" else None)
            return f"Reply #{result.id} is now {result.review_state}."
        return run

    def reply(conversation_id: float | None, text: str, request: gr.Request):
        if not conversation_id:
            return "Pick a conversation first.", text
        service.agent_reply(who(request), int(conversation_id), text)
        return "Sent.", ""

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

    with gr.Blocks(title="Agent console") as demo:
        gr.Markdown("## Agent console  ·  [admin](/admin)  ·  [sign out](/logout)")
        with gr.Row():
            with gr.Column(scale=2):
                queue = gr.Dataframe(headers=QUEUE_COLUMNS, label="Queue (pending first)", interactive=False,
                                     elem_id="agent-queue")
                conversation = gr.Number(label="Conversation id", precision=0, elem_id="agent-conversation")
                open_btn = gr.Button("Open", elem_id="agent-open")
                with gr.Row():
                    take_btn = gr.Button("Take over", variant="primary", elem_id="agent-take-over")
                    back_btn = gr.Button("Hand back to bot", elem_id="agent-hand-back")
                    close_btn = gr.Button("Close", variant="stop", elem_id="agent-close")
                info = gr.Markdown(elem_id="agent-info")
            with gr.Column(scale=3):
                header = gr.Markdown()
                transcript = gr.Chatbot(label="Transcript", render_markdown=False, sanitize_html=True,
                                        height=380, elem_id="agent-transcript", feedback_options=None)
                with gr.Row():
                    reply_box = gr.Textbox(placeholder="Reply to the customer (after taking over)", show_label=False,
                                           scale=5, elem_id="agent-reply")
                    reply_btn = gr.Button("Send", scale=1, elem_id="agent-send")
            with gr.Column(scale=3):
                bot_reply = gr.Dropdown(label="Bot reply", choices=[], elem_id="agent-bot-reply")
                grounding = gr.HTML(elem_id="agent-grounding")
                candidates = gr.Dataframe(headers=CANDIDATE_COLUMNS, label="n-best candidates", datatype="str",
                                          interactive=False, wrap=True, elem_id="agent-candidates")
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
                    length_penalty = gr.Slider(0.0, 2.0, value=service.settings.length_penalty, step=0.1,
                                               label="length_penalty")
                    replay_btn = gr.Button("Replay", elem_id="agent-replay")
                    with gr.Row():
                        sent_text = gr.Textbox(label="Sent", interactive=False, elem_id="agent-sent")
                        replay_text = gr.Textbox(label="Replayed", interactive=False, elem_id="agent-replayed")
                    replay_candidates = gr.Dataframe(headers=["rank", "candidate", "score"], interactive=False)
        timer = gr.Timer(2.0)

        refresh_view = [transcript, header, bot_reply]
        demo.load(guarded(queue_table), None, queue)
        demo.load(guarded(versions), None, version)
        timer.tick(guarded(queue_table), None, queue, show_progress="hidden")
        timer.tick(guarded(open_conversation), [conversation, bot_reply], refresh_view, show_progress="hidden")
        queue.select(pick_from_queue, queue, conversation)
        open_btn.click(guarded(open_conversation), [conversation, bot_reply], refresh_view)
        conversation.change(guarded(open_conversation), [conversation, bot_reply], refresh_view)
        bot_reply.change(guarded(show_reply), [conversation, bot_reply], [candidates, grounding, heatmap, corrected],
                         api_name="show_reply").then(
            lambda text: text, corrected, sent_text)
        for button, action in ((take_btn, "take_over"), (back_btn, "hand_back"), (close_btn, "close")):
            button.click(guarded(act(action)), conversation, info).then(
                guarded(open_conversation), [conversation, bot_reply], refresh_view)
        for button, action in ((approve_btn, "approve"), (edit_btn, "edit"), (reject_btn, "reject")):
            button.click(guarded(review(action)), [bot_reply, corrected], info).then(
                guarded(open_conversation), [conversation, bot_reply], refresh_view)
        for trigger in (reply_box.submit, reply_btn.click):
            trigger(guarded(reply), [conversation, reply_box], [info, reply_box]).then(
                guarded(open_conversation), [conversation, bot_reply], refresh_view)
        replay_btn.click(guarded(replay), [bot_reply, version, beams, penalty, length_penalty],
                         [replay_text, replay_candidates, info])
    return demo
