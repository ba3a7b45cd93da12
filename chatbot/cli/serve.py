"""`chatbot serve` (web app + API) and `chatbot users add` (agents and admins)."""

from __future__ import annotations

from typing import Any

import typer

from chatbot.cli import CliError, app, echo_json, get_settings
from chatbot.settings import Settings

users_app = typer.Typer(help="Manage agent and admin accounts.", no_args_is_help=True)
app.add_typer(users_app, name="users")


@app.command("serve")
def serve(
    ctx: typer.Context,
    host: str | None = typer.Option(None, help="Interface to bind (default: settings.host)."),
    port: int | None = typer.Option(None, help="Port (default: settings.port)."),
) -> None:
    """Serve the customer chat (/), agent console (/agent), admin (/admin) and REST API (/api/v1).

    One process, one generation worker; for more capacity run several replicas on one PostgreSQL.
    """
    import uvicorn

    settings = get_settings(ctx)
    application = build_app(settings)
    uvicorn.run(application, host=host or settings.host, port=port or settings.port, log_level="info",
                access_log=settings.access_log)


def build_app(settings: Settings) -> Any:
    """The web app (create_app keeps Gradio offline), or one clear line: bad model, unreachable database."""
    from web.app import create_app

    try:
        return create_app(settings)
    except Exception as exc:
        raise CliError(f"cannot start: {exc}") from exc


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option(..., "--role", help="agent or admin."),
    display_name: str | None = typer.Option(None, "--display-name"),
    password: str | None = typer.Option(None, "--password", help="Read from a prompt when omitted (safer: "
                                           "stays out of the shell history)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Create an agent or admin account with a scrypt password hash."""
    from chatbot.service.chat import ChatService
    from chatbot.store.db import StoreError
    from chatbot.store.manager import ConversationStore

    if role not in ("agent", "admin"):
        raise CliError("--role must be agent or admin")
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings = get_settings(ctx)
    store = ConversationStore(settings)
    try:
        user_id = ChatService(store, settings, worker=None).add_user(username, password, role, display_name)
    except (StoreError, ValueError) as exc:
        raise CliError(str(exc)) from exc
    finally:
        store.close()
    if as_json:
        echo_json({"id": user_id, "username": username, "role": role})
    else:
        typer.echo(f"created {role} {username!r} (id {user_id})")
