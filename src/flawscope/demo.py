"""The main job on the embedded default data: synthetic radiographs -> SA-BCNN and a baseline -> report."""

from __future__ import annotations

import json
import platform
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flawscope.errors import ConfigError


@dataclass
class DemoConfig:
    """Options of `flawscope demo` (1:1 with its CLI options).

    Attributes:
        out: folder for the synthetic data, the patches, the runs and the comparison table.
        n_images: synthetic radiographs to generate.
        image_size: side of the square radiographs.
        patch_size: side of the native-resolution patches the models are trained on (no resizing).
        difficulty: flaw contrast, 0 (clear) .. 1 (near the noise level); see `flawscope synth --help`.
        ok_per_image: defect-free patches cut from each radiograph (the rest are centred on flaws).
        models: registry names to train and compare; bilinear models use `backbone`.
        backbone: backbone of the bilinear models (SA-BCNN, BCNN).
        epochs: training epochs per model.
        batch_size: samples per step.
        lr: AdamW learning rate.
        seed: seeds the data, the split and training.
        n_parts: distinct synthetic parts; splits keep each part (all patches of its radiographs) on one side.
        threads: torch CPU threads for training and evaluation. The numbers depend on it (parallel sums
            split their terms by thread, so another count adds them in another order), hence a fixed
            default rather than the machine's core count; `environment.json` records it.
    """

    out: str = "demo-out"
    n_images: int = 400
    image_size: int = 256
    patch_size: int = 64
    difficulty: float = 0.2
    ok_per_image: int = 2
    models: tuple[str, ...] = ("sa_bcnn", "resnet18")
    backbone: str = "resnet18"
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    n_parts: int = 24
    threads: int = 2

    def __post_init__(self) -> None:
        if self.n_images < 40:
            raise ConfigError(f"n_images={self.n_images} is too few to split into train/val/test; use >= 40")
        if not 16 <= self.patch_size <= self.image_size:
            raise ConfigError(
                f"patch_size={self.patch_size} must lie between 16 and image_size={self.image_size}"
            )
        if not self.models:
            raise ConfigError("models is empty; name at least one model (see `flawscope models list`)")
        if self.threads < 1:
            raise ConfigError(f"threads={self.threads} is invalid; use 1 or more CPU threads")


def environment() -> dict[str, Any]:
    """What the demo's numbers depend on beyond its options: torch threads, CPU kernels and versions."""
    import numpy
    import torch

    from flawscope import __version__

    return {
        "torch_threads": torch.get_num_threads(),
        # ATen's vectorised kernels; oneDNN and MKL pick theirs from the CPU flags below.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "flawscope": __version__,
    }


# CPU features that change which float kernels oneDNN / MKL run (AVX2 vs AVX-512 vs AMX).
_KERNEL_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux
        return ""


def _cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def _cpu_flags() -> list[str]:
    for line in _cpuinfo().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in _KERNEL_FLAGS if f in present]
    return []


def _synth_data(cfg: DemoConfig, progress: bool) -> Path:
    """Generate the synthetic set once; a later demo with the same settings and generator reuses it."""
    from flawscope.data.synth import SynthConfig, generate_dataset, generator_fingerprint

    synth = SynthConfig(
        n_images=cfg.n_images, size=(cfg.image_size, cfg.image_size), seed=cfg.seed,
        n_parts=cfg.n_parts, part="mixed", difficulty=cfg.difficulty,
    )
    data = Path(cfg.out) / "data"
    marker = data / "demo_synth.json"
    wanted = json.dumps({"config": synth.to_dict(), "generator": generator_fingerprint()}, sort_keys=True,
                        default=str)
    if marker.is_file() and marker.read_text() == wanted and (data / "manifest.csv").is_file():
        return data
    generate_dataset(data, synth, progress=progress, overwrite=data.exists())
    marker.write_text(wanted)
    return data


def _patches(cfg: DemoConfig, data: Path) -> Path:
    """The SA-BCNN paper's Xdefects protocol on the synthetic radiographs, written as a manifest of crops.

    Native-resolution patches centred on each flaw box, plus defect-free patches of the same radiographs;
    every patch keeps its part as group, so a part never spans train and test.
    """
    from flawscope.data.patches import xdefects_patches
    from flawscope.data.sources import load_dataset
    from flawscope.data.sources.manifest import write_manifest

    patches = xdefects_patches(
        load_dataset(data), size=cfg.patch_size, n_ok_per_image=cfg.ok_per_image, seed=cfg.seed
    )
    return write_manifest(patches, Path(cfg.out) / "patches" / "manifest.csv")


def run_demo(cfg: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Generate data, train and evaluate each model, write `comparison.md/.csv/.json` and `environment.json`.

    Returns the rows, the runs, the table, the data and patch folders, and the environment (torch threads,
    CPU, versions) the numbers were made in.
    """
    from flawscope.evaluation.cost import count_flops, count_params
    from flawscope.evaluation.table import benchmark_table
    from flawscope.models.checkpoint import load_model_from_checkpoint
    from flawscope.models.registry import get_model_entry
    from flawscope.training.config import TrainConfig
    from flawscope.training.run import torch_threads, train

    for name in cfg.models:
        get_model_entry(name)  # fail on a typo before generating anything
    data = _synth_data(cfg, progress)
    patches = _patches(cfg, data)
    out = Path(cfg.out)
    with torch_threads(cfg.threads):
        env = environment()
    # Beside the table: what its numbers depend on beyond the options (see DemoConfig.threads).
    (out / "environment.json").write_text(json.dumps({"seed": cfg.seed, **env}, indent=2) + "\n")
    rows, runs = [], {}
    for name in cfg.models:
        bilinear = "bcnn" in name
        previous = out / "runs" / name
        if (previous / "config.yaml").is_file():  # a run folder an earlier demo wrote: start afresh
            shutil.rmtree(previous)
        train_cfg = TrainConfig(
            data=str(patches),
            model=name,
            backbone=cfg.backbone if bilinear else None,
            input_size=(cfg.patch_size, cfg.patch_size),
            resize=False,
            augment="flips",
            optimizer="adamw",
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            epochs=cfg.epochs,
            patience=0,
            seed=cfg.seed,
            threads=cfg.threads,
            out=str(out / "runs"),
            name=name,
        )
        result = train(train_cfg, progress=progress)
        model = load_model_from_checkpoint(result.model_path)
        shape = (model.config.preprocess.in_chans, cfg.patch_size, cfg.patch_size)
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
    return {"rows": rows, "runs": runs, "table": markdown, "data": str(data), "patches": str(patches),
            "environment": env}
