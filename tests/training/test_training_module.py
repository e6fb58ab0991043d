"""FlawModule: learns a tiny blob task, freezes stages, names NaN batches, checkpoints round-trip."""

from __future__ import annotations

from dataclasses import replace

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from flawscope.data.config import PreprocessConfig
from flawscope.errors import FlawscopeError
from flawscope.inference.predictor import Predictor
from flawscope.models.base import FlawModel, ModelConfig
from flawscope.models.checkpoint import (
    CheckpointError,
    check_compatible,
    load_model_from_checkpoint,
    save_model,
)
from flawscope.training.module import FlawModule, NonFiniteLossError, backbone_stages, freeze_stages

SIZE = 32


class TinyNet(FlawModel):
    """Two conv stages; a classifier (GAP+GMP -> FC) or a segmenter (1x1 conv mask + max image logit)."""

    def __init__(self, task: str = "classify", class_names: tuple[str, ...] = ("ok", "defect")) -> None:
        super().__init__()
        self.config = ModelConfig(name="tiny", task=task, class_names=class_names,
                                  preprocess=PreprocessConfig(input_size=(SIZE, SIZE)))
        self.backbone = nn.Sequential(
            nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
            nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()),
        )
        self.head = nn.Linear(16, self.config.num_outputs)
        self.mask_head = nn.Conv2d(8, 1, 1)

    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.backbone(x)
        if self.config.task == "segment":
            m = self.mask_head(f)
            return {"mask_logits": m, "logits": m.flatten(1).amax(1, keepdim=True)}
        pooled = torch.cat([f.mean((2, 3)), f.amax((2, 3))], 1)
        return {"logits": self.head(pooled)}


