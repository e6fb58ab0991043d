"""The studies of seed 001 (radiograph pre-training): `run_study(StudyConfig)`, from the CLI and Python.

Each study trains ordinary runs (`flawscope.training.run.train`) that differ from one shared `TrainConfig`
in one or two options, and summarises their metrics.json files:

- "init": every --init value on every group-aware fold (`flawscope.data.splits.kfold_splits`): test metric
  mean ± std over folds per init (classification: F1 at the val-chosen threshold and ROC AUC; segmentation:
  pixel mIoU as seed 001 defines it, the mean of the defect and background IoU, and Dice).
- "fraction": fold 0's split with its train part subsampled by group to each fraction (seeded, nested: the
  25 % groups are inside the 50 % ones; per class, so each subset keeps both); val and test unchanged.
- "convergence": one run per init on fold 0; the validation metric per epoch from the run's logs/metrics.csv
  (val_auroc, or val_dice for segmenters, and val_loss), seed 001 Fig. 6.
- "sensitivity": every init × batch size × learning rate on fold 0: a heat-map of the test metric per init
  (seed 001 Fig. 7) and its spread (max − min) as the number behind it.
- "features": pooled backbone embeddings (`forward_outputs(x)["features"]`) of fold 0's test samples from
  each init's fine-tuned model, each pre-trained backbone before fine-tuning, and an untrained (random)
  backbone: a t-SNE scatter of defective vs ok (seed 001 Fig. 8) and a linear-probe accuracy (logistic
  regression, group-aware cross-validation on those test features) as the number behind it.
- "recipes": named sets of train options (`recipes: {name: {option: value, ...}}`, e.g. normalize,
  augment, input_size, model_args) on every fold: the ablation table, mean ± std over folds per recipe, with
  the miss and false-alarm rates at each run's val-chosen threshold. Recipes are ranked by group k-fold, never
  by one split.

Every run is seeded by the study seed and picks its threshold on its own val part; test parts are used for
reporting only. Layout of the study folder (`out`):

    folds/fold<k>/split.csv            the group-aware folds (fold0-frac<f>/ for the fraction subsets)
    runs/<init label>/<run>/           normal run folders: fold<k>, fold0-frac0.25, fold0-bs8-lr0.001, ...
    <kind>.md / .csv / .json           the study's table; <kind>-runs.csv one row per run
    <kind>.yaml                        the resolved StudyConfig (`--study-config` reads it back)
    figures/<kind>*.png                the study's figures
    report.html                        one section per study kind run in this folder
    report-sections/<kind>.html        those sections (report.html is rebuilt from them)

Run folders are named by what differs from the shared options, so identical runs are shared between kinds
(e.g. the init study's fold0 runs serve convergence, features, fraction 1.0 and the sensitivity cell of the
shared batch size and learning rate). A finished run (metrics.json and model.pt, same options) is reused and
an unfinished one continues from its last checkpoint, so a study stopped midway continues where it stopped;
the tables are rebuilt from every finished run.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from flawscope.errors import ConfigError, DatasetError
from flawscope.inference.runfolder import RunFolder
from flawscope.training.config import ConfigFile, TrainConfig

if TYPE_CHECKING:
    import numpy as np

    from flawscope.data.sample import DatasetIndex, Sample
    from flawscope.models.base import FlawModel

KINDS = ("init", "fraction", "convergence", "sensitivity", "features", "recipes")
# Train options the study sets per run; in `train` they would be silently overridden, so they are refused.
PER_RUN_OPTIONS = {"init": "inits", "seed": "seed", "split_file": "folds", "out": "out", "name": "out",
                   "resume": "out"}

# (key, header, kind) of the test metrics per task; the first is the one plotted.
_TASK_METRICS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "classify": (("roc_auc", "ROC AUC", "ratio"), ("f1", "F1", "ratio"), ("miss_rate", "Miss rate", "ratio"),
                 ("false_alarm_rate", "False-alarm rate", "ratio")),
    "segment": (("miou", "mIoU", "ratio"), ("dice", "Dice", "ratio")),
}
_FIGURE_TITLES = {"init": "test metric per init", "recipes": "test metric per recipe",
                  "fraction": "test metric vs train fraction",
                  "convergence": "validation curves (seed 001 Fig. 6)",
                  "sensitivity": "test metric over batch size × learning rate (seed 001 Fig. 7)",
                  "features_tsne": "t-SNE of the test features, defective vs ok (seed 001 Fig. 8)"}
# The per-epoch validation metric training/module.py logs.
_VAL_METRIC = {"classify": "val_auroc", "segment": "val_dice"}


@dataclass
class StudyConfig(ConfigFile):
    """Every option of `flawscope study KIND`, loadable from YAML (keys = the CLI options).

    Attributes:
        kind: "init", "fraction", "convergence", "sensitivity" or "features" (see the module doc).
        train: `TrainConfig` options shared by every run (data, model, task, input_size, epochs, batch_size,
            lr, ...); init, seed, split_file, out, name and resume are set per run by the study.
        inits: --init values compared: "random", "checkpoint:<backbone.pt>", "imagenet[:file|timm name]".
        folds: k of the group-aware k-fold split; the init study trains every fold, the others fold 0.
        seed: seeds the folds, the fraction subsets, every run, the t-SNE and the probe's folds.
        fractions: train fractions of the fraction study, each in (0, 1].
        batch_sizes, lrs: the sensitivity grid.
        recipes: the recipes study's variants: name -> train options that differ from `train` (any train
            option but seed, split_file, out, name and resume; init may name "{fold}" files).
        out: the study folder.
        threads: torch CPU threads for every run and the feature extraction; None = torch's default.
    """

    kind: str = "init"
    train: dict[str, Any] = field(default_factory=dict)
    inits: list[str] = field(default_factory=lambda: ["random"])
    folds: int = 5
    seed: int = 0
    fractions: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75, 1.0])
    batch_sizes: list[int] = field(default_factory=lambda: [8, 16, 32])
    lrs: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2])
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: str = "study"
    threads: int | None = None

    def __post_init__(self) -> None:
        if isinstance(self.inits, str):
            self.inits = [v.strip() for v in self.inits.split(",") if v.strip()]
        self.inits = [str(v) for v in self.inits]
        self.fractions = _numbers("fractions", self.fractions, float)
        self.batch_sizes = _numbers("batch_sizes", self.batch_sizes, int)
        self.lrs = _numbers("lrs", self.lrs, float)
        for key in ("folds", "seed"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
                raise ConfigError(f"{key} must be a whole number, got {value!r}")
            setattr(self, key, int(value))
        if isinstance(self.out, Path):
            self.out = str(self.out)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option and its value."""
        from flawscope.models.checkpoint import CheckpointError
        from flawscope.models.pretrained import parse_init

        if self.kind not in KINDS:
            raise ConfigError(f"study kind {self.kind!r} is unknown; use one of {', '.join(KINDS)}")
        if not isinstance(self.train, dict):
            raise ConfigError(f"train must be a mapping of train options, got {self.train!r}")
        TrainConfig.check_keys(self.train, "study train options")
        for key, instead in PER_RUN_OPTIONS.items():
            if key in self.train:
                raise ConfigError(f"train option {key}={self.train[key]!r} is set per run by the study; "
                                  f"use the study's {instead!r} option instead")
        TrainConfig.from_dict(self.train, "study train options")  # every value checked before any run
        if not self.inits:
            raise ConfigError("inits is empty; give at least one --init value, e.g. random")
        dupes = sorted({v for v in self.inits if self.inits.count(v) > 1})
        if dupes:
            raise ConfigError(f"init(s) {dupes} are listed twice; name each init once")
        for init in self.inits:
            try:
                parse_init(fold_init(init, 0))
            except CheckpointError as err:
                raise ConfigError(f"init {init!r}: {err}") from None
        if self.folds < 2:
            raise ConfigError(f"folds must be at least 2 (group-aware k-fold), got {self.folds}")
        if self.seed < 0:
            raise ConfigError(f"seed must be >= 0, got {self.seed}")
        for key in ("fractions", "batch_sizes", "lrs"):
            values = getattr(self, key)
            if not values:
                raise ConfigError(f"{key} is empty ([]); give at least one value")
            if len(set(values)) != len(values):
                raise ConfigError(f"{key} {values} lists a value twice; give each once")
        for f in self.fractions:
            if not 0 < f <= 1:
                raise ConfigError(f"fraction {f:g} is outside (0, 1]; give train fractions such as "
                                  "0.25,0.5,1.0")
        for b in self.batch_sizes:
            if b < 1:
                raise ConfigError(f"batch size {b} must be at least 1")
        for lr in self.lrs:
            if not (lr > 0 and math.isfinite(lr)):
                raise ConfigError(f"learning rate {lr:g} must be positive")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be 1 or more, got {self.threads}")
        self._validate_recipes()

    def _validate_recipes(self) -> None:
        from flawscope.models.checkpoint import CheckpointError
        from flawscope.models.pretrained import parse_init

        if not isinstance(self.recipes, dict):
            raise ConfigError(f"recipes must be a mapping name -> train options, got {self.recipes!r}")
        if self.kind == "recipes" and not self.recipes:
            raise ConfigError("the recipes study needs at least one recipe, e.g. --recipe "
                              "'standardize: normalize=standardize' (or recipes: in the study YAML)")
        for name, options in self.recipes.items():
            if not isinstance(name, str) or not name.strip() or not isinstance(options, dict):
                raise ConfigError(f"recipe {name!r} must be a name with a mapping of train options, got "
                                  f"{options!r}")
            TrainConfig.check_keys(options, f"recipe {name!r}")
            for key in PER_RUN_OPTIONS:
                if key != "init" and key in options:
                    raise ConfigError(f"recipe {name!r}: {key} is set per run by the study; leave it out")
            TrainConfig.from_dict({**self.train, **options}, f"recipe {name!r}")
            if "init" in options:
                try:
                    parse_init(fold_init(str(options["init"]), 0))
                except CheckpointError as err:
                    raise ConfigError(f"recipe {name!r}: init {options['init']!r}: {err}") from None

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["train"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.train.items()}
        return d


