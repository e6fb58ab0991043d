"""`flawscope demo`: the main job on synthetic radiographs, end to end."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the app."""
    app.command("demo")(demo_command)


def demo_command(
    out: Annotated[
        str, typer.Option("--out", "-o", help="Folder for data, runs and the comparison.")
    ] = "demo-out",
    n_images: Annotated[int, typer.Option(help="Synthetic radiographs to generate.")] = 480,
    image_size: Annotated[
        int, typer.Option(help="Side of the square radiographs (native resolution).")
    ] = 128,
    models: Annotated[
        str, typer.Option(help="Comma-separated models to train and compare.")
    ] = "sa_bcnn,resnet18",
    backbone: Annotated[str, typer.Option(help="Backbone of the bilinear models.")] = "resnet18",
    epochs: Annotated[int, typer.Option(help="Training epochs per model.")] = 8,
    batch_size: Annotated[int, typer.Option(help="Samples per step.")] = 16,
    seed: Annotated[int, typer.Option(help="Seed for data, split and training.")] = 0,
) -> None:
    """Generate synthetic radiographs, train SA-BCNN and a baseline on CPU, evaluate, and write reports."""
    from rich.console import Console
    from rich.markdown import Markdown

    from flawscope.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=out,
        n_images=n_images,
        image_size=image_size,
        models=tuple(m.strip() for m in models.split(",") if m.strip()),
        backbone=backbone,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
    )
    result = run_demo(cfg)
    console = Console()
    console.print(
        f"\n[bold]Test-set results[/] (threshold chosen on validation), data in {result['data']}:\n"
    )
    console.print(Markdown(result["table"]))
    for name, run in result["runs"].items():
        console.print(f"{name}: report [link=file://{run['report']}]{run['report']}[/link]")
    console.print(f"comparison table: {out}/comparison.md")
