"""`TrainConfig`: every option of `flawscope train`, one field per CLI option, loadable from YAML."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from flawscope.data.config import NORMALIZE_MODES, OVERSAMPLE_MODES
from flawscope.errors import ConfigError, did_you_mean

_TASKS = ("classify", "segment")
_OPTIMIZERS = ("sgd", "adamw")
_CLASS_WEIGHTS = ("none", "balanced")
_THRESHOLD_METHODS = ("f1", "miss_rate")
_ON_BAD_FILE = ("error", "skip")
_NUMERIC: dict[str, type] = {
    "in_chans": int, "lr": float, "weight_decay": float, "batch_size": int, "epochs": int,
    "freeze_stages": int, "patience": int, "val_fraction": float, "test_fraction": float, "seed": int,
    "num_workers": int, "num_nodes": int, "miss_rate_target": float, "limit_batches": float, "threads": int,
}
_OPTIONAL = ("miss_rate_target", "limit_batches", "threads")


class ConfigFile:
    """Dict / YAML round trip of a run's options (a dataclass): unknown keys are errors naming valid ones.

    The resolved copy is saved as the run's config.yaml and `--config` reads it back, so the YAML keys map 1:1
    onto the command-line options.
    """

    @classmethod
    def keys(cls) -> list[str]:
        """Valid option names."""
        return [f.name for f in fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def upgrade(cls, d: dict[str, Any]) -> dict[str, Any]:
        """Options of older config files in today's names (none by default)."""
        return d

    @classmethod
    def check_keys(cls, d: dict[str, Any], source: str) -> None:
        """Raise ConfigError for a key that is not an option."""
        valid = cls.keys()
        for key in d:
            if key not in valid:
                hint = did_you_mean(key, valid, n=1)
                raise ConfigError(f"{source}: unknown option {key!r}.{hint} Valid options: "
                                  f"{', '.join(valid)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML friendly: tuples become lists)."""
        d = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> Any:
        """Build from a dict; an unknown key is an error naming it and listing the valid keys."""
        d = cls.upgrade(d)
        cls.check_keys(d, source)
        return cls(**d)

    def replace(self, **overrides: Any) -> Any:
        """A copy with some options changed (checked like from_dict)."""
        self.check_keys(overrides, "overrides")
        return dataclasses.replace(self, **overrides)  # type: ignore[type-var]

    @classmethod
    def read_yaml(cls, path: str | Path) -> dict[str, Any]:
        """The options of a YAML file in today's names, keys checked (values are checked on construction)."""
        import yaml

        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            d = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
        if not isinstance(d, dict):
            raise ConfigError(f"config file {path} must hold a mapping option: value, got {type(d).__name__}")
        d = cls.upgrade(d)
        cls.check_keys(d, str(path))
        return d

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides: Any) -> Any:
        """Load a YAML file; `overrides` (e.g. CLI options) win over the file."""
        d = cls.read_yaml(path)
        cls.check_keys(overrides, "overrides")
        return cls(**{**d, **overrides})

    def to_yaml(self, path: str | Path) -> Path:
        """Write as YAML (the resolved config of a run)."""
        import yaml

        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        return path


