"""The contract every registered model keeps with the inference core (SMP's shared model tester in spirit).

build → Predictor on a tiny image → save → load → the same record; and an ONNX export of `forward_export`
with a dynamic batch that ONNX Runtime runs to the same outputs as eager PyTorch (a segmenter's image logit
included), so the ONNX backend can drop in behind the same contract.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from flawscope.data.config import PreprocessConfig
from flawscope.inference.predictor import Predictor
from flawscope.inference.runfolder import load_model
from flawscope.models.base import export_output_names
from flawscope.models.checkpoint import save_model
from flawscope.models.registry import create_model, list_models

SIZE = 32
HEAVY = {"vgg16", "vgg16_bn", "resnet50", "xception", "bcnn", "sa_bcnn", "sa_bcnn_cbam", "deeplabv3plus"}
MODELS = [pytest.param(n, marks=pytest.mark.slow) if n in HEAVY else n for n in list_models()]


class _Export(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.model.forward_export(x)


def _model(name: str, resize: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return create_model(name, preprocess=PreprocessConfig(input_size=(SIZE, SIZE), resize=resize)).eval()


@pytest.mark.parametrize("name", MODELS)
def test_predict_save_load_gives_the_same_record(name: str, tmp_path: Path) -> None:
    model = _model(name)
    image = np.random.default_rng(0).random((1, SIZE + 8, SIZE + 20)).astype(np.float32)  # tiled
    before = Predictor(model).predict(image)
    loaded = load_model(save_model(model, tmp_path / "model.pt"))
    after = Predictor(loaded.model, model_id=loaded.model_id).predict(image)
    assert after.score == pytest.approx(before.score, abs=1e-6)
    assert (after.decision, after.tile, after.n_tiles) == (before.decision, before.tile, before.n_tiles) \
        and before.n_tiles > 1
    assert after.model_id.startswith(f"{name}@")
    if model.config.task == "segment":
        assert before.mask_prob.shape == image.shape[1:]
        np.testing.assert_allclose(after.mask_prob, before.mask_prob, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_forward_export_runs_in_onnx_runtime_with_a_dynamic_batch(name: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = _model(name)
    names = list(export_output_names(model.config.task))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(_Export(model), (torch.randn(2, 1, SIZE, SIZE),), buffer, input_names=["image"],
                          output_names=names, dynamic_axes={k: {0: "batch"} for k in ["image", *names]},
                          dynamo=False)
    model.eval()  # the exporter leaves the model in train mode
    x = torch.randn(3, 1, SIZE, SIZE)  # another batch size than the one traced
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": x.numpy()})
    with torch.no_grad():
        expected = model.forward_export(x)
    assert len(got) == len(expected) == len(names)
    for out, ref in zip(got, expected, strict=True):
        assert out.shape == tuple(ref.shape)
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-3, atol=1e-3)
