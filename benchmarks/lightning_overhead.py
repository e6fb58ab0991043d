"""Section `lightning_overhead`: a bare PyTorch loop vs lightning.Trainer + FlawModule on the same data."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import Context, SectionResult, build_model, epoch_timer, synthetic_batch, task_loss

NAME = "lightning_overhead"
NEEDS_DATA = False
TITLE = "Lightning overhead"
TARGET_PCT = 15.0


def settings(ctx: Context) -> dict[str, Any]:
    """Model, input size, batch size and epoch length (small_cnn at 64 px under --quick)."""
    if ctx.quick:
        return {"model": "small_cnn", "size": 64, "batch_size": 16, "batches": 6, "epochs": 3}
    return {"model": "resnet18", "size": 224, "batch_size": 16, "batches": 4, "epochs": 3}


def _loader(ctx: Context, model: Any, s: dict[str, Any]) -> Any:
    """The same in-memory batches for both loops (a list of ready batch dicts, no decoding)."""
    from torch.utils.data import DataLoader

    batches = [synthetic_batch(model, s["batch_size"], s["size"], ctx.seed + i) for i in range(s["batches"])]
    # batch_size=None: each item already is a batch, so the loader adds no collation cost to either loop.
    return DataLoader(batches, batch_size=None, shuffle=False)


def bare_loop(ctx: Context, s: dict[str, Any]) -> list[float]:
    """Seconds per epoch of a hand-written loop (zero_grad, forward, loss, backward, step)."""
    import torch

    torch.manual_seed(ctx.seed)
    model = build_model(s["model"], s["size"])
    loader = _loader(ctx, model, s)
    loss_fn = task_loss(model)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=1e-4)
    model.train()
    epochs = []
    for _ in range(s["epochs"]):
        start = time.perf_counter()
        for batch in loader:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model.forward_outputs(batch["image"]), batch)
            loss.backward()
            opt.step()
        epochs.append(time.perf_counter() - start)
    return epochs


def lightning_loop(ctx: Context, s: dict[str, Any]) -> list[float]:
    """Seconds per training epoch of lightning.Trainer + FlawModule (no logger/checkpoint/progress bar)."""
    import lightning as L
    import torch

    from flawscope.training.module import FlawModule

    torch.manual_seed(ctx.seed)
    model = build_model(s["model"], s["size"])
    loader = _loader(ctx, model, s)
    module = FlawModule(model, optimizer="sgd", lr=1e-3)
    timer = epoch_timer()
    trainer = L.Trainer(
        max_epochs=s["epochs"], accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
        callbacks=[timer],
    )
    trainer.fit(module, train_dataloaders=loader)
    return timer.times


def run(ctx: Context) -> SectionResult:
    """Time both loops; each loop's fastest epoch is compared.

    On a CPU shared with other work the slowdowns come from outside and only add time, so the fastest
    epoch is the best estimate of each loop's own cost (timeit's reasoning for taking the minimum).
    """
    s = settings(ctx)
    images = s["batch_size"] * s["batches"]
    # Alternate the order (bare, lightning, bare) so a change in background load hits both sides.
    bare_a = bare_loop(ctx, s)
    light = lightning_loop(ctx, s)
    bare_b = bare_loop(ctx, s)
    bare_t = min(bare_a + bare_b)
    light_t = min(light)
    bare_ips, light_ips = images / bare_t, images / light_t
    overhead = (bare_ips / light_ips - 1.0) * 100.0
    met = overhead <= TARGET_PCT
    data = {
        "settings": s, "bare_epoch_s": bare_a + bare_b, "lightning_epoch_s": light,
        "bare_images_per_s": bare_ips, "lightning_images_per_s": light_ips, "overhead_pct": overhead,
        "target_pct": TARGET_PCT, "target_met": met,
    }
    md = (
        f"{s['model']} at {s['size']}×{s['size']}, batch {s['batch_size']}, {s['batches']} in-memory batches "
        f"per epoch, {s['epochs']} epochs per loop; each loop's fastest epoch counts (on a shared CPU, "
        "outside load only adds time; the bare loop runs before and after Lightning so load changes hit "
        "both). Lightning: "
        "`lightning.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)` + "
        "`FlawModule` (its per-step loss logging and NaN check included).\n\n"
        "| loop | train images/s |\n|:---|---:|\n"
        f"| bare PyTorch | {bare_ips:.2f} |\n| Lightning + FlawModule | {light_ips:.2f} |\n\n"
        f"Overhead: **{overhead:+.1f} %** (target ≤ {TARGET_PCT:.0f} %: {'met' if met else 'NOT met'}).\n"
    )
    return SectionResult(data, md)
