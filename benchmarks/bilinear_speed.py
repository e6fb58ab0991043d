"""Section `bilinear_speed`: SA-BCNN vs ResNet-18 training step time and peak RSS on 32 px patches.

`python -m benchmarks.bilinear_speed [--quick] [--rounds N] [--threads N] [--epochs N]` prints the table
(`--epochs N` adds N Lightning epochs per model; `--profile VARIANT` prints torch.profiler's top ops instead);
`make bench` runs it as a section. The models take turns step by step in one process (AdamW, batch 50,
1×32×32), so load from other processes slows them alike and the ratio stays meaningful on a shared machine;
each peak RSS comes from a fresh process that builds one model and trains it for a few steps.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import Context, SectionResult, md_table, set_threads

NAME = "bilinear_speed"
NEEDS_DATA = False
TITLE = "SA-BCNN vs ResNet-18 on 32 px patches"
# Model name, build options, and whether to pool with the readable reference `heads.bilinear_pool` (the code
# before the fused pooling; kept here to show what the fused version saves).
VARIANTS: dict[str, tuple[str, dict[str, Any], bool]] = {
    "resnet18": ("resnet18", {}, False),
    "sa_bcnn": ("sa_bcnn", {}, False),
    "sa_bcnn, reference pooling": ("sa_bcnn", {}, True),
    "sa_bcnn, reduce_dim=128": ("sa_bcnn", {"reduce_dim": 128}, False),
}
PATCHES_PER_EPOCH = 2254  # the reported training set: an epoch is ceil(2254 / batch) steps


def settings(ctx: Context, rounds: int | None = None) -> dict[str, int]:
    """Patch size, batch size, interleaved rounds and RSS steps (tiny under --quick)."""
    if ctx.quick:
        s = {"size": 32, "batch_size": 8, "warmup": 1, "rounds": 2, "rss_steps": 2, "epoch_batches": 3}
    else:
        s = {"size": 32, "batch_size": 50, "warmup": 2, "rounds": 12, "rss_steps": 5,
             "epoch_batches": -(-PATCHES_PER_EPOCH // 50)}
    return s if rounds is None else {**s, "rounds": rounds}


def _build(variant: str, size: int) -> Any:
    from flawscope.data.config import PreprocessConfig
    from flawscope.models.registry import create_model

    name, kwargs, _ = VARIANTS[variant]
    pre = PreprocessConfig(input_size=(size, size), resize=False)
    return create_model(
        name, num_classes=2, in_chans=1, preprocess=pre, class_names=("ok", "defect"), **kwargs
    )


@contextlib.contextmanager
def _pooling(variant: str) -> Iterator[None]:
    """Make the bilinear models pool with the reference implementation for the "reference pooling" row."""
    if not VARIANTS[variant][2]:
        yield
        return
    from unittest import mock

    from flawscope.models import bilinear
    from flawscope.models.heads import bilinear_pool

    with mock.patch.object(bilinear, "fused_bilinear_pool", bilinear_pool):
        yield


def _trainer(variant: str, s: dict[str, int], seed: int) -> Any:
    """A function doing one AdamW training step of a freshly built model on a fixed random batch."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = _build(variant, s["size"]).train()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((s["batch_size"], 1, s["size"], s["size"]), generator=g)
    y = torch.randint(0, 2, (s["batch_size"], 1), generator=g).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step() -> None:
        with _pooling(variant):
            opt.zero_grad(set_to_none=True)
            loss = F.binary_cross_entropy_with_logits(model.forward_outputs(x)["logits"], y)
            loss.backward()
            opt.step()

    return step


def _status_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process in MiB. Not ru_maxrss: Linux carries that over exec, so a
    spawned child would report its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(variant: str, s: dict[str, int], seed: int, threads: int) -> dict[str, float]:
    """In a fresh process: RSS after building the model, and peak RSS over a few training steps (MiB)."""
    set_threads(threads)
    step = _trainer(variant, s, seed)
    built = _status_mib("VmRSS")
    for _ in range(s["rss_steps"]):
        step()
    return {"rss_built_mib": built, "peak_rss_mib": _status_mib("VmHWM")}


