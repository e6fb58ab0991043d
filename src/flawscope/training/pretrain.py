"""`pretrain(cfg)`: pre-train a backbone on radiographs for `--init checkpoint:` (seed 001's recipe, on site).

Objectives:
- "synthetic" (default): the project's synthetic radiographs with their multi-labels (pore, crack, inclusion)
  as an unlimited labelled corpus, so a fresh machine with no data pre-trains;
- "supervised": a radiograph corpus with multi-labels: a CheXpert-style CSV (path + label columns; -1
  uncertain counted positive by default, blank 0; the official valid.csv honoured) or class folders;
  multi-label BCE, best weights by validation loss, as seed 001 does;
- "simclr": self-supervised on unlabelled radiographs with lightly's SimCLR projection head and NT-Xent
  loss, on two radiograph-appropriate views of each image (no colour jitter: crops at native resolution,
  flips, rotations, gamma/contrast, noise, blur; `flawscope.data.corpus.TwoViewDataset`).

The backbone is exactly the one the classifier (or the segmenter's encoder) of the same name builds, so its
weights load without renaming. A run folder `<out>/<name>/` holds config.yaml, backbone.pt (best epoch by
validation loss, `flawscope.models.pretrained.save_backbone`), checkpoints/ (`--resume`), logs/,
metrics.json (loss per epoch, best epoch, time, peak memory) and report.html (the loss curve).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from torch import nn

from flawscope.errors import ConfigError
from flawscope.training.config import ConfigFile

if TYPE_CHECKING:
    from flawscope.data.corpus import Corpus

OBJECTIVES = ("synthetic", "supervised", "simclr")
_UNCERTAIN = ("positive", "negative", "ignore")


@dataclass
class PretrainConfig(ConfigFile):
    """Every option of `flawscope pretrain`, one field per CLI option, loadable from YAML.

    Attributes:
        objective: "synthetic", "supervised" or "simclr" (see the module doc).
        backbone: a classifier name (resnet18, resnet50, vgg16, vit_tiny, small_cnn, ...) or any timm name.
        data: supervised: one CSV (CheXpert-style) or a class-folders root; simclr: image folders
            (searched recursively); synthetic: unused.
        valid_csv: the corpus' official validation CSV (supervised); else val is carved by group.
        uncertain: how a -1 (uncertain) label counts: positive (seed 001), negative or ignore.
        blank: the value of a blank label cell.
        exclude: folders or files left out of an unlabelled corpus (a downstream task's val/test series).
        exclude_split: a downstream split.csv: the groups of its val and test parts (GDXray series, which are
            folder names) are excluded too, so self-supervised pre-training on the training series' own images
            never sees a series the fine-tuned model is chosen or tested on.
        in_chans: input channels (1 for radiographs).
        intensity: raw value -> [0, 1] mapping ("dtype", "minmax", "window:LOW:HIGH", "percentile:LOW:HIGH").
        input_size: the model input in pixels. SimCLR views are crops at native resolution (or of the whole
            image with resize); the labelled objectives always see the whole image resized to input_size,
            because an image-level label is only true of the whole image.
        resize: SimCLR: crop views from the whole image resized instead of at native resolution.
        synth_images, synth_size, synth_difficulty: the synthetic corpus (generated once, then reused);
            synth_size None = input_size, so each radiograph is one input at its native resolution.
        epochs, batch_size, lr, weight_decay: AdamW on a cosine schedule.
        temperature: NT-Xent temperature (simclr).
        val_fraction: share of groups held out for the validation loss when the corpus has no split.
        patience: epochs without a better validation loss before stopping; 0 = never.
        select: which epoch backbone.pt keeps: "best" (lowest validation loss, seed 001's rule) or "last";
            None = best for the labelled objectives, last for simclr (a contrastive loss on a small val set
            ranks epochs poorly: on GDXray it rose while the training loss fell).
        max_minutes: stop training after this many minutes (the best epoch so far is kept); None = no limit.
        limit_batches: batches per epoch (int) or a fraction (float), for smoke runs.
        seed, threads, num_workers, accelerator, devices, precision: as for `flawscope train`.
        out, name: the run folder is out/name (name default: <time>-<objective>-<backbone>).
        resume: a checkpoint of this run (checkpoints/last.ckpt) to continue from.
        cache_dir: folder for decoded images kept across runs.
    """

    objective: str = "synthetic"
    backbone: str = "resnet18"
    data: list[str] = field(default_factory=list)
    valid_csv: str | None = None
    uncertain: str = "positive"
    blank: float = 0.0
    exclude: list[str] = field(default_factory=list)
    exclude_split: str | None = None
    in_chans: int = 1
    intensity: str = "dtype"
    input_size: tuple[int, int] = (96, 96)
    resize: bool = False
    synth_images: int = 1000
    synth_size: int | None = None
    synth_difficulty: float = 0.3
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    val_fraction: float = 0.1
    patience: int = 0
    select: str | None = None
    max_minutes: float | None = None
    limit_batches: int | float | None = None
    seed: int = 0
    threads: int | None = None
    num_workers: int = 0
    accelerator: str = "auto"
    devices: str = "auto"
    precision: str = "32-true"
    out: str = "pretrain-runs"
    name: str | None = None
    resume: str | None = None
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        from flawscope.training.config import _parse_size

        self.input_size = _parse_size(self.input_size)
        self.data = [str(d) for d in ([self.data] if isinstance(self.data, str | Path) else self.data)]
        self.exclude = [str(e) for e in ([self.exclude] if isinstance(self.exclude, str) else self.exclude)]
        self.devices = str(self.devices)
        if isinstance(self.limit_batches, float) and self.limit_batches.is_integer():
            self.limit_batches = int(self.limit_batches)
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field, its value and the valid choices."""
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective {self.objective!r} is unknown; use one of {', '.join(OBJECTIVES)}")
        if self.select not in (None, "best", "last"):
            raise ConfigError(f"select {self.select!r} is unknown; use best or last")
        if self.uncertain not in _UNCERTAIN:
            raise ConfigError(f"uncertain {self.uncertain!r} is unknown; use one of {', '.join(_UNCERTAIN)}")
        if self.objective != "synthetic" and not self.data:
            what = "a CSV or a class-folders root" if self.objective == "supervised" else "image folders"
            raise ConfigError(f"objective {self.objective} needs --data ({what})")
        if self.objective == "supervised" and len(self.data) != 1:
            raise ConfigError(f"objective supervised reads one corpus (a CSV or a class-folders root), got "
                              f"{len(self.data)}: {self.data}")
        if self.in_chans not in (1, 3):
            raise ConfigError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {self.in_chans}")
        if self.synth_size is not None and self.synth_size < 16:
            raise ConfigError(f"synth_size must be at least 16 pixels, got {self.synth_size}")
        for key in ("epochs", "batch_size", "lr", "temperature", "synth_images"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key} must be positive, got {getattr(self, key)}")
        if self.batch_size < 2 and self.objective == "simclr":
            raise ConfigError("simclr contrasts the images of a batch: batch_size must be at least 2")
        if not 0 < self.val_fraction < 1:
            raise ConfigError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ConfigError(f"max_minutes must be positive, got {self.max_minutes}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be 1 or more, got {self.threads}")
        if min(self.input_size) < 16:
            raise ConfigError(f"input_size {self.input_size} is too small; use at least 16×16 pixels")


@dataclass
class PretrainResult:
    """What a pre-training run produced."""

    run_dir: Path
    backbone_path: Path
    metrics: dict[str, Any]
    report_path: Path | None = None


# -- the backbone -------------------------------------------------------------------------------------------
def build_backbone_model(name: str, in_chans: int, input_size: tuple[int, int]) -> nn.Module:
    """The classifier whose `.backbone` is pre-trained: the registry model `name`, else timm_classifier."""
    from flawscope.data.config import PreprocessConfig
    from flawscope.models.registry import create_model, list_models

    preprocess = PreprocessConfig(in_chans=in_chans, input_size=input_size, resize=False)
    if name in list_models(task="classify"):
        kwargs: dict[str, Any] = {}
    else:
        name, kwargs = "timm_classifier", {"backbone": name}
    try:
        return create_model(name, num_classes=2, in_chans=in_chans, preprocess=preprocess, **kwargs)
    except TypeError as err:
        raise ConfigError(f"backbone {name!r} cannot be pre-trained ({err}); use a classifier backbone such "
                          "as resnet18, resnet50, vgg16, vit_tiny or any timm model name") from None


class PretrainModule(L.LightningModule):
    """A backbone with a pre-training head: multi-label BCE (supervised, synthetic) or SimCLR (lightly).

    Args:
        backbone: backbone name (see `build_backbone_model`).
        in_chans: input channels.
        input_size: crop size (ViTs fix their position embeddings to it).
        objective: "synthetic", "supervised" or "simclr".
        num_labels: labels of a supervised corpus.
        lr, weight_decay: AdamW; the learning rate decays on a cosine over the trainer's epochs.
        temperature: NT-Xent temperature.
    """

    def __init__(self, backbone: str, in_chans: int, input_size: tuple[int, int], objective: str,
                 num_labels: int = 0, lr: float = 1e-3, weight_decay: float = 1e-4,
                 temperature: float = 0.1) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = build_backbone_model(backbone, in_chans, tuple(input_size))
        dim = int(self.net.num_features)
        self.objective = objective
        if objective == "simclr":
            from lightly.loss import NTXentLoss
            from lightly.models.modules import SimCLRProjectionHead

            self.head: nn.Module = SimCLRProjectionHead(dim, 512, 128)
            self.criterion: nn.Module = NTXentLoss(temperature=temperature)
        else:
            if num_labels < 1:
                raise ConfigError(f"objective {objective} needs labels; the corpus has {num_labels}")
            self.head = nn.Linear(dim, num_labels)

    @property
    def backbone(self) -> nn.Module:
        """The pre-trained part (what backbone.pt holds)."""
        return self.net.backbone

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (B, D): the classifier's pre-logits."""
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def objective_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The objective's loss of one batch (BCE over known labels, or NT-Xent of the two views)."""
        if self.objective == "simclr":
            z1, z2 = (self.head(self.embed(batch[v])) for v in ("view1", "view2"))
            return self.criterion(z1, z2)
        logits = self.head(self.embed(batch["image"]))
        target = batch["labels"]
        known = ~torch.isnan(target)  # "ignore"d uncertain labels are NaN: left out of the loss
        loss = nn.functional.binary_cross_entropy_with_logits(
            logits, torch.nan_to_num(target), reduction="none")
        return (loss * known).sum() / known.sum().clamp_min(1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.objective_loss(batch)
        if not torch.isfinite(loss):
            raise ConfigError(f"pre-training loss is {loss.item()} at epoch {self.current_epoch}, step "
                              f"{batch_idx}; lower --lr (now {self.hparams.lr:g}) or check the images")
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=_batch_len(batch), sync_dist=True)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val_loss", self.objective_loss(batch), on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=_batch_len(batch), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=self.hparams.lr * 1e-3)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def _batch_len(batch: dict[str, torch.Tensor]) -> int:
    return int(next(iter(v for k, v in batch.items() if k != "index")).shape[0])


# -- corpus and loaders -------------------------------------------------------------------------------------
def load_corpus(cfg: PretrainConfig, run_dir: Path) -> Corpus:
    """The corpus the objective reads (the synthetic one is generated once under `<out>/synthetic-corpus`)."""
    from flawscope.data import corpus as corpora

    if cfg.objective == "synthetic":
        size = cfg.synth_size or max(cfg.input_size)
        tag = f"{cfg.synth_images}x{size}-d{cfg.synth_difficulty:g}-s{cfg.seed}"
        where = Path(cfg.out) / f"synthetic-corpus-{tag}"
        return corpora.synthetic_corpus(where, n_images=cfg.synth_images, size=size, seed=cfg.seed,
                                        difficulty=cfg.synth_difficulty, val_fraction=cfg.val_fraction)
    if cfg.objective == "supervised":
        source = Path(cfg.data[0])
        if source.suffix.lower() == ".csv":
            return corpora.load_label_csv(source, valid_csv=cfg.valid_csv, uncertain=cfg.uncertain,
                                          blank=cfg.blank, val_fraction=cfg.val_fraction, seed=cfg.seed)
        return corpora.load_class_folders(source, val_fraction=cfg.val_fraction, seed=cfg.seed)
    exclude = list(cfg.exclude) + (held_out_groups(cfg.exclude_split) if cfg.exclude_split else [])
    return corpora.load_unlabelled(cfg.data, val_fraction=cfg.val_fraction, seed=cfg.seed, exclude=exclude)


def held_out_groups(split_file: str | Path) -> list[str]:
    """The groups of a split file's val and test parts (what pre-training must not see)."""
    from flawscope.data.splits import read_split_rows

    rows = read_split_rows(split_file)
    groups = sorted({r["group"] for r in rows if r.get("split") in ("val", "test") and r.get("group")})
    if not groups:
        raise ConfigError(f"split file {split_file} has no val or test group to exclude (columns group and "
                          "split)")
    return groups


def _loaders(cfg: PretrainConfig, corpus: Corpus) -> tuple[Any, Any]:
    from torch.utils.data import DataLoader

    from flawscope.data.cache import DecodeCache
    from flawscope.data.config import IntensityConfig
    from flawscope.data.corpus import CorpusAugment, CorpusDataset, TwoViewDataset
    from flawscope.data.datamodule import EpochSampler

    cache = DecodeCache(disk_dir=cfg.cache_dir)
    ssl = cfg.objective == "simclr"
    kind = TwoViewDataset if ssl else CorpusDataset
    # Labels describe whole images: the labelled objectives keep every view whole (no crop), so a flaw the
    # label names is always in the input; flips, rotations and intensity changes keep the label true.
    whole = CorpusAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    common = dict(input_size=cfg.input_size, in_chans=cfg.in_chans,
                  intensity=IntensityConfig.parse(cfg.intensity), cache=cache, seed=cfg.seed,
                  resize=cfg.resize if ssl else True, augment=None if ssl else whole)
    train_set = kind(corpus.part("train"), train=True, **common)
    val_set = kind(corpus.part("val"), train=False, **common)
    for part, dataset in (("train", train_set), ("val", val_set)):
        if len(dataset) < (2 if cfg.objective == "simclr" else 1):
            raise ConfigError(f"the {part} part of the corpus ({corpus.root}) holds {len(dataset)} "
                              "image(s); give more images or another --val-fraction")
    # A last batch of one image breaks batch norm (and has no negatives for SimCLR): drop it.
    drop = len(train_set) % cfg.batch_size == 1 or cfg.objective == "simclr"
    train = DataLoader(train_set, batch_size=cfg.batch_size, sampler=EpochSampler(len(train_set), cfg.seed),
                       num_workers=cfg.num_workers, drop_last=drop and len(train_set) > cfg.batch_size)
    val = DataLoader(val_set, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.num_workers,
                     drop_last=cfg.objective == "simclr" and len(val_set) > cfg.batch_size)
    return train, val


# -- the run ------------------------------------------------------------------------------------------------
def pretrain(cfg: PretrainConfig, progress: bool = True) -> PretrainResult:
    """Pre-train a backbone and write its run folder (see the module doc).

    Raises:
        FlawscopeError: bad options, a corpus that cannot teach (bad CSV, too few images), a run folder that
            already holds a run (pass --resume or another --name), a NaN loss.
    """
    from flawscope.training.run import torch_threads

    with torch_threads(cfg.threads):
        return _pretrain(cfg, progress)


def _pretrain(cfg: PretrainConfig, progress: bool) -> PretrainResult:
    import warnings

    from flawscope.evaluation.scoring import json_safe
    from flawscope.inference.runfolder import RunFolder
    from flawscope.models.pretrained import save_backbone
    from flawscope.training.callbacks import build_callbacks, build_loggers

    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    name = cfg.name or f"{time.strftime('%Y%m%d-%H%M%S')}-{cfg.objective}-{cfg.backbone}"
    run = RunFolder(Path(cfg.out) / name)
    if not cfg.resume and run.is_run():
        raise ConfigError(f"run folder {run.path} already holds a run; pass another --name, or --resume "
                          f"{run.last_checkpoint} to continue it")
    if cfg.resume and not Path(cfg.resume).is_file():
        raise ConfigError(f"resume checkpoint {cfg.resume} does not exist; pass a run's "
                          "checkpoints/last.ckpt")
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    build_backbone_model(cfg.backbone, cfg.in_chans, cfg.input_size)  # a bad backbone fails before the corpus
    corpus = load_corpus(cfg, run.path)
    train_loader, val_loader = _loaders(cfg, corpus)
    module = PretrainModule(cfg.backbone, cfg.in_chans, cfg.input_size, cfg.objective,
                            num_labels=len(corpus.label_names), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            temperature=cfg.temperature)
    run.path.mkdir(parents=True, exist_ok=True)
    cfg.replace(name=name).to_yaml(run.config_file)
    trainer = L.Trainer(
        default_root_dir=run.path, max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=cfg.devices,
        precision=cfg.precision,  # type: ignore[arg-type]
        deterministic=not torch.cuda.is_available() or "warn",
        logger=build_loggers(run.path), callbacks=build_callbacks(run.path, cfg.patience, progress),
        limit_train_batches=cfg.limit_batches, limit_val_batches=cfg.limit_batches, log_every_n_steps=1,
        max_time={"minutes": cfg.max_minutes} if cfg.max_minutes else None,
        enable_progress_bar=progress, enable_model_summary=progress,
    )
    start = time.perf_counter()
    trainer.fit(module, train_loader, val_loader, ckpt_path=cfg.resume)
    seconds = time.perf_counter() - start
    ckpt_cb = trainer.checkpoint_callback
    select = cfg.select or ("last" if cfg.objective == "simclr" else "best")
    best = Path(ckpt_cb.best_model_path) if ckpt_cb is not None and ckpt_cb.best_model_path else None
    kept = best if select == "best" else run.last_checkpoint
    kept_epoch = None
    if kept is not None and kept.is_file():
        state = torch.load(kept, map_location="cpu", weights_only=True)
        module.load_state_dict(state["state_dict"])
        # Lightning stores the epoch count at save time; the best checkpoint's is its own epoch index.
        kept_epoch = int(state.get("epoch", -1)) if select == "best" else trainer.current_epoch - 1
    curve = _loss_curve(run.logs_dir / "metrics.csv")
    if cfg.resume and run.metrics_file.is_file():
        # Lightning's CSV log restarts with a resumed fit: keep the epochs the earlier fit logged.
        new = {c["epoch"] for c in curve}
        earlier = json.loads(run.metrics_file.read_text()).get("curve", [])
        curve = sorted([c for c in earlier if c["epoch"] not in new] + curve, key=lambda c: c["epoch"])
    metrics = {
        "objective": cfg.objective, "backbone": cfg.backbone, "in_chans": cfg.in_chans,
        "input_size": list(cfg.input_size), "corpus": {"source": corpus.source, "root": str(corpus.root),
                                                       "train": len(corpus.part("train")),
                                                       "val": len(corpus.part("val")),
                                                       "labels": list(corpus.label_names),
                                                       "skipped": len(corpus.skipped)},
        "epochs_trained": trainer.current_epoch, "selected": select, "kept_epoch": kept_epoch,
        "best_epoch": _best_epoch(best),
        "best_val_loss": float(ckpt_cb.best_model_score) if ckpt_cb and ckpt_cb.best_model_score is not None
        else None,
        "curve": curve, "seconds": round(seconds, 1), "peak_rss_mb": _peak_rss_mb(),
        "torch_threads": torch.get_num_threads(), "device": str(trainer.strategy.root_device),
    }
    backbone_path = save_backbone(run.backbone_file, module.backbone.state_dict(), cfg.backbone, cfg.in_chans,
                                  objective=cfg.objective, selected=select, kept_epoch=kept_epoch,
                                  best_val_loss=metrics["best_val_loss"], labels=list(corpus.label_names),
                                  input_size=list(cfg.input_size), run=str(run.path))
    run.metrics_file.write_text(json.dumps(json_safe(metrics), indent=2) + "\n")
    if corpus.skipped:
        from flawscope.data.sample import write_skipped

        write_skipped(run.skipped_file, corpus.skipped)
    report = _write_report(run, metrics)
    return PretrainResult(run.path, backbone_path, metrics, report)


def _best_epoch(best: Path | None) -> int | None:
    """The epoch of the lowest validation loss (from the best checkpoint)."""
    if best is None or not best.is_file():
        return None
    return int(torch.load(best, map_location="cpu", weights_only=True).get("epoch", -1))


def _loss_curve(path: Path) -> list[dict[str, float]]:
    """Per-epoch train and val loss from Lightning's CSV log."""
    import csv

    if not path.is_file():
        return []
    by_epoch: dict[int, dict[str, float]] = {}
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row.get("epoch") in (None, ""):
                continue
            entry = by_epoch.setdefault(int(float(row["epoch"])), {"epoch": int(float(row["epoch"]))})
            for key in ("train_loss", "val_loss"):
                if row.get(key) not in (None, ""):
                    entry[key] = float(row[key])
    return [by_epoch[e] for e in sorted(by_epoch)]


def _peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def _write_report(run: Any, metrics: dict[str, Any]) -> Path:
    """report.html: the run's facts and its loss curve with the best epoch marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from flawscope.evaluation.report import Report

    rule = ("the lowest validation loss" if metrics["selected"] == "best" else "the last epoch")
    rep = Report(f"flawscope pretrain: {metrics['objective']} / {metrics['backbone']}",
                 f"backbone.pt holds the weights of epoch {metrics['kept_epoch']} ({rule}); load it with "
                 f"--init checkpoint:{run.backbone_file}")
    facts = {k: v for k, v in metrics.items() if k not in ("curve", "corpus")}
    facts.update({f"corpus {k}": v for k, v in metrics["corpus"].items()})
    rep.add_metrics_table("Run", facts)
    curve = metrics["curve"]
    if curve:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for key in ("train_loss", "val_loss"):
            points = [(c["epoch"], c[key]) for c in curve if key in c]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", label=key.replace("_", " "))
        if metrics["best_epoch"] is not None:
            ax.axvline(metrics["best_epoch"], color="grey", linestyle="--", label="lowest val loss")
        if metrics["kept_epoch"] is not None and metrics["kept_epoch"] != metrics["best_epoch"]:
            ax.axvline(metrics["kept_epoch"], color="black", linestyle=":", label="kept (last)")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend()
        fig.tight_layout()
        rep.add_image("Loss per epoch", fig)
        plt.close(fig)
        rep.add_metrics_table("Loss per epoch", curve, columns=["epoch", "train_loss", "val_loss"])
    return rep.save(run.report_file)

