"""The Lightning callbacks and loggers of a training run: checkpoints, early stopping, progress, logs."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from flawscope.inference.runfolder import RunFolder

MONITOR = "val_loss"

# Lightning's rank-zero messages go through these loggers (lightning_utilities' rank_zero_info).
_LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class _NoAdvertFilter(logging.Filter):
    """Drops Lightning's "Tip: ... install litlogger" advert, printed by every Trainer (even when quiet)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in str(record.msg).lower()


_NO_ADVERT = _NoAdvertFilter()


def silence_lightning_tips() -> None:
    """Keep Lightning's litlogger advert out of a run's output (idempotent; other messages are kept)."""
    for name in _LIGHTNING_INFO_LOGGERS:
        logger = logging.getLogger(name)
        if _NO_ADVERT not in logger.filters:
            logger.addFilter(_NO_ADVERT)


def build_callbacks(
    run_dir: str | Path, patience: int = 10, progress: bool = True, monitor: str = MONITOR
) -> list[Any]:
    """Checkpoints (best by val_loss as `best-*.ckpt`, and `last.ckpt`), early stopping, lr log, progress.

    Args:
        run_dir: the run folder; checkpoints go to `<run_dir>/checkpoints/`.
        patience: epochs without improvement of `monitor` before stopping; 0 = never stop early.
        progress: show a rich progress bar.
        monitor: the metric that picks the best checkpoint (lower is better).
    """
    from lightning.pytorch.callbacks import (
        EarlyStopping,
        LearningRateMonitor,
        ModelCheckpoint,
        RichProgressBar,
    )

    callbacks: list[Any] = [
        ModelCheckpoint(
            dirpath=RunFolder(Path(run_dir)).checkpoints_dir,
            filename="best-{epoch:03d}",
            monitor=monitor,
            mode="min",
            save_top_k=1,
            save_last=True,
            # Without this a resumed run would write best-epoch=003-v1.ckpt beside the old one.
            enable_version_counter=False,
        ),
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode="min", patience=patience))
    if progress:
        callbacks.append(RichProgressBar(leave=True))
    return callbacks


def build_loggers(run_dir: str | Path) -> list[Any]:
    """CSV (logs/metrics.csv) and TensorBoard (logs/tensorboard/) loggers, both inside the run folder."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    silence_lightning_tips()  # the Trainer these loggers are built for prints the advert on creation
    run_dir = Path(run_dir)
    # version="" keeps one fixed folder per run (no version_0, version_1 ...); a resumed run appends to it.
    logs = RunFolder(run_dir).logs_dir
    return [
        CSVLogger(run_dir, name=logs.name, version=""),
        TensorBoardLogger(logs, name="tensorboard", version="", default_hp_metric=False),
    ]
