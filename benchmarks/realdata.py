"""Real-data preparation shared by `real_classify` and `real_segment`: patch and binary manifests, runs."""

from __future__ import annotations

import dataclasses
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Context


def xdefects_manifest(ctx: Context, n_ok_per_image: int = 4) -> tuple[Path, dict[str, Any]]:
    """GDXray castings Xdefects 32×32 patches (boxes-centred defects + defect-free patches) as a manifest."""
    from flawscope.data.patches import xdefects_patches
    from flawscope.data.sources import load_dataset
    from flawscope.data.sources.manifest import write_manifest

    index = load_dataset(ctx.dataset("gdxray-castings"), format="gdxray")
    patches = xdefects_patches(index, size=32, n_ok_per_image=n_ok_per_image, seed=ctx.seed)
    path = write_manifest(patches, ctx.out / "work" / "xdefects" / "manifest.csv")
    n_bad = sum(bool(s.defective) for s in patches.samples)
    return path, {"patches": len(patches), "defect": n_bad, "ok": len(patches) - n_bad,
                  "groups": len({s.group for s in patches.samples}), "source_images": len(index)}


def magnetic_tile_binary_manifest(ctx: Context, val: float, test: float) -> tuple[Path, dict[str, Any]]:
    """Magnetic tile as defect (5 classes) vs ok (MT_Free), split stratified by the 6 original classes.

    The split is fixed in the manifest's split column so the binary relabelling cannot change it.
    """
    from flawscope.data.sample import DatasetIndex
    from flawscope.data.sources import load_dataset
    from flawscope.data.sources.manifest import write_manifest
    from flawscope.data.splits import make_split

    index = load_dataset(ctx.dataset("magnetic-tile"), format="magnetic_tile")
    split = make_split(index, val, test, ctx.seed, by_group=True, stratify=True)
    part = {i: name for name in ("train", "val", "test") for i in split.part(name)}
    samples = [
        dataclasses.replace(s, label="defect" if s.defective else "ok", split=part[i])
        for i, s in enumerate(index.samples) if i in part
    ]
    binary = DatasetIndex(index.root, "magnetic_tile", samples, ["ok", "defect"], frozenset({"defect"}))
    path = write_manifest(binary, ctx.out / "work" / "magnetic_tile_binary" / "manifest.csv")
    n_bad = sum(bool(s.defective) for s in samples)
    return path, {"images": len(samples), "defect": n_bad, "ok": len(samples) - n_bad,
                  "split_sizes": split.sizes(), "classes": index.classes}


def train_run(ctx: Context, name: str, **options: Any) -> tuple[Any, float]:
    """flawscope.training.run.train with the benchmark's run folder; returns (RunResult, wall seconds).

    A previous run folder of the same name (from an earlier benchmark) is replaced.
    """
    from flawscope.training.config import TrainConfig
    from flawscope.training.run import train

    runs = ctx.out / "runs"
    if (runs / name).exists():
        shutil.rmtree(runs / name)
    cfg = TrainConfig(out=str(runs), name=name, seed=ctx.seed, accelerator="cpu", devices="1",
                      num_workers=0, patience=0, **options)
    start = time.perf_counter()
    result = train(cfg, progress=False)
    return result, time.perf_counter() - start
