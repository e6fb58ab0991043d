"""--init: random, a `flawscope pretrain` backbone, or ImageNet-style weights; what loaded is saved."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm
import torch

from flawscope.errors import FlawscopeError
from flawscope.models.pretrained import init_to_pretrained, parse_init, save_backbone
from flawscope.models.registry import create_model
from flawscope.training.config import TrainConfig
from flawscope.training.run import train
from helpers.datasets import write_blob_folder


def _backbone_file(path: Path, model_name: str, in_chans: int = 1, **kw: object) -> tuple[Path, dict]:
    torch.manual_seed(1)
    donor = create_model(model_name, in_chans=in_chans, **kw)
    state = donor.backbone.state_dict()
    arch = str(donor.config.build_kwargs.get("backbone") or model_name)
    return save_backbone(path, state, arch, in_chans, objective="test"), state


def test_checkpoint_init_loads_the_backbone_and_writes_init_json(tmp_path: Path) -> None:
    ckpt, state = _backbone_file(tmp_path / "backbone.pt", "small_cnn")
    data = write_blob_folder(tmp_path / "data", n_per_class=6)
    cfg = TrainConfig(data=str(data), model="small_cnn", input_size=32, epochs=1, batch_size=4, patience=0,
                      init=f"checkpoint:{ckpt}", out=str(tmp_path / "runs"), name="r", accelerator="cpu",
                      devices=1, limit_batches=1, val_fraction=0.25, test_fraction=0.25)
    result = train(cfg, progress=False)
    info = json.loads((result.run_dir / "init.json").read_text())
    assert info["init"] == f"checkpoint:{ckpt}" and info["checkpoint"]["backbone"] == "small_cnn"
    assert info["loaded"] == len(state) and info["missing"] == [] and info["fine_tuned"] is True
    # The weights started from the checkpoint (the builder loads them before training).
    model = create_model("small_cnn", pretrained=init_to_pretrained(f"checkpoint:{ckpt}"))
    assert all(torch.equal(model.backbone.state_dict()[k], v) for k, v in state.items())


@pytest.mark.parametrize(("model", "in_chans", "message"), [
    ("resnet18", 1, "holds a small_cnn backbone for 1-channel input, but this run builds a resnet18"),
    ("small_cnn", 3, "for 1-channel input, but this run builds a small_cnn backbone for 3-channel"),
])
def test_a_mismatched_checkpoint_is_refused_before_training(tmp_path: Path, model: str, in_chans: int,
                                                            message: str) -> None:
    ckpt, _ = _backbone_file(tmp_path / "backbone.pt", "small_cnn")
    cfg = TrainConfig(data=str(tmp_path / "not-scanned-yet"), model=model, in_chans=in_chans,
                      init=f"checkpoint:{ckpt}", out=str(tmp_path / "runs"), name="r")
    with pytest.raises(FlawscopeError, match=message):
        train(cfg, progress=False)
    assert not (tmp_path / "runs").exists()  # refused before anything was written


def test_segmenter_encoder_takes_a_classifier_backbone(tmp_path: Path) -> None:
    ckpt, state = _backbone_file(tmp_path / "resnet18.pt", "resnet18")
    unet = create_model("unet", pretrained=init_to_pretrained(f"checkpoint:{ckpt}"))
    report = unet.pretrained_report
    assert report.loaded == len([k for k in state if not k.startswith("fc.")]) and not report.missing
    assert torch.equal(unet.backbone.state_dict()["conv1.weight"], state["conv1.weight"])


def test_imagenet_file_is_folded_to_one_channel(tmp_path: Path) -> None:
    rgb = timm.create_model("resnet18", num_classes=1000)  # an ImageNet-shaped (3-channel) checkpoint
    path = tmp_path / "resnet18_imagenet.pth"
    torch.save(rgb.state_dict(), path)
    model = create_model("resnet18", pretrained=init_to_pretrained(f"imagenet:{path}"))
    assert model.pretrained_report.folded == ["conv1.weight"]
    assert torch.allclose(model.backbone.conv1.weight[:, 0], rgb.conv1.weight.sum(1))


def test_init_values_and_old_configs() -> None:
    assert parse_init("random") == ("random", None) and parse_init(None) == ("random", None)
    assert parse_init("imagenet") == ("imagenet", "hub")
    assert parse_init("imagenet:resnet18.a1_in1k") == ("imagenet", "timm:resnet18.a1_in1k")
    with pytest.raises(FlawscopeError, match="not understood"):
        parse_init("xavier")
    with pytest.raises(FlawscopeError, match="does not exist"):
        parse_init("imagenet:weights/missing.pth")
    # config.yaml of runs made before --init still load.
    assert TrainConfig.from_dict({"pretrained": None}).init == "random"
    assert TrainConfig.from_dict({"pretrained": "timm:resnet18.a1_in1k"}).init == "imagenet:resnet18.a1_in1k"
