"""Section `pretrain_speed`: how long pre-training each backbone takes on this CPU, and what a GPU run needs.

`python -m benchmarks.pretrain_speed [--quick] [--threads N]` prints the table; `make bench` runs it as a
section. For each backbone (resnet18, resnet50, vgg16, vit_tiny) and objective (multi-label BCE, SimCLR)
it times AdamW steps of `flawscope.training.pretrain.PretrainModule` on random 1-channel batches (batch 32;
96 px, the CPU default, and 224 px, seed 001's input), after one warm-up step, and counts the FLOPs of one
forward pass (torch's flop counter; a training step is about 3×). From those it extrapolates the CPU time of
one epoch of a CheXpert-sized corpus (224,316 images) and the FLOPs that epoch needs on a GPU.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from typing import Any

from benchmarks.common import Context, SectionResult, md_table, set_threads

NAME = "pretrain_speed"
NEEDS_DATA = False
TITLE = "Pre-training: seconds per step and per CheXpert-sized epoch, by backbone"
BACKBONES = ("resnet18", "resnet50", "vgg16", "vit_tiny")
CHEXPERT_IMAGES = 224_316


def settings(ctx: Context) -> dict[str, Any]:
    """Batch size, input sizes and timed steps (tiny under --quick)."""
    if ctx.quick:
        return {"batch_size": 4, "sizes": (32,), "steps": 1, "backbones": ("resnet18",)}
    return {"batch_size": 32, "sizes": (96, 224), "steps": 3, "backbones": ctx.pick(BACKBONES)}


def _step_seconds(module: Any, batch: dict[str, Any], steps: int) -> float:
    import torch

    opt = torch.optim.AdamW(module.parameters(), lr=1e-4)
    module.train()
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = module.objective_loss(batch)
        loss.backward()
        opt.step()
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return sum(times) / len(times)


def _forward_flops(module: Any, x: Any) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    module.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module.embed(x[:1])
    return int(counter.get_total_flops())


def measure(backbone: str, objective: str, size: int, batch_size: int, steps: int) -> dict[str, Any]:
    """Seconds per step, images/s, forward GFLOPs per image and the CheXpert-epoch extrapolations."""
    import torch

    from flawscope.training.pretrain import PretrainModule

    torch.manual_seed(0)
    module = PretrainModule(backbone, 1, (size, size), objective, num_labels=14)
    x = torch.randn(batch_size, 1, size, size)
    batch = ({"view1": x, "view2": torch.randn_like(x)} if objective == "simclr"
             else {"image": x, "labels": (torch.rand(batch_size, 14) > 0.8).float()})
    seconds = _step_seconds(module, batch, steps)
    flops = _forward_flops(module, x)
    views = 2 if objective == "simclr" else 1
    epoch_steps = CHEXPERT_IMAGES / batch_size
    return {
        "backbone": backbone, "objective": objective, "size": size, "s_per_step": seconds,
        "images_per_s": batch_size / seconds, "gflops_forward": flops / 1e9,
        "cpu_hours_per_chexpert_epoch": seconds * epoch_steps / 3600,
        # forward + backward ≈ 3 × forward; SimCLR runs two views per image.
        "pflops_per_chexpert_epoch": 3 * views * flops * CHEXPERT_IMAGES / 1e15,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(ctx: Context) -> SectionResult:
    """Time every backbone × objective × size."""
    s = settings(ctx)
    rows = [measure(b, o, size, s["batch_size"], s["steps"])
            for b in s["backbones"] for o in ("supervised", "simclr") for size in s["sizes"]]
    headers = ["backbone", "objective", "input px", "s / step (batch 32)", "images / s",
               "GFLOPs / image (fwd)", "CPU hours / CheXpert epoch", "PFLOPs / CheXpert epoch",
               "peak RSS MB (process)"]
    keys = ("backbone", "objective", "size", "s_per_step", "images_per_s", "gflops_forward",
            "cpu_hours_per_chexpert_epoch", "pflops_per_chexpert_epoch", "peak_rss_mb")
    table = md_table(headers, [[r[k] for k in keys] for r in rows], digits=2)
    md = (f"`PretrainModule` AdamW steps on random 1-channel batches of {s['batch_size']}, {ctx.threads} "
          f"torch threads, mean of {s['steps']} steps after one warm-up; a CheXpert-sized epoch is "
          f"{CHEXPERT_IMAGES:,} images. The PFLOPs column is what that epoch needs on any device (training "
          "step ≈ 3 × forward, two views for SimCLR): divide by a GPU's sustained FLOP/s for its time. Peak "
          "RSS is the whole process's (it grows with the largest model measured so far).")
    return SectionResult({"settings": {**s, "backbones": list(s["backbones"])}, "rows": rows},
                         f"{md}\n\n{table}")


def main(argv: list[str] | None = None) -> int:
    """Print the table (`python -m benchmarks.pretrain_speed`)."""
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    set_threads(args.threads)
    ctx = Context(data=None, out=Path("bench-out"), quick=args.quick, threads=args.threads)
    print(run(ctx).markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