def _numbers(key: str, value: Any, kind: type) -> list[Any]:
    """A list of numbers from YAML, Python or the CLI ("0.25,0.5"); a bad entry is named."""
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    elif isinstance(value, int | float):
        value = [value]
    out = []
    for v in value:
        try:
            number = float(v)
            if kind is int:
                if not number.is_integer():
                    raise ValueError
                number = int(number)
        except (TypeError, ValueError):
            what = "a number" if kind is float else "a whole number"
            raise ConfigError(f"{key} entry {v!r} is not {what}") from None
        out.append(number)
    return out


@dataclass
class StudyResult:
    """What `run_study` produced.

    Attributes:
        kind: the study kind.
        out_dir: the study folder.
        rows: one dict per run (features: per embedding) with its keys and metrics (<kind>-runs.csv).
        table: the summary records (<kind>.json).
        tables: {"md", "csv", "json", "runs"} paths.
        figures: figure name -> PNG path.
        report: report.html.
        run_dirs: every run folder used, in plan order.
        reused: finished run folders reused (not trained again).
    """

    kind: str
    out_dir: Path
    rows: list[dict[str, Any]]
    table: list[dict[str, Any]]
    tables: dict[str, Path]
    figures: dict[str, Path] = field(default_factory=dict)
    report: Path | None = None
    run_dirs: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)


@dataclass
class _Plan:
    init: str
    label: str
    cfg: TrainConfig
    key: dict[str, Any]

    @property
    def run_dir(self) -> Path:
        return Path(self.cfg.out) / str(self.cfg.name)


class _Context(NamedTuple):
    """What a kind's summary reads: the options, the runs and their metrics, where figures go."""

    cfg: StudyConfig
    base: TrainConfig
    plans: list[_Plan]
    rows: list[dict[str, Any]]
    figures: Path
    folds: list[tuple[str, str]]
    say: Callable[[str], None]


@dataclass
class _Summary:
    """A kind's table (rows for `benchmark_table`), its text and figures."""

    rows: list[dict[str, Any]]
    columns: list[tuple[str, str, str]]
    intro: str
    figures: dict[str, Path] = field(default_factory=dict)
    extra_md: str = ""
    extra_tables: list[tuple[str, list[dict[str, Any]], list[tuple[str, str, str]]]] = field(
        default_factory=list)
    run_rows: list[dict[str, Any]] | None = None  # <kind>-runs.csv rows when not one per run (features)


