"""train(cfg): the run folder, determinism, resume, and refusing data a detector cannot learn from."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from flawscope.errors import ConfigError, DatasetError
from flawscope.models.checkpoint import CheckpointError
from flawscope.training.config import TrainConfig
from flawscope.training.run import class_balance, train
from helpers.datasets import blob_image, save, write_blob_folder

REPO = Path(__file__).resolve().parents[2]


def _cfg(data: Path, out: Path, name: str, **kw) -> TrainConfig:
    base = dict(data=str(data), model="small_cnn", input_size=32, epochs=2, batch_size=8, optimizer="adamw",
                lr=1e-2, out=str(out), name=name, patience=0, val_fraction=0.25, test_fraction=0.25,
                accelerator="cpu", devices=1)
    return TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = write_blob_folder(tmp_path_factory.mktemp("blobs"))
    (root / "ok" / "broken.png").write_bytes(b"")  # skipped under on_bad_file="skip"
    return root


@pytest.fixture(scope="module")
def run_a(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    return train(_cfg(data, out, "a", on_bad_file="skip"), progress=False)


def test_run_folder_contents(run_a) -> None:
    d = run_a.run_dir
    for name in ("config.yaml", "split.csv", "metrics.json", "report.html", "model.pt", "skipped.csv",
                 "checkpoints/last.ckpt", "logs/metrics.csv"):
        assert (d / name).is_file(), name
    assert "broken.png" in (d / "skipped.csv").read_text()
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["threshold_chosen_on"] == "val"
    assert metrics["split_sizes"] == {"train": 16, "val": 8, "test": 8}
    assert metrics["val"]["n"] == 8 and metrics["test"]["n"] == 8
    assert metrics["test"]["threshold"] == metrics["threshold"] == run_a.threshold
    assert run_a.best_checkpoint is not None and run_a.best_checkpoint.name.startswith("best-")
    # The resolved config reloads to the same options.
    saved = TrainConfig.from_yaml(d / "config.yaml")
    assert saved.name == "a" and saved.loss == "bce" and saved.model == "small_cnn"
    # model.pt carries the threshold chosen on val.
    from flawscope.models.checkpoint import load_model_from_checkpoint

    model = load_model_from_checkpoint(run_a.model_path)
    assert model.config.threshold == pytest.approx(run_a.threshold)
    assert model.config.class_names == ("ok", "defect")


def test_same_seed_same_metrics(run_a, data) -> None:
    again = train(_cfg(data, run_a.run_dir.parent, "a_again", on_bad_file="skip"), progress=False)
    assert again.metrics["val"] == run_a.metrics["val"]
    assert again.metrics["test"] == run_a.metrics["test"]
    assert again.metrics["best_val_loss"] == run_a.metrics["best_val_loss"]


def test_split_file_fixes_the_runs_split(data, tmp_path) -> None:
    from flawscope.data.sources import load_dataset
    from flawscope.data.splits import make_split, save_split

    index = load_dataset(data, on_bad_file="skip")
    given = make_split(index, 0.2, 0.3, seed=7)  # other sizes and seed than the run's fractions would give
    save_split(index, given, tmp_path / "given.csv")
    result = train(_cfg(data, tmp_path, "fixed", epochs=1, on_bad_file="skip",
                        split_file=str(tmp_path / "given.csv")), progress=False)
    assert (result.run_dir / "split.csv").read_text() == (tmp_path / "given.csv").read_text()
    assert result.metrics["split_sizes"] == given.sizes() != {"train": 16, "val": 8, "test": 8}
    assert TrainConfig.from_yaml(result.run_dir / "config.yaml").split_file == str(tmp_path / "given.csv")
    with pytest.raises(ConfigError, match="split file .*missing.csv does not exist"):
        train(_cfg(data, tmp_path, "x", split_file=str(tmp_path / "missing.csv")), progress=False)


def test_existing_run_folder_is_not_overwritten(run_a, data) -> None:
    with pytest.raises(ConfigError, match="already holds a run.*--resume"):
        train(_cfg(data, run_a.run_dir.parent, "a"), progress=False)


def test_resume_with_more_epochs_trains_only_the_new_ones(run_a, data) -> None:
    last = run_a.run_dir / "checkpoints" / "last.ckpt"
    cfg = _cfg(data, run_a.run_dir.parent, "a_more", epochs=3, resume=str(last), on_bad_file="skip")
    resumed = train(cfg, progress=False)
    assert resumed.epochs_trained == 3
    rows = (resumed.run_dir / "logs" / "metrics.csv").read_text().splitlines()
    assert {r.split(",")[0] for r in rows[1:]} - {""} == {"2"}  # only the third epoch was trained


def test_interrupted_run_resumes_to_the_same_result(data, tmp_path, monkeypatch) -> None:
    from flawscope.training.module import FlawModule

    straight = train(_cfg(data, tmp_path, "straight", epochs=3, on_bad_file="skip"), progress=False)

    def crash(self) -> None:
        if self.current_epoch == 2:
            raise RuntimeError("power cut")

    monkeypatch.setattr(FlawModule, "on_train_epoch_start", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        train(_cfg(data, tmp_path, "cut", epochs=3, on_bad_file="skip"), progress=False)
    monkeypatch.undo()
    last = tmp_path / "cut" / "checkpoints" / "last.ckpt"
    # No name: the run continues in the checkpoint's own run folder.
    cfg = _cfg(data, tmp_path, None, epochs=3, resume=str(last), on_bad_file="skip")
    resumed = train(cfg, progress=False)
    assert resumed.run_dir == tmp_path / "cut"
    assert resumed.metrics["val"] == straight.metrics["val"]
    assert resumed.metrics["test"] == straight.metrics["test"]


def test_resume_with_another_dataset_is_refused_before_training(run_a, tmp_path) -> None:
    other = write_blob_folder(tmp_path / "three", n_per_class=8, classes=("ok", "crack", "pore"))
    last = run_a.run_dir / "checkpoints" / "last.ckpt"
    with pytest.raises(CheckpointError, match="class_names"):
        train(_cfg(other, tmp_path / "runs", "x", resume=str(last)), progress=False)
    assert not (tmp_path / "runs" / "x" / "checkpoints").exists()


def test_single_class_dataset_is_refused_before_training(tmp_path) -> None:
    data = write_blob_folder(tmp_path / "only_ok", n_per_class=6, classes=("ok",))
    with pytest.raises(DatasetError, match="only one class.*0 defective and 6 ok"):
        train(_cfg(data, tmp_path / "runs", "x"), progress=False)
    assert not (tmp_path / "runs" / "x").exists()


def test_classifier_for_segment_task_is_refused(data, tmp_path) -> None:
    with pytest.raises(ConfigError, match="small_cnn' is a classify model.*--task classify"):
        train(_cfg(data, tmp_path, "x", task="segment"), progress=False)


def test_segmenter_run_on_image_mask_data(tmp_path) -> None:
    root = tmp_path / "seg"
    for i in range(16):
        img, mask = blob_image(i, defective=i % 2 == 1)
        save(root / "images" / f"{i:03d}.png", img)
        save(root / "masks" / f"{i:03d}.png", mask)
    result = train(_cfg(root, tmp_path / "runs", "seg", task="segment", model="unet_small", epochs=1),
                   progress=False)
    # Defective flags came from the mask pixels, so the split is stratified and val/test hold defects.
    test = result.metrics["test"]
    assert test["TP"] + test["FN"] == 2
    pixel, flaw = test["pixel"], test["flaw"]
    assert pixel["n_images"] == 4 and pixel["tp"] + pixel["fp"] + pixel["fn"] + pixel["tn"] == 4 * 32 * 32
    assert flaw["n_images"] == 4 and flaw["n_gt_flaws"] == 2  # one 5x5 blob per defective image
    assert TrainConfig.from_yaml(result.run_dir / "config.yaml").loss == "bce_dice"
    # report.html: the classifier sections, then pixel and flaw metrics and overlays of the test images.
    report = result.report_path.read_text()
    assert "Confusion matrix" in report
    for title in ("pixel metrics", "flaw-level metrics", "best images", "worst images"):
        assert f"Segmentation: {title}" in report
    for key in ("precision", "recall", "iou", "miou", "dice", "flaw_recall", "false_flaws_per_image"):
        assert f"<td>{key}</td>" in report
    assert f"<td>miou</td><td>{pixel['miou']:.4g}</td>" in report
    best, worst = report.split("Segmentation: best images")[1].split("Segmentation: worst images")
    test_images = {row.split(",")[0].split("/")[-1] for row in
                   (result.run_dir / "split.csv").read_text().splitlines() if row.endswith(",test")}
    captions = re.findall(r"<figcaption>([^<]+) — IoU [0-9.]+, Dice [0-9.]+</figcaption>", best + worst)
    assert len(captions) == 4 and set(captions) == test_images  # 2 best + 2 worst of the 4 test images


def test_balance_undersamples_only_the_train_part(tmp_path) -> None:
    from flawscope.data.splits import load_split
    from flawscope.training.run import prepare

    data = write_blob_folder(tmp_path / "d", n_per_class=24, classes=("ok",))
    write_blob_folder(data, n_per_class=8, seed=1)  # rewrites 8 ok images, adds 8 defective: 24 ok, 8 defect
    cfg = _cfg(data, tmp_path / "runs", "bal", epochs=1, balance=True)
    index, plain = prepare(cfg.replace(balance=False))
    _, balanced = prepare(cfg)

    def counts(positions: list[int]) -> dict[str, int]:
        return dict(Counter(index.samples[i].label for i in positions))

    assert counts(plain.train) == {"ok": 12, "defect": 4}
    assert counts(balanced.train) == {"ok": 4, "defect": 4} and set(balanced.train) < set(plain.train)
    assert (balanced.val, balanced.test) == (plain.val, plain.test)
    assert prepare(cfg)[1].train == balanced.train  # seeded: the same samples every time
    result = train(cfg, progress=False)
    saved = load_split(index, result.run_dir / "split.csv")
    assert (saved.train, saved.val, saved.test) == (balanced.train, plain.val, plain.test)
    assert saved.method.endswith("+balanced") and result.metrics["split_sizes"] == balanced.sizes()
    # Reusing the run's split with --balance keeps it as it is.
    again = prepare(cfg.replace(split_file=str(result.run_dir / "split.csv")))[1]
    assert again.train == balanced.train and again.method == saved.method


def test_balanced_class_weights() -> None:
    assert class_balance([30, 10], ["ok", "defect"], frozenset({"defect"}), binary=True) == (None, 3.0)
    weights, pos = class_balance([10, 20, 10], ["ok", "a", "b"], frozenset({"a", "b"}), binary=False)
    assert pos is None and weights == pytest.approx([4 / 3, 2 / 3, 4 / 3])


_DDP_SCRIPT = textwrap.dedent("""
    import json, sys, torch
    torch.set_num_threads(1)
    from flawscope.training.config import TrainConfig
    from flawscope.training.run import train
    data, out, devices, result = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cfg = TrainConfig(data=data, model="small_cnn", input_size=32, epochs=4, batch_size=8 // devices,
                      optimizer="adamw", lr=1e-2, out=out, name=f"ddp{devices}", patience=0,
                      val_fraction=0.25, test_fraction=0.25, accelerator="cpu", devices=devices,
                      strategy="ddp" if devices > 1 else "auto", on_bad_file="skip")
    r = train(cfg, progress=False)
    if r.metrics:  # rank 0 only
        open(result, "w").write(json.dumps(r.metrics))
