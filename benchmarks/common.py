"""What every benchmark section shares: the run context, the section result, timing and table helpers."""

from __future__ import annotations

import math
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flawscope.errors import ConfigError

# The models of the SA-BCNN paper's Table III, and the fast models flawscope adds.
PAPER_MODELS = ("vgg16", "xception", "resnet18", "resnet34", "bcnn", "sa_bcnn_cbam", "sa_bcnn")
EXTRA_MODELS = ("small_cnn", "squeezenet1_1_reduced", "unet_small")
QUICK_MODELS = ("small_cnn", "squeezenet1_1_reduced", "unet_small")


class SectionSkipped(Exception):  # noqa: N818 - a signal, not a failure
    """A section cannot run here (e.g. no real data); its message says why and how to enable it."""


@dataclass
class Context:
    """Options every section receives.

    Attributes:
        data: real datasets folder (gdxray-castings/, gdxray-welds/, magnetic-tile/); None = not available.
        out: output folder of the benchmark run.
        quick: tiny sizes and few steps (smoke runs, CI).
        seed: seeds inputs, splits, initialisation and training.
        threads: torch intra-op threads (the benchmark machine has 2 cores).
        models: restrict model-by-model sections to these names; None = each section's default list.
        epochs: train the real-data sections for this many full epochs (no batch cap); None = their defaults.
    """

    data: Path | None
    out: Path
    quick: bool = False
    seed: int = 0
    threads: int = 2
    models: tuple[str, ...] | None = None
    epochs: int | None = None

    def dataset(self, name: str) -> Path:
        """Folder of one real dataset, or SectionSkipped saying where it was looked for."""
        if self.data is None:
            raise SectionSkipped("no --data folder given; pass --data ../shared/datasets "
                                 "(or set FLAWSCOPE_DATA)")
        path = self.data / name
        if not path.is_dir():
            raise SectionSkipped(f"real dataset {path} not found; pass --data pointing at the datasets "
                                 "folder")
        return path

    def budget(self, settings: dict[str, Any]) -> dict[str, Any]:
        """A section's training settings with --epochs applied (full epochs, no batch cap)."""
        if self.epochs is None:
            return settings
        return {**settings, "epochs": self.epochs, "limit_batches": None}

    def pick(self, default: tuple[str, ...]) -> tuple[str, ...]:
        """The section's model list, narrowed by --models when given."""
        if self.models is None:
            return default
        return tuple(m for m in default if m in self.models)


@dataclass
class SectionResult:
    """What one section measured: JSON-ready data and a Markdown fragment for docs/benchmarks.md."""

    data: dict[str, Any]
    markdown: str
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


def set_threads(n: int) -> None:
    """Fix torch's intra-op threads so timings are comparable across runs."""
    import torch

    if n < 1:
        raise ConfigError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)


def machine() -> dict[str, Any]:
    """Facts that CPU timings depend on."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (math.nan,) * 3
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_1_5_15": [round(v, 2) for v in load],
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def fmt(value: Any, digits: int = 1) -> str:
    """A table cell: numbers rounded, None/NaN as an en dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def md_table(headers: list[str], rows: list[list[Any]], digits: int = 1) -> str:
    """A Markdown table; numeric columns right-aligned."""
    align = ["---:" if rows and all(isinstance(r[i], int | float) or r[i] is None for r in rows) else ":---"
             for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(fmt(v, digits) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def build_model(name: str, size: int, in_chans: int = 1) -> Any:
    """A randomly initialised registry model for `size`×`size` inputs (never downloads weights)."""
    from flawscope.data.config import PreprocessConfig
    from flawscope.models.registry import create_model

    pre = PreprocessConfig(in_chans=in_chans, input_size=(size, size))
    return create_model(name, num_classes=2, in_chans=in_chans, pretrained=None, preprocess=pre)


def synthetic_batch(model: Any, batch_size: int, size: int, seed: int) -> dict[str, Any]:
    """A batch dict (docs/design.md "Batches") of random images, labels and, for segmenters, masks."""
    import torch

    g = torch.Generator().manual_seed(seed)
    c = model.config.preprocess.in_chans
    defective = torch.randint(0, 2, (batch_size,), generator=g).float()
    mask = (torch.rand((batch_size, 1, size, size), generator=g) > 0.97).float() * defective.view(-1, 1, 1, 1)
    return {
        "image": torch.randn((batch_size, c, size, size), generator=g),
        "label": defective.long(),
        "defective": defective,
        "mask": mask,
        "has_mask": torch.full((batch_size,), model.config.task == "segment"),
        "index": torch.arange(batch_size),
    }


def task_loss(model: Any) -> Any:
    """The package's default training loss for a model's task (what `flawscope train` would use)."""
    from flawscope.training.losses import build_loss, default_loss

    task = model.config.task
    return build_loss(task, default_loss(task, len(model.config.class_names)), None, None, 1.0, 1.0)


def timed_train_steps(model: Any, batch: dict[str, Any], steps: int, warmup: int, lr: float = 1e-3) -> float:
    """Seconds of `steps` SGD steps (zero_grad, forward, loss, backward, step) after `warmup` untimed ones."""
    import torch

    loss_fn = task_loss(model)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-4)
    model.train()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model.forward_outputs(batch["image"]), batch)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def epoch_timer() -> Any:
    """A Lightning callback that records each training epoch's wall time in `.times` (seconds)."""
    import time

    import lightning as L

    class EpochTimer(L.Callback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._start = 0.0

        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self._start = time.perf_counter()

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.times.append(time.perf_counter() - self._start)

    return EpochTimer()
