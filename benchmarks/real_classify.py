"""Section `real_classify`: the SA-BCNN paper's Table III on GDXray Xdefects patches and magnetic tile."""

from __future__ import annotations

import time
from typing import Any

from benchmarks.common import PAPER_MODELS, Context, SectionResult, build_model
from benchmarks.realdata import magnetic_tile_binary_manifest, train_run, xdefects_manifest

NAME = "real_classify"
NEEDS_DATA = True
TITLE = "Real data: defect classification (Table III)"
# Required models first; the others run only while the time budget lasts.
MODELS = ("small_cnn", "resnet18", "bcnn", "sa_bcnn", "sa_bcnn_cbam", "resnet34", "vgg16", "xception")
assert set(MODELS) >= set(PAPER_MODELS)  # noqa: S101 - a programming check, not user input


def settings(ctx: Context) -> dict[str, Any]:
    """Training budget per dataset (minutes for all its models) and per run."""
    if ctx.quick:
        return {"epochs": 1, "batch_size": 16, "limit_batches": 3, "budget_min": {"xdefects": 2, "mt": 2},
                "optimizer": "adamw", "lr": 1e-3, "mt_size": 32}
    return {"epochs": 2, "batch_size": 32, "limit_batches": 20, "budget_min": {"xdefects": 16, "mt": 12},
            "optimizer": "adamw", "lr": 1e-3, "mt_size": 64}


def _row(ctx: Context, model_name: str, size: int, result: Any, wall: float, dataset: str) -> dict[str, Any]:
    from flawscope.evaluation.cost import count_flops, count_params, measure_latency

    model = build_model(model_name, size)
    test = result.metrics["test"]
    lat = measure_latency(model, (1, size, size), 1, "cpu", warmup=2, iters=5, seed=ctx.seed)
    return {
        "model": model_name, "dataset": dataset, "params": count_params(model),
        "flops": count_flops(model, (1, size, size)),
        **{k: test.get(k) for k in ("TP", "TN", "FP", "FN", "precision", "recall", "accuracy", "miss_rate",
                                    "false_alarm_rate", "roc_auc", "f1")},
        "cpu_ms": lat["ms_per_image"], "gpu_ms": None, "threshold": result.threshold,
        "epochs": result.epochs_trained, "train_wall_s": wall,
        "split_sizes": result.metrics.get("split_sizes"),
        "run_dir": str(result.run_dir),
    }


def _dataset_runs(ctx: Context, dataset: str, manifest: Any, size: int, resize: bool, s: dict) -> list[dict]:
    rows: list[dict] = []
    start = time.perf_counter()
    budget = s["budget_min"][dataset] * 60
    for model_name in ctx.pick(("small_cnn", "resnet18") if ctx.quick else MODELS):
        if time.perf_counter() - start > budget:
            rows.append({"model": model_name, "dataset": dataset, "skipped": "time budget spent"})
            continue
        try:
            result, wall = train_run(
                ctx, f"{dataset}-{model_name}", data=str(manifest), format="manifest", model=model_name,
                input_size=(size, size), resize=resize, epochs=s["epochs"], batch_size=s["batch_size"],
                limit_batches=s["limit_batches"], optimizer=s["optimizer"], lr=s["lr"],
                val_fraction=0.2, test_fraction=0.25, by_group=True,
            )
        except Exception as err:  # noqa: BLE001 - record the failure of one model and go on with the next
            rows.append({"model": model_name, "dataset": dataset, "failed": f"{type(err).__name__}: {err}"})
            continue
        rows.append(_row(ctx, model_name, size, result, wall, dataset))
    return rows


def _table(rows: list[dict]) -> str:
    from flawscope.evaluation.table import TABLE_III_COLUMNS, benchmark_table

    done = [r for r in rows if "skipped" not in r and "failed" not in r]
    md = ""
    if done:
        cols = [c[0] for c in TABLE_III_COLUMNS] + [
            ("roc_auc", "ROC AUC", "ratio"), ("epochs", "epochs", "count"),
            ("train_wall_s", "train wall s", "number"),
        ]
        md = benchmark_table(done, cols)[0]
    for r in rows:
        if "skipped" in r or "failed" in r:
            md += f"\n- {r['model']}: {r.get('skipped') or 'failed: ' + r['failed']}"
    return md + "\n"


def run(ctx: Context) -> SectionResult:
    """Train every model on both datasets within the budget; Table III columns on the test split."""
    s = ctx.budget(settings(ctx))
    x_manifest, x_info = xdefects_manifest(ctx, n_ok_per_image=4)
    mt_manifest, mt_info = magnetic_tile_binary_manifest(ctx, 0.2, 0.25)
    x_rows = _dataset_runs(ctx, "xdefects", x_manifest, 32, False, s)
    mt_rows = _dataset_runs(ctx, "mt", mt_manifest, s["mt_size"], True, s)
    cap = f"at most {s['limit_batches']} batches" if s["limit_batches"] else "all batches"
    steps = f"{s['epochs']} epochs × {cap} of {s['batch_size']}"
    md = (
        f"Each model trained from random init with `flawscope.training.run.train` ({s['optimizer']}, lr "
        f"{s['lr']:g}, cosine decay, {steps}, seed {ctx.seed}; best epoch by val loss), threshold chosen on "
        "val (best F1), metrics on test. Miss rate = FN/(FN+TP), false-alarm rate = FP/(TP+FP) (the paper's "
        "definitions). CPU ms = batch-1 eager latency at the training input size. Models are trained in the "
        "order listed; a model is skipped once the dataset's time budget "
        f"({s['budget_min']['xdefects']} / {s['budget_min']['mt']} min) is spent.\n\n"
        f"**GDXray castings, Xdefects protocol**: {x_info['patches']} patches of 32×32 at native resolution "
        f"({x_info['defect']} centred on the annotated boxes, {x_info['ok']} defect-free, 4 per image) from "
        f"{x_info['source_images']} images in {x_info['groups']} series; split by series (group-aware, "
        "stratified), val 20 % / test 25 %.\n\n" + _table(x_rows) +
        f"\n**Magnetic tile, defect vs MT_Free**: {mt_info['images']} whole images resized to "
        f"{s['mt_size']}×{s['mt_size']} (not patches; {mt_info['defect']} defective from 5 classes, "
        f"{mt_info['ok']} MT_Free); split stratified by the 6 original classes, val 20 % / test 25 % "
        f"({mt_info['split_sizes']}).\n\n" + _table(mt_rows)
    )
    return SectionResult({"settings": s, "xdefects": x_info, "magnetic_tile": mt_info,
                          "rows": x_rows + mt_rows}, md)
