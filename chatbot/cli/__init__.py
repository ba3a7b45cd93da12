"""The ``chatbot`` command line: thin commands that build the settings once and call the library.

Each area registers its commands from its own module below (``db.py``, ``data.py``, ...), importing
heavy libraries (torch, gradio) inside the command functions so ``chatbot --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from chatbot.settings import Settings, load_settings

app = typer.Typer(
    name="chatbot",
    help="Customer-service chatbot: store, import/export, train, evaluate, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect the effective settings.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, "--config", help="TOML settings file (keys as in `chatbot config show`).", envvar="CHATBOT_CONFIG"
    ),
) -> None:
    try:
        ctx.obj = load_settings(config)
    except Exception as exc:  # bad TOML, unknown key, invalid value: say so plainly
        raise CliError(f"invalid settings: {exc}") from exc


def get_settings(ctx: typer.Context) -> Settings:
    """The settings built once by the root callback."""
    root = ctx.find_root()
    assert isinstance(root.obj, Settings)
    return root.obj


class CliError(typer.Exit):
    """Print a one-line error to stderr and exit with status 1 (or ``code``)."""

    def __init__(self, message: str, code: int = 1) -> None:
        typer.echo(f"error: {message}", err=True)
        super().__init__(code)


def echo_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@config_app.command("show")
def config_show(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Print the effective settings with secrets masked."""
    values = get_settings(ctx).masked()
    if as_json:
        echo_json(values)
        return
    for key, value in values.items():
        typer.echo(f"{key} = {value!r}")


def _register_commands() -> None:
    # One import per area; each module adds its commands to `app`.
    import importlib

    for module in ("db", "train", "data", "serve", "demo"):
        importlib.import_module(f"chatbot.cli.{module}")


_register_commands()


def main() -> None:
    app()
