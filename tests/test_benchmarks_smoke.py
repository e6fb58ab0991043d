"""Smoke test of the benchmark harness (`python -m benchmarks.run --quick`), sections without real data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `benchmarks` sits beside src/, not inside the installed package
    sys.path.insert(0, str(REPO_ROOT))


def test_quick_run_writes_numbers_and_skips_real_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.run import main

    monkeypatch.delenv("FLAWSCOPE_DATA", raising=False)
    out = tmp_path / "bench"
    code = main(["--out", str(out), "--quick", "--only", "throughput,latency,loader,real_classify",
                 "--models", "small_cnn", "--threads", "1", "--seed", "3"])
    assert code == 0
    records = {n: json.loads((out / f"{n}.json").read_text())
               for n in ("throughput", "latency", "loader", "real_classify")}
    assert [r["status"] for r in records.values()] == ["ok", "ok", "ok", "skipped"]
    assert "--data" in records["real_classify"]["error"]
    (row,) = records["throughput"]["data"]["rows"]
    assert row["model"] == "small_cnn" and row["images_per_s"] > 0
    lat = records["latency"]["data"]["rows"][0]
    assert lat["flops"] > 0 and lat["ms_per_image_b1"] > 0
    loader = records["loader"]["data"]
    assert loader["synthetic"]["warm_images_per_s"] > 0 and "skipped" in loader["xdefects"]
    assert records["throughput"]["seed"] == 3 and records["throughput"]["machine"]["torch_threads"] == 1
    md = (out / "benchmarks.md").read_text()
    for title in ("Training throughput", "Inference latency", "Data loading", "Skipped"):
        assert title in md


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    from benchmarks.run import main

    with pytest.raises(SystemExit, match="unknown section.*valid: throughput"):
        main(["--out", str(tmp_path), "--only", "throughput,nonsense"])


def test_unseen_series_scores_a_recipes_study_and_the_baseline(tmp_path: Path) -> None:
    import csv

    from benchmarks.unseen_series import main

    from flawscope.training.study import StudyConfig, run_study
    from helpers.datasets import blob_image, save

    rows = []
    for i in range(36):
        name = f"img/{i}.png"
        save(tmp_path / name, blob_image(i, i % 2 == 1, blob=6)[0])
        rows.append([name, "defect" if i % 2 else "ok", f"series{i // 4}"])
    with (tmp_path / "patches.csv").open("w", newline="") as f:
        csv.writer(f).writerows([["path", "label", "group"], *rows])
    train = {"data": str(tmp_path / "patches.csv"), "model": "small_cnn", "input_size": 32, "epochs": 1,
             "batch_size": 8, "limit_batches": 2, "patience": 0, "accelerator": "cpu", "devices": "1",
             "threads": 1, "resize": False}
    study = tmp_path / "study"
    run_study(StudyConfig(kind="recipes", train=train, folds=2, out=str(study),
                          recipes={"plain": {}, "std": {"normalize": "standardize"}}))
    out = tmp_path / "unseen"
    main(["--study", str(study), "--patches", str(tmp_path / "patches.csv"), "--out", str(out),
          "--tta", "std", "--threads", "1"])
    data = json.loads((out / "unseen_series.json").read_text())
    names = [r["recipe"] for r in data["patches"]]
    assert names == ["plain", "std", "std + test-time flips", "LBP + linear SVM (Mery & Arteta)"]
    assert all(r["folds"] == 2 and 0 <= r["roc_auc"] <= 1 for r in data["patches"])
    assert "| std + test-time flips | 2 |" in (out / "unseen_series.md").read_text()
