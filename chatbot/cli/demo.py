"""`chatbot demo` (first run: database, shipped model, demo logins, example chats, web app) and
`chatbot reply` / `chatbot chat` (try the model in a terminal, no browser)."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any, Optional

import typer

from chatbot.cli import CliError, app, echo_json, get_settings
from chatbot.settings import Settings

MODEL_HELP = "Checkpoint directory; default: the registry's active model, else the shipped demo model."
LANGUAGE_HELP = "Reply language (en, zh, ...); default: the language of the customer's message."


# --- which model ------------------------------------------------------------------------------------

def _database_exists(settings: Settings) -> bool:
    """False for an SQLite file that is not there yet: asking it for a model would create it."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.effective_database_url)
    if url.get_backend_name() != "sqlite":
        return True
    return bool(url.database) and url.database != ":memory:" and Path(url.database).exists()


def resolve_model(settings: Settings, model: Path | None) -> tuple[Path, str]:
    """(checkpoint directory, where it came from): --model, the active model, or the shipped one."""
    if model is not None:
        return model, "--model"
    if _database_exists(settings):
        from chatbot.service.models import active_model
        from chatbot.store.manager import ConversationStore

        with ConversationStore(settings) as store:
            ref = active_model(store, settings)
        if ref is not None:
            return Path(ref.path), f"active model {ref}"
    from chatbot.shipped import shipped_model_dir

    return shipped_model_dir(), "shipped demo model"


def _load_generator(ctx: typer.Context, model: Path | None, language: str | None, **decoding: Any) -> Any:
    """A ReplyGenerator with the serving settings plus the command line's decoding overrides; the options
    are checked before the model loads."""
    from chatbot.model.checkpoint import CheckpointError
    from chatbot.service.models import ModelRef, load_generator
    from chatbot.store.db import StoreError
    from chatbot.text.tokenize import SUPPORTED_LANGUAGES

    settings = get_settings(ctx)
    if language is not None and language not in SUPPORTED_LANGUAGES:
        raise CliError(f"unsupported --language {language!r}; choose one of {', '.join(SUPPORTED_LANGUAGES)}")
    overrides = {k: v for k, v in decoding.items() if v is not None}
    try:
        directory, origin = resolve_model(settings, model)
        generator = load_generator(ModelRef(None, str(directory)), settings, **overrides)
    except (CheckpointError, StoreError, FileNotFoundError, ValueError) as exc:  # ValueError: bad decoding value
        raise CliError(str(exc)) from None
    typer.echo(f"model: {directory} ({origin})", err=True)
    return generator


def reply_json(reply: Any) -> dict[str, Any]:
    return {"reply": reply.text, "confidence": round(reply.confidence, 4), "language": reply.language,
            "token_logprob": round(reply.token_logprob, 4),
            "candidates": [{"text": c.text, "score": round(c.score, 4)} for c in reply.candidates]}


def _generate(generator: Any, turns: list[tuple[str, str]], language: str | None) -> Any:
    try:
        return generator.generate([turns], language=language, return_attention=False)[0]
    except ValueError as exc:  # unsupported language, text the context encoder refuses
        raise CliError(str(exc)) from None


def _company_facts(settings: Settings) -> tuple[str, ...]:
    """The facts an admin keeps in the store (none when there is no database yet: reading would create it)."""
    if not settings.grounding or not _database_exists(settings):
        return ()
    from chatbot.store import facts as fact_repo
    from chatbot.store.db import StoreError
    from chatbot.store.manager import ConversationStore

    try:
        with ConversationStore(settings) as store, store.transaction(read_only=True) as s:
            return tuple(fact_repo.fact_texts(s))
    except StoreError as exc:
        raise CliError(str(exc)) from None


def _ground(settings: Settings, facts: tuple[str, ...], sources: list[str], reply: Any) -> Any:
    """The service's grounding check on the terminal's conversation (``sources``: what the customer said and
    the replies that passed): the same choice among the n-best, so a terminal user sees what a customer would
    be sent, not a detail nobody gave (``None`` when it is off)."""
    if not settings.grounding:
        return None
    from chatbot.service.grounding import Grounder, GroundingSources

    sources = GroundingSources(tuple(sources), facts)
    return Grounder(settings.grounding_margin).check([(c.text, c.score) for c in reply.candidates], sources,
                                                     reply.language)


