"""`flawscope pretrain`: each objective writes a backbone that `train --init checkpoint:` loads; bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from flawscope.cli.main import app
from flawscope.errors import FlawscopeError
from flawscope.models.pretrained import read_backbone_header
from flawscope.training.config import TrainConfig
from flawscope.training.pretrain import PretrainConfig, pretrain
from flawscope.training.run import train
from helpers.datasets import blob_image, save, write_blob_folder

FAST = dict(backbone="small_cnn", input_size=32, epochs=2, batch_size=4, threads=1, accelerator="cpu",
            devices="1")


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("pretrain")
    cfg = PretrainConfig(objective="synthetic", synth_images=16, synth_size=64, out=str(out), name="syn",
                         **FAST)
    return pretrain(cfg, progress=False)


def test_synthetic_pretraining_writes_a_backbone_and_its_report(synthetic_run) -> None:
    run = synthetic_run.run_dir
    for name in ("config.yaml", "backbone.pt", "metrics.json", "report.html", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name
    header = read_backbone_header(synthetic_run.backbone_path)
    assert (header["backbone"], header["in_chans"], header["objective"]) == ("small_cnn", 1, "synthetic")
    assert header["labels"] == ["pore", "crack", "inclusion"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_trained"] == 2 and len(metrics["curve"]) == 2
    best = min(metrics["curve"], key=lambda c: c["val_loss"])
    assert metrics["best_epoch"] == metrics["kept_epoch"] == best["epoch"] and metrics["selected"] == "best"
    assert metrics["best_val_loss"] == pytest.approx(best["val_loss"])
    assert "Loss per epoch" in (run / "report.html").read_text()


def test_the_backbone_initialises_a_classifier(synthetic_run, tmp_path: Path) -> None:
    data = write_blob_folder(tmp_path / "data", n_per_class=6)
    cfg = TrainConfig(data=str(data), model="small_cnn", input_size=32, epochs=1, batch_size=4, patience=0,
                      init=f"checkpoint:{synthetic_run.backbone_path}", out=str(tmp_path / "runs"), name="ft",
                      accelerator="cpu", devices=1, limit_batches=1, val_fraction=0.25, test_fraction=0.25)
    result = train(cfg, progress=False)
    init = json.loads((result.run_dir / "init.json").read_text())
    assert init["loaded"] > 0 and init["missing"] == [] and init["checkpoint"]["objective"] == "synthetic"


def test_resume_continues_a_pretraining(synthetic_run) -> None:
    cfg = PretrainConfig.from_yaml(synthetic_run.run_dir / "config.yaml", epochs=3,
                                   resume=str(synthetic_run.run_dir / "checkpoints" / "last.ckpt"))
    again = pretrain(cfg, progress=False)
    assert again.run_dir == synthetic_run.run_dir and again.metrics["epochs_trained"] == 3
    assert len(again.metrics["curve"]) == 3


def test_a_finished_run_folder_is_not_overwritten(synthetic_run) -> None:
    cfg = PretrainConfig(objective="synthetic", synth_images=16, synth_size=64,
                         out=str(synthetic_run.run_dir.parent), name="syn", **FAST)
    with pytest.raises(FlawscopeError, match="already holds a run.*--resume"):
        pretrain(cfg, progress=False)


def _images(folder: Path, n: int, seed: int = 0) -> Path:
    for i in range(n):
        save(folder / f"S{i % 3:02d}" / f"img_{i:03d}.png", blob_image(seed + i, i % 2 == 1, 48)[0])
    return folder


def test_simclr_on_unlabelled_radiographs(tmp_path: Path) -> None:
    images = _images(tmp_path / "unlabelled", 12)
    cfg = PretrainConfig(objective="simclr", data=[str(images)], out=str(tmp_path / "runs"), name="ssl",
                         **FAST)
    result = pretrain(cfg, progress=False)
    header = read_backbone_header(result.backbone_path)
    assert header["objective"] == "simclr" and header["selected"] == "last" and header["kept_epoch"] == 1
    assert result.metrics["corpus"]["train"] + result.metrics["corpus"]["val"] == 12
    assert all(np.isfinite(c["train_loss"]) for c in result.metrics["curve"])


def test_supervised_csv_corpus_through_the_cli(tmp_path: Path) -> None:
    rows = [["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "Pore", "Crack"]]
    for i in range(12):
        rel = f"CheXpert-v1.0/train/patient{i:05d}/study1/view1_frontal.png"
        save(tmp_path / rel, blob_image(i, i % 2 == 1, 40)[0])
        rows.append([rel, "Male", "50", "Frontal", "AP", "1.0" if i % 2 else "0.0", "-1.0" if i % 3 else ""])
    with (tmp_path / "train.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    out = tmp_path / "runs"
    args = ["pretrain", "--objective", "supervised", "--data", str(tmp_path / "train.csv"), "--backbone",
            "small_cnn", "--input-size", "32", "--epochs", "1", "--batch-size", "4", "--threads", "1",
            "--accelerator", "cpu", "--out", str(out), "--name", "sup", "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    header = read_backbone_header(out / "sup" / "backbone.pt")
    assert header["labels"] == ["Pore", "Crack"] and header["objective"] == "supervised"
    state = torch.load(out / "sup" / "backbone.pt", weights_only=True)["state_dict"]
    assert not any(k.startswith("fc") for k in state)  # the backbone only: heads stay behind


def test_bad_input_is_refused_with_the_reason(tmp_path: Path) -> None:
    one = tmp_path / "one"
    save(one / "a.png", blob_image(0, False, 40)[0])
    with pytest.raises(FlawscopeError, match="1"):
        pretrain(PretrainConfig(objective="simclr", data=[str(one)], out=str(tmp_path / "r"), **FAST),
                 progress=False)
    with pytest.raises(FlawscopeError, match="needs --data"):
        PretrainConfig(objective="supervised")
    with pytest.raises(FlawscopeError, match="objective 'byol2' is unknown"):
        PretrainConfig(objective="byol2")
    with pytest.raises(FlawscopeError, match="unknown option 'epoch'"):
        PretrainConfig.from_dict({"epoch": 3})


@pytest.mark.parametrize("backbone", ["resnet50", "vgg16", "vit_tiny", "efficientnet_b0"])
def test_every_seed_backbone_pretrains_and_loads_into_its_classifier(backbone: str, tmp_path: Path) -> None:
    """One SimCLR and one multi-label step for each backbone of seed 001 (and a plain timm name)."""
    from flawscope.models.pretrained import init_to_pretrained, save_backbone
    from flawscope.models.registry import create_model
    from flawscope.training.pretrain import PretrainModule

    torch.manual_seed(0)
    for objective in ("simclr", "supervised"):
        module = PretrainModule(backbone, 1, (32, 32), objective, num_labels=3)
        x = torch.randn(4, 1, 32, 32)
        batch = ({"view1": x, "view2": x.flip(-1)} if objective == "simclr"
                 else {"image": x, "labels": torch.tensor([[1.0, 0.0, float("nan")]] * 4)})
        loss = module.objective_loss(batch)
        loss.backward()
        assert torch.isfinite(loss)
    path = save_backbone(tmp_path / "b.pt", module.backbone.state_dict(), backbone, 1)
    timm_only = backbone == "efficientnet_b0"
    name, kwargs = ("timm_classifier", {"backbone": backbone}) if timm_only else (backbone, {})
    model = create_model(name, pretrained=init_to_pretrained(f"checkpoint:{path}"), **kwargs)
    assert model.pretrained_report.loaded > 0 and not model.pretrained_report.missing
    if backbone == "vit_tiny":  # pre-trained on 32 px, built for 224 px: the position grid is resampled
        assert model.pretrained_report.resampled == ["pos_embed"]


def test_exclude_split_leaves_the_held_out_series_out(tmp_path: Path) -> None:
    from flawscope.training.pretrain import held_out_groups, load_corpus

    images = _images(tmp_path / "series", 12)  # groups S00, S01, S02 (folders)
    split = tmp_path / "split.csv"
    split.write_text("# flawscope split seed=0\npath,crop,label,group,split\na.png,,ok,S01,test\n"
                     "b.png,,ok,S00,train\nc.png,,ok,S02,val\n")
    assert held_out_groups(split) == ["S01", "S02"]
    cfg = PretrainConfig(objective="simclr", data=[str(images)], exclude_split=str(split), out=str(tmp_path),
                         **FAST)
    corpus = load_corpus(cfg, tmp_path)
    assert {item.path.parent.name for item in corpus.items} == {"S00"}
