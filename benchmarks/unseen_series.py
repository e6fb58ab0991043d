"""Quality on series never seen in training: every run of a recipes study, scored on the standard protocol.

    python -m benchmarks.unseen_series --study STUDY --patches XDEFECTS.csv --images GDXRAY_CASTINGS \
        --out OUT [--whole RECIPE,...] [--overlap 16] [--threads 2]

For each recipe of `flawscope study recipes` (folder STUDY) and each fold:
- patch metrics on the standard Xdefects patches (`flawscope data patches --xdefects`, no hard negatives) of
  the fold's test series, at the run's val-chosen threshold, through `flawscope evaluate` (a run trained on
  another manifest, e.g. one with hard negatives, is scored on the same standard patches by test series);
- the LBP + linear SVM baseline (Mery & Arteta's winner) fitted on the same fold's train patches, threshold
  on its val patches;
- for the recipes named by --whole: the whole radiographs of the fold's test series through the Predictor's
  sliding window: image ROC-AUC (an image is defective when it has a box) and box recall / false flaws per
  image at the run's threshold.
Mean ± std over folds go to OUT/unseen_series.md and .json; per-run rows to OUT/unseen_series-runs.csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

PATCH_KEYS = ("roc_auc", "f1", "recall", "miss_rate", "false_alarm_rate", "precision")
WHOLE_KEYS = ("image_roc_auc", "image_recall", "image_false_alarm_rate", "box_recall",
              "false_flaws_per_image", "false_flaws_per_ok_image")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.unseen_series",
                                description=__doc__.splitlines()[0])
    p.add_argument("--study", type=Path, required=True, help="a `flawscope study recipes` folder")
    p.add_argument("--patches", type=Path, required=True, help="standard Xdefects patch manifest")
    p.add_argument("--images", type=Path, default=None, help="GDXray castings folder (whole radiographs)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--whole", default="", help="recipes scored on whole radiographs too (comma-separated)")
    p.add_argument("--tta", default="", help="recipes also scored with test-time flips (comma-separated)")
    p.add_argument("--overlap", type=int, default=16, help="sliding-window overlap in pixels (32 px tiles)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--no-baseline", action="store_true", help="skip the LBP + SVM rows")
    return p.parse_args(argv)


def _runs(study: Path) -> list[tuple[str, Path]]:
    """(recipe, run folder) of every finished run of the study, as its recipes-runs.csv lists them."""
    with (study / "recipes-runs.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [(r["init"], Path(r["run"])) for r in rows if (Path(r["run"]) / "metrics.json").is_file()]


def _patch_row(run: Path, patches: Path, work: Path, tta: bool = False) -> dict[str, Any]:
    from flawscope.evaluation.evaluate import evaluate

    result = evaluate(run, data=patches, split="test", out=work / ("patches-tta" if tta else "patches"),
                      write_report=False, tta=tta, batch_size=256)
    m = result.metrics["metrics"]
    return {k: m.get(k) for k in PATCH_KEYS} | {"n_patches": result.metrics["n_samples"]}


def _whole_row(run: Path, images: Path, overlap: int, work: Path) -> dict[str, Any]:
    from flawscope.evaluation.evaluate import evaluate

    result = evaluate(run, data=images, format="gdxray", split="test", overlap=overlap, batch_size=256,
                      out=work / "whole", write_report=False)
    m = result.metrics["metrics"]
    boxes = m.get("boxes") or {}
    return {"image_roc_auc": m.get("roc_auc"), "image_recall": m.get("recall"),
            "image_false_alarm_rate": m.get("false_alarm_rate"), "n_images": result.metrics["n_samples"],
            **{k: boxes.get(k) for k in ("box_recall", "false_flaws_per_image", "false_flaws_per_ok_image",
                                         "n_boxes")}}


def _baseline_rows(study: Path, patches: Path) -> list[dict[str, Any]]:
    from flawscope.data.sources import load_dataset
    from flawscope.data.splits import load_split, split_groups
    from flawscope.errors import DatasetError
    from flawscope.evaluation.baselines import lbp_svm_split_metrics

    index = load_dataset(patches, format="manifest")
    rows = []
    for split_file in sorted((study / "folds").glob("fold*/split.csv")):
        if not split_file.parent.name.removeprefix("fold").isdigit():
            continue
        try:
            split = load_split(index, split_file)
        except DatasetError:  # the folds were cut from another manifest: match by series
            from flawscope.data.splits import Split

            part = {g: name for name in ("train", "val", "test") for g in split_groups(split_file, (name,))}
            by = {name: [i for i, s in enumerate(index.samples) if part.get(s.group) == name]
                  for name in ("train", "val", "test")}
            split = Split(by["train"], by["val"], by["test"], 0, f"groups of {split_file}")
        start = time.perf_counter()
        m = lbp_svm_split_metrics(index, split)
        rows.append({"recipe": "LBP + linear SVM (Mery & Arteta)", "fold": split_file.parent.name,
                     **{k: m["test"].get(k) for k in PATCH_KEYS}, "n_patches": m["test"].get("n"),
                     "seconds": time.perf_counter() - start})
    return rows


def _summary(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    from flawscope.evaluation.metrics import mean_std

    out = []
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        entry: dict[str, Any] = {"recipe": recipe, "folds": len(mine)}
        for k in keys:
            values = [r[k] for r in mine if r.get(k) is not None]
            if values:
                mean, std, _ = mean_std(values)
                entry[k], entry[f"{k}_std"] = mean, std
        out.append(entry)
    return out


def _markdown(title: str, summary: list[dict[str, Any]], keys: tuple[str, ...]) -> str:
    lines = [f"### {title}", "", "| Recipe | Folds | " + " | ".join(keys) + " |",
             "|:---|---:|" + "---:|" * len(keys)]
    for e in summary:
        cells = [f"{e[k]:.3f} ± {e[f'{k}_std']:.3f}" if k in e else "–" for k in keys]
        lines.append(f"| {e['recipe']} | {e['folds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Score the study's runs and write the tables."""
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    whole = {r.strip() for r in args.whole.split(",") if r.strip()}
    tta = {r.strip() for r in args.tta.split(",") if r.strip()}
    patch_rows, whole_rows = [], []
    for recipe, run in _runs(args.study):
        work = args.out / "work" / recipe / run.name
        start = time.perf_counter()
        patch_rows.append({"recipe": recipe, "fold": run.name, **_patch_row(run, args.patches, work),
                           "seconds": time.perf_counter() - start})
        print(f"{recipe} {run.name}: patch ROC AUC {patch_rows[-1]['roc_auc']:.3f}", flush=True)
        if recipe in tta:
            patch_rows.append({"recipe": f"{recipe} + test-time flips", "fold": run.name,
                               **_patch_row(run, args.patches, work, tta=True)})
        if recipe in whole and args.images is not None:
            start = time.perf_counter()
            whole_rows.append({"recipe": recipe, "fold": run.name,
                               **_whole_row(run, args.images, args.overlap, work),
                               "seconds": time.perf_counter() - start})
            print(f"{recipe} {run.name}: image ROC AUC {whole_rows[-1]['image_roc_auc']:.3f}, box recall "
                  f"{whole_rows[-1]['box_recall']}", flush=True)
    if not args.no_baseline:
        patch_rows += _baseline_rows(args.study, args.patches)
    patch_summary = _summary(patch_rows, PATCH_KEYS)
    whole_summary = _summary(whole_rows, WHOLE_KEYS)
    md = _markdown("Patches of unseen series (standard Xdefects protocol, val-chosen threshold)",
                   patch_summary, PATCH_KEYS)
    if whole_summary:
        md += "\n" + _markdown(f"Whole radiographs of unseen series (32 px sliding window, overlap "
                               f"{args.overlap} px)", whole_summary, WHOLE_KEYS)
    (args.out / "unseen_series.md").write_text(md)
    (args.out / "unseen_series.json").write_text(json.dumps(
        {"patches": patch_summary, "whole": whole_summary, "runs": patch_rows, "whole_runs": whole_rows},
        indent=2, default=str))
    with (args.out / "unseen_series-runs.csv").open("w", newline="") as f:
        keys = list(dict.fromkeys(k for r in patch_rows + whole_rows for k in r))
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(patch_rows + whole_rows)
    print(md)


if __name__ == "__main__":
    main()