@dataclass
class TrainConfig(ConfigFile):
    """Everything a training run needs; the resolved copy is saved as the run's config.yaml.

    Defaults follow the SA-BCNN paper where it says something: SGD with momentum 0.9, lr 1e-3, batch 16,
    50 epochs. The number of classes is not an option: it comes from the dataset.

    Attributes:
        preset: the recipe these options started from (`flawscope.training.presets`; None = none), recorded
            so a run says where its defaults came from. Set by `TrainConfig.with_preset`, which lays the
            user's options over the preset's.
        data: dataset folder or manifest.
        format: dataset format name, or "auto" to detect it.
        ok_classes: names of the defect-free classes (every other class is defective), e.g. ["class_0"];
            empty = the ok-name rule (ok, good, normal, free, ok_front, front_ok, ...).
        task: "classify" or "segment".
        model: registry name (`flawscope models list`).
        backbone: backbone name passed to the model builder (the encoder of smp segmenters); None = the
            model's default.
        model_args: extra keyword arguments of the model builder (`flawscope models info NAME`), e.g.
            {"reduce_dim": 128} or timm options such as {"output_stride": 16}.
        init: how the backbone (a segmenter's encoder) starts: "random", "checkpoint:<backbone.pt>" (written
            by `flawscope pretrain`; its backbone and input channels must match this run's), or
            "imagenet[:<local weights file or timm name>]" (RGB first convolutions folded to one channel).
            The head (a segmenter's decoder) always starts random; everything is fine-tuned, not frozen,
            unless freeze_stages says so. What was loaded is saved as the run's init.json.
        input_size: (height, width) the model sees.
        resize: True resizes whole images to input_size; False crops patches at native resolution.
        intensity: raw value -> [0, 1] mapping ("dtype", "minmax", "window:LOW:HIGH", "percentile:LOW:HIGH").
        normalize: [0, 1] -> model input, per input: "fixed" (mean/std), "standardize" (each input by its own
            mean and std: exposure changes between series vanish) or "subtract_background" (minus a wide
            Gaussian blur of itself); see `flawscope.data.config.PreprocessConfig`.
        in_chans: 1 (grayscale) or 3.
        augment: augmentation preset name.
        oversample: "none" (shuffle), "class" (each class drawn equally often) or "group" (each class equally
            often, and within a class each group (series) equally often); true/false of older configs read
            as "class"/"none".
        balance: undersample the train part of the split to equal class counts (defective and ok for binary
            data; `flawscope.data.splits.balance_indices`, seeded by `seed`); val and test are left as split,
            and the run's split.csv lists the train samples kept.
        class_weights: "none" or "balanced" (inverse class frequency in the loss).
        loss: loss name; None = "bce" for binary, "ce" for K classes, "bce_dice" for segmentation.
        optimizer: "sgd" (momentum 0.9) or "adamw".
        lr, weight_decay: optimizer settings; the learning rate decays to 1e-6 on a cosine.
        batch_size: samples per step and device.
        epochs: maximum epochs.
        freeze_stages: number of leading backbone stages kept frozen.
        patience: epochs without val_loss improvement before stopping; 0 = never stop early.
        val_fraction, test_fraction: split sizes.
        by_group: keep each group (series, part, source image) in one split.
        extra_train: a second dataset (folder or manifest with the same classes) whose samples join the
            train part when their group (series, part) is a train group, and are used nowhere else: hard
            negatives (`flawscope data patches --xdefects --hard-ok-per-image`), simulated flaws on the
            training series' radiographs. Samples of val or test groups are left out, so nothing leaks.
        split_file: a split CSV (a run's split.csv, or `flawscope.data.splits.save_split`) fixing the
            train/val/test parts; None = split by val_fraction, test_fraction and seed.
        seed: seeds the split, sampling, augmentation and initialisation.
        out: folder holding runs.
        name: run folder name; None = "<timestamp>-<model>".
        num_workers: data loader processes.
        threads: torch CPU threads for training and scoring; None = torch's default (the machine's cores).
            Metrics depend on it (parallel sums add in another order), so reruns that must agree fix it;
            metrics.json records the count used.
        devices, accelerator, strategy, num_nodes, precision: passed to lightning.Trainer.
        resume: checkpoint to continue from.
        threshold_method: "f1" (best F1 on val) or "miss_rate" (highest threshold missing <= target on val).
        miss_rate_target: allowed fraction of missed defects for "miss_rate".
        limit_batches: cap batches per epoch for smoke runs: a whole number is a batch count (1 = one
            batch), anything else a fraction of the epoch in (0, 1); None = all.
        on_bad_file: "error" stops at an unreadable file; "skip" leaves it out and lists it in skipped.csv.
        cache_dir: folder for decoded images kept across runs (slow formats: JPEG, DICOM); None = memory
            only. Within a run every image is decoded once either way.
    """

    preset: str | None = None
    data: str = ""
    format: str = "auto"
    ok_classes: list[str] = field(default_factory=list)
    task: str = "classify"
    model: str = "sa_bcnn"
    backbone: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    init: str = "random"
    input_size: tuple[int, int] = (224, 224)
    resize: bool = True
    intensity: str = "dtype"
    normalize: str = "fixed"
    in_chans: int = 1
    augment: str = "none"
    oversample: str = "none"
    balance: bool = False
    class_weights: str = "none"
    loss: str | None = None
    optimizer: str = "sgd"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 16
    epochs: int = 50
    freeze_stages: int = 0
    patience: int = 10
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    by_group: bool = True
    extra_train: str | None = None
    split_file: str | None = None
    seed: int = 0
    out: str = "runs"
    name: str | None = None
    num_workers: int = 0
    threads: int | None = None
    devices: str = "auto"
    accelerator: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    resume: str | None = None
    threshold_method: str = "f1"
    miss_rate_target: float | None = None
    limit_batches: int | float | None = None
    on_bad_file: str = "error"
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        self.input_size = _parse_size(self.input_size)
        if isinstance(self.oversample, bool):
            self.oversample = "class" if self.oversample else "none"
        # YAML and the CLI may hand over "1e-3" or 2.0; coerce so the checks below compare numbers.
        for key, kind in _NUMERIC.items():
            value = getattr(self, key)
            if value is None or isinstance(value, bool):
                if value is not None or key not in _OPTIONAL:
                    raise ConfigError(f"{key} must be a number, got {value!r}")
                continue
            try:
                number = kind(value)
            except (TypeError, ValueError):
                raise ConfigError(f"{key} must be a number, got {value!r}") from None
            if key == "limit_batches" and number.is_integer():
                # Lightning reads an int as a batch count and a float as a fraction (1.0 = the whole epoch).
                number = int(number)
            setattr(self, key, number)
        for key in ("data", "out", "resume", "split_file", "cache_dir", "extra_train"):
            value = getattr(self, key)
            if isinstance(value, Path):
                setattr(self, key, str(value))
        self.devices = str(self.devices)
        self.precision = str(self.precision)
        self.ok_classes = _class_names("ok_classes", self.ok_classes)
        if not isinstance(self.model_args, dict):
            raise ConfigError(f"model_args must be a mapping of builder options, got {self.model_args!r}")
        self.validate()

    # -- checks -----------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ConfigError naming the first bad field, its value and the valid choices."""
        _choice("task", self.task, _TASKS)
        _choice("optimizer", self.optimizer, _OPTIMIZERS)
        _choice("class_weights", self.class_weights, _CLASS_WEIGHTS)
        _choice("threshold_method", self.threshold_method, _THRESHOLD_METHODS)
        _choice("on_bad_file", self.on_bad_file, _ON_BAD_FILE)
        _choice("normalize", self.normalize, NORMALIZE_MODES)
        _choice("oversample", self.oversample, OVERSAMPLE_MODES)
        if self.preset is not None:
            from flawscope.training.presets import preset_names

            _choice("preset", self.preset, tuple(preset_names()))
        if self.in_chans not in (1, 3):
            raise ConfigError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {self.in_chans}")
        for key in ("lr", "batch_size", "epochs", "num_nodes"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("weight_decay", "freeze_stages", "patience", "num_workers"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be 1 or more CPU threads (or unset for torch's default), got "
                              f"{self.threads}")
        for key in ("val_fraction", "test_fraction"):
            if not 0 < getattr(self, key) < 1:
                raise ConfigError(f"{key} must be between 0 and 1 (exclusive), got {getattr(self, key)}; "
                                  "the threshold is chosen on val and metrics are reported on test")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError(f"val_fraction + test_fraction = {self.val_fraction + self.test_fraction:g} "
                              "leaves nothing to train on; keep the sum below 1")
        if self.threshold_method == "miss_rate":
            if self.miss_rate_target is None:
                raise ConfigError("threshold_method 'miss_rate' needs miss_rate_target "
                                  "(e.g. 0.01 = miss at most 1% of defects on val)")
        if self.miss_rate_target is not None and not 0 <= self.miss_rate_target < 1:
            raise ConfigError(f"miss_rate_target must be in [0, 1), got {self.miss_rate_target}")
        limit = self.limit_batches
        if limit is not None and not (limit >= 1 if isinstance(limit, int) else 0 < limit < 1):
            raise ConfigError(f"limit_batches must be a batch count (1, 2, ...) or a fraction of the epoch "
                              f"between 0 and 1 (0.25), got {limit}; leave it out to use every batch")
        if min(self.input_size) < 8:
            raise ConfigError(f"input_size {self.input_size} is too small; use at least 8×8 pixels")

    @classmethod
    def upgrade(cls, d: dict[str, Any]) -> dict[str, Any]:
        """Options of older config files in today's names (`pretrained:` became `init:`)."""
        return _upgrade(d)

    @classmethod
    def with_preset(cls, preset: str | None, **options: Any) -> TrainConfig:
        """A config from a preset ("auto" = the task's default, "none") with `options` winning over it."""
        from flawscope.training.presets import apply_preset

        cls.check_keys(options, "options")
        return cls(**apply_preset(preset, options))


def _upgrade(d: dict[str, Any]) -> dict[str, Any]:
    """Options of older config files in today's names (`pretrained:` became `init:`)."""
    if "pretrained" not in d:
        return d
    from flawscope.models.pretrained import pretrained_to_init

    d = dict(d)
    old = d.pop("pretrained")
    d.setdefault("init", pretrained_to_init(old))
    return d


def _choice(name: str, value: Any, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"{name} {value!r} is not valid; use one of {', '.join(valid)}")


def _class_names(key: str, value: Any) -> list[str]:
    """A list of class names from YAML or the CLI; one string is one name."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"{key} must be a list of class names (e.g. [class_0]), got {value!r}")
    return list(names)


def _parse_size(value: Any) -> tuple[int, int]:
    """224, "224", "256x192", [256, 192] -> (height, width)."""
    try:
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            parts = str(value).lower().replace("×", "x").split("x")
            size = tuple(int(p) for p in parts)
        else:
            size = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        size = ()
    if len(size) == 1:
        size = (size[0], size[0])
    if len(size) != 2:
        raise ConfigError(f"input_size {value!r} is not understood; use a number (224) or HxW (256x192)")
    return size  # type: ignore[return-value]
