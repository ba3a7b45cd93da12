"""`chatbot serve` (web app + API) and `chatbot users add|password|role|remove` (agents and admins).

Changing a password or a role, or removing an account, ends that account's sessions on the server at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import typer

from chatbot.cli import CliError, app, echo_json, get_settings
from chatbot.settings import Settings

T = TypeVar("T")
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
    if role not in ("agent", "admin"):
        raise CliError("--role must be agent or admin")
    if password is None:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    user_id = _with_staff(ctx, lambda staff: staff.add_user(username, password, role, display_name))
    if as_json:
        echo_json({"id": user_id, "username": username, "role": role})
    else:
        typer.echo(f"created {role} {username!r} (id {user_id})")


@users_app.command("password")
def users_password(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name of an agent or admin."),
    password: str | None = typer.Option(None, "--password", help="Read from a prompt when omitted."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Set a new password; the account's open sessions end."""
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    ended = _with_staff(ctx, lambda staff: staff.set_password(username, password))
    _report(as_json, {"username": username, "sessions_ended": ended},
            f"password of {username!r} changed; {ended} session(s) ended")


@users_app.command("role")
def users_role(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name of an agent or admin."),
    role: str = typer.Argument(..., help="agent, admin, or customer (takes the staff rights away)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Promote or demote a staff account; the new role applies to its next request (sessions end)."""
    ended = _with_staff(ctx, lambda staff: staff.set_role(username, role))
    _report(as_json, {"username": username, "role": role, "sessions_ended": ended},
            f"{username!r} is now {role}; {ended} session(s) ended")


@users_app.command("remove")
def users_remove(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="Login name of an agent or admin."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Delete a staff account (its conversations and reviews stay, with the agent unset)."""
    if not yes:
        typer.confirm(f"Remove {username!r}? Their sessions end now", abort=True)
    ended = _with_staff(ctx, lambda staff: staff.remove_user(username))
    _report(as_json, {"username": username, "removed": True, "sessions_ended": ended},
            f"removed {username!r}; {ended} session(s) ended")


def _with_staff(ctx: typer.Context, call: Callable[[Any], T]) -> T:
    """Run one account call on the store of the settings; store errors become one clear CLI line."""
    from chatbot.errors import StoreError

    with _staff(ctx) as staff:
        try:
            return call(staff)
        except (StoreError, ValueError) as exc:
            raise CliError(str(exc)) from exc


@contextmanager
def _staff(ctx: typer.Context) -> Iterator[Any]:
    from chatbot.service.auth import SessionSigner, session_secret
    from chatbot.service.staff import StaffAuth
    from chatbot.store.manager import ConversationStore

    settings = get_settings(ctx)
    store = ConversationStore(settings)
    try:
        yield StaffAuth(store, settings, SessionSigner(session_secret(settings), settings.session_max_age_s))
    finally:
        store.close()


def _report(as_json: bool, payload: dict[str, Any], line: str) -> None:
    if as_json:
        echo_json(payload)
    else:
        typer.echo(line)