def lightning_epochs(ctx: Context, s: dict[str, int], epochs: int) -> dict[str, list[float]]:
    """Seconds per training epoch through lightning.Trainer + FlawModule (AdamW) on `epoch_batches`
    in-memory batches; the variants take turns epoch by epoch."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from benchmarks.common import epoch_timer, synthetic_batch
    from flawscope.training.module import FlawModule

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # its tips and notes, once per fit
    n_batches = s["epoch_batches"]
    modules, timers = {}, {}
    for n in VARIANTS:
        torch.manual_seed(ctx.seed)
        modules[n] = FlawModule(_build(n, s["size"]), optimizer="adamw", lr=1e-3)
        timers[n] = epoch_timer()
    first = next(iter(modules.values())).model
    batches = [synthetic_batch(first, s["batch_size"], s["size"], ctx.seed + i) for i in range(n_batches)]
    loader = DataLoader(batches, batch_size=None, shuffle=False)  # ready batches: no collation cost
    names = list(modules)
    for e in range(epochs):
        for n in names[e % len(names):] + names[: e % len(names)]:  # rotate who goes first
            module = modules[n]
            trainer = L.Trainer(
                max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                num_sanity_val_steps=0, callbacks=[timers[n]],
            )
            with _pooling(n), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "no val_dataloader" and friends, once per fit
                trainer.fit(module, train_dataloaders=loader)
    return {n: t.times for n, t in timers.items()}


def attention_effect(ctx: Context, s: dict[str, int]) -> dict[str, Any]:
    """What SA-BCNN's attention changes at this patch size: with a 1×1 feature map Ms is one scalar per
    image, which the signed sqrt + L2 normalisation cancel (up to eps), so it gets almost no gradient."""
    import torch

    from flawscope.models.bilinear import fused_bilinear_pool

    torch.manual_seed(ctx.seed)
    model = _build("sa_bcnn", s["size"]).train()
    g = torch.Generator().manual_seed(ctx.seed)
    x = torch.randn((s["batch_size"], 1, s["size"], s["size"]), generator=g)
    out = model.forward_outputs(x)
    without = fused_bilinear_pool(model.reduce(model.backbone.forward_features(x)))
    out["logits"].sum().backward()
    return {
        "feature_map": list(out["attention"].shape[2:]),
        "max_abs_z_change": float((out["features"] - without).detach().abs().max()),
        "attention_grad_norm": float(model.attention.to_map.weight.grad.norm()),
        "fc_grad_norm": float(model.head.fc.weight.grad.norm()),
    }


def measure(ctx: Context, rounds: int | None = None, epochs: int = 0) -> dict[str, Any]:
    """Median step time of each variant (interleaved rounds, rotating order) and each one's peak RSS."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    s = settings(ctx, rounds)
    names = list(VARIANTS)
    steps = {n: _trainer(n, s, ctx.seed) for n in names}
    for n in names:
        for _ in range(s["warmup"]):
            steps[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(s["rounds"]):
        for n in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            steps[n]()
            times[n].append(time.perf_counter() - start)
    del steps
    spawn = multiprocessing.get_context("spawn")
    rss = {}
    for n in names:
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            rss[n] = pool.submit(rss_child, n, s, ctx.seed, ctx.threads).result()
    epoch_s = lightning_epochs(ctx, s, epochs) if epochs else {}
    base = statistics.median(times["resnet18"])
    rows = []
    for n in names:
        med = statistics.median(times[n])
        row = {"variant": n, "s_per_step": med, "ratio": med / base, "min_s": min(times[n]),
               "max_s": max(times[n]), **rss[n], "lightning_epoch_s": epoch_s.get(n)}
        if epoch_s:
            row["epoch_ratio"] = min(epoch_s[n]) / min(epoch_s["resnet18"])
        rows.append(row)
    return {"settings": s, "epochs": epochs, "rows": rows, "attention": attention_effect(ctx, s)}


def run(ctx: Context, rounds: int | None = None, epochs: int = 0) -> SectionResult:
    """Measure and describe; `epochs` > 0 adds that many Lightning epochs per variant."""
    data = measure(ctx, rounds, epochs)
    s = data["settings"]
    headers = ["variant", "ms / step (median)", "step × resnet18", "peak RSS MiB", "RSS after build MiB"]
    rows = [[r["variant"], 1e3 * r["s_per_step"], r["ratio"], r["peak_rss_mib"], r["rss_built_mib"]]
            for r in data["rows"]]
    if epochs:
        headers += ["Lightning s / epoch (fastest)", "epoch × resnet18"]
        for row, r in zip(rows, data["rows"], strict=True):
            row += [min(r["lightning_epoch_s"]), r["epoch_ratio"]]
    md = (
        f"Random 1×{s['size']}×{s['size']} patches, batch {s['batch_size']}, AdamW, BCE, eager fp32, torch "
        f"threads = {ctx.threads}; bare training steps (no data loading), the variants taking turns for "
        f"{s['rounds']} rounds after {s['warmup']} warm-up step(s); median per variant. Peak RSS (VmHWM): a "
        f"fresh process per variant, {s['rss_steps']} steps. \"reference pooling\" is `heads.bilinear_pool` "
        "(autograd of the plain formula), the code path before `fused_bilinear_pool`."
    )
    if epochs:
        md += (f" Lightning epochs: `lightning.Trainer` + `FlawModule(optimizer='adamw')`, "
               f"{s['epoch_batches']} in-memory batches of {s['batch_size']} per epoch, "
               f"{epochs} epoch(s) per variant taken in turns; the fastest epoch counts.")
    att = data["attention"]
    note = (f"\nSA-BCNN's feature map here is {att['feature_map'][0]}×{att['feature_map'][1]}; leaving the "
            f"attention out changes the pooled vector by at most {att['max_abs_z_change']:.1e}, and the "
            f"attention's last conv gets a gradient of norm {att['attention_grad_norm']:.1e} (FC layer: "
            f"{att['fc_grad_norm']:.1e}) on one batch.\n")
    return SectionResult(data, f"{md}\n\n{md_table(headers, rows, digits=2)}{note}")


def profile(ctx: Context, variant: str, steps: int = 3, rows: int = 25) -> str:
    """torch.profiler's table of the ops with most self CPU time over `steps` training steps of a variant."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    s = settings(ctx)
    step = _trainer(variant, s, ctx.seed)
    for _ in range(s["warmup"]):
        step()
    with torch_profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for _ in range(steps):
            step()
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)


def main(argv: list[str] | None = None) -> int:
    """Print the section's table."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.bilinear_speed",
                                description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny batch and two rounds (smoke run)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 12)")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--epochs", type=int, default=0,
                   help="also time this many Lightning training epochs per variant (default 0: none)")
    p.add_argument("--profile", choices=list(VARIANTS), default=None,
                   help="instead: print torch.profiler's top ops over 3 training steps of this variant")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    set_threads(args.threads)
    ctx = Context(data=None, out=Path("bench-out"), quick=args.quick, seed=args.seed, threads=args.threads)
    if args.profile:
        print(profile(ctx, args.profile))
        return 0
    print(run(ctx, args.rounds, args.epochs).markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
