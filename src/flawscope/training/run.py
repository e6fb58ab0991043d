"""`train(cfg)`: one training run from a dataset folder to a run folder (the same from the CLI and Python).

Run folder `<out>/<name>/`: config.yaml (resolved), split.csv, checkpoints/ (best + last), logs/ (CSV and
TensorBoard), metrics.json (val and test), report.html, model.pt (weights + ModelConfig with the threshold
chosen on val) and skipped.csv when files were skipped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flawscope.errors import ConfigError, DatasetError
from flawscope.training.config import TrainConfig

if TYPE_CHECKING:
    from flawscope.data.cache import DecodeCache
    from flawscope.data.sample import DatasetIndex
    from flawscope.data.splits import Split
    from flawscope.models.base import FlawModel
    from flawscope.training.module import FlawModule

# Children of a multi-process launch re-run the user's script; they read the run name their parent chose.
_RUN_NAME_ENV = "FLAWSCOPE_RUN_NAME"


@dataclass
class RunResult:
    """What a training run produced.

    Attributes:
        run_dir: the run folder.
        metrics: contents of metrics.json ("val", "test", "threshold", ...); empty on non-zero DDP ranks.
        threshold: decision threshold chosen on val (also stored in model.pt's config).
        best_checkpoint: best checkpoint by val_loss.
        model_path: model.pt (plain model + ModelConfig).
        report_path: report.html, or None when it could not be written.
        epochs_trained: epochs completed (including those of a resumed run).
    """

    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: float = math.nan
    best_checkpoint: Path | None = None
    model_path: Path | None = None
    report_path: Path | None = None
    epochs_trained: int = 0


# -- helpers -------------------------------------------------------------------------------------------------
def _is_launch_child() -> bool:
    """True in the extra processes a multi-device launch starts (they must not write run files)."""
    from lightning.pytorch.utilities import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) != 0


def resolve_run_dir(cfg: TrainConfig) -> Path:
    """`<out>/<name>`; a resumed run without a name continues in its checkpoint's run folder."""
    if cfg.name:
        return Path(cfg.out) / cfg.name
    if cfg.resume and Path(cfg.resume).parent.name == "checkpoints":
        return Path(cfg.resume).parent.parent
    name = os.environ.get(_RUN_NAME_ENV) or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.model}"
    return Path(cfg.out) / name


def check_dataset(index: DatasetIndex, task: str) -> None:
    """Refuse, before any training, a dataset a detector cannot learn from."""
    from flawscope.data.splits import is_defective

    flags = [is_defective(s, index.defective_classes) for s in index.samples]
    n_def, n_ok = sum(f is True for f in flags), sum(f is False for f in flags)
    labels = sorted({s.label for s in index.samples if s.label})
    hint = ("add images of the missing kind, name the defect-free classes (--ok-class NAME), or check "
            "--format and the folder layout (`flawscope data summary DIR`)")
    if task == "segment":
        masked = [f for s, f in zip(index.samples, flags, strict=True) if s.has_mask]
        if not masked:
            raise DatasetError(
                f"dataset {index.root} ({index.format} format, {len(index)} samples) has no sample with a "
                "mask, so a segmenter cannot learn; use --task classify, or check that the masks are where "
                "the format expects them and named after their images (`flawscope data formats`)"
            )
        if not any(masked):
            raise DatasetError(
                f"none of the {len(masked)} samples with a mask in dataset {index.root} is defective: their "
                "masks are empty (no defect pixel) or their labels say ok, so a segmenter has nothing to "
                "learn; check the mask files (defect pixels must be 255 or 1, background 0) or use "
                "--task classify"
            )
        if n_def == 0:
            raise DatasetError(f"dataset {index.root} has no defective sample ({len(index)} samples); {hint}")
        return
    if index.is_binary or len(labels) < 2:
        if n_def == 0 or n_ok == 0:
            only = "defective" if n_def else "ok" if n_ok else "unlabelled"
            raise DatasetError(
                f"dataset {index.root} has only one class: {len(index)} samples, {n_def} defective and "
                f"{n_ok} ok (all {only}); a detector needs both; {hint}"
            )
    elif len(labels) < 2:
        raise DatasetError(f"dataset {index.root} holds one class only ({labels}); {hint}")