# -- init labels --------------------------------------------------------------------------------------------
def fold_init(init: str, fold: int) -> str:
    """The init of one fold: "{fold}" in a checkpoint path becomes the fold number.

    Pre-training that sees the training series' own images (self-supervised, labels unused) must be done per
    fold, never on that fold's val or test series: `--init "checkpoint:ssl-fold{fold}/backbone.pt"` names one
    backbone per fold (`flawscope pretrain --exclude-split <study>/folds/fold<k>/split.csv` writes them).
    """
    return init.replace("{fold}", str(int(fold)))


def _fold_number(run_name: str) -> int:
    match = re.match(r"fold(\d+)", run_name)
    return int(match.group(1)) if match else 0


def init_label(init: str) -> str:
    """"random", "imagenet", or a checkpoint's "<objective> <backbone>" (e.g. "synthetic resnet18")."""
    from flawscope.models.pretrained import parse_init, read_backbone_header

    kind, value = parse_init(fold_init(init, 0))
    if kind != "checkpoint":
        return kind
    header = read_backbone_header(value)  # type: ignore[arg-type]
    return f"{header.get('objective') or 'pre-trained'} {header['backbone']}"


def init_labels(inits: Sequence[str]) -> dict[str, str]:
    """Label of each init; a label already taken gets the file or hub name (earlier labels never change)."""
    labels: dict[str, str] = {}
    for init in inits:
        label = init_label(init)
        if label in labels.values():
            file = Path(init.partition(":")[2])
            # backbone.pt files are named by their run folder (flawscope pretrain's --name)
            name = (file.parent.name if file.name == "backbone.pt" else file.name).replace("{fold}", "")
            label = f"{label} ({name.strip('-_') or init})"
        n = 2
        while label in labels.values():
            label, n = f"{label} #{n}", n + 1
        labels[init] = label
    return labels


def _slug(label: str) -> str:
    return re.sub(r"[^\w.-]+", "-", label).strip("-") or "init"


# -- splits -------------------------------------------------------------------------------------------------
def _group_stratum(index: DatasetIndex, positions: list[int]) -> str:
    """A group's class for stratified subsampling: defect / ok (binary), else its majority label."""
    from collections import Counter

    from flawscope.data.splits import is_defective

    samples = [index.samples[i] for i in positions]
    labels = Counter(s.label for s in samples if s.label)
    if not index.is_binary and labels:
        best = max(labels.values())
        return min(name for name, n in labels.items() if n == best)
    flags = [is_defective(s, index.defective_classes) for s in samples]
    return "defect" if any(flags) else "ok" if any(f is False for f in flags) else ""


def subsample_train(index: DatasetIndex, train: Sequence[int], fraction: float, seed: int,
                    by_group: bool = True) -> list[int]:
    """The train positions kept at `fraction`: whole groups, per class, seeded and nested across fractions.

    Within each class the groups are shuffled by the seed alone and the first ceil(fraction × groups) kept
    (at least one), so a smaller fraction keeps a subset of a larger one's groups.
    """
    import numpy as np

    if fraction >= 1:
        return sorted(train)
    groups: dict[str, list[int]] = defaultdict(list)
    for i in train:
        groups[index.samples[i].group if by_group else f"#{i}"].append(i)
    strata: dict[str, list[str]] = defaultdict(list)
    for name in sorted(groups):
        strata[_group_stratum(index, groups[name])].append(name)
    rng = np.random.default_rng(seed)
    keep: list[int] = []
    for key in sorted(strata):
        names = [strata[key][j] for j in rng.permutation(len(strata[key]))]
        n = max(1, math.ceil(fraction * len(names) - 1e-9))
        for name in names[:n]:
            keep += groups[name]
    return sorted(keep)


# -- planning -----------------------------------------------------------------------------------------------
def _base_config(cfg: StudyConfig, extra: dict[str, Any] | None = None) -> TrainConfig:
    """The shared TrainConfig (`train`, then `extra`, e.g. a recipe, over its preset if it names one), the
    study seed and threads, and the model's task when not given."""
    from flawscope.models.registry import get_model_entry

    train = TrainConfig.upgrade({**cfg.train, **(extra or {})})
    base = TrainConfig.with_preset(train.pop("preset", None), **train)
    if not base.data:
        raise ConfigError("no dataset given; pass --data DIR (or `data:` under `train:` in the study YAML)")
    changes: dict[str, Any] = {"seed": cfg.seed}
    if "task" not in train and base.preset is None:
        changes["task"] = get_model_entry(base.model).task
    if cfg.threads is not None:
        changes["threads"] = cfg.threads
    return base.replace(**changes)


def _run_cfg(base: TrainConfig, out: Path, init: str, label: str, name: str, split_file: str,
             **changes: Any) -> TrainConfig:
    return base.replace(**{**changes, "init": fold_init(init, _fold_number(name)), "split_file": split_file,
                           "out": str(out / "runs" / _slug(label)), "name": name})


def _plan(cfg: StudyConfig, base: TrainConfig, labels: dict[str, str], folds: list[tuple[str, str]],
          out: Path) -> list[_Plan]:
    plans: list[_Plan] = []
    fold0, split0 = folds[0]
    if cfg.kind == "init":
        for init, label in labels.items():
            for fold, path in folds:
                plans.append(_Plan(init, label, _run_cfg(base, out, init, label, fold, path), {"fold": fold}))
    elif cfg.kind == "recipes":
        for name, options in cfg.recipes.items():
            recipe = _base_config(cfg, {k: v for k, v in options.items() if k != "init"})
            init = str(options.get("init", base.init))
            for fold, path in folds:
                plans.append(_Plan(init, name, _run_cfg(recipe, out, init, name, fold, path), {"fold": fold}))
    elif cfg.kind in ("convergence", "features"):
        for init, label in labels.items():
            plans.append(_Plan(init, label, _run_cfg(base, out, init, label, fold0, split0), {"fold": fold0}))
    elif cfg.kind == "fraction":
        files = _fraction_splits(cfg, base, split0, out)
        for init, label in labels.items():
            for f in sorted(cfg.fractions):
                name, path = files[f]
                run_cfg = _run_cfg(base, out, init, label, name, path)
                plans.append(_Plan(init, label, run_cfg, {"fraction": f}))
    else:  # sensitivity
        for init, label in labels.items():
            for b in cfg.batch_sizes:
                for lr in cfg.lrs:
                    name = fold0 + ("" if b == base.batch_size else f"-bs{b}") + (
                        "" if lr == base.lr else f"-lr{lr:g}")
                    run_cfg = _run_cfg(base, out, init, label, name, split0, batch_size=b, lr=lr)
                    plans.append(_Plan(init, label, run_cfg, {"batch_size": b, "lr": lr}))
    return plans


