"""The `flawscope` command: each command group lives in its own module with a `register(app)` function."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="flawscope",
    help="Deep-learning flaw detection in industrial X-ray and surface images.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


def _show_version(value: bool) -> None:
    if value:
        from flawscope import __version__

        typer.echo(f"flawscope {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show version."
    ),
) -> None:
    """Deep-learning flaw detection in industrial X-ray and surface images."""


# Command modules, in the order they appear in --help.
_COMMAND_MODULES = (
    "data", "synth", "models", "pretrain", "train", "evaluate", "predict", "benchmark", "study", "demo",
)

for _name in _COMMAND_MODULES:
    importlib.import_module(f"flawscope.cli.{_name}").register(app)


def main() -> None:
    """Entry point that turns user-facing errors into one clear line instead of a traceback."""
    from flawscope.errors import FlawscopeError

    try:
        app()
    except FlawscopeError as err:
        from rich.console import Console

        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