def check_segmentation_split(index: DatasetIndex, split: Split, cfg: TrainConfig, cache: DecodeCache) -> None:
    """Refuse, before any training, a segmentation split whose images or masks cannot teach a segmenter.

    Patch training (resize off) needs every image (or crop) at least `input_size`. The split's masks are
    decoded once through the run's cache (the data loaders read them from there), so a mask that is not
    binary fails now rather than mid-training, and the train part's masks must mark some defect.
    """
    from flawscope.data.labels import defective_from_mask
    from flawscope.data.patches import image_size

    if not cfg.resize:
        ih, iw = cfg.input_size
        # What a sample shows: its crop, or its whole image (size from the file header).
        sizes = {i: (s.crop[2], s.crop[3]) if s.crop else image_size(s.image)
                 for i in split.train + split.val + split.test for s in [index.samples[i]]}
        small = [i for i, (h, w) in sizes.items() if h < ih or w < iw]
        if small:
            s, (h, w) = index.samples[small[0]], sizes[small[0]]
            fit = (min(h for h, _ in sizes.values()), min(w for _, w in sizes.values()))
            raise DatasetError(
                f"image {s.image}{f' crop {s.crop}' if s.crop else ''} is {h}×{w}, smaller than the "
                f"{ih}×{iw} patches (--input-size) this segmenter is trained on ({len(small)} such images); "
                f"pass --input-size {fit[0]}x{fit[1]} or smaller, use --resize to scale whole images, or "
                "leave the small images out"
            )
    train = [index.samples[i] for i in split.train if index.samples[i].has_mask]
    if not train:
        raise DatasetError(
            f"the train split of dataset {index.root} has no sample with a mask ({len(split.train)} "
            "samples), so a segmenter cannot learn; try another --seed or a split file whose train part "
            "has masks"
        )
    train_has_defect = [defective_from_mask(s, cache) for s in train]
    for i in split.val + split.test:
        defective_from_mask(index.samples[i], cache)  # a bad mask names its file here (ImageReadError, ...)
    if not any(train_has_defect):
        raise DatasetError(
            f"the {len(train)} masks of the train split of dataset {index.root} are all empty (no defect "
            "pixel), so a segmenter has nothing to learn; check the mask files (defect pixels must be 255 or "
            "1, background 0), or use --task classify"
        )


def class_balance(counts: list[int], classes: list[str], defective: frozenset[str], binary: bool
                  ) -> tuple[list[float] | None, float | None]:
    """("balanced") class weights n / (K * n_k) for K classes, or pos_weight n_ok / n_defect for binary."""
    if binary:
        n_def = sum(c for c, name in zip(counts, classes, strict=True) if name in defective)
        n_ok = sum(counts) - n_def
        return None, (n_ok / n_def if n_def and n_ok else None)
    total, k = sum(counts), sum(1 for c in counts if c)
    return [total / (k * c) if c else 0.0 for c in counts], None


def _check_model_task(cfg: TrainConfig) -> None:
    from flawscope.models.registry import get_model_entry, list_models

    entry = get_model_entry(cfg.model)
    if entry.task != cfg.task:
        others = ", ".join(list_models(task=cfg.task))  # type: ignore[arg-type]
        raise ConfigError(f"model {cfg.model!r} is a {entry.task} model but the task is {cfg.task!r}; pass "
                          f"--task {entry.task} or one of the {cfg.task} models: {others or '(none yet)'}")


def _model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(cfg.model_args)
    if cfg.backbone:
        # smp segmenters call their backbone an encoder; one option serves both kinds of model.
        kwargs["encoder" if cfg.task == "segment" else "backbone"] = cfg.backbone
    return kwargs


def check_init(cfg: TrainConfig) -> dict[str, Any]:
    """Refuse, before the dataset scan, an --init backbone of another architecture or input channels."""
    import torch

    from flawscope.models.pretrained import backbone_arch, check_init, parse_init
    from flawscope.models.registry import create_model

    if parse_init(cfg.init)[0] != "checkpoint":
        return {}
    try:
        with torch.device("meta"):  # no weights, no memory: only the architecture is needed
            probe = create_model(cfg.model, num_classes=2, in_chans=cfg.in_chans, **_model_kwargs(cfg))
    except TypeError as err:
        raise ConfigError(f"model {cfg.model!r} cannot be built with these options ({err}); drop "
                          "--backbone or pick a model that takes one (`flawscope models list`)") from None
    return check_init(cfg.init, backbone_arch(probe.config.build_kwargs, cfg.model), cfg.in_chans)


