"""`flawscope study KIND`: the seed 001 studies on tiny data; resumable; bad options refused by name."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import flawscope.training.run as run_module
from flawscope.cli.main import app
from flawscope.data.sources import load_dataset
from flawscope.data.splits import load_split
from flawscope.errors import ConfigError
from flawscope.training.pretrain import PretrainConfig, pretrain
from flawscope.training.study import StudyConfig, init_labels, read_epoch_log, run_study, subsample_train
from helpers.datasets import blob_image, save, write_blob_folder

runner = CliRunner()
FAST = {"model": "small_cnn", "input_size": 32, "epochs": 1, "batch_size": 4, "limit_batches": 1,
        "patience": 0, "accelerator": "cpu", "devices": "1", "threads": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_blob_folder(tmp_path_factory.mktemp("study-data") / "blobs", n_per_class=10)


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study-pretrain")
    cfg = PretrainConfig(objective="synthetic", backbone="small_cnn", synth_images=16, synth_size=64,
                         input_size=32, epochs=1, batch_size=4, threads=1, accelerator="cpu", devices="1",
                         out=str(out), name="syn")
    return pretrain(cfg, progress=False).backbone_path


def _study(data: Path, out: Path, kind: str, **options: object) -> StudyConfig:
    train = {**FAST, "data": str(data), **options.pop("train", {})}  # type: ignore[dict-item]
    options.setdefault("folds", 2)
    return StudyConfig(kind=kind, train=train, out=str(out), **options)  # type: ignore[arg-type]


def _count_training(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = run_module.train

    def counting(cfg, progress=True):  # noqa: ANN001, ANN202 - a thin spy on train
        calls.append(f"{cfg.out}/{cfg.name}")
        return real(cfg, progress=progress)

    monkeypatch.setattr(run_module, "train", counting)
    return calls


def test_init_study_is_resumed_and_takes_a_pretrained_checkpoint(data: Path, backbone: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_training(monkeypatch)
    out = tmp_path / "study"
    first = run_study(_study(data, out, "init"))
    assert len(calls) == 2 and first.reused == []
    random_runs = [out / "runs" / "random" / f"fold{k}" for k in (0, 1)]
    stamps = {p: (p / "model.pt").stat().st_mtime_ns for p in random_runs}

    # "Interrupted" after the first init: the second call trains only the new init's folds.
    init = f"checkpoint:{backbone}"
    again = run_study(_study(data, out, "init", inits=["random", init]))
    assert sorted(again.reused) == sorted(random_runs) and len(calls) == 4
    assert all((p / "model.pt").stat().st_mtime_ns == t for p, t in stamps.items())

    assert [r["model"] for r in again.table] == ["random", "synthetic small_cnn"]
    assert all(r["n_runs"] == 2 and 0 <= r["roc_auc"] <= 1 and "f1_std" in r for r in again.table)
    md = (out / "init.md").read_text()
    assert "| random |" in md and "| synthetic small_cnn |" in md and "±" in md
    loaded = json.loads((out / "runs" / "synthetic-small_cnn" / "fold0" / "init.json").read_text())
    assert loaded["init"] == init and loaded["loaded"] > 0 and loaded["missing"] == []
    for name in ("init.csv", "init.json", "init-runs.csv", "init.yaml", "figures/init.png", "report.html"):
        assert (out / name).is_file(), name
    assert "Study: init" in (out / "report.html").read_text()
    # Each run trained on its fold's split, seeded by the study.
    saved = run_module.TrainConfig.from_yaml(random_runs[1] / "config.yaml")
    assert saved.split_file == str(out / "folds" / "fold1" / "split.csv") and saved.seed == 0

    # Other shared options are refused rather than mixed into the table.
    with pytest.raises(ConfigError, match="lr=0.001.*lr=0.05"):
        run_study(_study(data, out, "init", train={"lr": 0.05}))
    with pytest.raises(ConfigError, match="other folds.*2fold.*3-fold split"):
        run_study(_study(data, out, "init", folds=3))
    assert sorted(p.name for p in (out / "folds").iterdir()) == ["fold0", "fold1"]  # left as they were


def test_a_study_killed_mid_run_continues_it(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    out = tmp_path / "study"
    run_study(_study(data, out, "init", folds=3))
    fold1, fold2 = out / "runs" / "random" / "fold1", out / "runs" / "random" / "fold2"
    for name in ("metrics.json", "model.pt"):  # killed after fold 1's last checkpoint
        (fold1 / name).unlink()
    for item in fold2.iterdir():  # killed before fold 2's first checkpoint: only its config is there
        if item.name != "config.yaml":
            if item.is_file():
                item.unlink()
            else:
                shutil.rmtree(item)
    resumed: list[str | None] = []
    real = run_module.train
    monkeypatch.setattr(run_module, "train",
                        lambda cfg, progress=True: resumed.append(cfg.resume) or real(cfg, progress=progress))

    result = run_study(_study(data, out, "init", folds=3))
    assert resumed == [str(fold1 / "checkpoints" / "last.ckpt"), None]
    assert result.reused == [out / "runs" / "random" / "fold0"]
    assert result.table[0]["n_runs"] == 3
    assert (fold1 / "model.pt").is_file() and (fold2 / "model.pt").is_file()
    assert [c["epoch"] for c in read_epoch_log(fold1)] == [1]  # the epoch logged before the kill is kept


def test_fraction_study_subsamples_train_by_group_only(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = run_study(_study(data, out, "fraction", fractions=[0.5, 1.0]))

    assert [r["model"] for r in result.table] == ["random @ 0.5", "random @ 1"]
    index = load_dataset(data)
    full = load_split(index, out / "folds" / "fold0" / "split.csv")
    half = load_split(index, out / "folds" / "fold0-frac0.5" / "split.csv")
    assert set(half.train) < set(full.train) and half.val == full.val and half.test == full.test
    sizes = [r["n_train"] for r in result.rows]
    assert sizes == [len(half.train), len(full.train)]
    assert (out / "runs" / "random" / "fold0").is_dir()  # fraction 1 is the plain fold-0 run
    assert (out / "figures" / "fraction.png").is_file() and (out / "fraction.md").is_file()
    assert "Study: fraction" in (out / "report.html").read_text()


def test_subsets_are_nested_and_keep_both_classes(data: Path) -> None:
    index = load_dataset(data)
    train = list(range(len(index.samples)))
    subsets = [set(subsample_train(index, train, f, seed=3)) for f in (0.25, 0.5, 0.75, 1.0)]
    assert subsets[0] < subsets[1] < subsets[2] < subsets[3] == set(train)
    assert {index.samples[i].label for i in subsets[0]} == {"ok", "defect"}
    assert subsets[1] == set(subsample_train(index, train, 0.5, seed=3))  # seeded
    assert subsets[1] != set(subsample_train(index, train, 0.5, seed=4))


def test_convergence_study_reads_the_val_metric_per_epoch(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = run_study(_study(data, out, "convergence", train={"epochs": 2}))

    curve = read_epoch_log(out / "runs" / "random" / "fold0")
    assert [c["epoch"] for c in curve] == [1, 2] and all("val_auroc" in c and "val_loss" in c for c in curve)
    (row,) = result.table
    assert row["model"] == "random" and row["epochs"] == 2
    assert row["final_val"] == pytest.approx(curve[-1]["val_auroc"])
    with (out / "convergence-curves.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    assert (out / "figures" / "convergence.png").is_file()


def test_sensitivity_study_writes_a_heatmap_and_the_spread(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = run_study(_study(data, out, "sensitivity", batch_sizes=[2, 4], lrs=[1e-3, 1e-2]))

    names = sorted(p.name for p in result.run_dirs)
    assert names == ["fold0", "fold0-bs2", "fold0-bs2-lr0.01", "fold0-lr0.01"]  # bs 4, lr 1e-3 are shared
    aucs = [r["roc_auc"] for r in result.rows]
    (row,) = result.table
    assert row["spread"] == pytest.approx(max(aucs) - min(aucs)) and row["n_cells"] == 4
    md = (out / "sensitivity.md").read_text()
    assert "Spread" in md and "## Grid" in md
    assert (out / "figures" / "sensitivity.png").is_file()


def test_features_study_probes_the_embeddings(data: Path, backbone: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    result = run_study(_study(data, out, "features", inits=["random", f"checkpoint:{backbone}"]))

    assert [r["model"] for r in result.table] == [
        "random (fine-tuned)", "synthetic small_cnn (fine-tuned)", "synthetic small_cnn (not fine-tuned)",
        "random (untrained)"]
    for r in result.table:
        assert 0 <= r["probe_accuracy"] <= 1 and r["n"] == 10 and r["dim"] > 0
    assert (out / "figures" / "features_tsne.png").is_file()
    assert len(list((out / "features").glob("*.npz"))) == 4
    report = (out / "report.html").read_text()
    assert "Study: features" in report and "t-SNE of the test features" in report


def test_segmentation_init_study_reports_miou_and_dice(tmp_path: Path) -> None:
    root = tmp_path / "seg"
    for i in range(12):
        img, mask = blob_image(i, defective=i % 2 == 1)
        save(root / "images" / f"{i:03d}.png", img)
        save(root / "masks" / f"{i:03d}.png", mask)
    out = tmp_path / "study"
    result = run_study(_study(root, out, "init", train={"model": "unet_small"}))

    (row,) = result.table
    assert row["n_runs"] == 2 and {"miou", "miou_std", "dice", "dice_std"} <= set(row)
    for run, r in zip(result.run_dirs, result.rows, strict=True):
        pixel = json.loads((run / "metrics.json").read_text())["test"]["pixel"]
        assert r["miou"] == pytest.approx(pixel["miou"]) and r["dice"] == pytest.approx(pixel["dice"])
    assert "| mIoU | Dice |" in (out / "init.md").read_text()


def test_cli_runs_a_study_and_adds_its_report_section(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "study"
    args = ["study", "init", "--data", str(data), "--model", "small_cnn", "--input-size", "32",
            "--epochs", "1",
            "--batch-size", "4", "--limit-batches", "1", "--set", "patience=0", "--set", "accelerator=cpu",
            "--set", "devices=1", "--folds", "2", "--threads", "1", "--out", str(out), "--quiet"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "| random |" in result.output
    # The study YAML written next to the table runs the same study again (every run reused).
    again = runner.invoke(app, ["study", "init", "--study-config", str(out / "init.yaml"), "--quiet"])
    assert again.exit_code == 0, again.output
    assert again.output.count("finished run found, reused") == 2


@pytest.mark.parametrize(("options", "match"), [
    ({"kind": "transfer"}, "'transfer'"),
    ({"fractions": [0.5, 1.5]}, "fraction 1.5 is outside"),
    ({"fractions": [0, 1]}, "fraction 0 is outside"),
    ({"batch_sizes": []}, r"batch_sizes is empty \(\[\]\)"),
    ({"lrs": []}, r"lrs is empty"),
    ({"inits": []}, "inits is empty"),
    ({"inits": ["xavier"]}, "init 'xavier'"),
    ({"folds": 1}, r"folds must be at least 2 \(group-aware k-fold\), got 1"),
    ({"train": {"seed": 3}}, "seed=3 is set per run"),
    ({"train": {"epoch": 3}}, "unknown option 'epoch'"),
])
def test_bad_options_name_the_value(options: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StudyConfig(**options)


def test_bad_options_are_refused_before_any_training(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown option 'epoch'"):
        StudyConfig.from_dict({"kind": "init", "epoch": 3})
    out = tmp_path / "study"
    with pytest.raises(ConfigError, match="no dataset"):
        run_study(StudyConfig(kind="init", train={"model": "small_cnn"}, out=str(out)))
    with pytest.raises(ConfigError, match="segment model"):
        run_study(StudyConfig(kind="features", train={"data": str(data), "model": "unet"}, out=str(out)))
    assert not out.exists()


def test_labels_stay_put_when_inits_are_added(backbone: Path) -> None:
    same_file = f"checkpoint:{backbone.parent}/../{backbone.parent.name}/backbone.pt"
    one = init_labels(["random", f"checkpoint:{backbone}"])
    two = init_labels(["random", f"checkpoint:{backbone}", "imagenet:resnet18.a1_in1k", same_file])
    assert one == {k: two[k] for k in one}
    assert list(two.values())[2:] == ["imagenet", f"synthetic small_cnn ({backbone.parent.name})"]


def test_fold_templates_name_one_backbone_per_fold() -> None:
    from flawscope.training.study import fold_init

    assert fold_init("checkpoint:ssl-fold{fold}/backbone.pt", 2) == "checkpoint:ssl-fold2/backbone.pt"
    assert fold_init("random", 1) == "random"


def test_recipes_study_ranks_option_sets_by_fold_and_reuses_runs(data: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_training(monkeypatch)
    out = tmp_path / "study"
    recipes = {"plain": {}, "std": {"normalize": "standardize", "augment": "flips"}}
    result = run_study(_study(data, out, "recipes", recipes=recipes))
    assert len(calls) == 4 and [r["model"] for r in result.table] == ["plain", "std"]
    assert all(r["n_runs"] == 2 and "miss_rate" in r and "false_alarm_rate" in r for r in result.table)
    std_cfg = (out / "runs" / "std" / "fold1" / "config.yaml").read_text()
    assert "normalize: standardize" in std_cfg and "augment: flips" in std_cfg
    assert "normalize: fixed" in (out / "runs" / "plain" / "fold0" / "config.yaml").read_text()
    md = (out / "recipes.md").read_text()
    assert "| std | normalize=standardize, augment=flips |" in md
    again = run_study(_study(data, out, "recipes", recipes={"std": recipes["std"]}))
    assert len(calls) == 4 and len(again.reused) == 2  # nothing retrained


@pytest.mark.parametrize("recipes, match", [
    ({}, "needs at least one recipe"),
    ({"a": {"epoch": 2}}, "recipe 'a'.*unknown option 'epoch'"),
    ({"a": {"seed": 2}}, "recipe 'a': seed is set per run"),
    ({"a": {"normalize": "whiten"}}, "normalize 'whiten' is not valid"),
])
def test_bad_recipes_are_named(recipes: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StudyConfig(kind="recipes", recipes=recipes)


def test_cli_recipe_option_parses_names_and_options() -> None:
    from flawscope.cli.study import parse_recipes

    assert parse_recipes(["base:", "s: normalize=standardize,model_args={stem_stride: 2}"]) == {
        "base": {}, "s": {"normalize": "standardize", "model_args": {"stem_stride": 2}}}
    with pytest.raises(ConfigError, match="is not 'NAME: KEY=VALUE"):
        parse_recipes(["normalize=standardize"])
    with pytest.raises(ConfigError, match="given twice"):
        parse_recipes(["a:", "a: lr=0.1"])
