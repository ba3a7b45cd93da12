"""``/``: the customer chat. The conversation id and token live in the browser (``gr.BrowserState``), so
a page reload resumes the same conversation; every call is checked against the token on the server."""

from __future__ import annotations

import html
from typing import Any

import gradio as gr

from chatbot.errors import StoreError
from chatbot.service.auth import AuthError
from chatbot.service.batching import Busy, NoModel
from chatbot.service.chat import ChatService
from chatbot.service.views import MessageView
from chatbot.settings import Settings
from web.errors import public_reason
from web.escape import html_text

LANGUAGES = [("English", "en"), ("Français", "fr"), ("Deutsch", "de"), ("Español", "es"), ("中文", "zh")]
# The page in the conversation's language. The menu picks it for a new conversation; once the customer's first
# message has decided the conversation's language (menu at English, Chinese typed), the menu follows it and
# everything on the page with it: status line, welcome, buttons. Languages without an entry read English.
PAGE_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "bot": "You are chatting with our assistant.",
        "pending": "A person from our team will join shortly.",
        "human": "You are chatting with a person from our team.",
        "closed": "This conversation has ended. Start a new one any time.",
        "heading": "{name} support",
        "welcome": "Our assistant can help with {topics}. Write in English or Chinese (中文). For anything else, "
                   "press <b>Talk to a person</b> and someone from our team will join.",
        "conversation": "Conversation", "placeholder": "Type your message and press Enter",
        "send": "Send", "talk": "Talk to a person", "csat": "How did we do? (1-5)", "end": "End chat",
        "examples": "Try asking",
        "start": "Say hello to start a conversation.",
        "first": "Send a message first, then we can bring in a person.",
        "nothing": "Nothing to end yet.", "thanks": "Thank you! This conversation has ended.",
    },
    "zh": {
        "bot": "您正在与我们的智能助手对话。",
        "pending": "我们的工作人员马上就来为您服务。",
        "human": "您正在与我们的工作人员对话。",
        "closed": "本次对话已结束，欢迎随时开始新的对话。",
        "heading": "{name} 客服",
        "welcome": "我们的智能助手可以帮您处理：{topics}。您可以用中文或英文（English）提问。其他问题请点击"
                   "<b>转人工</b>，我们的工作人员会加入对话。",
        "conversation": "对话", "placeholder": "请输入您的问题，按回车发送",
        "send": "发送", "talk": "转人工", "csat": "您对本次服务满意吗？（1-5）", "end": "结束对话",
        "examples": "试试这样问",
        "start": "打个招呼，开始对话吧。",
        "first": "请先发送一条消息，我们再为您转接工作人员。",
        "nothing": "还没有可以结束的对话。", "thanks": "谢谢！本次对话已结束。",
    },
}


def page_text(key: str, language: str) -> str:
    return PAGE_TEXT.get(language, PAGE_TEXT["en"])[key]


_EMPTY = {"id": None, "token": None}


def as_text(text: str) -> str:
    """Gradio's Chatbot inserts message strings as (sanitised) HTML even with markdown off; escaping
    makes it show exactly what was typed, tags included, and nothing in it can become an element."""
    return html.escape(text, quote=False)


def welcome_html(company_name: str, help_topics: str, language: str = "en") -> str:
    """The page's heading and what the bot can help with, from settings, escaped: nothing an operator types
    there can become markup."""
    name, topics = html.escape(company_name), html.escape(help_topics)
    heading = page_text("heading", language).format(name=name)
    return f"<h2>{heading}</h2><p>{page_text('welcome', language).format(topics=topics)}</p>"


def help_topics(settings: Settings, language: str) -> str:
    return settings.help_topics_zh if language == "zh" else settings.help_topics


def to_chat(messages: list[MessageView]) -> tuple[list[dict[str, str]], list[int]]:
    """Gradio chat rows, escaped so they render as plain text, and their message ids."""
    rows, ids = [], []
    for m in messages:
        if m.role == "customer":
            rows.append({"role": "user", "content": as_text(m.text)})
        elif m.role == "system":
            rows.append({"role": "assistant", "content": as_text(f"ℹ {m.text}")})
        else:
            rows.append({"role": "assistant", "content": as_text(m.text)})
        ids.append(m.id)
    return rows, ids


