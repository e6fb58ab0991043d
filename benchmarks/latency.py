"""Section `latency`: inference ms/image at batch 1 and 32, FLOPs, Params and achieved GFLOP/s per model."""

from __future__ import annotations

from benchmarks.common import (
    EXTRA_MODELS,
    PAPER_MODELS,
    QUICK_MODELS,
    Context,
    SectionResult,
    build_model,
    md_table,
)

NAME = "latency"
NEEDS_DATA = False
TITLE = "Inference latency and cost"


def settings(ctx: Context) -> dict:
    """Input size, batch sizes and iteration counts (tiny under --quick)."""
    if ctx.quick:
        return {"size": 32, "batch_sizes": [1, 4], "warmup": 1, "iters": [2, 1]}
    # Batch 1 is cheap, so it gets more passes (its mean is the noisier one on a shared CPU).
    return {"size": 224, "batch_sizes": [1, 32], "warmup": 2, "iters": [8, 2]}


def run(ctx: Context) -> SectionResult:
    """evaluation.cost.model_cost for every model."""
    import torch

    from flawscope.evaluation.cost import measure_latency, model_cost

    s = settings(ctx)
    models = ctx.pick(QUICK_MODELS if ctx.quick else PAPER_MODELS + EXTRA_MODELS)
    rows = []
    for name in models:
        torch.manual_seed(ctx.seed)
        model = build_model(name, s["size"])
        row: dict = {"model": name}
        for bs, iters in zip(s["batch_sizes"], s["iters"], strict=True):
            cost = model_cost(model, (1, s["size"], s["size"]), [bs], "cpu", s["warmup"], iters)
            row.update(params=cost["params"], flops=cost["flops"], gflops=cost["gflops"])
            lat = cost["latency"][bs]
            row[f"ms_per_image_b{bs}"] = lat["ms_per_image"]
            row[f"std_ms_per_batch_b{bs}"] = lat["std"]
            row[f"gflops_per_s_b{bs}"] = lat["gflops_per_s"]
        # Also batch 1 on one thread: on a loaded CPU, OpenMP threads wait for each other at every op.
        torch.set_num_threads(1)
        try:
            one = measure_latency(model, (1, s["size"], s["size"]), 1, "cpu", s["warmup"], s["iters"][0])
        finally:
            torch.set_num_threads(ctx.threads)
        row["ms_per_image_b1_1thread"] = one["ms_per_image"]
        rows.append(row)
    b1, b2 = s["batch_sizes"]
    table = md_table(
        ["model", "Params (M)", "GFLOPs / image", f"ms/image (b{b1})", f"ms/image (b{b2})",
         f"GFLOP/s (b{b1})", f"GFLOP/s (b{b2})", "ms/image (b1, 1 thread)"],
        [[r["model"], r["params"] / 1e6, r["gflops"], r[f"ms_per_image_b{b1}"], r[f"ms_per_image_b{b2}"],
          r[f"gflops_per_s_b{b1}"], r[f"gflops_per_s_b{b2}"], r["ms_per_image_b1_1thread"]] for r in rows],
        digits=2,
    )
    md = (
        f"`flawscope.evaluation.cost.model_cost`: eager fp32 under `torch.inference_mode`, random 1-channel "
        f"{s['size']}×{s['size']} inputs, {s['warmup']} warm-up then mean of {s['iters'][0]} (batch {b1}) / "
        f"{s['iters'][1]} (batch {b2}) timed passes, torch threads = {ctx.threads}. FLOPs are torch's "
        "FlopCounterMode count (2 × MACs; halve to compare with papers that report MACs). The last column "
        "repeats batch 1 with one torch thread.\n\n" + table
    )
    return SectionResult({"settings": s, "rows": rows}, md)