def blob_items(n: int, seed: int, with_masks: bool = False) -> list[dict[str, torch.Tensor]]:
    """n noisy 32x32 images; every other one holds a bright 5x5 blob (defective) at a random place."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        img = torch.rand(1, SIZE, SIZE, generator=g) * 0.3
        mask = torch.zeros(1, SIZE, SIZE)
        defective = i % 2
        if defective:
            r, c = (int(v) for v in torch.randint(2, SIZE - 7, (2,), generator=g))
            img[:, r:r + 5, c:c + 5] += 0.8
            mask[:, r:r + 5, c:c + 5] = 1
        items.append({
            "image": (img - 0.5) / 0.25, "label": torch.tensor(defective),
            "defective": torch.tensor(float(defective)), "mask": mask,
            "has_mask": torch.tensor(with_masks and i % 4 < 2), "index": torch.tensor(i),
        })
    return items


def _trainer(epochs: int, **kw) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=False,
                     enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                     deterministic=True, num_sanity_val_steps=0, **kw)


def test_learns_the_blob_task_and_decays_lr_to_min() -> None:
    L.seed_everything(0, verbose=False)
    module = FlawModule(TinyNet(), optimizer="adamw", lr=1e-2, weight_decay=0.0)
    trainer = _trainer(4)
    trainer.fit(module, DataLoader(blob_items(48, 0), batch_size=8, shuffle=True),
                DataLoader(blob_items(24, 1), batch_size=8))
    metrics = trainer.callback_metrics
    assert metrics["val_auroc"] > 0.9, metrics
    assert {"train_loss", "val_loss", "val_acc"} <= set(metrics)
    # Cosine decay over max_epochs ends at min_lr.
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-6)


def test_sgd_is_the_default_optimizer_with_momentum() -> None:
    module = FlawModule(TinyNet())
    module.trainer = _trainer(3)  # configure_optimizers reads max_epochs
    opt = module.configure_optimizers()["optimizer"]
    assert isinstance(opt, torch.optim.SGD)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["lr"] == 1e-3


def test_segmenter_mixed_supervision_trains_and_predicts_masks() -> None:
    L.seed_everything(0, verbose=False)
    module = FlawModule(TinyNet(task="segment"), optimizer="adamw", lr=1e-2, weight_decay=0.0)
    assert module.loss.name == "bce_dice"
    trainer = _trainer(2)
    val = DataLoader(blob_items(16, 1, with_masks=True), batch_size=8)
    trainer.fit(module, DataLoader(blob_items(32, 0, with_masks=True), batch_size=8), val)
    assert "val_dice" in trainer.callback_metrics and "train_seg_loss" in trainer.callback_metrics
    records = Predictor(module.model).predict_batch(next(iter(val))["image"])
    assert len(records) == 8 and all(r.mask_prob.shape == (SIZE, SIZE) for r in records)
    assert all(0 <= r.score <= 1 for r in records)


class NaNNet(TinyNet):
    def forward_outputs(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward_outputs(x)
        return {"logits": out["logits"] * float("nan")}


def test_nan_loss_raises_error_naming_epoch_step_and_files() -> None:
    module = FlawModule(NaNNet())
    module.describe_samples = lambda idx: [f"img_{i}.png" for i in idx]
    with pytest.raises(NonFiniteLossError, match=r"nan at epoch 0, step 0 .*img_0\.png, img_1\.png") as info:
        _trainer(1).fit(module, DataLoader(blob_items(4, 0), batch_size=2))
    assert isinstance(info.value, FlawscopeError)


def test_freeze_stages_freezes_weights_and_batchnorm_stats() -> None:
    model = TinyNet()
    assert len(backbone_stages(model)) == 2
    module = FlawModule(model, freeze_stages=1, optimizer="adamw", lr=1e-2)
    first, second = model.backbone[0], model.backbone[1]
    before = {k: v.clone() for k, v in first.state_dict().items()}
    second_before = second[0].weight.clone()
    assert not any(p.requires_grad for p in first.parameters())
    _trainer(1).fit(module, DataLoader(blob_items(8, 0), batch_size=4))
    for k, v in first.state_dict().items():
        assert torch.equal(v, before[k]), k  # weights and running stats untouched
    assert not torch.equal(second[0].weight, second_before)


def test_freeze_more_stages_than_exist_is_a_clear_error() -> None:
    with pytest.raises(FlawscopeError, match=r"freeze_stages 3 is more than the 2 stages"):
        freeze_stages(TinyNet(), 3)


def test_small_cnn_has_stages() -> None:
    from flawscope.models.registry import create_model

    model = create_model("small_cnn", num_classes=2, preprocess=PreprocessConfig(input_size=(SIZE, SIZE)))
    stages = backbone_stages(model)
    assert len(stages) >= 2
    freeze_stages(model, 1)
    assert not any(p.requires_grad for p in stages[0].parameters())
    assert all(p.requires_grad for p in stages[-1].parameters())


def _small_cnn(class_names: tuple[str, ...] = ("ok", "defect")) -> FlawModel:
    from flawscope.models.registry import create_model

    preprocess = PreprocessConfig(input_size=(SIZE, SIZE))
    return create_model("small_cnn", class_names=class_names, preprocess=preprocess)


def test_checkpoint_and_model_pt_round_trip(tmp_path) -> None:
    L.seed_everything(0, verbose=False)
    model = _small_cnn()
    module = FlawModule(model, optimizer="adamw", lr=1e-2)
    trainer = _trainer(1, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(blob_items(8, 0), batch_size=4))
    ckpt = tmp_path / "m.ckpt"
    trainer.save_checkpoint(ckpt)
    model.config = replace(model.config, threshold=0.37)
    pt = save_model(model, tmp_path / "model.pt")
    x = torch.stack([it["image"] for it in blob_items(4, 2)])
    model.eval()
    with torch.no_grad():
        expected = model(x)
    for path in (ckpt, pt):
        loaded = load_model_from_checkpoint(path)
        with torch.no_grad():
            assert torch.allclose(loaded(x), expected, atol=1e-6), path
        assert loaded.config.class_names == ("ok", "defect")
    assert load_model_from_checkpoint(pt).config.threshold == 0.37


def test_incompatible_checkpoint_is_a_clear_error(tmp_path) -> None:
    model = _small_cnn()
    pt = save_model(model, tmp_path / "model.pt")
    other = _small_cnn(("ok", "crack", "pore"))
    match = r"class_names=\('ok', 'defect'\).*class_names=\('ok', 'crack', 'pore'\)"
    with pytest.raises(CheckpointError, match=match):
        check_compatible(model.config, other.config, pt)
    # Weights of a binary head in a file whose config claims three classes: caught at load time.
    data = torch.load(pt, weights_only=True)
    data["config"]["class_names"] = ["ok", "crack", "pore"]
    data["config"]["build_kwargs"]["num_classes"] = 3
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model_from_checkpoint(tmp_path / "bad.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="not written by"):
        load_model_from_checkpoint(tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model_from_checkpoint(tmp_path / "missing.ckpt")