def _write_folds(base: TrainConfig, k: int, out: Path, write: Callable[..., list[tuple[str, str]]]
                 ) -> list[tuple[str, str]]:
    """The study's fold split files; folds already in `out` must come out the same (their runs use them).

    Run folders name their split file, not its content, so other folds (another k, seed, val fraction or a
    changed dataset) written over the old ones would pass the reuse check: they are refused instead.
    """
    old = {p: p.read_text() for p in sorted((out / "folds").glob("fold*/split.csv"))
           if p.parent.name.removeprefix("fold").isdigit()}
    folds = write(base, k, out)
    changed = [p for p, text in old.items() if not p.is_file() or p.read_text() != text]
    stale = [p for p in old if p.parent.name not in {label for label, _ in folds}]
    if changed or stale:
        for p, text in old.items():  # leave the folds the finished runs were trained on as they were
            p.write_text(text)
        for _, path in folds:
            if Path(path) not in old:
                Path(path).unlink()
                Path(path).parent.rmdir()
        first = (changed or stale)[0]
        header = old[first].splitlines()[0] if old[first] else ""
        raise ConfigError(
            f"study folder {out} holds other folds ({first}: {header.lstrip('# ')}) than this study's "
            f"{k}-fold split (seed {base.seed}, val_fraction {base.val_fraction:g}, dataset {base.data}); "
            "pass another --out, or the same --folds and --seed as before"
        )
    return folds


def _fraction_splits(cfg: StudyConfig, base: TrainConfig, split0: str, out: Path
                     ) -> dict[float, tuple[str, str]]:
    """(run name, split file) per fraction: fold 0 with its train part subsampled; checked before training."""
    from dataclasses import replace

    from flawscope.data.splits import check_split, load_split, save_split
    from flawscope.training.run import load_index

    index = load_index(base)
    split = load_split(index, split0)
    files: dict[float, tuple[str, str]] = {}
    for f in sorted(cfg.fractions):
        if f >= 1:
            files[f] = ("fold0", split0)
            continue
        sub = replace(split, train=subsample_train(index, split.train, f, cfg.seed, base.by_group),
                      method=f"{split.method}+train{f:g}")
        try:
            check_split(index, sub, by_group=base.by_group)
        except DatasetError as err:
            raise DatasetError(f"fraction {f:g} of fold 0's train part ({len(sub.train)} of "
                               f"{len(split.train)} samples) cannot train a detector: {err}") from None
        path = out / "folds" / f"fold0-frac{f:g}" / "split.csv"
        save_split(index, sub, path)
        files[f] = (f"fold0-frac{f:g}", str(path))
    return files


# -- metrics of a run ---------------------------------------------------------------------------------------
def _metrics_of(part: dict[str, Any] | None, task: str) -> dict[str, Any]:
    part = part or {}
    if task == "segment":
        pixel = part.get("pixel") or {}
        return {"miou": pixel.get("miou"), "dice": pixel.get("dice")}
    binary = part.get("defect", part)  # multi-class metrics nest their defect-vs-ok numbers
    return {key: binary.get(key) for key, _, _ in _TASK_METRICS["classify"]}


def run_metrics(run_dir: Path, task: str) -> dict[str, Any]:
    """Test metrics of a finished run (at its val-chosen threshold), plus val's primary metric and sizes."""
    metrics = RunFolder(run_dir).read_metrics()
    primary = _TASK_METRICS[task][0][0]
    sizes = metrics.get("split_sizes") or {}
    return {**_metrics_of(metrics.get("test"), task),
            f"val_{primary}": _metrics_of(metrics.get("val"), task)[primary],
            "threshold": metrics.get("threshold"), "epochs_trained": metrics.get("epochs_trained"),
            "n_train": sizes.get("train"), "n_val": sizes.get("val"), "n_test": sizes.get("test")}


def read_epoch_log(run_dir: Path) -> list[dict[str, float]]:
    """Per-epoch values (epoch counted from 1) of a run's logs/metrics.csv: val_loss, val_auroc, ...

    A resumed run's earlier epochs are read from the logs/metrics-before-resume-<n>.csv copies kept when it
    resumed; where epochs repeat, the last value logged wins.
    """
    logs = RunFolder(run_dir).logs_dir
    earlier = sorted(logs.glob("metrics-before-resume-*.csv"), key=lambda p: int(p.stem.rsplit("-", 1)[1]))
    files = [*earlier, *[p for p in [logs / "metrics.csv"] if p.is_file()]]
    if not files:
        raise DatasetError(f"run {run_dir} has no metrics.csv in logs/; was it trained by flawscope train?")
    by_epoch: dict[int, dict[str, float]] = {}
    for log_file in files:
        with log_file.open(newline="") as f:
            for row in csv.DictReader(f):
                if not row.get("epoch"):
                    continue
                epoch = int(float(row["epoch"])) + 1
                entry = by_epoch.setdefault(epoch, {"epoch": epoch})
                for key, value in row.items():
                    if key and (key.startswith("val_") or key == "train_loss") and value not in ("", None):
                        entry[key] = float(value)
    return [by_epoch[e] for e in sorted(by_epoch)]


