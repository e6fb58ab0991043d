"""Run folders and model files: every path of a run and the one model loader.

A training run writes `<out>/<name>/`: config.yaml, split.csv, checkpoints/ (best and last.ckpt),
logs/, metrics.json, report.html, model.pt, init.json and skipped.csv (`RunFolder` names each); a
pre-training run writes backbone.pt instead of model.pt and split.csv.

The one threshold rule (`load_model`): a model's decision threshold is the one chosen on validation.
model.pt stores it. A Lightning checkpoint is written before the threshold is chosen, so a checkpoint in a
finished run's checkpoints/ takes the run's metrics.json threshold; any other checkpoint has none, keeps the
default 0.5 and says so (`LoadedModel.threshold_source`, and a warning).
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flawscope.errors import ConfigError

if TYPE_CHECKING:
    from flawscope.models.base import FlawModel

MODEL_FILE = "model.pt"


@dataclass(frozen=True)
class RunFolder:
    """The files of one training run."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def split_file(self) -> Path:
        return self.path / "split.csv"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def model_file(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        return self.checkpoints_dir / "last.ckpt"

    @property
    def logs_dir(self) -> Path:
        return self.path / "logs"

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def skipped_file(self) -> Path:
        return self.path / "skipped.csv"

    @property
    def init_file(self) -> Path:
        return self.path / "init.json"

    @property
    def backbone_file(self) -> Path:
        """A pre-training run's backbone checkpoint (`flawscope pretrain`)."""
        return self.path / "backbone.pt"

    def is_run(self) -> bool:
        """True when the folder holds a run's config.yaml."""
        return self.config_file.is_file()

    def is_finished(self) -> bool:
        """True when training finished (metrics.json and model.pt written)."""
        return self.metrics_file.is_file() and self.model_file.is_file()

    def read_config(self) -> dict[str, Any]:
        """config.yaml as a dict (empty when absent)."""
        import yaml

        if not self.config_file.is_file():
            return {}
        try:
            config = yaml.safe_load(self.config_file.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"run config {self.config_file} is not valid YAML ({err}); fix or remove it, "
                              "or pass --data") from None
        return config if isinstance(config, dict) else {}

    def read_metrics(self) -> dict[str, Any]:
        """metrics.json as a dict (empty when absent)."""
        if not self.metrics_file.is_file():
            return {}
        try:
            return json.loads(self.metrics_file.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"run metrics {self.metrics_file} is not valid JSON ({err}); rerun the "
                              "training or pass --threshold") from None

    def checkpoints(self) -> list[Path]:
        """The run's Lightning checkpoints, sorted by name."""
        return sorted(self.checkpoints_dir.glob("*.ckpt")) if self.checkpoints_dir.is_dir() else []

    @classmethod
    def of(cls, model_file: str | Path) -> RunFolder | None:
        """The run a model.pt or checkpoint belongs to, or None for a lone file."""
        path = Path(model_file)
        parent = path.parent
        run = cls(parent.parent if parent.name == "checkpoints" else parent)
        return run if run.is_run() else None


def find_model_file(source: str | Path) -> Path:
    """The model file a user means: a model.pt / .ckpt file, or a run folder's model.pt.

    Raises:
        ConfigError: the path does not exist, or a folder without model.pt.
    """
    path = Path(source)
    if path.is_file():
        return path
    if path.is_dir():
        run = RunFolder(path)
        if run.model_file.is_file():
            return run.model_file
        ckpts = run.checkpoints()
        hint = f"; pass one of its checkpoints, e.g. {ckpts[-1]}" if ckpts else ""
        raise ConfigError(f"folder {path} holds no {MODEL_FILE} (is it a finished run folder?){hint}")
    raise ConfigError(f"model {path} does not exist; pass a run folder, its model.pt or a checkpoint .ckpt")


@dataclass
class LoadedModel:
    """A model loaded for inference, with where it and its threshold came from.

    Attributes:
        model: the plain FlawModel (CPU, eval mode); `model.config.threshold` is the rule's threshold.
        file: the model file read.
        run: the run folder it belongs to, or None.
        threshold_source: where the threshold came from, for reports.
        chosen_on_val: False when the threshold is an untuned default.
        model_id: "<name>@<first 12 hex digits of the file's SHA-256>".
    """

    model: FlawModel
    file: Path
    run: RunFolder | None
    threshold_source: str
    chosen_on_val: bool
    model_id: str


def file_digest(path: Path, chars: int = 12) -> str:
    """First hex digits of a file's SHA-256 (identifies the exact weights in prediction records)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:chars]


def load_model(source: str | Path, warn: bool = True) -> LoadedModel:
    """Load a trained model from a run folder, model.pt or Lightning checkpoint by the one threshold rule.

    Raises:
        ConfigError: no such file. CheckpointError: a file that is no flawscope model.
    """
    from flawscope.models.checkpoint import load_model_from_checkpoint

    path = find_model_file(source)
    model = load_model_from_checkpoint(path)
    run = RunFolder.of(path)
    source_text, chosen = "model (chosen on val during training)", True
    if path.suffix.lower() == ".ckpt":
        metrics = run.read_metrics() if run is not None and path.parent.name == "checkpoints" else {}
        if metrics.get("threshold") is not None:
            model.config = replace(model.config, threshold=float(metrics["threshold"]))
            source_text = "run's metrics.json (chosen on val during training)"
            best = metrics.get("best_checkpoint")
            if best and Path(best).resolve() != path.resolve():
                source_text += f"; chosen for {Path(best).name}, not for {path.name}"
        else:
            source_text, chosen = "checkpoint default (not chosen on val)", False
            if warn:
                warnings.warn(f"checkpoint {path} holds no threshold chosen on val (its run has no "
                              f"metrics.json); using the default {model.config.threshold:.4g} — prefer the "
                              "run's model.pt or pass --threshold", stacklevel=2)
    model_id = f"{model.config.name}@{file_digest(path)}"
    return LoadedModel(model, path, run, source_text, chosen, model_id)
