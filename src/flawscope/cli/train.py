"""`flawscope train`: one option per TrainConfig field; a YAML config gives defaults that options override."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flawscope.cli.common import format_value

_HELP = {
    "preset": "Recipe to start from; options given win over it: auto (the task's recommended one: xray-patch "
              "for classify, xray-segment for segment; none when you name another model), none (plain "
              "defaults below), xray-patch, xray-segment (`flawscope.training.presets`).",
    "data": "Dataset folder or manifest .csv.",
    "format": "Dataset format (`flawscope data formats`), or auto.",
    "ok_classes": "A defect-free class (repeatable), e.g. class_0; every other class is defective. "
                  "Default: ok-like names (ok, good, normal, free, ok_front, front_ok, ...).",
    "task": "classify or segment.",
    "model": "Model name (`flawscope models list`).",
    "backbone": "Backbone of models that take one (e.g. resnet18; the encoder of unet/deeplabv3plus).",
    "model_args": "Extra model-builder option KEY=VALUE (repeatable), e.g. reduce_dim=128.",
    "init": "Backbone start: random, checkpoint:<backbone.pt> (flawscope pretrain), or imagenet[:<file or "
            "timm name>]. Default: random.",
    "input_size": "Model input size: 224 or HxW (256x192).",
    "resize": "Resize whole images to input-size (--resize) or crop native-resolution patches (--patch).",
    "intensity": "Raw value to [0,1]: dtype, minmax, window:LOW:HIGH or percentile:LOW:HIGH.",
    "normalize": "[0,1] to model input: fixed (mean/std), standardize (each input by its own mean/std) or "
                 "subtract_background (minus a wide blur of itself).",
    "in_chans": "1 (grayscale) or 3 (RGB).",
    "augment": "Augmentation preset: none, flips, radiograph.",
    "oversample": "none (shuffle), class (classes drawn equally often) or group (classes equally often, "
                  "and each class's series/parts equally often).",
    "balance": "Undersample the train split to equal defective and ok counts (seeded; val/test kept).",
    "class_weights": "Loss class weights: none or balanced.",
    "loss": "bce, ce, dice, bce_dice or focal. Default: bce (binary), ce (K classes), bce_dice (segment).",
    "optimizer": "sgd (momentum 0.9) or adamw.",
    "lr": "Initial learning rate (cosine decay to 1e-6).",
    "weight_decay": "Weight decay.",
    "batch_size": "Samples per step and device.",
    "epochs": "Maximum epochs.",
    "freeze_stages": "Leading backbone stages to keep frozen.",
    "patience": "Early-stopping patience in epochs on val_loss (0 = off).",
    "val_fraction": "Share of samples for validation (threshold chosen here).",
    "test_fraction": "Share of samples for the test report.",
    "by_group": "Keep each group (series, part, source image) in one split.",
    "extra_train": "Extra training data (folder or manifest, same classes): its samples of train groups join "
                   "the train part only (hard negatives, simulated flaws).",
    "split_file": "Split CSV fixing train/val/test (e.g. a run's split.csv) instead of the fractions.",
    "seed": "Seed of split, sampling, augmentation and initialisation.",
    "out": "Folder that holds run folders.",
    "name": "Run folder name (default: <timestamp>-<model>).",
    "num_workers": "DataLoader worker processes.",
    "threads": "Torch CPU threads; metrics depend on it, so fix it for reruns that must agree. Default: all.",
    "devices": "Devices per node (auto, 1, 2, '0,1').",
    "accelerator": "auto, cpu, gpu, ...",
    "strategy": "auto, ddp, ddp_spawn, fsdp, ...",
    "num_nodes": "Number of machines.",
    "precision": "32-true, 16-mixed, bf16-mixed.",
    "resume": "Checkpoint to continue from (a run's checkpoints/last.ckpt).",
    "threshold_method": "Pick the threshold on val by f1 or miss_rate.",
    "miss_rate_target": "Allowed miss rate for --threshold-method miss_rate (e.g. 0.01).",
    "limit_batches": "Batches per epoch for smoke runs: a count (1 = one batch) or a fraction in (0, 1).",
    "on_bad_file": "error: stop at an unreadable file; skip: leave it out (listed in skipped.csv).",
    "cache_dir": "Folder keeping decoded images across runs (JPEG/DICOM); default: memory only.",
}


# The flag that a True / False default of a boolean option stands for.
_BOOL_FLAGS = {
    "resize": ("--resize", "--patch"),
    "balance": ("--balance", "--no-balance"), "by_group": ("--by-group", "--no-by-group"),
}


def _help(key: str) -> str:
    """Option help with the TrainConfig default (the CLI's own defaults are None: "not given").

    Empty defaults (no model args, no ok classes) are not shown; a boolean shows the flag it stands for.
    """
    import dataclasses

    from flawscope.training.config import TrainConfig

    f = TrainConfig.__dataclass_fields__[key]
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    if isinstance(default, bool):
        shown: object = _BOOL_FLAGS[key][0 if default else 1]
    elif isinstance(default, tuple):
        shown = "x".join(map(str, default))
    else:
        shown = default
    return f"{_HELP[key]} (default: {shown})" if shown not in (None, "", [], {}) else _HELP[key]


def register(app: typer.Typer) -> None:
    """Add `flawscope train` to the app."""

    @app.command("train")
    def train_command(
        preset: Annotated[str | None, typer.Option(help=_HELP["preset"] + " (default: auto)")] = None,
        data: Annotated[str | None, typer.Option(help=_help("data"))] = None,
        format: Annotated[str | None, typer.Option(help=_help("format"))] = None,
        ok_classes: Annotated[
            list[str] | None, typer.Option("--ok-class", help=_help("ok_classes"))
        ] = None,
        task: Annotated[str | None, typer.Option(help=_help("task"))] = None,
        model: Annotated[str | None, typer.Option(help=_help("model"))] = None,
        backbone: Annotated[str | None, typer.Option(help=_help("backbone"))] = None,
        model_args: Annotated[
            list[str] | None, typer.Option("--model-args", help=_help("model_args"))
        ] = None,
        init: Annotated[str | None, typer.Option(help=_help("init"))] = None,
        input_size: Annotated[str | None, typer.Option(help=_help("input_size"))] = None,
        resize: Annotated[bool | None, typer.Option("--resize/--patch", help=_help("resize"))] = None,
        intensity: Annotated[str | None, typer.Option(help=_help("intensity"))] = None,
        normalize: Annotated[str | None, typer.Option(help=_help("normalize"))] = None,
        in_chans: Annotated[int | None, typer.Option(help=_help("in_chans"))] = None,
        augment: Annotated[str | None, typer.Option(help=_help("augment"))] = None,
        oversample: Annotated[str | None, typer.Option(help=_help("oversample"))] = None,
        balance: Annotated[
            bool | None, typer.Option("--balance/--no-balance", help=_help("balance"))
        ] = None,
        class_weights: Annotated[str | None, typer.Option(help=_help("class_weights"))] = None,
        loss: Annotated[str | None, typer.Option(help=_help("loss"))] = None,
        optimizer: Annotated[str | None, typer.Option(help=_help("optimizer"))] = None,
        lr: Annotated[float | None, typer.Option(help=_help("lr"))] = None,
        weight_decay: Annotated[float | None, typer.Option(help=_help("weight_decay"))] = None,
        batch_size: Annotated[int | None, typer.Option(help=_help("batch_size"))] = None,
        epochs: Annotated[int | None, typer.Option(help=_help("epochs"))] = None,
        freeze_stages: Annotated[int | None, typer.Option(help=_help("freeze_stages"))] = None,
        patience: Annotated[int | None, typer.Option(help=_help("patience"))] = None,
        val_fraction: Annotated[float | None, typer.Option(help=_help("val_fraction"))] = None,
        test_fraction: Annotated[float | None, typer.Option(help=_help("test_fraction"))] = None,
        by_group: Annotated[
            bool | None, typer.Option("--by-group/--no-by-group", help=_help("by_group"))
        ] = None,
        extra_train: Annotated[str | None, typer.Option(help=_help("extra_train"))] = None,
        split_file: Annotated[str | None, typer.Option(help=_help("split_file"))] = None,
        seed: Annotated[int | None, typer.Option(help=_help("seed"))] = None,
        out: Annotated[str | None, typer.Option(help=_help("out"))] = None,
        name: Annotated[str | None, typer.Option(help=_help("name"))] = None,
        num_workers: Annotated[int | None, typer.Option(help=_help("num_workers"))] = None,
        threads: Annotated[int | None, typer.Option(help=_help("threads"))] = None,
        devices: Annotated[str | None, typer.Option(help=_help("devices"))] = None,
        accelerator: Annotated[str | None, typer.Option(help=_help("accelerator"))] = None,
        strategy: Annotated[str | None, typer.Option(help=_help("strategy"))] = None,
        num_nodes: Annotated[int | None, typer.Option(help=_help("num_nodes"))] = None,
        precision: Annotated[str | None, typer.Option(help=_help("precision"))] = None,
        resume: Annotated[str | None, typer.Option(help=_help("resume"))] = None,
        threshold_method: Annotated[str | None, typer.Option(help=_help("threshold_method"))] = None,
        miss_rate_target: Annotated[float | None, typer.Option(help=_help("miss_rate_target"))] = None,
        # A float parses "1" and "0.25" alike; TrainConfig turns whole numbers into batch counts.
        limit_batches: Annotated[
            float | None, typer.Option(metavar="COUNT|FRACTION", help=_help("limit_batches"))
        ] = None,
        on_bad_file: Annotated[str | None, typer.Option(help=_help("on_bad_file"))] = None,
        cache_dir: Annotated[str | None, typer.Option(help=_help("cache_dir"))] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="YAML file of options; command-line options win.")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or model summary.")] = False,
    ) -> None:
        """Train a model and write a run folder: checkpoints, metrics.json, report.html, model.pt.

        Defaults shown are TrainConfig's; a --config YAML replaces them, and options given here win over both.
        """
        from rich.console import Console

        from flawscope.training.config import TrainConfig
        from flawscope.training.run import train

        options = dict(locals())
        overrides = {k: v for k, v in options.items() if k in TrainConfig.keys() and v is not None}
        overrides.pop("model_args", None)
        overrides.pop("ok_classes", None)
        if model_args:
            overrides["model_args"] = parse_key_values(model_args, "--model-args")
        if ok_classes:  # not given (an empty list): the YAML's ok_classes, if any, stay
            overrides["ok_classes"] = list(ok_classes)
        options = {**(TrainConfig.read_yaml(config) if config else {}), **overrides}
        name = options.pop("preset", None) or "auto"
        cfg = TrainConfig.with_preset(name, **options)
        console = Console()
        console.print(_summary_table(cfg))
        result = train(cfg, progress=not quiet)
        if result.metrics:
            console.print(_results_table(result.metrics))
        console.print(f"[bold green]run folder:[/] {result.run_dir}", highlight=False)


def parse_key_values(items: list[str], option: str) -> dict[str, Any]:
    """Parse KEY=VALUE strings; values are read as YAML scalars (128 -> int, true -> bool, x -> str)."""
    import yaml

    from flawscope.errors import ConfigError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {item!r} is not KEY=VALUE (e.g. {option} reduce_dim=128)")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def _summary_table(cfg: Any) -> Any:
    from rich.table import Table

    table = Table(title="flawscope train", show_header=False, title_justify="left")
    for key in ("preset", "data", "task", "model", "backbone", "input_size", "normalize", "epochs",
                "batch_size", "optimizer", "lr", "seed", "devices", "resume"):
        value = getattr(cfg, key)
        if value is not None:
            table.add_row(key, "x".join(map(str, value)) if key == "input_size" else str(value))
    return table


def _results_table(metrics: dict[str, Any]) -> Any:
    from rich.table import Table

    title = f"threshold {metrics['threshold']:.4g} (chosen on val, {metrics['threshold_method']})"
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("val", justify="right")
    table.add_column("test", justify="right")

    def binary(part: dict[str, Any]) -> dict[str, Any]:
        return part.get("defect", part)  # multi-class metrics nest their defect-vs-ok numbers

    for key in ("roc_auc", "recall", "miss_rate", "false_alarm_rate", "precision", "f1", "accuracy", "n"):
        vals = [binary(metrics[p]).get(key) for p in ("val", "test")]
        table.add_row(key, *(format_value(v) for v in vals))
    if "pixel" in metrics["test"]:
        for key in ("iou", "dice"):
            vals = [metrics[p].get("pixel", {}).get(key) for p in ("val", "test")]
            table.add_row(f"pixel {key}", *(format_value(v) for v in vals))
    return table