# -- the study ----------------------------------------------------------------------------------------------
def run_study(cfg: StudyConfig, progress: bool = False, log: Callable[[str], None] | None = None
              ) -> StudyResult:
    """Train (or reuse) the study's runs and write its table, figures and report section.

    Args:
        cfg: the study's options (see StudyConfig and the module doc).
        progress: show training progress bars.
        log: receives one line per step (the CLI prints them).

    Returns:
        The StudyResult.

    Raises:
        ConfigError: bad options (checked before anything is trained), a run folder trained with other
            options. DatasetError: a dataset or fraction subset a detector cannot learn from.
    """
    from flawscope.training.benchmark import train_or_reuse, write_fold_splits
    from flawscope.training.run import check_init

    cfg.validate()
    say = log or (lambda _msg: None)
    base = _base_config(cfg)
    if cfg.kind == "features" and base.task != "classify":
        raise ConfigError(f"the features study probes a classifier's pooled embeddings; model {base.model!r} "
                          f"is a {base.task} model; pass a classification model (--model small_cnn, ...)")
    labels = init_labels(cfg.inits)
    for init in cfg.inits:
        # A mismatched checkpoint fails before any training (other folds' files: when their run starts).
        check_init(base.replace(init=fold_init(init, 0)))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / f"{cfg.kind}.yaml")

    say(f"writing {cfg.folds} group folds of {base.data}")
    folds = _write_folds(base, cfg.folds, out, write_fold_splits)
    plans = _plan(cfg, base, labels, folds, out)
    rows: list[dict[str, Any]] = []
    reused: list[Path] = []
    for j, plan in enumerate(plans):
        where = f"[{j + 1}/{len(plans)}] {plan.label} {plan.run_dir.name}"
        if train_or_reuse(plan.cfg, progress, "study", resume_unfinished=True,
                          log=lambda msg, w=where: say(f"{w}: {msg}")):
            reused.append(plan.run_dir)
        rows.append({"init": plan.label, "init_value": plan.init, **plan.key,
                     **run_metrics(plan.run_dir, base.task), "run": str(plan.run_dir)})

    summarise = {"init": _summarise_init, "recipes": _summarise_recipes, "fraction": _summarise_fraction,
                 "convergence": _summarise_convergence, "sensitivity": _summarise_sensitivity,
                 "features": _summarise_features}[cfg.kind]
    figures_dir = out / "figures"
    figures_dir.mkdir(exist_ok=True)
    summary = summarise(_Context(cfg, base, plans, rows, figures_dir, folds, say))
    if summary.run_rows is not None:
        rows = summary.run_rows
    result = _write_outputs(cfg, base, summary, rows, out)
    result.run_dirs = [p.run_dir for p in plans]
    result.reused = reused
    say(f"table written to {result.tables['md']}")
    return result


# -- summaries ----------------------------------------------------------------------------------------------
def _metric_columns(task: str) -> list[tuple[str, str, str]]:
    return list(_TASK_METRICS[task])


def _protocol(cfg: StudyConfig, base: TrainConfig) -> str:
    return (f"Model {base.model} ({base.task}), input {base.input_size[0]}×{base.input_size[1]}, "
            f"{base.epochs} epoch(s), batch {base.batch_size}, lr {base.lr:g}, seed {cfg.seed}; "
            f"group-aware {cfg.folds}-fold split of {base.data}. Thresholds chosen on each run's val part; "
            "metrics on its test part.")


def _summarise_init(ctx: _Context) -> _Summary:
    cfg, base, plans, rows, figures, folds, say = ctx
    keys = [k for k, _, _ in _metric_columns(base.task)]
    table = [{"model": r["init"], "init": r["init_value"], **{k: r[k] for k in keys}} for r in rows]
    columns = [("model", "Init", "text"), ("init", "--init", "text"), *_metric_columns(base.task)]
    intro = (f"Test metrics as mean ± std over the {cfg.folds} folds, per init. " + _protocol(cfg, base))
    fig = _plot_init_bars(table, base.task, figures / "init.png")
    return _Summary(table, columns, intro, {"init": fig})


def _summarise_recipes(ctx: _Context) -> _Summary:
    cfg, base, plans, rows, figures, folds, say = ctx
    keys = [k for k, _, _ in _metric_columns(base.task)]
    table = [{"model": r["init"], "options": _options_text(cfg.recipes[r["init"]]), **{k: r[k] for k in keys}}
             for r in rows]
    columns = [("model", "Recipe", "text"), ("options", "Options (beyond the shared ones)", "text"),
               *_metric_columns(base.task)]
    intro = (f"Test metrics as mean ± std over the {cfg.folds} folds, per recipe. " + _protocol(cfg, base))
    fig = _plot_init_bars(table, base.task, figures / "recipes.png", what="recipe")
    return _Summary(table, columns, intro, {"recipes": fig})


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items()) or "(shared options)"


def _summarise_fraction(ctx: _Context) -> _Summary:
    cfg, base, plans, rows, figures, folds, say = ctx
    table = [{"model": f"{r['init']} @ {r['fraction']:g}", "init": r["init"], "fraction": r["fraction"],
              "n_train": r["n_train"], **{k: r[k] for k, _, _ in _metric_columns(base.task)}} for r in rows]
    columns = [("model", "Init @ fraction", "text"), ("init", "Init", "text"),
               ("fraction", "Train fraction", "number"), ("n_train", "Train samples", "count"),
               *_metric_columns(base.task)]
    intro = ("Test metrics per init and fraction of fold 0's train groups (per class, seeded, nested); val "
             "and test parts unchanged. " + _protocol(cfg, base))
    fig = _plot_lines({lab: [(r["fraction"], r) for r in rows if r["init"] == lab]
                       for lab in dict.fromkeys(r["init"] for r in rows)},
                      _metric_columns(base.task), "fraction of train groups", "Test metric vs train fraction",
                      figures / "fraction.png")
    return _Summary(table, columns, intro, {"fraction": fig})


