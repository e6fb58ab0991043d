"""`flawscope pretrain`: one option per PretrainConfig field; a YAML config gives defaults, options win."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

_HELP = {
    "objective": "synthetic (the embedded default: synthetic radiographs and their flaw labels), supervised "
                 "(a CheXpert-style CSV or class folders, multi-label BCE) or simclr (unlabelled images).",
    "backbone": "Backbone to pre-train: resnet18 (CPU default), resnet50, vgg16, vit_tiny, small_cnn or a "
                "timm name; the same name in `train --backbone` / `--model` loads it.",
    "data": "supervised: a CSV or a class-folders root; simclr: image folders (repeatable).",
    "valid_csv": "The corpus' official validation CSV (supervised).",
    "uncertain": "An uncertain (-1) label counts as positive (seed 001), negative or ignore.",
    "blank": "Value of a blank label cell.",
    "exclude": "A folder or file left out of an unlabelled corpus (repeatable): a task's val/test series.",
    "exclude_split": "A downstream split.csv: its val/test groups (series folders) are left out.",
    "in_chans": "Input channels (1 for radiographs).",
    "intensity": "Raw value to [0,1]: dtype, minmax, window:LOW:HIGH or percentile:LOW:HIGH.",
    "input_size": "Crop size at native resolution: 96 or HxW.",
    "resize": "Resize whole images to input-size instead of cropping.",
    "synth_images": "Synthetic radiographs in the corpus (generated once, then reused).",
    "synth_size": "Side of the synthetic radiographs in pixels. Default: the input size.",
    "synth_difficulty": "Synthetic flaw difficulty 0..1 (fainter, smaller flaws when higher).",
    "epochs": "Epochs.",
    "batch_size": "Images per batch.",
    "lr": "AdamW learning rate (cosine decay).",
    "weight_decay": "AdamW weight decay.",
    "temperature": "NT-Xent temperature (simclr).",
    "val_fraction": "Share of groups held out for the validation loss when the corpus has no split.",
    "patience": "Epochs without a better validation loss before stopping; 0 = never.",
    "select": "Epoch backbone.pt keeps: best (lowest val loss) or last. Default: best, last for simclr.",
    "max_minutes": "Stop after this many minutes (the best epoch so far is kept).",
    "limit_batches": "Batches per epoch (a count) or a fraction of the epoch, for smoke runs.",
    "seed": "Seed of the split, the augmentations and the initialisation.",
    "threads": "Torch CPU threads. Default: all cores.",
    "num_workers": "DataLoader worker processes.",
    "accelerator": "cpu, gpu or auto.",
    "devices": "Devices (auto, 1, 2, ...).",
    "precision": "Lightning precision, e.g. 32-true or bf16-mixed.",
    "out": "Folder of pre-training runs.",
    "name": "Run name. Default: <time>-<objective>-<backbone>.",
    "resume": "Continue from a checkpoint of this run (checkpoints/last.ckpt).",
    "cache_dir": "Folder for decoded images kept across runs.",
}


def _help(key: str) -> str:
    import dataclasses

    from flawscope.training.pretrain import PretrainConfig

    field = {f.name: f for f in dataclasses.fields(PretrainConfig)}[key]
    default = field.default if field.default is not dataclasses.MISSING else None
    shown = "" if default in (None, [], "") else f" (default: {default})"
    return _HELP[key] + shown


def register(app: typer.Typer) -> None:
    """Add `flawscope pretrain` to the app."""

    @app.command("pretrain")
    def pretrain_command(
        objective: Annotated[str | None, typer.Option(help=_help("objective"))] = None,
        backbone: Annotated[str | None, typer.Option(help=_help("backbone"))] = None,
        data: Annotated[list[str] | None, typer.Option(help=_help("data"))] = None,
        valid_csv: Annotated[str | None, typer.Option(help=_help("valid_csv"))] = None,
        uncertain: Annotated[str | None, typer.Option(help=_help("uncertain"))] = None,
        blank: Annotated[float | None, typer.Option(help=_help("blank"))] = None,
        exclude: Annotated[list[str] | None, typer.Option(help=_help("exclude"))] = None,
        exclude_split: Annotated[str | None, typer.Option(help=_help("exclude_split"))] = None,
        in_chans: Annotated[int | None, typer.Option(help=_help("in_chans"))] = None,
        intensity: Annotated[str | None, typer.Option(help=_help("intensity"))] = None,
        input_size: Annotated[str | None, typer.Option(help=_help("input_size"))] = None,
        resize: Annotated[bool | None, typer.Option("--resize/--crop", help=_help("resize"))] = None,
        synth_images: Annotated[int | None, typer.Option(help=_help("synth_images"))] = None,
        synth_size: Annotated[int | None, typer.Option(help=_help("synth_size"))] = None,
        synth_difficulty: Annotated[float | None, typer.Option(help=_help("synth_difficulty"))] = None,
        epochs: Annotated[int | None, typer.Option(help=_help("epochs"))] = None,
        batch_size: Annotated[int | None, typer.Option(help=_help("batch_size"))] = None,
        lr: Annotated[float | None, typer.Option(help=_help("lr"))] = None,
        weight_decay: Annotated[float | None, typer.Option(help=_help("weight_decay"))] = None,
        temperature: Annotated[float | None, typer.Option(help=_help("temperature"))] = None,
        val_fraction: Annotated[float | None, typer.Option(help=_help("val_fraction"))] = None,
        patience: Annotated[int | None, typer.Option(help=_help("patience"))] = None,
        select: Annotated[str | None, typer.Option(help=_help("select"))] = None,
        max_minutes: Annotated[float | None, typer.Option(help=_help("max_minutes"))] = None,
        limit_batches: Annotated[
            float | None, typer.Option(metavar="COUNT|FRACTION", help=_help("limit_batches"))
        ] = None,
        seed: Annotated[int | None, typer.Option(help=_help("seed"))] = None,
        threads: Annotated[int | None, typer.Option(help=_help("threads"))] = None,
        num_workers: Annotated[int | None, typer.Option(help=_help("num_workers"))] = None,
        accelerator: Annotated[str | None, typer.Option(help=_help("accelerator"))] = None,
        devices: Annotated[str | None, typer.Option(help=_help("devices"))] = None,
        precision: Annotated[str | None, typer.Option(help=_help("precision"))] = None,
        out: Annotated[str | None, typer.Option(help=_help("out"))] = None,
        name: Annotated[str | None, typer.Option(help=_help("name"))] = None,
        resume: Annotated[str | None, typer.Option(help=_help("resume"))] = None,
        cache_dir: Annotated[str | None, typer.Option(help=_help("cache_dir"))] = None,
        config: Annotated[
            Path | None, typer.Option("--config", help="YAML file of options; command-line options win.")
        ] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar or model summary.")] = False,
    ) -> None:
        """Pre-train a backbone (backbone.pt) for `flawscope train --init checkpoint:<backbone.pt>`."""
        from rich.console import Console

        from flawscope.training.pretrain import PretrainConfig, pretrain

        options = dict(locals())
        overrides = {k: v for k, v in options.items() if k in PretrainConfig.keys() and v not in (None, [])}
        cfg = PretrainConfig.from_yaml(config, **overrides) if config else PretrainConfig(**overrides)
        result = pretrain(cfg, progress=not quiet)
        m = result.metrics
        console = Console()
        console.print(f"kept epoch {m['kept_epoch']} ({m['selected']}; lowest val loss {m['best_val_loss']} "
                      f"at epoch {m['best_epoch']}), {m['epochs_trained']} epochs in {m['seconds']} s, peak "
                      f"memory {m['peak_rss_mb']} MB", highlight=False)
        console.print(f"[bold green]backbone:[/] {result.backbone_path}  (train --init "
                      f"checkpoint:{result.backbone_path}); report: {result.report_path}", highlight=False)
