"""`flawscope evaluate`: score a trained model on a dataset split (flawscope.evaluation.evaluate)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flawscope.cli.common import format_value


def register(app: typer.Typer) -> None:
    """Add `flawscope evaluate` to the app."""

    @app.command("evaluate")
    def evaluate_command(
        model: Annotated[Path, typer.Argument(help="Run folder, its model.pt, or a checkpoint .ckpt.")],
        data: Annotated[
            Path | None, typer.Option(help="Dataset folder. Default: the run's dataset (config.yaml).")
        ] = None,
        split: Annotated[
            str, typer.Option(help="test, val, all, or a split .csv file (its test part).")
        ] = "test",
        out: Annotated[Path | None, typer.Option(help="Output folder. Default: <run>/eval-<split>.")] = None,
        threshold: Annotated[
            float | None,
            typer.Option(help="Decision threshold overriding the model's own (chosen on val in training)."),
        ] = None,
        format: Annotated[str | None, typer.Option(help="Dataset format. Default: the run's.")] = None,
        batch_size: Annotated[int, typer.Option(help="Images per forward pass.")] = 16,
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
        tile: Annotated[
            int | None, typer.Option(help="Segmenters: sliding-window tile. Default: the model's input size.")
        ] = None,
        overlap: Annotated[int | None, typer.Option(
            help="Sliding-window tile overlap (patch models, segmenters). Default: tile/4.")] = None,
        tta: Annotated[bool, typer.Option(
            "--tta", help="Test-time flips: mean logits of 4 flipped views (4x the compute).")] = False,
        ok_classes: Annotated[list[str] | None, typer.Option(
            "--ok-class", help="A defect-free class of the dataset (repeatable); every other class is "
            "defective. Default: the model's own defective classes decide.")] = None,
    ) -> None:
        """Evaluate a trained model: metrics.json, report.html and predictions.csv."""
        from rich.console import Console

        from flawscope.evaluation.evaluate import evaluate

        result = evaluate(model, data=data, split=split, out=out, threshold=threshold, format=format,
                          batch_size=batch_size, device=device, tile=tile, overlap=overlap,
                          ok_classes=list(ok_classes) if ok_classes else None, tta=tta)
        console = Console()
        console.print(_table(result.metrics))
        for note in result.metrics["notes"][1:]:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
        console.print(f"[bold green]written:[/] {result.metrics_path}, {result.report_path}, "
                      f"{result.predictions_path}", highlight=False)


def _table(m: dict[str, Any]) -> Any:
    from rich.table import Table

    title = (f"{m['model']} on {m['split']} ({m['n_samples']} samples); threshold {m['threshold']:.4g}, "
             f"{m['threshold_source']}")
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    image = m.get("metrics") or {}
    image = image.get("defect", image)  # multi-class metrics nest their defect-vs-ok numbers
    for key in ("TP", "TN", "FP", "FN", "recall", "miss_rate", "false_alarm_rate", "precision", "f1",
                "accuracy", "roc_auc"):
        if key in image:
            table.add_row(key, format_value(image[key]))
    for part, keys in (("pixel", ("iou", "dice", "precision", "recall")),
                       ("flaw", ("flaw_recall", "false_flaws_per_image"))):
        for key in keys if part in m else ():
            table.add_row(f"{part} {key}", format_value(m[part].get(key)))
    return table