def _summarise_convergence(ctx: _Context) -> _Summary:
    cfg, base, plans, rows, figures, folds, say = ctx
    val_key = _VAL_METRIC[base.task]
    primary, primary_header, _ = _TASK_METRICS[base.task][0]
    curves: dict[str, list[dict[str, float]]] = {}
    table = []
    for plan, r in zip(plans, rows, strict=True):
        curve = read_epoch_log(plan.run_dir)
        curves[plan.label] = curve
        vals = [(c["epoch"], c[val_key]) for c in curve if val_key in c]
        losses = [c["val_loss"] for c in curve if "val_loss" in c]
        best = max(vals, key=lambda v: v[1]) if vals else (None, None)
        table.append({"model": plan.label, "epochs": len(curve), "final_val": vals[-1][1] if vals else None,
                      "best_val": best[1], "best_epoch": best[0],
                      "final_val_loss": losses[-1] if losses else None,
                      "min_val_loss": min(losses) if losses else None, primary: r[primary]})
    columns = [("model", "Init", "text"), ("epochs", "Epochs", "count"),
               ("final_val", f"Final {val_key}", "ratio"), ("best_val", f"Best {val_key}", "ratio"),
               ("best_epoch", "Epoch of best", "count"), ("final_val_loss", "Final val_loss", "number"),
               ("min_val_loss", "Min val_loss", "number"), (primary, f"Test {primary_header}", "ratio")]
    intro = (f"Validation {val_key} and val_loss per epoch (logs/metrics.csv) of one run per init on fold 0; "
             "the test metric is that of the checkpoint chosen by val_loss. " + _protocol(cfg, base))
    curve_rows = [{"init": lab, **c} for lab, cs in curves.items() for c in cs]
    curves_csv = figures.parent / "convergence-curves.csv"
    _write_csv(curves_csv, curve_rows)
    fig = _plot_curves(curves, val_key, figures / "convergence.png")
    return _Summary(table, columns, intro, {"convergence": fig},
                    extra_md=f"\nPer-epoch values: {curves_csv.name}\n")


def _summarise_sensitivity(ctx: _Context) -> _Summary:
    cfg, base, plans, rows, figures, folds, say = ctx
    primary, header, _ = _TASK_METRICS[base.task][0]
    table = []
    for lab in dict.fromkeys(r["init"] for r in rows):
        mine = [r for r in rows if r["init"] == lab]
        vals = [r[primary] for r in mine if r[primary] is not None]
        # The "best" cell is chosen on val, and reported with its test metric: test chooses nothing.
        scored = [r for r in mine if r[f"val_{primary}"] is not None]
        best = max(scored, key=lambda r: r[f"val_{primary}"]) if scored else None
        table.append({"model": lab, "spread": max(vals) - min(vals) if vals else None,
                      "min": min(vals) if vals else None, "max": max(vals) if vals else None,
                      "mean": sum(vals) / len(vals) if vals else None, "n_cells": len(mine),
                      "val_best": f"bs {best['batch_size']}, lr {best['lr']:g}" if best else None,
                      "val_best_test": best[primary] if best else None})
    columns = [("model", "Init", "text"), ("spread", f"Spread (max − min) of test {header}", "ratio"),
               ("min", "Min", "ratio"), ("max", "Max", "ratio"), ("mean", "Mean", "ratio"),
               ("n_cells", "Cells", "count"), ("val_best", "Best on val", "text"),
               ("val_best_test", f"Its test {header}", "ratio")]
    grid = [{"model": f"{r['init']}, bs {r['batch_size']}, lr {r['lr']:g}", "init": r["init"],
             "batch_size": r["batch_size"], "lr": r["lr"],
             **{k: r[k] for k, _, _ in _metric_columns(base.task)}} for r in rows]
    grid_columns = [("model", "Run", "text"), ("init", "Init", "text"), ("batch_size", "Batch size", "count"),
                    ("lr", "lr", "number"), *_metric_columns(base.task)]
    intro = (f"Test {header} over the grid batch size {cfg.batch_sizes} × learning rate "
             f"{[float(f'{v:g}') for v in cfg.lrs]} on fold 0, per init; the spread (max − min) says how "
             "much the result depends on these two settings. " + _protocol(cfg, base))
    fig = _plot_heatmaps(rows, cfg.batch_sizes, cfg.lrs, primary, header, figures / "sensitivity.png")
    return _Summary(table, columns, intro, {"sensitivity": fig},
                    extra_tables=[("Grid", grid, grid_columns)])


def _summarise_features(ctx: _Context) -> _Summary:
    cfg, base, plans, rows, figures, folds, say = ctx
    import numpy as np

    from flawscope.data.cache import DecodeCache
    from flawscope.data.splits import is_defective, load_split
    from flawscope.models.checkpoint import build_model, load_model_from_checkpoint
    from flawscope.models.pretrained import parse_init
    from flawscope.training.run import load_index, torch_threads

    cache = DecodeCache(disk_dir=base.cache_dir)
    index = load_index(base, cache)
    split = load_split(index, folds[0][1])
    flags = [is_defective(index.samples[i], index.defective_classes) for i in split.test]
    samples = [index.samples[i] for i, f in zip(split.test, flags, strict=True) if f is not None]
    y = np.array([int(f) for f in flags if f is not None])
    groups = np.array([s.group for s in samples])

    embeddings: list[tuple[str, str, bool, FlawModel]] = []
    for plan in plans:
        trained = load_model_from_checkpoint(RunFolder(plan.run_dir).model_file)
        embeddings.append((f"{plan.label} (fine-tuned)", plan.init, True, trained))
    config = embeddings[0][3].config
    for plan in plans:
        if parse_init(plan.init)[0] != "random":
            embeddings.append((f"{plan.label} (not fine-tuned)", plan.init, False,
                               _pretrained_model(config, plan.cfg.init, cfg.seed)))
    import torch

    torch.manual_seed(cfg.seed)  # the untrained baseline's weights follow the study seed
    embeddings.append(("random (untrained)", "random", False, build_model(config).eval()))

    table, out_rows, points = [], [], {}
    feature_dir = figures.parent / "features"
    feature_dir.mkdir(exist_ok=True)
    with torch_threads(base.threads):
        for name, init, tuned, model in embeddings:
            say(f"features: {name}")
            feats = embed_samples(model, samples, cache, batch_size=base.batch_size)
            acc, bacc = linear_probe(feats, y, groups, cfg.folds, cfg.seed)
            xy = tsne_2d(feats, cfg.seed)
            points[name] = (xy, float(np.mean(acc)))
            np.savez_compressed(feature_dir / f"{_slug(name)}.npz", features=feats, defective=y,
                                groups=groups, tsne=xy)
            table.append({"model": name, "init": init, "fine_tuned": "yes" if tuned else "no",
                          "probe_accuracy": acc, "probe_balanced_accuracy": bacc, "n": len(y),
                          "dim": int(feats.shape[1])})
            out_rows.append({"embedding": name, "init_value": init, "fine_tuned": tuned, "n": len(y),
                             "n_defective": int(y.sum()), "dim": int(feats.shape[1]), "probe_folds": len(acc),
                             "probe_accuracy": float(np.mean(acc)), "probe_accuracy_std": _std(acc),
                             "probe_balanced_accuracy": float(np.mean(bacc)),
                             "probe_balanced_accuracy_std": _std(bacc)})
    columns = [("model", "Embedding", "text"), ("init", "--init", "text"),
               ("fine_tuned", "Fine-tuned", "text"),
               ("probe_accuracy", "Probe accuracy", "ratio"),
               ("probe_balanced_accuracy", "Probe balanced accuracy", "ratio"),
               ("n", "Test samples", "count"), ("dim", "Dim", "count")]
    n_folds = len(table[0]["probe_accuracy"])
    intro = (f"Pooled backbone features of fold 0's {len(y)} test samples ({int(y.sum())} defective), each "
             f"as one patch of the model's input size. Linear probe: standardised logistic regression "
             f"(C = 1, not tuned), accuracy mean ± std over {n_folds} group-aware folds of those samples. "
             f"t-SNE seeded with {cfg.seed}. " + _protocol(cfg, base))
    fig = _plot_tsne(points, y, figures / "features_tsne.png")
    return _Summary(table, columns, intro, {"features_tsne": fig}, run_rows=out_rows)