def _sent_text(reply: Any, verdict: Any) -> str:
    return reply.candidates[verdict.picked].text if verdict is not None and verdict.picked else reply.text


def _say_grounding(verdict: Any) -> None:
    if verdict is None or verdict.picked == 0:
        return
    if verdict.picked is not None:
        typer.echo(f"(candidate {verdict.picked + 1} chosen: the best states details nobody gave: "
                   f"{', '.join(verdict.ungrounded[0])})", err=True)
    else:
        typer.echo(f"(not sent on its own by the service: {verdict.reason()}; an agent would answer)", err=True)


def _handoff(settings: Settings, text: str, reply: Any) -> tuple[str | None, str | None]:
    """Why the service would give this turn to a person instead (asked for one, low confidence), or None,
    and for low confidence which threshold the reply is under."""
    from chatbot.service.handoff import HandoffReason, HandoffRules, decide, low_confidence

    rules = HandoffRules.of(settings)
    candidates = [(c.text, c.score) for c in reply.candidates]
    reason = decide(text, candidates, 0, rules, reply.token_logprob)
    if reason is None:
        return None, None
    why = low_confidence(candidates, rules, reply.token_logprob) if reason is HandoffReason.LOW_CONFIDENCE else None
    return reason.value, why or reason.value.replace("_", " ")


def _say_handoff(reason: str | None, why: str | None) -> None:
    if reason is not None:
        typer.echo(f"(not sent by the service: {why}; a person would answer)", err=True)


# --- chatbot reply / chat ---------------------------------------------------------------------------

@app.command("reply")
def reply_cmd(
    ctx: typer.Context,
    text: str = typer.Argument(..., help="The customer's message."),
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    language: Optional[str] = typer.Option(None, "--language", help=LANGUAGE_HELP),
    num_beams: Optional[int] = typer.Option(None, "--num-beams", min=1, help="Beam width (default: settings)."),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty", min=0.01,
                                                       help="Penalty > 1 discourages repeated tokens."),
    num_return_sequences: Optional[int] = typer.Option(None, "--num-return-sequences", min=1,
                                                       help="Candidates to return (at most --num-beams)."),
    as_json: bool = typer.Option(False, "--json", help="Print reply, confidence, language and candidates as JSON."),
) -> None:
    """Answer one customer message with the model and exit (grounded as the service would: a reply stating a
    detail that neither the message nor a company fact gives is flagged, or a grounded candidate chosen)."""
    if not text.strip():
        raise CliError("the message is empty")
    generator = _load_generator(ctx, model, language, num_beams=num_beams, repetition_penalty=repetition_penalty,
                                num_return_sequences=num_return_sequences)
    settings = get_settings(ctx)
    turns = [("customer", text)]
    reply = _generate(generator, turns, language)
    verdict = _ground(settings, _company_facts(settings), [text], reply)
    handoff, why = _handoff(settings, text, reply)
    if as_json:
        out = reply_json(reply) | {"handoff": handoff}
        if verdict is not None:
            out |= {"reply": _sent_text(reply, verdict), "grounding": verdict.as_meta()}
        echo_json(out)
        return
    typer.echo(_sent_text(reply, verdict))
    typer.echo(f"(language {reply.language}, confidence {reply.confidence:.2f})", err=True)
    _say_handoff(handoff, why)
    _say_grounding(verdict)
    for candidate in reply.candidates[1:]:
        typer.echo(f"  alt {candidate.score:7.3f}  {candidate.text}", err=True)


@app.command("chat")
def chat_cmd(
    ctx: typer.Context,
    model: Optional[Path] = typer.Option(None, "--model", help=MODEL_HELP),
    language: Optional[str] = typer.Option(None, "--language", help=LANGUAGE_HELP),
    num_beams: Optional[int] = typer.Option(None, "--num-beams", min=1, help="Beam width (default: settings)."),
    repetition_penalty: Optional[float] = typer.Option(None, "--repetition-penalty", min=0.01,
                                                       help="Penalty > 1 discourages repeated tokens."),
) -> None:
    """Chat with the model in the terminal (the conversation so far is the context). /reset starts over,
    /quit or Ctrl-D ends. Nothing is stored; replies are grounded as in `chatbot reply`."""
    generator = _load_generator(ctx, model, language, num_beams=num_beams, repetition_penalty=repetition_penalty)
    settings = get_settings(ctx)
    facts = _company_facts(settings)
    typer.echo("Type a message (/reset starts over, /quit ends).", err=True)
    turns: list[tuple[str, str]] = []
    sources: list[str] = []
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            typer.echo("", err=True)
            return
        text = line.strip()
        if text in ("/quit", "/exit"):
            return
        if text == "/reset":
            turns, sources = [], []
            typer.echo("(new conversation)", err=True)
            continue
        if not text:
            continue
        turns.append(("customer", text))
        sources.append(text)
        reply = _generate(generator, turns, language)
        verdict = _ground(settings, facts, sources, reply)
        turns.append(("bot", _sent_text(reply, verdict)))
        if verdict is None or verdict.grounded:  # a flagged reply's details must not ground the next one
            sources.append(turns[-1][1])
        typer.echo(f"bot> {turns[-1][1]}")
        _say_handoff(*_handoff(settings, text, reply))
        _say_grounding(verdict)