def _create_model(cfg: TrainConfig, index: DatasetIndex) -> FlawModel:
    from flawscope.data.config import IntensityConfig, PreprocessConfig
    from flawscope.models.pretrained import init_to_pretrained
    from flawscope.models.registry import create_model

    preprocess = PreprocessConfig(in_chans=cfg.in_chans, intensity=IntensityConfig.parse(cfg.intensity),
                                  input_size=cfg.input_size, resize=cfg.resize, normalize=cfg.normalize)
    kwargs = _model_kwargs(cfg)
    try:
        model = create_model(
            cfg.model, num_classes=len(index.classes), in_chans=cfg.in_chans,
            pretrained=init_to_pretrained(cfg.init), preprocess=preprocess, class_names=tuple(index.classes),
            # The dataset, not the builder's name heuristics, knows which classes are defective.
            defective_classes=tuple(c for c in index.classes if c in index.defective_classes), **kwargs,
        )
    except TypeError as err:
        # A builder that does not take an option (e.g. --backbone on a fixed-backbone model).
        raise ConfigError(f"model {cfg.model!r} cannot be built with these options ({err}); drop "
                          "--backbone or pick a model that takes one (`flawscope models list`)") from None
    return model


def _write_init(run: Any, cfg: TrainConfig, model: FlawModel, header: dict[str, Any], progress: bool) -> None:
    """init.json: how the backbone started, and which weights were loaded, missing, left over or folded."""
    report = getattr(model, "pretrained_report", None)
    info: dict[str, Any] = {"init": cfg.init, "fine_tuned": True, "frozen_stages": cfg.freeze_stages}
    if header:
        info["checkpoint"] = header
    if report is not None:
        info.update(source=report.source, loaded=report.loaded, missing=report.missing,
                    unexpected=report.unexpected, folded=report.folded, resampled=report.resampled)
        if progress:
            print(f"init {cfg.init}: {report.loaded} backbone tensors loaded, {len(report.missing)} missing "
                  f"(kept random), {len(report.unexpected)} left over (heads), {len(report.folded)} folded "
                  f"RGB->1 channel; details in {run.init_file}")
    run.init_file.write_text(json.dumps(info, indent=2, default=str) + "\n")


def _describe(index: DatasetIndex, positions: list[int]):  # noqa: ANN202 - a small closure
    def describe(indices: list[int]) -> list[str]:
        out = []
        for i in indices:
            s = index.samples[positions[i]]
            out.append(f"#{i} {s.image}" + (f" crop {s.crop}" if s.crop else ""))
        return out

    return describe


def _load_weights(module: FlawModule, checkpoint: Path) -> None:
    import torch

    state = torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)


# -- the run -------------------------------------------------------------------------------------------------
def load_index(cfg: TrainConfig, cache: DecodeCache | None = None) -> DatasetIndex:
    """Load the run's dataset, take defective flags from masks, and check that a detector can learn it.

    `cache`: the run's decode cache, which keeps the masks decoded for the flags.
    """
    from flawscope.data.labels import flags_from_masks
    from flawscope.data.sources import load_dataset

    if not cfg.data:
        raise ConfigError("no dataset given; pass --data DIR (or `data:` in the YAML config)")
    index = load_dataset(cfg.data, format=cfg.format, on_bad_file=cfg.on_bad_file,  # type: ignore[arg-type]
                         ok_classes=cfg.ok_classes or None)
    index = flags_from_masks(index, cache)
    check_dataset(index, cfg.task)
    return index


def _load_extra(cfg: TrainConfig, base: DatasetIndex, cache: DecodeCache) -> DatasetIndex:
    """The `extra_train` dataset, its defective classes those of the run's dataset (one class may do)."""
    from flawscope.data.labels import flags_from_masks
    from flawscope.data.sources import load_dataset

    path = Path(str(cfg.extra_train))
    if not path.exists():
        raise ConfigError(f"extra_train {path} does not exist; pass a dataset folder or manifest .csv")
    extra = load_dataset(path, format="auto", on_bad_file=cfg.on_bad_file,  # type: ignore[arg-type]
                         defective_classes=base.defective_classes)
    return flags_from_masks(extra, cache)


