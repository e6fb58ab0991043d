"""Section `real_segment`: U-Nets on GDXray weld patches and magnetic tile masks (pixel and flaw metrics)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import Context, SectionResult, md_table
from benchmarks.realdata import magnetic_tile_binary_manifest, train_run

NAME = "real_segment"
NEEDS_DATA = True
TITLE = "Real data: defect segmentation"
ANCHORS = (
    "DEU-Net, magnetic tile: mIoU 66.94 (its paper's own split, GPU budget).",
    "Seed 001 (radiograph pre-training paper), GDXray welds: mIoU 68.00 random init, 69.35 ImageNet init, "
    "73.92 radiograph pre-training (their patches, split and training budget).",
)


def settings(ctx: Context) -> dict[str, Any]:
    """Patch/input size and training budget."""
    if ctx.quick:
        return {"size": 32, "epochs": 1, "batch_size": 8, "limit_batches": 2, "budget_min": 3,
                "models": ("unet_small",)}
    return {"size": 64, "epochs": 2, "batch_size": 16, "limit_batches": 15, "budget_min": 8,
            "models": ("unet_small", "unet")}


def welds_manifest(ctx: Context, size: int) -> tuple[Path, dict[str, Any]]:
    """W0001 radiographs cut into size×size patches labelled by their W0002 masks; ok patches 1:1."""
    from flawscope.data.patches import extract_patches
    from flawscope.data.sources import load_dataset
    from flawscope.data.sources.manifest import write_manifest

    index = load_dataset(ctx.dataset("gdxray-welds"), format="gdxray")
    patches = extract_patches(index, size, source="mask", keep_ok_ratio=1.0, seed=ctx.seed)
    path = write_manifest(patches, ctx.out / "work" / f"welds{size}" / "manifest.csv")
    n_bad = sum(bool(s.defective) for s in patches.samples)
    return path, {"patches": len(patches), "defect": n_bad, "ok": len(patches) - n_bad,
                  "radiographs": len(index)}


def _one(ctx: Context, dataset: str, manifest: Path, model: str, s: dict, resize: bool) -> dict[str, Any]:
    result, wall = train_run(
        ctx, f"seg-{dataset}-{model}", data=str(manifest), format="manifest", task="segment", model=model,
        input_size=(s["size"], s["size"]), resize=resize, epochs=s["epochs"], batch_size=s["batch_size"],
        limit_batches=s["limit_batches"], optimizer="adamw", lr=1e-3, val_fraction=0.2, test_fraction=0.2,
        by_group=True,
    )
    test = result.metrics["test"]
    pixel = test.get("pixel", {})
    return {
        "dataset": dataset, "model": model + (" (smp, resnet18 encoder)" if model == "unet" else ""),
        **{k: pixel.get(k) for k in ("precision", "recall", "iou", "miou", "dice")},
        "flaw_recall": test.get("flaw", {}).get("flaw_recall"), "image_auroc": test.get("roc_auc"),
        "epochs": result.epochs_trained, "s_per_epoch": wall / max(result.epochs_trained, 1),
        "split_sizes": result.metrics.get("split_sizes"), "run_dir": str(result.run_dir),
    }


def run(ctx: Context) -> SectionResult:
    """Train the segmenters on both datasets within the time budget."""
    s = ctx.budget(settings(ctx))
    w_manifest, w_info = welds_manifest(ctx, s["size"])
    mt_manifest, mt_info = magnetic_tile_binary_manifest(ctx, 0.2, 0.2)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for model in ctx.pick(s["models"]):
        for dataset, manifest, resize in (("welds", w_manifest, False), ("magnetic_tile", mt_manifest, True)):
            if time.perf_counter() - start > s["budget_min"] * 60:
                rows.append({"dataset": dataset, "model": model, "skipped": "time budget spent"})
                continue
            try:
                rows.append(_one(ctx, dataset, manifest, model, s, resize))
            except Exception as err:  # noqa: BLE001 - one failed run must not lose the others
                rows.append({"dataset": dataset, "model": model, "failed": f"{type(err).__name__}: {err}"})
    pct = ("precision", "recall", "iou", "miou", "dice", "flaw_recall", "image_auroc")
    done = [r for r in rows if "skipped" not in r and "failed" not in r]
    table = md_table(
        ["dataset", "model", "pixel precision %", "pixel recall %", "IoU %", "mIoU %", "Dice %",
         "flaw recall %", "image AUROC %", "epochs", "s / epoch"],
        [[r["dataset"], r["model"], *[None if r[k] is None else 100 * r[k] for k in pct], r["epochs"],
          r["s_per_epoch"]] for r in done], digits=1,
    )
    for r in rows:
        if "skipped" in r or "failed" in r:
            table += f"\n- {r['dataset']} / {r['model']}: {r.get('skipped') or 'failed: ' + r['failed']}"
    md = (
        f"`flawscope.training.run.train --task segment` from random init (adamw, lr 1e-3, "
        f"{s['epochs']} epochs × "
        f"{'at most ' + str(s['limit_batches']) + ' batches' if s['limit_batches'] else 'all batches'} "
        f"of {s['batch_size']}, BCE+Dice, "
        f"seed {ctx.seed}); pixel "
        "metrics on the test split at mask probability 0.5, summed over test items with a mask (mIoU = mean "
        "of defect and background IoU); flaw recall = connected GT flaws (8-connectivity) touched by the "
        "prediction; image AUROC from the model's image-level logit; s / epoch = run wall time / epochs "
        "(includes per-epoch validation, start-up and the final val/test evaluation).\n\n"
        f"- **GDXray welds**: {w_info['radiographs']} W0001 radiographs cut into {s['size']}×{s['size']} "
        f"patches at native resolution, labelled by the W0002 masks; ok patches subsampled 1:1 "
        f"({w_info['defect']} defect + {w_info['ok']} ok); split by radiograph (val 20 %, test 20 %).\n"
        f"- **Magnetic tile**: {mt_info['images']} whole images resized to {s['size']}×{s['size']} with "
        "their masks (metrics at that size, not native resolution); split stratified by the 6 classes "
        f"({mt_info['split_sizes']}).\n\n" + table +
        "\n\nAnchors from other papers, **not comparable** (other splits, input sizes, GPUs and tens to "
        "hundreds of epochs):\n\n" + "\n".join(f"- {a}" for a in ANCHORS) + "\n"
    )
    return SectionResult({"settings": s, "welds": w_info, "magnetic_tile": mt_info, "rows": rows}, md)
