"""`flawscope models list|info`: what models the registry can build."""

from __future__ import annotations

import typer

models_app = typer.Typer(help="List and inspect the registered models.", no_args_is_help=True)


def _params_text(name: str) -> str:
    from flawscope.models import count_parameters

    return f"{count_parameters(name) / 1e6:.2f}M"


@models_app.command("list")
def list_models_cmd(
    task: str = typer.Option(None, "--task", help="Only models of this task: classify or segment."),
) -> None:
    """Registered models: name, task, parameters (1-channel, 224 px, 2 classes) and description."""
    from rich.console import Console
    from rich.table import Table

    from flawscope.errors import ConfigError
    from flawscope.models.registry import get_model_entry, list_models

    if task is not None and task not in ("classify", "segment"):
        raise ConfigError(f"--task {task!r} is unknown; use classify or segment (or leave it out for all)")
    table = Table(title="flawscope models", caption="params: 1-channel 224 px input, 2 classes")
    for col, justify in (("name", "left"), ("task", "left"), ("params", "right"), ("description", "left")):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for name in list_models(task=task):  # type: ignore[arg-type]
        entry = get_model_entry(name)
        table.add_row(name, entry.task, _params_text(name), entry.description)
    Console().print(table)


@models_app.command("info")
def info_cmd(
    name: str = typer.Argument(..., help="Registered model name (see `flawscope models list`)."),
) -> None:
    """Details of one model: task, parameters, input contract, build options."""
    import inspect

    import torch
    from rich.console import Console
    from rich.table import Table

    from flawscope.models.registry import create_model, get_model_entry

    entry = get_model_entry(name)
    with torch.device("meta"):  # only shapes and counts are shown: build without allocating weights
        model = create_model(name)
    cfg = model.config
    table = Table(title=f"{name}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("task", entry.task)
    table.add_row("description", entry.description)
    table.add_row(
        "parameters", f"{sum(p.numel() for p in model.parameters()):,} (1-channel 224 px, 2 classes)"
    )
    table.add_row("class", type(model).__name__)
    table.add_row(
        "outputs", "mask logits (B,1,H,W) + image logit (B,1)" if cfg.task == "segment" else "logits (B,K)"
    )
    table.add_row("preprocess", str(cfg.preprocess.to_dict()))
    table.add_row("build kwargs", str(cfg.build_kwargs))
    options = [p for p in inspect.signature(entry.fn).parameters.values() if p.kind is not p.VAR_KEYWORD]
    table.add_row("options", ", ".join(f"{p.name}={p.default!r}" for p in options))
    console = Console()
    console.print(table)
    doc = inspect.getdoc(entry.fn)
    if doc:
        console.print(doc, highlight=False)


def register(app: typer.Typer) -> None:
    """Add `flawscope models` to the app."""
    app.add_typer(models_app, name="models")
