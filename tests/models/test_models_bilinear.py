"""Bilinear pooling, SA-BCNN / CBAM attention and the bilinear models' outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flawscope.data.config import PreprocessConfig
from flawscope.errors import ConfigError
from flawscope.models import bilinear, create_model
from flawscope.models.bilinear import fused_bilinear_pool
from flawscope.models.heads import CBAMSpatial, SpatialAttentionDS, bilinear_pool

PP32 = PreprocessConfig(input_size=(32, 32))


def test_bilinear_pool_matches_the_formula_and_is_unit_length() -> None:
    feats = torch.randn(3, 4, 5, 6)
    z = bilinear_pool(feats)
    assert z.shape == (3, 16)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    f = feats[0].reshape(4, 30)
    phi = (f @ f.T / 30).flatten()
    expected = torch.sign(phi) * torch.sqrt(phi.abs() + 1e-8)
    torch.testing.assert_close(z[0], expected / expected.norm())


@pytest.mark.parametrize("chunk", [1 << 18, 80])  # all rows at once; chunks of 2, 2 and 1 rows
@pytest.mark.parametrize("shape", [(5, 6, 1, 1), (5, 6, 3, 2)])  # 1×1 maps (ResNet-18 on 32 px) and larger
def test_fused_bilinear_pool_equals_the_reference(
    shape: tuple[int, ...], chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bilinear, "_CHUNK_ELEMENTS", chunk)
    torch.manual_seed(0)
    x = torch.randn(*shape, dtype=torch.float64)
    x[0, :2] = 0  # zero rows and columns of Φ: the signed sqrt's gradient is 0 there
    x[1] = 0  # an all-zero map: z = 0, clamped norm
    weight = torch.randn(shape[1] ** 2, 3, dtype=torch.float64)
    results = []
    for pool in (bilinear_pool, fused_bilinear_pool):
        xx = x.clone().requires_grad_()
        z = pool(xx)
        (z @ weight).square().sum().backward()
        results.append((z.detach(), xx.grad))
    (z_ref, g_ref), (z_fused, g_fused) = results
    assert torch.equal(z_fused, z_ref)  # same operations in the same order: bit-identical values
    torch.testing.assert_close(g_fused, g_ref, rtol=1e-10, atol=1e-12)
    assert g_fused[1].abs().max() == 0


def test_fused_bilinear_pool_gradcheck_and_float32() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 4, 2, 3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(fused_bilinear_pool, (x,))
    x32 = torch.randn(3, 8, 2, 2)
    torch.testing.assert_close(fused_bilinear_pool(x32), bilinear_pool(x32))


def test_fused_bilinear_pool_falls_back_to_the_reference_under_autocast_and_half() -> None:
    x = torch.randn(2, 8, 2, 2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got, expected = fused_bilinear_pool(x), bilinear_pool(x)
    assert got.dtype == expected.dtype == torch.bfloat16 and torch.equal(got, expected)
    xh = x.to(torch.bfloat16)
    assert torch.equal(fused_bilinear_pool(xh), bilinear_pool(xh))


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:FutureWarning")  # the tracer the ONNX exporter uses
def test_tracing_sees_the_reference_pooling() -> None:
    # Exporters cannot map a custom autograd Function: under tracing the model pools with the plain formula.
    torch.manual_seed(0)
    model = create_model("sa_bcnn", backbone="small_cnn", preprocess=PP32).eval()
    x = torch.randn(2, 1, 32, 32)
    traced = torch.jit.trace(model, (x,))
    assert "BilinearPool" not in str(traced.inlined_graph)
    torch.testing.assert_close(traced(x), model(x))


def test_spatial_attention_ds_structure_and_range() -> None:
    sa = SpatialAttentionDS(64, reduction=8)
    convs = [m for m in sa.modules() if isinstance(m, nn.Conv2d)]
    # 1×1 reduction → depthwise 3×3 → pointwise 1×1 → 1×1 to one map.
    assert [(c.kernel_size, c.groups) for c in convs] == [((1, 1), 1), ((3, 3), 8), ((1, 1), 1), ((1, 1), 1)]
    assert convs[-1].out_channels == 1
    ms = sa(torch.randn(2, 64, 6, 6) * 10)
    assert ms.shape == (2, 1, 6, 6) and ms.min() >= 0 and ms.max() <= 1


def test_cbam_spatial_pools_max_and_mean() -> None:
    cbam = CBAMSpatial()
    assert cbam.conv.in_channels == 2 and cbam.conv.kernel_size == (7, 7)
    with torch.no_grad():
        cbam.conv.weight.zero_()
        cbam.conv.weight[0, 0, 3, 3] = 1.0  # pass the channel max straight through
    x = torch.randn(1, 5, 4, 4)
    torch.testing.assert_close(cbam(x), torch.sigmoid(x.amax(dim=1, keepdim=True)))


@pytest.mark.parametrize("name", ["sa_bcnn", "sa_bcnn_cbam"])
def test_attention_models_outputs(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, backbone="small_cnn", preprocess=PP32).eval()
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = model.forward_outputs(x)
        feats = model.backbone.forward_features(x)
    assert out["attention"].shape == (2, 1, 4, 4)  # small_cnn has stride 8
    assert out["attention"].min() >= 0 and out["attention"].max() <= 1
    assert out["features"].shape == (2, 128 * 128)
    torch.testing.assert_close(out["features"].norm(dim=1), torch.ones(2))  # L2-normalised before the FC
    torch.testing.assert_close(out["logits"], model.head.fc(out["features"]))
    # The pooled map is the backbone map re-weighted by the attention: F = X ⊗ Ms.
    torch.testing.assert_close(bilinear_pool(feats * out["attention"]), out["features"])


def test_attention_receives_gradients() -> None:
    torch.manual_seed(0)
    model = create_model("sa_bcnn", backbone="small_cnn", preprocess=PP32)
    loss = model(torch.randn(2, 1, 32, 32)).sum()
    loss.backward()
    assert model.attention.to_map.weight.grad is not None
    assert model.attention.to_map.weight.grad.abs().sum() > 0


def test_bcnn_has_no_attention_and_reduce_dim_shrinks_features() -> None:
    model = create_model("bcnn", backbone="small_cnn", reduce_dim=16, num_classes=4).eval()
    out = model.forward_outputs(torch.randn(2, 1, 32, 32))
    assert "attention" not in out
    assert out["features"].shape == (2, 256)
    assert out["logits"].shape == (2, 4)
    assert model.config.build_kwargs["reduce_dim"] == 16


def test_paper_setting_vgg16_backbone_builds_on_meta() -> None:
    with torch.device("meta"):
        model = create_model("sa_bcnn", backbone="vgg16")
    assert model.head.fc.in_features == 512 * 512
    assert model.config.build_kwargs["backbone"] == "vgg16"


def test_bilinear_rejects_token_backbones_and_bad_options() -> None:
    with pytest.raises(ConfigError, match="feature map"):
        create_model("bcnn", backbone="vit_tiny_patch16_224", preprocess=PP32)
    with pytest.raises(ConfigError, match="reduce_dim"):
        create_model("bcnn", backbone="small_cnn", reduce_dim=0)