class CustomerPage:
    """The chat page's handlers; each call checks the browser's saved conversation and token first."""

    def __init__(self, service: ChatService) -> None:
        self.service = service

    def current(self, saved: dict[str, Any] | None) -> tuple[int, str] | None:
        if not saved or not saved.get("id") or not saved.get("token"):
            return None
        try:
            self.service.authorize_customer(int(saved["id"]), str(saved["token"]))
        except (AuthError, ValueError):
            return None
        return int(saved["id"]), str(saved["token"])

    def render(self, conversation_id: int) -> tuple[list[dict[str, str]], list[int], str]:
        rows, ids, status, _ = self.view(conversation_id)
        return rows, ids, status

    def view(self, conversation_id: int) -> tuple[list[dict[str, str]], list[int], str, str]:
        """The chat rows, their ids, the status line and the conversation's language."""
        status, language, messages = self.service.customer_view(conversation_id)
        rows, ids = to_chat(messages)
        return rows, ids, page_text(status, language), language

    def resume(self, saved: dict[str, Any] | None, language: str):
        found = self.current(saved)
        if found is None:
            return [], [], page_text("start", language), _EMPTY, gr.skip()
        rows, ids, status, spoken = self.view(found[0])
        return rows, ids, status, saved, spoken

    def send(self, text: str, saved: dict[str, Any] | None, language: str):
        text = (text or "").strip()
        if not text:
            return gr.skip(), gr.skip(), gr.skip(), saved, "", gr.skip()
        found = self.current(saved)
        if found is None:
            conversation_id, token = self.service.start_conversation(language)
            saved = {"id": conversation_id, "token": token}
        else:
            conversation_id = found[0]
        kept = ""
        try:
            self.service.send(conversation_id, text)
        except (Busy, NoModel) as exc:
            gr.Warning(html_text(exc))
        except StoreError as exc:
            gr.Warning(html_text(public_reason(exc)))
            kept = text  # keep what they typed
        rows, ids, status, spoken = self.view(conversation_id)
        return rows, ids, status, saved, kept, spoken  # the menu follows the conversation's language

    def relabel(self, language: str, saved: dict[str, Any] | None):
        """The page's own words in the menu's language; the status line too while no conversation has one."""
        settings = self.service.settings
        texts = (welcome_html(settings.company_name, help_topics(settings, language), language),
                 gr.Chatbot(label=page_text("conversation", language)),
                 gr.Textbox(placeholder=page_text("placeholder", language)),
                 gr.Button(page_text("send", language)), gr.Button(page_text("talk", language)),
                 gr.Radio(label=page_text("csat", language)), gr.Button(page_text("end", language)),
                 gr.skip() if self.current(saved) else page_text("start", language))
        return texts + ((gr.Dataset(label=page_text("examples", language)),) if settings.example_questions else ())

    def refresh(self, saved: dict[str, Any] | None):
        found = self.current(saved)
        if found is None:
            return gr.skip(), gr.skip(), gr.skip()
        return self.render(found[0])

    def ask_human(self, saved: dict[str, Any] | None, language: str):
        found = self.current(saved)
        if found is None:
            return gr.skip(), gr.skip(), page_text("first", language)
        self.service.request_human(found[0])
        return self.render(found[0])

    def like(self, saved: dict[str, Any] | None, ids: list[int], data: gr.LikeData):
        found = self.current(saved)
        index = data.index[0] if isinstance(data.index, (list, tuple)) else data.index
        if found is None or not 0 <= index < len(ids) or data.liked not in (True, False):
            return gr.skip(), gr.skip(), gr.skip()
        try:
            self.service.rate_reply(found[0], ids[index], bool(data.liked))
        except StoreError:
            pass  # e.g. a like on a notice: nothing to record
        return self.render(found[0])

    def finish(self, saved: dict[str, Any] | None, score: int | None, language: str):
        found = self.current(saved)
        if found is None:
            return [], [], page_text("nothing", language), _EMPTY
        try:
            self.service.finish(found[0], int(score) if score else None)
        except StoreError as exc:
            gr.Warning(html_text(public_reason(exc)))
        rows, ids, _, spoken = self.view(found[0])
        return rows, ids, page_text("thanks", spoken), _EMPTY


def build_customer(service: ChatService) -> gr.Blocks:
    page = CustomerPage(service)
    settings = service.settings
    with gr.Blocks(title=f"{settings.company_name} support") as demo:
        saved = gr.BrowserState(_EMPTY, storage_key="chatbot-conversation")
        ids = gr.State([])
        welcome = gr.HTML(welcome_html(settings.company_name, settings.help_topics), elem_id="welcome")
        with gr.Row():
            language = gr.Dropdown(LANGUAGES, value="en", label="Language / 语言", scale=1, elem_id="language")
            status = gr.Markdown(elem_id="chat-status")
        chat = gr.Chatbot(label="Conversation", elem_id="customer-chat", render_markdown=False,
                          sanitize_html=True, height=420, feedback_options=("Like", "Dislike"))
        with gr.Row():
            box = gr.Textbox(placeholder="Type your message and press Enter", show_label=False, scale=6,
                             elem_id="customer-input", max_length=service.settings.max_message_chars)
            send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="customer-send")
        examples = gr.Examples([[q] for q in settings.example_questions], inputs=[box], label="Try asking",
                               elem_id="example-questions") if settings.example_questions else None
        with gr.Row():
            human_btn = gr.Button("Talk to a person", elem_id="talk-to-person")
            csat = gr.Radio([1, 2, 3, 4, 5], label="How did we do? (1-5)", elem_id="csat")
            end_btn = gr.Button("End chat", elem_id="end-chat")
        timer = gr.Timer(3.0)

        outputs = [chat, ids, status]
        demo.load(page.resume, [saved, language], [chat, ids, status, saved, language])
        for trigger in (box.submit, send_btn.click):
            trigger(page.send, [box, saved, language], [chat, ids, status, saved, box, language],
                    concurrency_id="send")
        labelled = [welcome, chat, box, send_btn, human_btn, csat, end_btn, status]
        language.change(page.relabel, [language, saved], labelled + ([examples.dataset] if examples else []),
                        show_progress="hidden")
        timer.tick(page.refresh, saved, outputs, show_progress="hidden", concurrency_id="refresh")
        human_btn.click(page.ask_human, [saved, language], outputs)
        chat.like(page.like, [saved, ids], outputs)
        end_btn.click(page.finish, [saved, csat, language], [chat, ids, status, saved])
    return demo
