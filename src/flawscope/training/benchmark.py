"""Train and evaluate several models over k folds or seeds: the SA-BCNN paper's Table III.

Every model trains with the same `TrainConfig` (only `model`, `task`, `seed` and the data of the fold
change). Layout of the output folder:

    runs/<model>/<fold0|seed0>/   a normal run folder (train), plus eval-test/predictions.csv
    folds/fold<i>/split.csv       the fold's train/val/test parts (k-fold only)
    runs.csv                      one row per run: test metrics (at the threshold chosen on that run's val)
    table.md / table.csv / table.json   Table III: mean ± std over folds/seeds, Params, FLOPs, latency
    pr_curves.png, miss_false_alarm_curves.png   test predictions pooled over folds/seeds, one line per model
    benchmark.yaml                the resolved options

K-fold: folds come from `flawscope.data.splits.kfold_splits` (by group, stratified); each is saved as a split
file and trained with `TrainConfig.split_file`, on the dataset itself.

Cost (Params, FLOPs, latency) does not depend on the fold, so it is measured once per model, on its first
run's model.pt, and stored in that model's first row only (the table then shows it without a spread).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flawscope.errors import ConfigError
from flawscope.inference.runfolder import RunFolder
from flawscope.training.config import TrainConfig

# Table III plus two threshold-free / balanced summaries the paper's readers ask for.
EXTRA_COLUMNS: tuple[tuple[str, str, str], ...] = (("f1", "F1", "ratio"), ("roc_auc", "ROC AUC", "ratio"))
_METRICS = ("TP", "TN", "FP", "FN", "precision", "recall", "accuracy", "miss_rate", "false_alarm_rate",
            "f1", "roc_auc", "average_precision", "n", "threshold")


@dataclass
class BenchmarkResult:
    """What `run_benchmark` produced.

    Attributes:
        out_dir: the benchmark folder.
        rows: one dict per run (model, run, test metrics; cost in each model's first row).
        tables: {"md", "csv", "json"} paths of the table files.
        curves: {"pr", "miss_false_alarm"} plot paths (missing when no model has both classes in test).
        run_dirs: every run folder, in training order.
        reused: run folders found finished and not trained again.
    """

    out_dir: Path
    rows: list[dict[str, Any]]
    tables: dict[str, Path]
    curves: dict[str, Path] = field(default_factory=dict)
    run_dirs: list[Path] = field(default_factory=list)
    reused: list[Path] = field(default_factory=list)


def _check_models(models: Sequence[str]) -> list[tuple[str, str]]:
    """(name, task) per model; every name checked before anything trains."""
    from flawscope.models.registry import get_model_entry

    if not models:
        raise ConfigError("no model given; pass e.g. --models resnet18,bcnn,sa_bcnn")
    dupes = sorted({m for m in models if list(models).count(m) > 1})
    if dupes:
        raise ConfigError(f"model(s) {dupes} are listed twice; name each model once")
    return [(m, get_model_entry(m).task) for m in models]


def write_fold_splits(cfg: TrainConfig, k: int, out: Path) -> list[tuple[str, str]]:
    """Write one split file per fold, `out/folds/fold<i>/split.csv`; returns (fold label, split path)."""
    from flawscope.data.splits import check_split, kfold_splits, save_split
    from flawscope.training.run import load_index

    index = load_index(cfg)  # the dataset exactly as each fold's run will load it
    splits = kfold_splits(index, k, seed=cfg.seed, by_group=cfg.by_group, val_fraction=cfg.val_fraction)
    folds = []
    for i, split in enumerate(splits):
        check_split(index, split, by_group=cfg.by_group)
        path = out / "folds" / f"fold{i}" / "split.csv"
        save_split(index, split, path)
        folds.append((f"fold{i}", str(path)))
    return folds


def check_same_options(run_dir: Path, planned: TrainConfig, what: str = "benchmark") -> None:
    """Refuse to reuse a finished run trained with other options than the planned ones.

    `what` names the caller in the error ("benchmark", "study").
    """
    found = TrainConfig.from_yaml(RunFolder(run_dir).config_file).to_dict()
    want = planned.to_dict()
    if want["loss"] is None:  # the run stores the default loss it resolved
        want["loss"] = found["loss"]
    diff = [k for k in want if k != "resume" and want[k] != found.get(k)]
    if diff:
        k = diff[0]
        raise ConfigError(
            f"run folder {run_dir} was trained with {k}={found.get(k)!r}, but this {what} asks for "
            f"{k}={want[k]!r} ({len(diff)} option(s) differ); pass another --out or delete that run"
        )


def run_test_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """The defect-vs-ok test numbers of a run's metrics.json (Table III's, plus F1, ROC AUC, threshold)."""
    test = metrics.get("test") or {}
    binary = test.get("defect", test)  # multi-class metrics nest their defect-vs-ok numbers
    return {k: binary.get(k) for k in _METRICS}


def train_or_reuse(run_cfg: TrainConfig, progress: bool = False, what: str = "benchmark",
                   resume_unfinished: bool = False, log: Callable[[str], None] | None = None) -> bool:
    """Train one planned run, or reuse it when its folder holds a finished run with the same options.

    Args:
        run_cfg: the run's options; its folder is `run_cfg.out / run_cfg.name`.
        progress: show the training progress bar.
        what: the caller, named in errors ("benchmark", "study").
        resume_unfinished: an unfinished run with the same options continues from its last.ckpt (or, when
            it was stopped before its first checkpoint, is trained again from the start); False refuses it.
        log: receives "reused" / "training" / "resuming" lines.

    Returns:
        True when a finished run was reused (nothing trained).

    Raises:
        ConfigError: the folder holds a run with other options, or an unfinished run (resume_unfinished
            False).
    """
    import shutil

    from flawscope.training.run import train

    say = log or (lambda _msg: None)
    run_dir = Path(run_cfg.out) / str(run_cfg.name)
    run = RunFolder(run_dir)
    if run.is_finished():
        check_same_options(run_dir, run_cfg, what)
        say("finished run found, reused")
        return True
    if run_dir.exists() and any(run_dir.iterdir()):
        if not resume_unfinished:
            raise ConfigError(f"run folder {run_dir} holds an unfinished run; delete it to train it again")
        if run.is_run():
            check_same_options(run_dir, run_cfg, what)
        if run.is_run() and run.last_checkpoint.is_file():
            say(f"unfinished run found, resuming from {run.last_checkpoint}")
            log_file = run.logs_dir / "metrics.csv"
            if log_file.is_file():  # Lightning's CSV logger starts the file anew on resume: keep the old one
                n = len(list(run.logs_dir.glob("metrics-before-resume-*.csv")))
                shutil.copyfile(log_file, run.logs_dir / f"metrics-before-resume-{n}.csv")
            train(run_cfg.replace(resume=str(run.last_checkpoint)), progress=progress)
            return False
        # Stopped before its first checkpoint: nothing to keep but its config, split and empty logs.
        say("unfinished run without a checkpoint found, training it again")
        shutil.rmtree(run_dir)
    else:
        say("training")
    train(run_cfg, progress=progress)
    return False


def _cost(run_dir: Path, batch_sizes: Sequence[int], iters: int, threads: int | None) -> dict[str, Any]:
    """Params, FLOPs and ms per image on CPU (and CUDA when present) at each batch size."""
    import torch

    from flawscope.evaluation.cost import model_cost
    from flawscope.models.checkpoint import load_model_from_checkpoint

    model = load_model_from_checkpoint(RunFolder(run_dir).model_file)
    pre = model.config.preprocess
    shape = (pre.in_chans, *pre.input_size)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    row: dict[str, Any] = {}
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        costs = {dev: model_cost(model, shape, batch_sizes, device=dev, iters=iters) for dev in devices}
    finally:
        torch.set_num_threads(before)
    for dev, cost in costs.items():
        row.update(params=cost["params"], flops=cost["flops"])
        prefix = "cpu" if dev == "cpu" else "gpu"
        for j, bs in enumerate(batch_sizes):
            key = f"{prefix}_ms" if j == 0 else f"{prefix}_ms_b{bs}"
            row[key] = cost["latency"][int(bs)]["ms_per_image"]
        if dev == "cpu":
            row["cpu_threads"] = cost["latency"][int(batch_sizes[0])]["threads"]
    return row


def _plot_curves(pooled: dict[str, tuple[list[int], list[float]]], out: Path) -> dict[str, Path]:
    """PR and miss-rate vs false-alarm-rate curves of every model on one plot each."""
    import numpy as np
    from matplotlib.figure import Figure

    from flawscope.evaluation.curves import miss_false_alarm_curve, pr_curve

    usable = {m: (np.asarray(y), np.asarray(s)) for m, (y, s) in pooled.items() if len(set(y)) == 2}
    if not usable:
        return {}
    paths = {}
    for key, title, xlabel, ylabel in (
        ("pr", "Precision-recall (test, pooled)", "recall", "precision"),
        ("miss_false_alarm", "Miss rate vs false alarm rate (test, pooled)", "false alarm rate FP/(TP+FP)",
         "miss rate FN/(FN+TP)"),
    ):
        fig = Figure(figsize=(5.5, 4.5), dpi=100, layout="constrained")  # Agg canvas, no pyplot state
        ax = fig.add_subplot()
        for model, (y, s) in usable.items():
            if key == "pr":
                c = pr_curve(y, s)
                ax.plot(c["recall"], c["precision"], label=model, drawstyle="steps-post")
            else:
                c = miss_false_alarm_curve(y, s)
                ax.plot(c["false_alarm_rate"], c["miss_rate"], label=model)
        ax.set(xlabel=xlabel, ylabel=ylabel, title=title, xlim=(0, 1.02), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        paths[key] = out / f"{key}_curves.png"
        fig.savefig(paths[key], format="png")
    return paths


def run_benchmark(
    data: str | Path,
    models: Sequence[str],
    out: str | Path = "benchmark",
    folds: int | None = None,
    seeds: Sequence[int] | None = None,
    base: TrainConfig | None = None,
    latency_batch_sizes: Sequence[int] = (1, 32),
    latency_iters: int = 10,
    latency_threads: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> BenchmarkResult:
    """Train every model on every fold (or seed), evaluate on test, and write Table III and curves.

    Args:
        data: dataset folder or manifest.
        models: registry names, e.g. ["vgg16", "xception", "resnet18", "resnet34", "bcnn", "sa_bcnn_cbam",
            "sa_bcnn"].
        out: benchmark folder.
        folds: k for group k-fold cross-validation (each sample tested once); exclusive with seeds.
        seeds: seeds of repeated runs (each seeds the split, sampling and initialisation); default (0,).
        base: the shared training options (epochs, input_size, lr, ok_classes, ...); data, model, task, seed,
            out and name are set per run.
        latency_batch_sizes: batch sizes timed; the first gives the table's CPU/GPU ms per image.
        latency_iters: timed forward passes per batch size.
        latency_threads: CPU threads for the latency measurement (torch.set_num_threads); None = torch's
            default. On a shared machine, fewer threads than cores avoids OpenMP spin-wait stalls.
        progress: show training progress bars.
        log: receives one line per step (the CLI prints them).

    Returns:
        The BenchmarkResult. Finished run folders (metrics.json and model.pt present) are reused, so an
        interrupted benchmark continues where it stopped.

    Raises:
        ConfigError: unknown models, both or bad folds/seeds, a half-written run folder in the way.
    """

    import yaml

    from flawscope.evaluation.evaluate import evaluate
    from flawscope.evaluation.table import TABLE_III_COLUMNS, benchmark_table

    say = log or (lambda _msg: None)
    if folds is not None and seeds is not None:
        raise ConfigError("pass either --folds K or --seeds S1,S2,..., not both")
    if folds is not None and folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    seeds = list(seeds) if seeds is not None else ([] if folds is not None else [0])
    if folds is None and (not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0):
        raise ConfigError(f"seeds {seeds} must be distinct non-negative integers, e.g. 0,1,2")
    if not latency_batch_sizes or min(latency_batch_sizes) < 1 or latency_iters < 1:
        raise ConfigError(f"latency batch sizes {list(latency_batch_sizes)} and iters {latency_iters} "
                          "must be >= 1")
    if latency_threads is not None and latency_threads < 1:
        raise ConfigError(f"latency threads must be >= 1, got {latency_threads}")
    entries = _check_models(models)
    cfg = (base or TrainConfig()).replace(data=str(data))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmark.yaml").write_text(yaml.safe_dump({
        "models": list(models), "folds": folds, "seeds": seeds or None,
        "latency_batch_sizes": list(latency_batch_sizes), "latency_iters": latency_iters,
        "latency_threads": latency_threads,
        "train": cfg.to_dict(),
    }, sort_keys=False))

    if folds is not None:
        say(f"writing {folds} group folds of {data}")
        plans = [(label, {"split_file": path}) for label, path in write_fold_splits(cfg, folds, out_dir)]
    else:
        plans = [(f"seed{s}", {"seed": s}) for s in seeds]

    rows: list[dict[str, Any]] = []
    run_dirs, reused = [], []
    pooled: dict[str, tuple[list[int], list[float]]] = {}
    for model, task in entries:
        for j, (label, changes) in enumerate(plans):
            run_dir = out_dir / "runs" / model / label
            run_cfg = cfg.replace(model=model, task=task, out=str(run_dir.parent), name=label, **changes)
            if train_or_reuse(run_cfg, progress, log=lambda msg, m=model, lb=label: say(f"{m} {lb}: {msg}")):
                reused.append(run_dir)
            run_dirs.append(run_dir)
            metrics = RunFolder(run_dir).read_metrics()
            ev = evaluate(run_dir, split="test", out=run_dir / "eval-test", write_report=False,
                          ok_classes=run_cfg.ok_classes or None)
            ys, ss = pooled.setdefault(model, ([], []))
            with ev.predictions_path.open(newline="") as f:
                for r in csv.DictReader(f):
                    if r["defective"] != "":
                        ys.append(int(r["defective"]))
                        ss.append(float(r["score"]))
            row = {"model": model, "run": label, **run_test_metrics(metrics)}
            if j == 0:
                say(f"{model}: measuring Params, FLOPs and latency")
                row.update(_cost(run_dir, latency_batch_sizes, latency_iters, latency_threads))
            rows.append(row)

    extra_ms = [(f"{dev}_ms_b{bs}", f"{dev.upper()} ms/img @{bs}", "ms")
                for dev in ("cpu", "gpu") for bs in latency_batch_sizes[1:]]
    columns = [*TABLE_III_COLUMNS, *EXTRA_COLUMNS, *extra_ms]
    md, csv_text, json_text = benchmark_table(rows, columns)
    protocol = (f"{folds}-fold group cross-validation" if folds is not None
                else f"{len(seeds)} seed(s) {', '.join(map(str, seeds))}")
    bs0 = latency_batch_sizes[0]
    header = (f"Test metrics as mean ± std over {protocol}; threshold chosen on each run's val split. "
              f"Params/FLOPs (2×MACs) per image at {cfg.input_size[0]}×{cfg.input_size[1]}; CPU/GPU ms per "
              f"image at batch {bs0}, measured once per model.\n\n")
    tables = {"md": out_dir / "table.md", "csv": out_dir / "table.csv", "json": out_dir / "table.json"}
    tables["md"].write_text(header + md)
    tables["csv"].write_text(csv_text)
    tables["json"].write_text(json_text)
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with (out_dir / "runs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    curves = _plot_curves(pooled, out_dir)
    say(f"table written to {tables['md']}")
    return BenchmarkResult(out_dir, rows, tables, curves, run_dirs, reused)