def _std(values: Sequence[float]) -> float | None:
    from flawscope.evaluation.metrics import mean_std

    _, std, n = mean_std(list(values))
    return std if n > 1 else None


def _pretrained_model(config: Any, init: str, seed: int) -> FlawModel:
    """The trained model's architecture with its backbone as the init left it: pre-trained, not fine-tuned."""
    import torch

    from flawscope.models.pretrained import init_to_pretrained
    from flawscope.models.registry import create_model

    torch.manual_seed(seed)
    kwargs = dict(config.build_kwargs)
    kwargs.update(num_classes=len(config.class_names), in_chans=config.preprocess.in_chans,
                  preprocess=config.preprocess, class_names=tuple(config.class_names),
                  pretrained=init_to_pretrained(init))
    model = create_model(config.name, **kwargs)
    model.config = config
    return model.eval()


# -- features, probe, t-SNE ---------------------------------------------------------------------------------
def embed_samples(model: FlawModel, samples: Sequence[Sample], cache: Any = None, batch_size: int = 32
                  ) -> np.ndarray:
    """Pooled features (N, D) of samples, each decoded (its crop) and seen as the Predictor sees it."""
    from flawscope.inference.predictor import ImageItem, Predictor

    predictor = Predictor(model, batch_size=batch_size)
    return predictor.embed_many(ImageItem(predictor.preprocessor.load_sample(s, cache)[0], path=str(s.image))
                                for s in samples)


def linear_probe(features: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5, seed: int = 0
                 ) -> tuple[list[float], list[float]]:
    """Accuracy and balanced accuracy of a logistic regression on held-out groups, one value per fold.

    Standardised features, C = 1 (nothing is tuned, so no fold is used to choose anything); the folds are
    `StratifiedGroupKFold` with at most as many folds as the rarer class has groups.

    Raises:
        DatasetError: fewer than two groups of each class.
    """
    import warnings

    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    per_class = [len(set(groups[y == c])) for c in (0, 1)]
    k = min(folds, *per_class)
    if k < 2:
        raise DatasetError(f"the linear probe needs at least 2 groups of each class among the test samples, "
                           f"got {per_class[0]} ok and {per_class[1]} defective; use fewer --folds (a larger "
                           "test part) or more data")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    acc, bacc = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only N members"
        for tr, te in splitter.split(features, y, groups):
            if len(np.unique(y[tr])) < 2:
                continue  # a fold whose train side lost a class cannot fit a probe; it says nothing
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
            clf.fit(features[tr], y[tr])
            pred = clf.predict(features[te])
            acc.append(float(accuracy_score(y[te], pred)))
            bacc.append(float(balanced_accuracy_score(y[te], pred)) if len(np.unique(y[te])) == 2
                        else float(accuracy_score(y[te], pred)))
    if not acc:
        raise DatasetError("no probe fold had both classes to train on; use fewer --folds or more data")
    return acc, bacc