def prepare(cfg: TrainConfig, cache: DecodeCache | None = None) -> tuple[DatasetIndex, Split]:
    """Load and check the dataset, then split it, or read `cfg.split_file` (the steps before any model).

    With `cfg.balance` the train part is undersampled to equal class counts (seeded; val and test stay).
    `cache`: the run's decode cache (masks decoded by the checks stay there for the data loaders).
    """
    from flawscope.data.cache import DecodeCache
    from flawscope.data.splits import (
        balance_indices,
        check_split,
        extend_train,
        join_train_extra,
        load_split,
        make_split,
    )

    cache = cache if cache is not None else DecodeCache()
    index = load_index(cfg, cache)
    base, extra = index, []
    if cfg.extra_train:
        index, extra = join_train_extra(index, _load_extra(cfg, index, cache))
    if cfg.split_file:
        split = load_split(index, cfg.split_file)  # a run's own split.csv lists its extra samples too
    else:
        split = make_split(base, cfg.val_fraction, cfg.test_fraction, cfg.seed, cfg.by_group, stratify=True)
    if cfg.balance:
        method = split.method if split.method.endswith("+balanced") else f"{split.method}+balanced"
        split = replace(split, train=balance_indices(index, split.train, cfg.seed), method=method)
    if extra:
        split, _ = extend_train(index, split, extra)
    check_split(index, split, by_group=cfg.by_group)
    if cfg.task == "segment":
        check_segmentation_split(index, split, cfg, cache)
    return index, split


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with `n` torch intra-op CPU threads (None: as they are); restore the caller's count."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(cfg: TrainConfig, progress: bool = True) -> RunResult:
    """Train, pick the threshold on val, evaluate on test and write the run folder.

    Args:
        cfg: the run's options (see TrainConfig).
        progress: show the rich progress bar and model summary.

    Returns:
        The run's RunResult (metrics, threshold, paths).

    Raises:
        FlawscopeError: bad options, a dataset or split a detector cannot learn from, an incompatible
            checkpoint to resume, or a NaN/inf loss during training.
    """
    with torch_threads(cfg.threads):
        return _train(cfg, progress)


