"""`flawscope demo`: the main job on synthetic radiographs, end to end."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the `demo` command to the app."""
    app.command("demo")(demo_command)


def demo_command(
    out: Annotated[str, typer.Option("--out", "-o", help="Output folder.")] = "demo-out",
    n_images: Annotated[int, typer.Option(help="Synthetic radiographs to generate.")] = 400,
    image_size: Annotated[int, typer.Option(help="Side of the square radiographs.")] = 256,
    patch_size: Annotated[int, typer.Option(help="Native-resolution patch side the models see.")] = 64,
    difficulty: Annotated[float, typer.Option(help="Flaw contrast: 0 clear .. 1 near the noise.")] = 0.2,
    ok_per_image: Annotated[int, typer.Option(help="Defect-free patches per radiograph.")] = 2,
    models: Annotated[str, typer.Option(help="Comma-separated models to compare.")] = "sa_bcnn,resnet18",
    backbone: Annotated[str, typer.Option(help="Backbone of the bilinear models.")] = "resnet18",
    epochs: Annotated[int, typer.Option(help="Training epochs per model.")] = 12,
    batch_size: Annotated[int, typer.Option(help="Samples per step.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed for data, split and training.")] = 0,
    threads: Annotated[int, typer.Option(
        help="torch CPU threads; the numbers depend on it, so it is fixed rather than the core count.")] = 2,
) -> None:
    """Generate synthetic radiographs, train SA-BCNN and a baseline on CPU, evaluate, and write reports.

    Rerunning with the same --out reuses the generated data and replaces the run folders it wrote before.
    The same options give the same numbers on a CPU of the same kind (environment.json records threads, CPU
    and versions); another --threads or CPU generation moves them by a few patches.
    """
    from rich.console import Console

    from flawscope.demo import DemoConfig, run_demo

    cfg = DemoConfig(
        out=out, n_images=n_images, image_size=image_size, patch_size=patch_size, difficulty=difficulty,
        ok_per_image=ok_per_image, models=tuple(m.strip() for m in models.split(",") if m.strip()),
        backbone=backbone, epochs=epochs,
        batch_size=batch_size, seed=seed, threads=threads,
    )
    result = run_demo(cfg)
    console = Console()
    console.print(f"\n[bold]Test-set results[/] on {result['patches']} (threshold chosen on validation)")
    console.print(_results_table(result["rows"]))
    for name, run in result["runs"].items():
        console.print(f"{name}: report {run['report']}", highlight=False)
    console.print(f"full comparison table: {out}/comparison.md", highlight=False)
    env = result["environment"]
    console.print(f"made with seed {seed}, {env['torch_threads']} torch threads, {env['cpu_capability']} "
                  f"kernels on {env['cpu']} ({out}/environment.json)", highlight=False)


def _results_table(rows: list[dict]) -> object:
    """The inspector's view of each model, narrow enough for an 80-column terminal."""
    from rich.table import Table

    table = Table("model", "params", "TP", "TN", "FP", "FN", "recall", "miss", "false alarm", "AUROC")
    for r in rows:
        table.add_row(
            r["model"], f"{r['params'] / 1e6:.2f}M", *(str(r[k]) for k in ("TP", "TN", "FP", "FN")),
            *(f"{r[k]:.3f}" for k in ("recall", "miss_rate", "false_alarm_rate", "roc_auc")),
        )
    return table
