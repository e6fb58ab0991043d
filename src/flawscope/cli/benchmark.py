"""`flawscope benchmark`: train and evaluate several models over folds or seeds (the paper's Table III)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _ints(text: str, option: str) -> list[int]:
    from flawscope.errors import ConfigError

    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{option} {text!r} must be comma-separated integers, e.g. 0,1,2") from None


def _overrides(pairs: list[str]) -> dict[str, Any]:
    """KEY=VALUE pairs, values read as YAML scalars (3 -> int, 1e-3 -> float, true -> bool)."""
    import yaml

    from flawscope.errors import ConfigError

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {pair!r} must be KEY=VALUE, e.g. --set lr=0.01 (keys: train options)")
        try:
            out[key.strip().replace("-", "_")] = yaml.safe_load(value) if value else None
        except yaml.YAMLError:
            out[key.strip().replace("-", "_")] = value
    return out


def register(app: typer.Typer) -> None:
    """Add `flawscope benchmark` to the app."""

    @app.command("benchmark")
    def benchmark_command(
        data: Annotated[Path, typer.Option(help="Dataset folder or manifest .csv.")],
        models: Annotated[
            str, typer.Option(help="Comma-separated model names.")
        ] = "vgg16,xception,resnet18,resnet34,bcnn,sa_bcnn_cbam,sa_bcnn",
        folds: Annotated[int | None, typer.Option(help="K for group k-fold cross-validation.")] = None,
        seeds: Annotated[
            str | None, typer.Option(help="Comma-separated seeds (instead of --folds). Default: 0.")
        ] = None,
        epochs: Annotated[int | None, typer.Option(help="Maximum epochs per run.")] = None,
        input_size: Annotated[str | None, typer.Option(help="Model input size: 224 or HxW.")] = None,
        batch_size: Annotated[int | None, typer.Option(help="Samples per step.")] = None,
        limit_batches: Annotated[float | None, typer.Option(
            metavar="COUNT|FRACTION",
            help="Batches per epoch for smoke runs: a count (1 = one batch) or a fraction in (0, 1).")
        ] = None,
        ok_classes: Annotated[list[str] | None, typer.Option(
            "--ok-class", help="A defect-free class (repeatable); every other class is defective. "
            "Default: ok-like names (ok, good, normal, free, ok_front, ...).")] = None,
        out: Annotated[Path, typer.Option(help="Benchmark folder.")] = Path("benchmark"),
        config: Annotated[
            Path | None, typer.Option(help="YAML of train options shared by every run.")
        ] = None,
        set_: Annotated[
            list[str] | None,
            typer.Option("--set", help="Any other train option as KEY=VALUE (repeatable), e.g. lr=0.01."),
        ] = None,
        latency_batch_sizes: Annotated[
            str, typer.Option(help="Batch sizes to time; the first gives the table's ms per image.")
        ] = "1,32",
        latency_iters: Annotated[int, typer.Option(help="Timed forward passes per batch size.")] = 10,
        latency_threads: Annotated[
            int | None, typer.Option(help="CPU threads while timing. Default: torch's (all cores).")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No training progress bars.")] = False,
    ) -> None:
        """Train every model on every fold/seed; write Table III (table.md/.csv/.json) and curves."""
        from rich.console import Console

        from flawscope.training.benchmark import run_benchmark
        from flawscope.training.config import TrainConfig

        options = {"epochs": epochs, "input_size": input_size, "batch_size": batch_size,
                   "limit_batches": limit_batches, "ok_classes": list(ok_classes) if ok_classes else None}
        overrides = {**_overrides(set_ or []), **{k: v for k, v in options.items() if v is not None}}
        base = (TrainConfig.from_yaml(config, **overrides) if config
                else TrainConfig.from_dict(overrides, "benchmark options"))
        console = Console()
        result = run_benchmark(
            data, [m.strip() for m in models.split(",") if m.strip()], out=out, folds=folds,
            seeds=_ints(seeds, "--seeds") if seeds is not None else None, base=base,
            latency_batch_sizes=_ints(latency_batch_sizes, "--latency-batch-sizes"),
            latency_iters=latency_iters, latency_threads=latency_threads, progress=not quiet,
            log=lambda msg: console.print(f"[bold]benchmark:[/] {msg}", highlight=False),
        )
        console.print(result.tables["md"].read_text(), highlight=False, markup=False)
        console.print(f"[bold green]written:[/] {', '.join(str(p) for p in result.tables.values())}"
                      + "".join(f", {p}" for p in result.curves.values()), highlight=False)