def tsne_2d(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded 2-D t-SNE of features (perplexity 30, or less for few samples)."""
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 4:
        raise DatasetError(f"t-SNE needs at least 4 samples, got {n}")
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


# -- figures ------------------------------------------------------------------------------------------------
def _figure(size: tuple[float, float]) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100, layout="constrained")  # Agg canvas, no pyplot state


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


def _plot_init_bars(table: list[dict[str, Any]], task: str, path: Path, what: str = "init") -> Path:
    import numpy as np

    from flawscope.evaluation.metrics import mean_std

    labels = list(dict.fromkeys(r["model"] for r in table))
    cols = _metric_columns(task)
    fig = _figure((max(4.8, 1.6 + 0.6 * len(labels) * len(cols)), 3.8))
    ax = fig.add_subplot()
    width = 0.8 / len(cols)
    for j, (key, header, _) in enumerate(cols):
        stats = [mean_std([r[key] for r in table if r["model"] == lab and r[key] is not None])
                 for lab in labels]
        x = np.arange(len(labels)) + (j - (len(cols) - 1) / 2) * width
        ax.bar(x, [m for m, _, _ in stats], width, yerr=[s if n > 1 else 0 for _, s, n in stats], capsize=3,
               label=header)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=15)
    ax.set(ylim=(0, 1.05), ylabel="test metric", title=f"Test metric per {what}\n(mean ± std over folds)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _plot_lines(series: dict[str, list[tuple[float, dict[str, Any]]]], cols: list[tuple[str, str, str]],
                xlabel: str, title: str, path: Path) -> Path:
    fig = _figure((4.2 * len(cols), 3.8))
    for j, (key, header, _) in enumerate(cols):
        ax = fig.add_subplot(1, len(cols), j + 1)
        for label, points in series.items():
            pts = sorted((x, r[key]) for x, r in points if r[key] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax.set(xlabel=xlabel, ylabel=f"test {header}", ylim=(0, 1.05), title=header)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)


def _plot_curves(curves: dict[str, list[dict[str, float]]], val_key: str, path: Path) -> Path:
    from matplotlib.ticker import MaxNLocator

    fig = _figure((9.0, 3.8))
    for j, key in enumerate((val_key, "val_loss")):
        ax = fig.add_subplot(1, 2, j + 1)
        for label, curve in curves.items():
            pts = [(c["epoch"], c[key]) for c in curve if key in c]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", markersize=3, label=label)
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} per epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_heatmaps(rows: list[dict[str, Any]], batch_sizes: Sequence[int], lrs: Sequence[float], key: str,
                   header: str, path: Path) -> Path:
    import numpy as np

    labels = list(dict.fromkeys(r["init"] for r in rows))
    grids = {}
    for lab in labels:
        grid = np.full((len(batch_sizes), len(lrs)), np.nan)
        for r in rows:
            if r["init"] == lab and r[key] is not None:
                grid[list(batch_sizes).index(r["batch_size"]), list(lrs).index(r["lr"])] = r[key]
        grids[lab] = grid
    values = np.concatenate([g.ravel() for g in grids.values()])
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    fig = _figure((0.6 + (1.0 + 0.9 * len(lrs)) * len(labels), 1.4 + 0.6 * len(batch_sizes)))
    axes = [fig.add_subplot(1, len(labels), j + 1) for j in range(len(labels))]
    image = None
    for ax, lab in zip(axes, labels, strict=True):
        grid = grids[lab]
        image = ax.imshow(grid, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-6, cmap="viridis",
                          aspect="auto")
        for (i, j), v in np.ndenumerate(grid):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.3f}", ha="center", va="center", fontsize=8,
                        color="white" if v < (vmin + vmax) / 2 else "black")
        spread = np.nanmax(grid) - np.nanmin(grid) if np.isfinite(grid).any() else float("nan")
        ax.set_xticks(range(len(lrs)), [f"{v:g}" for v in lrs])
        ax.set_yticks(range(len(batch_sizes)), [str(b) for b in batch_sizes])
        ax.set(xlabel="learning rate", ylabel="batch size", title=f"{lab}\nspread {spread:.3f}")
    if image is not None:
        fig.colorbar(image, ax=axes, label=f"test {header}")
    return _save(fig, path)


def _plot_tsne(points: dict[str, tuple[np.ndarray, float]], y: np.ndarray, path: Path) -> Path:
    n = len(points)
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = _figure((3.6 * cols, 3.4 * rows))
    for j, (name, (xy, acc)) in enumerate(points.items()):
        ax = fig.add_subplot(rows, cols, j + 1)
        for flag, color, label in ((0, "C0", "ok"), (1, "C3", "defective")):
            ax.scatter(xy[y == flag, 0], xy[y == flag, 1], s=12, c=color, label=label, alpha=0.8)
        ax.set(title=f"{name}\nprobe accuracy {acc:.3f}", xticks=[], yticks=[])
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7)
    return _save(fig, path)


# -- output files -------------------------------------------------------------------------------------------
def _write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows([{k: "" if r.get(k) is None else r.get(k) for k in keys} for r in rows])
    return path


def _display(records: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> list[dict[str, str]]:
    """Records of `benchmark_table` as the report shows them: header -> "mean ± std"."""
    out = []
    for r in records:
        row = {}
        for key, header, kind in columns:
            value, std = r.get(key), r.get(f"{key}_std")
            if value is None:
                row[header] = "–"
            elif isinstance(value, str):
                row[header] = value
            elif kind == "count":
                row[header] = f"{value:.0f}" if std is None or r.get("n_runs", 1) < 2 else f"{value:.1f}"
            else:
                text = f"{value:.4f}" if kind == "ratio" else f"{value:.4g}"
                row[header] = text + (f" ± {std:.4f}" if std is not None and r.get("n_runs", 1) > 1
                                      and kind == "ratio" else "")
        out.append(row)
    return out


def _write_outputs(cfg: StudyConfig, base: TrainConfig, summary: _Summary, rows: list[dict[str, Any]],
                   out: Path) -> StudyResult:
    from flawscope.evaluation.report import Report
    from flawscope.evaluation.table import benchmark_table

    kind = cfg.kind
    md, csv_text, json_text = benchmark_table(summary.rows, summary.columns)
    extra = summary.extra_md
    extra_records = []
    for title, trows, tcols in summary.extra_tables:
        tmd, _, tjson = benchmark_table(trows, tcols)
        extra += f"\n## {title}\n\n{tmd}"
        extra_records.append((title, json.loads(tjson), tcols))
    tables = {"md": out / f"{kind}.md", "csv": out / f"{kind}.csv", "json": out / f"{kind}.json",
              "runs": out / f"{kind}-runs.csv"}
    tables["md"].write_text(f"# Study: {kind}\n\n{summary.intro}\n\n{md}{extra}")
    tables["csv"].write_text(csv_text)
    tables["json"].write_text(json_text)
    _write_csv(tables["runs"], rows)
    records = json.loads(json_text)

    section = Report(f"study {kind}")
    section.add_text(summary.intro, title=f"Study: {kind}")
    section.add_metrics_table(f"{kind}: table", _display(records, summary.columns),
                              columns=[h for _, h, _ in summary.columns])
    for title, recs, tcols in extra_records:
        section.add_metrics_table(f"{kind}: {title.lower()}", _display(recs, tcols),
                                  columns=[h for _, h, _ in tcols])
    for name, path in summary.figures.items():
        section.add_image(f"{kind}: {_FIGURE_TITLES.get(name, name.replace('_', ' '))}", path,
                          caption=path.name)
    sections_dir = out / "report-sections"
    sections_dir.mkdir(exist_ok=True)
    (sections_dir / f"{kind}.html").write_text("\n".join(section.sections), encoding="utf-8")
    report = Report("flawscope study", subtitle=f"{out}: the studies of seed 001 run in this folder")
    for k in KINDS:  # every kind run here so far, in a fixed order
        part = sections_dir / f"{k}.html"
        if part.is_file():
            report.sections.append(part.read_text(encoding="utf-8"))
    report_path = report.save(out / "report.html")
    return StudyResult(kind, out, rows, records, tables, dict(summary.figures), report_path)