# --- chatbot demo -----------------------------------------------------------------------------------

def bind_port(host: str, port: int) -> socket.socket:
    """A listening socket, or a CliError that says the port is taken (port 0 picks a free one)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # allows TIME_WAIT, never a second listener
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CliError(f"port {port} on {host} is already in use (is another `chatbot demo` or `chatbot "
                           f"serve` running?); stop it or pass --port N") from None
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


def prepare_demo(settings: Settings) -> dict[str, Any]:
    """Database at head, an active model, the demo logins and example conversations; safe to repeat."""
    from chatbot.demo_data import ensure_demo_users, load_demo_conversations
    from chatbot.service.chat import ChatService
    from chatbot.shipped import ensure_active_model
    from chatbot.store.manager import ConversationStore

    with ConversationStore(settings) as store:
        store.ensure_schema()
        with store.transaction() as s:
            version, activated = ensure_active_model(s)
            model = {"id": version.id, "name": version.name, "path": version.path, "activated_now": activated}
        service = ChatService(store, settings, worker=None)
        password = settings.demo_password.get_secret_value() or None
        users = ensure_demo_users(service, password)
        with store.transaction() as s:
            added = load_demo_conversations(s)
    return {"database": store.url, "model": model, "users": users, "conversations_added": added}


def _report(setup: dict[str, Any], settings: Settings) -> None:
    from chatbot.settings import mask_url

    model = setup["model"]
    state = "registered and activated" if model["activated_now"] else "active"
    typer.echo(f"database: {mask_url(setup['database'])}")
    typer.echo(f"model:    {model['name']} (version {model['id']}, {state})")
    typer.echo(f"examples: {setup['conversations_added']} example conversations added")
    for username, password in setup["users"].items():
        if password is not None and settings.demo_password.get_secret_value():
            typer.echo(f"login:    {username} (password from settings.demo_password)")
        elif password is not None:
            typer.echo(f"login:    {username} / {password}   (shown once; only its hash is stored)")
        else:
            typer.echo(f"login:    {username} (exists; password as printed when it was created)")


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    port: Optional[int] = typer.Option(None, "--port", min=0, max=65535,
                                       help="Port (default: settings.port; 0 picks a free one)."),
    serve: bool = typer.Option(True, "--serve/--no-serve", help="--no-serve prepares everything and exits."),
) -> None:
    """First run: create/upgrade the database, activate the shipped model if no model is active, create a
    demo agent and admin, load example conversations, and serve the web app on settings.host."""
    from chatbot.shipped import ShippedModelMissing
    from chatbot.store.db import StoreError

    settings = get_settings(ctx)
    sock = bind_port(settings.host, settings.port if port is None else port) if serve else None
    try:
        try:
            setup = prepare_demo(settings)
        except (StoreError, ShippedModelMissing) as exc:
            raise CliError(str(exc)) from None
        _report(setup, settings)
        if sock is not None:
            _serve(settings, sock)
    finally:
        if sock is not None:
            sock.close()


def _serve(settings: Settings, sock: socket.socket) -> None:
    import uvicorn

    from chatbot.cli.serve import build_app

    application = build_app(settings)
    host, port = sock.getsockname()[:2]
    base = f"http://{host}:{port}" if ":" not in host else f"http://[{host}]:{port}"
    typer.echo(f"customer chat: {base}/\nagent console: {base}/agent\nadmin:         {base}/admin\n"
               "Press Ctrl-C to stop.")
    server = uvicorn.Server(uvicorn.Config(application, log_level="warning"))
    server.run(sockets=[sock])