""")


@pytest.mark.slow
def test_ddp_two_processes_matches_single_process(data, tmp_path) -> None:
    script = tmp_path / "ddp_train.py"
    script.write_text(_DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    results = {}
    for devices in (1, 2):
        result = tmp_path / f"metrics{devices}.json"
        proc = subprocess.run([sys.executable, str(script), str(data), str(tmp_path / "runs"), str(devices),
                               str(result)], env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        results[devices] = json.loads(result.read_text())
    one, two = results[1], results[2]
    assert two["split_sizes"] == one["split_sizes"]
    # Same global batch (2 x 4 vs 1 x 8); per-device batch-norm statistics and sampling differ, so compare
    # with a tolerance rather than exactly.
    for part in ("val", "test"):
        assert two[part]["roc_auc"] == pytest.approx(one[part]["roc_auc"], abs=0.1)
        assert two[part]["accuracy"] == pytest.approx(one[part]["accuracy"], abs=0.25)
    assert one["test"]["roc_auc"] > 0.9


def test_extra_training_data_joins_train_groups_only(tmp_path) -> None:
    import csv

    from flawscope.data.splits import read_split_rows
    from flawscope.training.run import prepare

    rows, extra = [], []
    for i in range(24):
        save(tmp_path / "img" / f"{i}.png", blob_image(i, i % 2 == 1)[0])
        rows.append([f"img/{i}.png", "defect" if i % 2 else "ok", f"g{i // 2}"])
        save(tmp_path / "img" / f"x{i}.png", blob_image(100 + i, False)[0])
        extra.append([f"img/x{i}.png", "ok", f"g{i // 2}"])
    for name, body in (("main.csv", rows), ("extra.csv", extra + rows[:3])):  # a repeated sample is kept once
        with (tmp_path / name).open("w", newline="") as f:
            csv.writer(f).writerows([["path", "label", "group"], *body])
    plain_index, plain = prepare(_cfg(tmp_path / "main.csv", tmp_path, "p"))
    cfg = _cfg(tmp_path / "main.csv", tmp_path, "e", extra_train=str(tmp_path / "extra.csv"), epochs=1,
               limit_batches=1)
    index, split = prepare(cfg)
    assert (split.val, split.test) == (plain.val, plain.test) and len(index) == 48
    train_groups = {plain_index.samples[i].group for i in plain.train}
    added = [index.samples[i] for i in split.train if i >= 24]
    assert added and all(s.group in train_groups and s.image.name.startswith("x") for s in added)
    assert len(added) == sum(1 for r in extra if r[2] in train_groups)
    result = train(cfg, progress=False)
    listed = read_split_rows(result.run_dir / "split.csv")
    assert {r["split"] for r in listed if "/x" in r["path"]} == {"train"}
    with pytest.raises(ConfigError, match="extra_train .*nowhere.csv does not exist"):
        prepare(_cfg(tmp_path / "main.csv", tmp_path, "m", extra_train=str(tmp_path / "nowhere.csv")))
