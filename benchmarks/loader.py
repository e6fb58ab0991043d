"""Section `loader`: DataLoader images/s, cold vs warm DecodeCache, next to model training throughput."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Context, SectionResult, SectionSkipped, md_table

NAME = "loader"
NEEDS_DATA = False  # the synthetic part always runs; the GDXray part skips without data
TITLE = "Data loading"


def _cold_warm(index: Any, size: int, resize: bool, batch_size: int, seed: int) -> dict[str, Any]:
    """Images/s of one pass over the train split with an empty cache (cold), then again (warm)."""
    from flawscope.data.cache import DecodeCache
    from flawscope.data.config import PreprocessConfig
    from flawscope.data.datamodule import FlawDataModule, loader_throughput
    from flawscope.data.splits import make_split

    split = make_split(index, 0.1, 0.1, seed, by_group=True, stratify=True)
    pre = PreprocessConfig(in_chans=1, input_size=(size, size), resize=resize)
    cache = DecodeCache()
    dm = FlawDataModule(index, split, pre, batch_size=batch_size, num_workers=0, seed=seed, cache=cache)
    # One full pass minus the untimed first batch: every image is decoded exactly once in the cold pass.
    n_batches = max(1, len(split.train) // batch_size - 1)
    start = time.perf_counter()
    cold = loader_throughput(dm, n_batches)
    cold_wall = time.perf_counter() - start
    warm = loader_throughput(dm, n_batches)
    return {"n_train": len(split.train), "n_batches": n_batches, "batch_size": batch_size, "input_size": size,
            "cold_images_per_s": cold, "warm_images_per_s": warm, "cold_pass_s": cold_wall,
            "cache_hit_rate": cache.stats.hit_rate}


def synthetic(ctx: Context) -> dict[str, Any]:
    """16-bit PNG synthetic radiographs (flawscope.data.synth) resized to the model input."""
    from flawscope.data.sources import load_dataset
    from flawscope.data.synth import SynthConfig, generate_dataset

    n, side, size = (16, 96, 32) if ctx.quick else (160, 512, 224)
    folder = ctx.out / "work" / f"synth-{n}x{side}-seed{ctx.seed}"
    if not (folder / "manifest.csv").is_file():
        cfg = SynthConfig(n_images=n, size=(side, side), bit_depth=16, seed=ctx.seed, n_parts=max(4, n // 8),
                          flaw_size=(3.0, min(14.0, side / 4)))
        generate_dataset(folder, cfg, overwrite=True)
    index = load_dataset(folder)
    out = _cold_warm(index, size, True, 16, ctx.seed)
    out.update(source=f"synthetic 16-bit PNG {side}×{side}, {n} images, resized to {size}×{size}")
    return out


def xdefects(ctx: Context) -> dict[str, Any]:
    """GDXray castings Xdefects 32×32 patches cropped at native resolution."""
    from flawscope.data.patches import xdefects_patches
    from flawscope.data.sources import load_dataset

    root = ctx.dataset("gdxray-castings")
    index = xdefects_patches(load_dataset(root, format="gdxray"), size=32, n_ok_per_image=4, seed=ctx.seed)
    if ctx.quick:
        index = index.subset(list(range(0, len(index), 10)))
    out = _cold_warm(index, 32, False, 64, ctx.seed)
    out.update(source=f"GDXray castings Xdefects patches 32×32 ({len(index)} patches, batch 64)")
    return out


def run(ctx: Context) -> SectionResult:
    """Measure both sources; the real one skips with its reason when the data is absent."""
    parts: dict[str, Any] = {"synthetic": synthetic(ctx)}
    try:
        parts["xdefects"] = xdefects(ctx)
    except SectionSkipped as why:
        parts["xdefects"] = {"skipped": str(why)}
    rows = [[v["source"], v["n_train"], v["cold_images_per_s"], v["warm_images_per_s"], v["cache_hit_rate"]]
            for v in parts.values() if "skipped" not in v]
    md = ("Train-split DataLoader (`flawscope.data.datamodule.loader_throughput`, `flips` augmentation, "
          "num_workers = 0, batch 16 or 64): one pass with an empty `DecodeCache` (cold: every image decoded "
          "once), then a second pass (warm: decoded arrays served from the cache; crop/resize/augment/"
          "normalise still run).\n\n")
    md += md_table(["source", "train items", "cold images/s", "warm images/s", "cache hit rate"], rows, 2)
    for v in parts.values():
        if "skipped" in v:
            md += f"\nGDXray Xdefects part skipped: {v['skipped']}\n"
    throughput = Path(ctx.out) / "throughput.json"
    if throughput.is_file():
        tp = json.loads(throughput.read_text())["data"]
        model_rows, st = tp["rows"], tp["settings"]
        md += (f"\nFor comparison, training throughput of the models (section `throughput`, random "
               f"{st['size']} px batches of {st['batch_size']}): "
               + ", ".join(f"{r['model']} {r['images_per_s']:.1f}" for r in model_rows)
               + " images/s. The loader is a bottleneck only where its warm rate is below the model's.\n")
        parts["model_images_per_s"] = {r["model"]: r["images_per_s"] for r in model_rows}
    return SectionResult(parts, md)
