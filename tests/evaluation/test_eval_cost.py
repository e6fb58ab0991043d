"""Parameter and FLOP counts against analytic values; latency measurements are positive and consistent."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from flawscope.errors import ConfigError
from flawscope.evaluation.cost import count_flops, count_params, measure_latency, model_cost


def test_count_params() -> None:
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Linear(4, 2))
    assert count_params(model) == (8 * 3 * 9 + 8) + (4 * 2 + 2)
    model[0].weight.requires_grad_(False)
    assert count_params(model, trainable_only=True) == 8 + 4 * 2 + 2


def test_flops_linear_is_two_macs() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    assert count_flops(model, (3, 4, 4)) == 2 * 48 * 5


@pytest.mark.parametrize(("stride", "padding", "out_hw"), [(1, 1, 16), (2, 0, 7)])
def test_flops_conv_analytic(stride: int, padding: int, out_hw: int) -> None:
    conv = nn.Conv2d(3, 8, 3, stride=stride, padding=padding)
    assert count_flops(conv, (3, 16, 16)) == 2 * (8 * out_hw * out_hw) * (3 * 3 * 3)


def test_flops_restores_training_mode_and_checks_shape() -> None:
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    count_flops(model, (1, 8, 8))
    assert model.training
    with pytest.raises(ConfigError, match="channels, height, width"):
        count_flops(model, (2, 1, 8, 8))


def test_latency_positive() -> None:
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    lat = measure_latency(model, (1, 32, 32), batch_size=4, warmup=1, iters=3)
    assert lat["ms_per_batch"] > 0 and lat["ms_per_image"] == pytest.approx(lat["ms_per_batch"] / 4)
    assert lat["std"] >= 0 and lat["device"] == "cpu" and lat["batch_size"] == 4
    assert model.training  # restored
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA"):
            measure_latency(model, (1, 32, 32), device="cuda")


def test_model_cost() -> None:
    model = nn.Conv2d(1, 2, 3, padding=1)
    cost = model_cost(model, (1, 16, 16), batch_sizes=(1, 2), warmup=1, iters=2)
    assert cost["params"] == 2 * 9 + 2
    assert cost["flops"] == 2 * 2 * 256 * 9
    assert set(cost["latency"]) == {1, 2}
    assert all(v["gflops_per_s"] > 0 for v in cost["latency"].values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_latency_on_gpu_moves_model_back() -> None:
    model = nn.Conv2d(1, 4, 3, padding=1)
    lat = measure_latency(model, (1, 32, 32), batch_size=2, device="cuda", warmup=1, iters=3)
    assert lat["ms_per_batch"] > 0 and lat["device"].startswith("cuda")
    assert next(model.parameters()).device.type == "cpu"
