"""Training presets: the recipe per task that the measurements in docs/benchmarks.md chose.

A preset is a set of `TrainConfig` options; options the user gives (on the command line or in a --config
YAML) win over it. `flawscope train` uses the task's default preset when none is named ("auto"), and
"none" leaves TrainConfig's own defaults (the SA-BCNN paper's settings). Each preset names the benchmark
section whose group k-fold ablation chose it, so a user can rerun the evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flawscope.errors import ConfigError


@dataclass(frozen=True)
class Preset:
    """A named recipe: train options, the task it is for, and where the numbers behind it are."""

    name: str
    task: str
    summary: str
    options: dict[str, Any] = field(default_factory=dict)
    evidence: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="xray-patch",
            task="classify",
            summary="Radiograph flaw classifier on native-resolution 32 px patches (GDXray castings, "
                    "Xdefects protocol): ResNet-18, each patch standardised by its own mean and std, "
                    "radiograph augmentation, AdamW, 15 epochs (best checkpoint by validation loss).",
            options={"model": "resnet18", "input_size": [32, 32], "resize": False, "normalize": "standardize",
                     "augment": "radiograph", "optimizer": "adamw", "lr": 1e-3, "batch_size": 50,
                     "epochs": 15, "patience": 10, "by_group": True},
            evidence="docs/benchmarks.md, 'Quality on unseen series (issue 9)': recipe 'standardize'",
        ),
        Preset(
            name="xray-segment",
            task="segment",
            summary="Radiograph flaw segmenter on native-resolution 64 px patches (GDXray welds): U-Net with "
                    "a ResNet-18 encoder, BCE + Dice, flips, AdamW.",
            options={"model": "unet", "backbone": "resnet18", "task": "segment", "input_size": [64, 64],
                     "resize": False, "augment": "flips", "optimizer": "adamw", "lr": 1e-3, "batch_size": 32,
                     "epochs": 10, "patience": 10, "by_group": True},
            evidence="docs/benchmarks.md, 'Radiograph pre-training and transfer (issue 8)': welds, random",
        ),
    )
}
AUTO, NONE = "auto", "none"
DEFAULT_BY_TASK = {"classify": "xray-patch", "segment": "xray-segment"}


def preset_names() -> list[str]:
    """Valid --preset values."""
    return [AUTO, NONE, *PRESETS]


def resolve_preset(name: str | None, task: str | None) -> Preset | None:
    """The preset `name` stands for: "auto" = the task's default, "none"/None = no preset."""
    if name is None or name == NONE:
        return None
    if name == AUTO:
        return PRESETS[DEFAULT_BY_TASK.get(task or "classify", DEFAULT_BY_TASK["classify"])]
    if name not in PRESETS:
        from flawscope.errors import did_you_mean

        raise ConfigError(f"preset {name!r} is unknown.{did_you_mean(name, list(PRESETS), n=1)} "
                          f"Use one of {', '.join(preset_names())} (`flawscope train --help`)")
    return PRESETS[name]


def apply_preset(name: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """TrainConfig options: the preset's, then `options` (the user's) over them; `preset` records which.

    A preset for another task than the one asked for (`task` in options) is refused by name; "auto" picks
    the asked task's preset, or the model's task when only a model is given; "auto" with a model other than
    the preset's means no preset.
    """
    task = options.get("task")
    if task is None and options.get("model"):
        from flawscope.models.registry import get_model_entry

        task = get_model_entry(str(options["model"])).task
    preset = resolve_preset(name, task)
    named_model = options.get("model")
    if name == AUTO and preset is not None and named_model not in (None, preset.options.get("model")):
        # "auto" is the recipe for users who name no model; one who names another model gets that model's
        # plain defaults rather than settings measured on a different architecture (name the preset to mix).
        preset = None
    if preset is None:
        return {**options, "preset": NONE if name == NONE else None}
    if task is not None and task != preset.task:
        raise ConfigError(f"preset {preset.name!r} is a {preset.task} recipe but this run is {task}; pass "
                          f"--preset {DEFAULT_BY_TASK.get(task, NONE)} or --preset none")
    chosen = dict(preset.options)
    if "model" in options and options["model"] != chosen.get("model"):
        # Another model than the preset's: its backbone and builder options do not carry over.
        chosen.pop("backbone", None)
        chosen.pop("model_args", None)
    return {**chosen, **options, "preset": preset.name}
