"""``ChatService``: the one object the web layer and the CLI hold, composed of one part per caller.

- customers: ``chatbot.service.customer.CustomerChat`` (start, send, rate, finish; unanswered recovery)
- agents: ``chatbot.service.desk.AgentDesk`` (queue, transcript, take over, reply, close, review)
- admins: ``chatbot.service.console.AdminConsole`` (erasure, promote / roll back, serving status)
- staff sign-in and accounts: ``chatbot.service.staff.StaffAuth``
- the bot's replies, shared by the first two: ``chatbot.service.replies.Replies``

Each call is authorised and in its own transaction inside its part; this class only wires the parts
together and exposes their calls under the names the web layer, the CLI and the tests use.
"""

from __future__ import annotations

from chatbot.service.auth import SessionSigner, session_secret
from chatbot.service.batching import GenerationWorker
from chatbot.service.console import AdminConsole
from chatbot.service.customer import CustomerChat
from chatbot.service.desk import AgentDesk
from chatbot.service.replay import ReplayService
from chatbot.service.replies import GENERATION_TIMEOUT_S, Replies
from chatbot.service.shadow import ShadowWorker
from chatbot.service.staff import StaffAuth
from chatbot.settings import Settings
from chatbot.store.manager import ConversationStore

__all__ = ["GENERATION_TIMEOUT_S", "ChatService", "ReplayService"]


class ChatService:
    def __init__(
        self,
        store: ConversationStore,
        settings: Settings,
        worker: GenerationWorker | None,
        signer: SessionSigner | None = None,
        shadow: ShadowWorker | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.worker = worker
        self.signer = signer or SessionSigner(session_secret(settings), settings.session_max_age_s)
        self.replies = Replies(settings, worker)
        self.grounding = self.replies.grounding  # the agents' suggested replies use the same check
        self.customers = CustomerChat(store, settings, self.replies, shadow)
        self.desk = AgentDesk(store, settings, self.replies)
        self.console = AdminConsole(store, settings, worker)
        self.staff = StaffAuth(store, settings, self.signer)
        # customers
        self.start_conversation = self.customers.start_conversation
        self.authorize_customer = self.customers.authorize_customer
        self.customer_messages = self.customers.customer_messages
        self.customer_view = self.customers.customer_view
        self.send = self.customers.send
        self.request_human = self.customers.request_human
        self.rate_reply = self.customers.rate_reply
        self.finish = self.customers.finish
        self.answer_unanswered = self.customers.answer_unanswered
        # agents
        self.queue = self.desk.queue
        self.transcript = self.desk.transcript
        self.n_best = self.desk.n_best
        self.take_over = self.desk.take_over
        self.hand_back = self.desk.hand_back
        self.close = self.desk.close
        self.agent_reply = self.desk.agent_reply
        self.review = self.desk.review
        # admins
        self.erase_conversation_customer = self.console.erase_conversation_customer
        self.set_model = self.console.set_model
        self.serving_status = self.console.serving_status
        # staff
        self.add_user = self.staff.add_user
        self.login = self.staff.login

    @property
    def shadow(self) -> ShadowWorker | None:
        """The shadow worker that customers' messages are offered to (settable: tests and the CLI attach
        one after construction)."""
        return self.customers.shadow

    @shadow.setter
    def shadow(self, worker: ShadowWorker | None) -> None:
        self.customers.shadow = worker
