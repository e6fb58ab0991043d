"""Section `throughput`: training images/s (forward + backward + SGD step) of each model on random inputs."""

from __future__ import annotations

from benchmarks.common import (
    EXTRA_MODELS,
    PAPER_MODELS,
    QUICK_MODELS,
    Context,
    SectionResult,
    build_model,
    md_table,
    synthetic_batch,
    timed_train_steps,
)

NAME = "throughput"
NEEDS_DATA = False
TITLE = "Training throughput"


def settings(ctx: Context) -> dict[str, int]:
    """Input size, batch size and step counts (tiny under --quick)."""
    if ctx.quick:
        return {"size": 32, "batch_size": 4, "warmup": 1, "steps": 1}
    return {"size": 224, "batch_size": 16, "warmup": 1, "steps": 2}


def measure(ctx: Context) -> list[dict]:
    """One row per model: images/s, seconds per step."""
    import torch

    s = settings(ctx)
    models = ctx.pick(QUICK_MODELS if ctx.quick else PAPER_MODELS + EXTRA_MODELS)
    rows = []
    for name in models:
        torch.manual_seed(ctx.seed)
        model = build_model(name, s["size"])
        batch = synthetic_batch(model, s["batch_size"], s["size"], ctx.seed)
        seconds = timed_train_steps(model, batch, s["steps"], s["warmup"])
        rows.append({
            "model": name, "task": model.config.task,
            "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "s_per_step": seconds / s["steps"],
            "images_per_s": s["batch_size"] * s["steps"] / seconds,
        })
    return rows


def run(ctx: Context) -> SectionResult:
    """Measure and describe."""
    s = settings(ctx)
    rows = measure(ctx)
    table = md_table(
        ["model", "task", "Params (M)", "s / step", "train images/s"],
        [[r["model"], r["task"], r["params_m"], r["s_per_step"], r["images_per_s"]] for r in rows], digits=2,
    )
    md = (
        f"Random 1-channel {s['size']}×{s['size']} inputs, batch {s['batch_size']}, SGD (momentum 0.9) on "
        f"the package's default loss (BCE; BCE+Dice for unet_small); {s['warmup']} warm-up step(s), then the "
        f"mean of {s['steps']} timed steps, eager fp32, torch threads = {ctx.threads}.\n\n{table}"
    )
    return SectionResult({"settings": s, "rows": rows}, md)