def _train(cfg: TrainConfig, progress: bool) -> RunResult:
    import warnings

    import lightning as L
    import torch

    # Lightning's own use of a torch pytree API deprecated in torch 2.14; nothing a user can act on.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")

    from flawscope.data.cache import DecodeCache
    from flawscope.data.datamodule import FlawDataModule
    from flawscope.data.sample import write_skipped
    from flawscope.data.transforms import AugmentConfig
    from flawscope.evaluation.scoring import has_ok_class, json_safe, score_samples, split_metrics
    from flawscope.evaluation.threshold import choose_threshold
    from flawscope.inference.predictor import Predictor
    from flawscope.inference.runfolder import RunFolder
    from flawscope.models.checkpoint import check_compatible, checkpoint_model_config, save_model
    from flawscope.training.callbacks import build_callbacks, build_loggers
    from flawscope.training.losses import default_loss
    from flawscope.training.module import FlawModule

    cfg.validate()
    run_dir = resolve_run_dir(cfg)
    child = _is_launch_child()
    run = RunFolder(run_dir)
    if not child and not cfg.resume and run.is_run():
        raise ConfigError(f"run folder {run_dir} already holds a run; pass another --name, or --resume "
                          f"{run.last_checkpoint} to continue it")
    if cfg.resume and not Path(cfg.resume).is_file():
        raise ConfigError(f"resume checkpoint {cfg.resume} does not exist; pass a run's checkpoints/*.ckpt")
    if cfg.split_file and not Path(cfg.split_file).is_file():
        raise ConfigError(f"split file {cfg.split_file} does not exist; pass a run's split.csv (or a file "
                          "written by flawscope.data.splits.save_split)")

    _check_model_task(cfg)  # before the (possibly long) dataset scan
    init_header = check_init(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    # One cache for the checks and the loaders: masks the checks decode are decoded once.
    cache = DecodeCache(disk_dir=cfg.cache_dir)
    index, split = prepare(cfg, cache)
    model = _create_model(cfg, index)
    if cfg.resume:
        check_compatible(checkpoint_model_config(cfg.resume), model.config, cfg.resume)
    dm = FlawDataModule(index, split, model.config.preprocess, batch_size=cfg.batch_size,
                        augment=AugmentConfig.preset(cfg.augment), oversample=cfg.oversample,
                        num_workers=cfg.num_workers, seed=cfg.seed, cache=cache)
    class_weights, pos_weight = None, None
    if cfg.class_weights == "balanced":
        binary = model.config.num_outputs == 1 or cfg.task == "segment"
        class_weights, pos_weight = class_balance(
            dm.class_counts, index.classes, index.defective_classes, binary
        )
    loss = cfg.loss or default_loss(cfg.task, len(index.classes))
    module = FlawModule(model, loss=loss, class_weights=class_weights, pos_weight=pos_weight,
                        optimizer=cfg.optimizer, lr=cfg.lr, weight_decay=cfg.weight_decay,
                        freeze_stages=cfg.freeze_stages)
    module.describe_samples = _describe(index, split.train)

    resolved = cfg.replace(name=run_dir.name, out=str(run_dir.parent), loss=loss)
    if not child:
        run_dir.mkdir(parents=True, exist_ok=True)
        resolved.to_yaml(run.config_file)
        from flawscope.data.splits import save_split

        save_split(index, split, run.split_file)
        if index.skipped:
            write_skipped(run.skipped_file, index.skipped)
        _write_init(run, cfg, model, init_header, progress)
        os.environ[_RUN_NAME_ENV] = run_dir.name

    limit = cfg.limit_batches
    on_gpu = torch.cuda.is_available() and cfg.accelerator not in ("cpu", "mps")
    trainer = L.Trainer(
        default_root_dir=run_dir,
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        num_nodes=cfg.num_nodes,
        precision=cfg.precision,  # type: ignore[arg-type]
        # On CUDA a few kernels (e.g. bilinear upsampling backward) have no deterministic version: warn there.
        deterministic="warn" if on_gpu else True,
        # With several GPUs, batch-norm statistics over the global batch, as in one-device training
        # (torch's SyncBatchNorm is GPU-only).
        sync_batchnorm=on_gpu,
        logger=build_loggers(run_dir),
        callbacks=build_callbacks(run_dir, cfg.patience, progress),
        limit_train_batches=limit,
        limit_val_batches=limit,
        log_every_n_steps=1,
        enable_progress_bar=progress,
        enable_model_summary=progress,
    )
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=cfg.resume)
    finally:
        if not child:
            os.environ.pop(_RUN_NAME_ENV, None)
    result = RunResult(run_dir=run_dir, epochs_trained=trainer.current_epoch)
    if not trainer.is_global_zero:
        return result

    ckpt_cb = trainer.checkpoint_callback
    best = Path(ckpt_cb.best_model_path) if ckpt_cb is not None and ckpt_cb.best_model_path else None
    if best is not None and best.is_file():
        _load_weights(module, best)
    device = trainer.strategy.root_device  # Lightning moved the module back to CPU at teardown
    # Val and test are scored as `flawscope evaluate` scores them: each sample at native resolution
    # through the Predictor, so the run's metrics and a later evaluate agree.
    predictor = Predictor(model, device=str(device), batch_size=cfg.batch_size)
    val = score_samples(predictor, [index.samples[i] for i in split.val], cache)
    test = score_samples(predictor, [index.samples[i] for i in split.test], cache)
    module.cpu()

    classes, defective = list(model.config.class_names), tuple(model.config.defective_classes)
    threshold: float | None = None
    if has_ok_class(model.config):
        y, scores = val.labels(), val.scores()
        known = y >= 0
        threshold = choose_threshold(y[known], scores[known], method=cfg.threshold_method,
                                     target=cfg.miss_rate_target)  # type: ignore[arg-type]
        model.config = replace(model.config, threshold=float(threshold))
    predictor = predictor.with_policy(threshold=threshold)
    metrics = {
        "model": cfg.model,
        "task": cfg.task,
        "classes": classes,
        "defective_classes": list(defective),
        "threshold": threshold,
        "threshold_method": cfg.threshold_method if threshold is not None else None,
        "threshold_chosen_on": "val" if threshold is not None else None,
        "split_sizes": split.sizes(),
        "epochs_trained": trainer.current_epoch,
        # The numbers depend on these too: parallel sums split by thread, float kernels chosen by CPU.
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "best_checkpoint": str(best) if best else None,
        "best_val_loss": float(ckpt_cb.best_model_score) if ckpt_cb and ckpt_cb.best_model_score is not None
        else None,
        "val": split_metrics(val, model.config, threshold),
        "test": split_metrics(test, model.config, threshold),
    }
    metrics = json_safe(metrics)
    run.metrics_file.write_text(json.dumps(metrics, indent=2))
    model_path = save_model(model, run.model_file)
    report_path = _write_report(run_dir, test, predictor, metrics["test"], cfg, cache)
    return RunResult(run_dir=run_dir, metrics=metrics,
                     threshold=math.nan if threshold is None else float(threshold), best_checkpoint=best,
                     model_path=model_path, report_path=report_path, epochs_trained=trainer.current_epoch)


def _write_report(run_dir: Path, test: Any, predictor: Any, metrics: dict[str, Any], cfg: TrainConfig,
                  cache: DecodeCache) -> Path:
    """report.html of the test split, written by the same code as `flawscope evaluate`'s."""
    from flawscope.evaluation.scoring import write_split_report

    threshold = predictor.policy.threshold
    info = {"threshold": threshold, "chosen on": f"val ({cfg.threshold_method})" if threshold is not None
            else "no threshold (every class is a defect type)", "model": cfg.model, "run": run_dir.name}
    return write_split_report(run_dir, test, predictor, metrics, info,
                              f"flawscope run {run_dir.name}: test split", cache)
