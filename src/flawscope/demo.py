"""The main job on the embedded default data: synthetic radiographs -> SA-BCNN and a baseline -> report."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flawscope.errors import ConfigError


@dataclass
class DemoConfig:
    """Options of `flawscope demo` (1:1 with its CLI options).

    Attributes:
        out: folder for the synthetic data, the runs and the comparison table.
        n_images: synthetic radiographs to generate.
        image_size: side of the square radiographs; models see them at native resolution (no resizing).
        models: registry names to train and compare; bilinear models use `backbone`.
        backbone: backbone of the bilinear models (SA-BCNN, BCNN).
        epochs: training epochs per model.
        batch_size: samples per step.
        lr: AdamW learning rate.
        seed: seeds the data, the split and training.
        n_parts: distinct synthetic parts; splits keep each part on one side.
    """

    out: str = "demo-out"
    n_images: int = 480
    image_size: int = 128
    models: tuple[str, ...] = ("sa_bcnn", "resnet18")
    backbone: str = "resnet18"
    epochs: int = 8
    batch_size: int = 16
    lr: float = 1e-3
    seed: int = 0
    n_parts: int = 24
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.n_images < 40:
            raise ConfigError(f"n_images={self.n_images} is too few to split into train/val/test; use >= 40")
        if not self.models:
            raise ConfigError("models is empty; name at least one model (see `flawscope models list`)")


def _synth_data(cfg: DemoConfig, progress: bool) -> Path:
    """Generate the synthetic set once; a later demo with the same settings reuses it."""
    from flawscope.data.synth import SynthConfig, generate_dataset

    synth = SynthConfig(
        n_images=cfg.n_images,
        size=(cfg.image_size, cfg.image_size),
        seed=cfg.seed,
        n_parts=cfg.n_parts,
        part="mixed",
        flaw_size=(3.0, 12.0),
    )
    data = Path(cfg.out) / "data"
    marker = data / "demo_synth.json"
    wanted = json.dumps(
        {
            "n_images": synth.n_images,
            "size": list(synth.size),
            "seed": synth.seed,
            "n_parts": synth.n_parts,
            "part": synth.part,
            "flaw_size": list(synth.flaw_size),
        }
    )
    if marker.is_file() and marker.read_text() == wanted and (data / "manifest.csv").is_file():
        return data
    generate_dataset(data, synth, progress=progress, overwrite=data.exists())
    marker.write_text(wanted)
    return data


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Generate data, train and evaluate each model, write `comparison.md/.csv/.json`; returns rows."""
    from flawscope.evaluation.cost import count_flops, count_params
    from flawscope.evaluation.table import benchmark_table
    from flawscope.registry import get_model_entry
    from flawscope.training.config import TrainConfig
    from flawscope.training.module import load_model_from_checkpoint
    from flawscope.training.run import train

    for name in cfg.models:
        get_model_entry(name)  # fail on a typo before generating anything
    data = _synth_data(cfg, progress)
    out = Path(cfg.out)
    rows, runs = [], {}
    for name in cfg.models:
        bilinear = "bcnn" in name
        train_cfg = TrainConfig(
            data=str(data),
            model=name,
            backbone=cfg.backbone if bilinear else None,
            input_size=(cfg.image_size, cfg.image_size),
            resize=False,
            augment="flips",
            optimizer="adamw",
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            patience=0,
            seed=cfg.seed,
            out=str(out / "runs"),
            name=name,
            **cfg.extra,
        )
        result = train(train_cfg, progress=progress)
        model = load_model_from_checkpoint(result.model_path)
        shape = (model.config.preprocess.in_chans, cfg.image_size, cfg.image_size)
        rows.append(
            {
                "model": name if not bilinear else f"{name} ({cfg.backbone})",
                **result.metrics.get("test", {}),
                "params": count_params(model),
                "flops": count_flops(model, shape),
            }
        )
        runs[name] = {
            "run_dir": str(result.run_dir),
            "report": str(result.report_path or ""),
            "threshold": result.threshold,
            "epochs": result.epochs_trained,
        }
    columns = [
        "model",
        "params",
        "flops",
        "TP",
        "TN",
        "FP",
        "FN",
        "precision",
        "recall",
        "accuracy",
        "miss_rate",
        "false_alarm_rate",
        "roc_auc",
    ]
    markdown, csv_text, json_text = benchmark_table(rows, columns)
    (out / "comparison.md").write_text(markdown + "\n")
    (out / "comparison.csv").write_text(csv_text)
    (out / "comparison.json").write_text(json_text)
    return {"rows": rows, "runs": runs, "table": markdown, "data": str(data)}
