"""Every registered model: builds (1 and 3 channels), output shapes, FLOPs, parameter counts, rebuilding.

Shape and FLOP checks run on the meta device (no weights, no arithmetic) so the whole registry is covered in
seconds; a few representative models also run a real forward pass.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError
from flawscope.models import count_parameters, create_model, list_models
from flawscope.models.base import ModelConfig
from flawscope.models.checkpoint import build_model
from flawscope.models.heads import CAMHead

ALL = list_models()
SEGMENTERS = set(list_models(task="segment"))


def _meta_model(name: str, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return create_model(name, **kwargs).eval()


def _first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


def test_registry_has_the_promised_models() -> None:
    expected = {
        "vgg16", "vgg16_bn", "resnet18", "resnet34", "resnet50", "xception", "squeezenet1_1",
        "squeezenet1_1_reduced", "small_cnn", "vit_tiny", "timm_classifier",
        "bcnn", "sa_bcnn", "sa_bcnn_cbam", "unet_small", "unet", "deeplabv3plus",
    }  # fmt: skip
    assert expected <= set(ALL)
    assert SEGMENTERS == {"unet_small", "unet", "deeplabv3plus"}


@pytest.mark.parametrize("in_chans", [1, 3])
@pytest.mark.parametrize("name", ALL)
def test_builds_and_output_shapes(name: str, in_chans: int) -> None:
    pp = PreprocessConfig(in_chans=in_chans, input_size=(32, 32))
    for num_classes in (2,) if name in SEGMENTERS else (2, 6):
        model = _meta_model(name, num_classes=num_classes, preprocess=pp)
        assert _first_conv(model).in_channels == in_chans
        cfg = model.config
        assert (cfg.name, cfg.preprocess.in_chans, cfg.build_kwargs["in_chans"]) == (name, in_chans, in_chans)
        with FlopCounterMode(display=False) as counter:
            out = model.forward_outputs(torch.empty(2, in_chans, 32, 32, device="meta"))
        assert counter.get_total_flops() > 0  # torch.utils.flop_counter sees every model
        if name in SEGMENTERS:
            assert cfg.task == "segment"
            assert out["mask_logits"].shape == (2, 1, 32, 32)
            assert out["logits"].shape == (2, 1)
        else:
            assert cfg.task == "classify"
            assert out["logits"].shape == (2, 1 if num_classes == 2 else 6)
            assert cfg.num_outputs == (1 if num_classes == 2 else 6)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("small_cnn", {}),
        ("squeezenet1_1_reduced", {}),
        ("resnet18", {}),
        ("vit_tiny", {}),
        ("sa_bcnn", {"backbone": "small_cnn"}),
        ("timm_classifier", {"backbone": "mobilenetv3_small_050"}),
    ],
)
def test_real_forward(name: str, kwargs: dict) -> None:
    torch.manual_seed(0)
    model = create_model(name, preprocess=PreprocessConfig(input_size=(32, 32)), **kwargs).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        logits = model(x)
        out = model.forward_outputs(x)
    assert logits.shape == (2, 1)
    assert torch.isfinite(logits).all()
    torch.testing.assert_close(out["logits"], logits)
    assert out["features"].shape[0] == 2


def test_six_classes_real_forward_and_class_names() -> None:
    names = ["crazing", "inclusion", "patches", "pitted", "rolled", "scratches"]
    model = create_model("small_cnn", class_names=names).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 6)
    assert model.config.class_names == tuple(names)
    assert model.config.defective_classes == tuple(names)  # NEU: every class is a defect type


def test_same_seed_same_model() -> None:
    x = torch.randn(2, 1, 32, 32)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        outs.append(create_model("small_cnn").eval()(x))
    torch.testing.assert_close(outs[0], outs[1])


def test_cam_head_maps_average_to_logits() -> None:
    head = CAMHead(8, 3)
    feats = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(head.cam(feats).mean(dim=(2, 3)), head(feats))


def test_cnn_default_head_is_cam_ready_and_fc_head_is_flat() -> None:
    gap = _meta_model("resnet18")
    assert isinstance(gap.head, CAMHead)
    assert gap.cam_target_layers() == [gap.backbone.layer4]
    flat = create_model("small_cnn", head="fc", preprocess=PreprocessConfig(input_size=(32, 32)))
    assert flat.head.fc.in_features == 128 * 4 * 4  # 32 px / stride 8 = 4×4 map of 128 channels
    assert flat(torch.randn(2, 1, 32, 32)).shape == (2, 1)


@pytest.fixture(scope="module")
def vgg16() -> nn.Module:
    """One real VGG16 for the module (its weights are allocated on the meta path and re-initialised)."""
    torch.manual_seed(0)
    return create_model("vgg16").eval()


def test_vgg16_parameters_and_initialisation(vgg16: nn.Module) -> None:
    backbone = sum(p.numel() for p in vgg16.backbone.parameters())
    total = sum(p.numel() for p in vgg16.parameters())
    print(f"vgg16: features {backbone:,}, total {total:,}")
    # VGG16's 13 conv layers hold 14,714,688 parameters with RGB input; 1-channel input removes 2×64×9.
    assert backbone == 14_714_688 - 2 * 64 * 9
    assert total == backbone + 512 + 1
    assert not hasattr(vgg16.backbone, "pre_logits") or isinstance(vgg16.backbone.pre_logits, nn.Identity)
    conv = vgg16.backbone.features[0].weight
    assert torch.isfinite(conv).all() and conv.std() > 0.01  # really initialised, not left empty
    with torch.no_grad():
        assert vgg16(torch.randn(1, 1, 32, 32)).shape == (1, 1)


def test_parameter_counts_are_plausible() -> None:
    counts = {name: count_parameters(name) for name in ALL}
    for name, n in counts.items():
        print(f"{name:24s} {n / 1e6:8.2f}M")
    assert 11.1e6 < counts["resnet18"] < 11.3e6  # paper: ~11.2M
    assert 21.0e6 < counts["resnet34"] < 21.5e6
    assert 23.4e6 < counts["resnet50"] < 23.6e6
    assert 20.7e6 < counts["xception"] < 21.0e6  # 22.9M in Keras including its 2048×1000 FC
    assert counts["squeezenet1_1_reduced"] < counts["squeezenet1_1"] < 0.8e6
    assert counts["small_cnn"] < 0.5e6
    assert 5.3e6 < counts["vit_tiny"] < 5.6e6
    # B-CNN adds a 512² → 1 FC layer to resnet18's features; SA adds a small attention branch.
    assert counts["bcnn"] == counts["resnet18"] - 513 + 512 * 512 + 1
    assert counts["bcnn"] < counts["sa_bcnn"] < counts["bcnn"] + 0.1e6
    assert counts["unet_small"] < 2.5e6
    paper = count_parameters("sa_bcnn", backbone="vgg16")
    print(f"sa_bcnn(vgg16) {paper / 1e6:.2f}M")
    assert 14.9e6 < paper < 15.1e6


@pytest.mark.parametrize("name", ["sa_bcnn", "resnet18", "unet", "unet_small", "vit_tiny"])
def test_rebuild_from_config(name: str) -> None:
    model = _meta_model(name, preprocess=PreprocessConfig(input_size=(64, 64)))
    model.config = replace(model.config, threshold=0.3)
    rebuilt = build_model(ModelConfig.from_dict(model.config.to_dict()))
    assert rebuilt.config.to_dict() == model.config.to_dict()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }


def test_bad_arguments_raise_clear_errors() -> None:
    with pytest.raises(ConfigError, match="unknown model 'resnet19'.*resnet18.*Valid models"):
        create_model("resnet19")
    with pytest.raises(ConfigError, match="num_classes=3 but class_names has 2"):
        create_model("small_cnn", num_classes=3, class_names=["ok", "defect"])
    with pytest.raises(ConfigError, match="at least 2"):
        create_model("small_cnn", num_classes=1)
    with pytest.raises(ConfigError, match="in_chans=3 but preprocess.in_chans=1"):
        create_model("small_cnn", in_chans=3, preprocess=PreprocessConfig(in_chans=1))
    with pytest.raises(ConfigError, match="head must be"):
        create_model("small_cnn", head="max")
    with pytest.raises(ConfigError, match="not a timm model"):
        create_model("timm_classifier", backbone="resnet_nineteen")
    with pytest.raises(ConfigError, match="fixed backbone"):
        create_model("resnet18", backbone="resnet50")
    with pytest.raises(ConfigError, match="defective_classes"):
        create_model("small_cnn", class_names=["ok", "crack"], defective_classes=["pore"])


def test_default_defective_classes_skip_ok_names() -> None:
    model = _meta_model("small_cnn", class_names=["ok", "crack", "pore"])
    assert model.config.defective_classes == ("crack", "pore")


@pytest.mark.parametrize("stride, side", [(4, 1), (2, 2), (1, 4)])
def test_stem_stride_keeps_small_patches_from_collapsing(stride: int, side: int) -> None:
    import torch

    from flawscope.models.registry import create_model

    model = create_model("resnet18", num_classes=2, in_chans=1, stem_stride=stride)
    feats = model.eval().backbone.forward_features(torch.zeros(1, 1, 32, 32))
    assert tuple(feats.shape[-2:]) == (side, side)
    plain = create_model("resnet18", num_classes=2, in_chans=1)
    assert model.state_dict().keys() == plain.state_dict().keys()  # pre-trained backbones still load
    assert model.config.build_kwargs["stem_stride"] == stride


def test_stem_stride_on_a_backbone_without_that_stem_is_named() -> None:
    from flawscope.errors import ConfigError
    from flawscope.models.registry import create_model

    with pytest.raises(ConfigError, match="stem_stride applies to ResNet-style backbones.*'small_cnn'"):
        create_model("small_cnn", num_classes=2, in_chans=1, stem_stride=1)
    with pytest.raises(ConfigError, match="stem_stride 3 is not valid"):
        create_model("resnet18", num_classes=2, in_chans=1, stem_stride=3)
