"""Loading backbone weights: RGB folding, checkpoint layouts, clear errors, encoder init from a classifier."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from flawscope.models import CheckpointError, create_model, load_backbone_weights


@pytest.fixture(scope="module")
def rgb_resnet18_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A timm-layout RGB resnet18 checkpoint (with its 1000-class fc), as downloaded weights look."""
    import timm

    torch.manual_seed(1)
    state = timm.create_model("resnet18", num_classes=1000).state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18_rgb.pth"
    torch.save(state, path)
    return path, state


def test_rgb_weights_fold_to_one_channel(rgb_resnet18_file) -> None:
    path, state = rgb_resnet18_file
    model = create_model("resnet18", in_chans=1, pretrained=path)
    report = model.pretrained_report
    assert report.folded == ["conv1.weight"]
    assert {"fc.weight", "fc.bias"} <= set(report.unexpected)
    assert report.missing == []
    conv1 = model.backbone.conv1.weight
    assert conv1.shape == (64, 1, 7, 7)
    torch.testing.assert_close(conv1, state["conv1.weight"].sum(dim=1, keepdim=True))
    torch.testing.assert_close(model.backbone.layer3[1].conv2.weight, state["layer3.1.conv2.weight"])


def test_rgb_model_takes_rgb_weights_unchanged(rgb_resnet18_file) -> None:
    path, state = rgb_resnet18_file
    model = create_model("resnet18", in_chans=3, pretrained=path)
    assert model.pretrained_report.folded == []
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"])


def _lightning_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    """What a Lightning run saves: weights under "state_dict" with the module's "model." prefix."""
    state = {f"model.{k}": v for k, v in model.state_dict().items()}
    state["loss.pos_weight"] = torch.tensor([2.0])  # a loss buffer beside the model, as a LightningModule has
    torch.save({"state_dict": state, "epoch": 3, "model_config": model.config.to_dict()}, path)
    return path


def test_flawscope_checkpoint_initialises_encoders(tmp_path: Path) -> None:
    torch.manual_seed(2)
    clf = create_model("resnet18")
    with torch.no_grad():
        clf.backbone.layer4[1].bn2.running_mean.add_(1.5)  # something a fresh model would not have
    ckpt = _lightning_checkpoint(clf, tmp_path / "clf.ckpt")

    again = create_model("resnet18", pretrained=ckpt)
    torch.testing.assert_close(again.backbone.state_dict(), clf.backbone.state_dict())

    for name in ("unet", "deeplabv3plus"):
        seg = create_model(name, encoder="resnet18", pretrained=ckpt)
        enc = seg.net.encoder
        torch.testing.assert_close(enc.conv1.weight, clf.backbone.conv1.weight)
        torch.testing.assert_close(enc.layer4[1].bn2.running_mean, clf.backbone.layer4[1].bn2.running_mean)
        assert seg.pretrained_report.loaded == len(clf.backbone.state_dict())


def test_bilinear_backbone_from_classifier_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(3)
    clf = create_model("small_cnn")
    ckpt = _lightning_checkpoint(clf, tmp_path / "small.ckpt")
    sa = create_model("sa_bcnn", backbone="small_cnn", pretrained=ckpt)
    torch.testing.assert_close(sa.backbone.state_dict(), clf.backbone.state_dict())


def test_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(4)
    clf = create_model("small_cnn")
    save_file(
        {f"backbone.{k}": v.contiguous() for k, v in clf.backbone.state_dict().items()},
        tmp_path / "w.safetensors",
    )
    report = load_backbone_weights(create_model("small_cnn"), tmp_path / "w.safetensors")
    assert report.loaded == len(clf.backbone.state_dict())


def test_shape_mismatch_names_key_and_shapes(tmp_path: Path) -> None:
    state = create_model("small_cnn", in_chans=1).backbone.state_dict()
    state["features.3.weight"] = torch.zeros(16, 8, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError, match=r"features\.3\.weight has shape \(16, 8, 3, 3\).*\(16, 16, 3, 3\)"
    ):
        create_model("small_cnn", pretrained=tmp_path / "bad.pth")


def test_checkpoint_of_a_different_model(tmp_path: Path) -> None:
    torch.save(create_model("small_cnn").state_dict(), tmp_path / "small.pth")
    with pytest.raises(CheckpointError, match="none of the weights.*different model"):
        create_model("resnet18", pretrained=tmp_path / "small.pth")
    # resnet34's keys include all of resnet18's with equal shapes: the extra blocks give it away.
    with torch.device("meta"):
        r34 = create_model("resnet34")
    torch.save({k: torch.zeros(v.shape) for k, v in r34.backbone.state_dict().items()}, tmp_path / "r34.pth")
    with pytest.raises(CheckpointError, match="extra layer1.2"):
        create_model("resnet18", pretrained=tmp_path / "r34.pth")
    report = load_backbone_weights(create_model("resnet18"), tmp_path / "r34.pth", strict=False)
    assert "layer1.2.conv1.weight" in report.unexpected


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist.*'hub'"):
        create_model("small_cnn", pretrained=tmp_path / "nope.pth")
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        create_model("small_cnn", pretrained=tmp_path / "notes.txt")


def test_hub_name_must_match_the_backbone() -> None:
    # Checked before any download, so this never touches the network.
    with pytest.raises(CheckpointError, match="resnet50 checkpoint but the backbone is resnet18"):
        create_model("resnet18", pretrained="timm:resnet50.a1_in1k")
    with pytest.raises(CheckpointError, match="resnet50 checkpoint but the backbone is resnet18"):
        create_model("unet", encoder="resnet18", pretrained="timm:resnet50.a1_in1k")


def test_checkpoint_with_pickled_hyperparameters(tmp_path: Path) -> None:
    """Lightning pickles hyper-parameters (here a ModelConfig) that torch's weights_only load refuses."""
    torch.manual_seed(5)
    clf = create_model("small_cnn")
    state = {f"model.{k}": v for k, v in clf.state_dict().items()}
    torch.save({"state_dict": state, "hyper_parameters": {"model_config": clf.config}}, tmp_path / "hp.ckpt")
    again = create_model("small_cnn", pretrained=tmp_path / "hp.ckpt")
    torch.testing.assert_close(again.backbone.state_dict(), clf.backbone.state_dict())
    # The checkpoint's own model name shows up when it does not fit.
    with pytest.raises(CheckpointError, match="a checkpoint of 'small_cnn'"):
        create_model("resnet18", pretrained=tmp_path / "hp.ckpt")
