"""Losses by name, and mixed supervision: missing labels and masks contribute nothing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from flawscope.errors import ConfigError
from flawscope.training.losses import build_loss, list_losses, soft_dice_loss


def _seg_batch(b: int = 4, size: int = 8, has_mask: tuple[bool, ...] = (True, False, True, False)) -> dict:
    g = torch.Generator().manual_seed(0)
    mask = (torch.rand(b, 1, size, size, generator=g) > 0.7).float()
    has = torch.tensor(has_mask)
    mask[~has] = 0
    return {
        "mask": mask,
        "has_mask": has,
        "defective": torch.tensor([1.0, -1.0, 0.0, 1.0]),
        "label": torch.tensor([1, -1, 0, 1]),
    }


def test_registry_names_and_unknown_loss_suggests() -> None:
    assert list_losses() == ["bce", "bce_dice", "ce", "dice", "focal"]
    with pytest.raises(ConfigError, match=r"unknown loss 'dcie'.*Did you mean 'dice'"):
        build_loss("segment", "dcie")


def test_dice_for_classification_is_refused() -> None:
    with pytest.raises(ConfigError, match="--task segment"):
        build_loss("classify", "dice")


def test_bce_matches_torch_on_labelled_items_with_pos_weight() -> None:
    logits = torch.tensor([[2.0], [-1.0], [0.5], [-3.0]])
    batch = {"defective": torch.tensor([1.0, -1.0, 0.0, 1.0])}
    loss = build_loss("classify", "bce", pos_weight=3.0)({"logits": logits}, batch)
    keep = torch.tensor([0, 2, 3])
    expected = F.binary_cross_entropy_with_logits(
        logits[keep, 0], batch["defective"][keep], pos_weight=torch.tensor([3.0])
    )
    assert torch.allclose(loss, expected)


def test_ce_with_class_weights_and_smoothing_ignores_unlabelled() -> None:
    logits = torch.randn(5, 3, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 2, -1, 1, 2])
    w = torch.tensor([1.0, 2.0, 0.5])
    ce = build_loss("classify", "ce", class_weights=w, label_smoothing=0.1)
    loss = ce({"logits": logits}, {"label": labels})
    keep = labels >= 0
    expected = F.cross_entropy(logits[keep], labels[keep], weight=w, label_smoothing=0.1)
    assert torch.allclose(loss, expected)


def test_binary_losses_on_wrong_head_say_what_to_use() -> None:
    with pytest.raises(ConfigError, match="use --loss bce"):
        build_loss("classify", "ce")({"logits": torch.zeros(2, 1)}, {"defective": torch.ones(2)})
    with pytest.raises(ConfigError, match="use --loss ce"):
        labels = torch.zeros(2, dtype=torch.long)
        build_loss("classify", "bce")({"logits": torch.zeros(2, 3)}, {"label": labels})


def test_focal_uses_torchvision() -> None:
    from torchvision.ops import sigmoid_focal_loss

    logits = torch.tensor([[1.0], [-2.0], [0.3]])
    target = torch.tensor([1.0, 0.0, 1.0])
    loss = build_loss("classify", "focal")({"logits": logits}, {"defective": target})
    assert torch.allclose(loss, sigmoid_focal_loss(logits[:, 0], target, reduction="mean"))


def test_soft_dice_add_one_smoothing() -> None:
    empty = torch.zeros(1, 1, 4, 4)
    # A confident empty prediction of an empty mask is perfect, not 0/0.
    assert soft_dice_loss(torch.full((1, 1, 4, 4), -30.0), empty).item() == pytest.approx(0.0, abs=1e-6)
    full = torch.ones(1, 1, 4, 4)
    assert soft_dice_loss(torch.full((1, 1, 4, 4), 30.0), full).item() == pytest.approx(0.0, abs=1e-6)
    # Completely wrong: 1 - 1/(16+1).
    assert soft_dice_loss(torch.full((1, 1, 4, 4), -30.0), full).item() == pytest.approx(16 / 17, abs=1e-5)


@pytest.mark.parametrize("name", ["bce", "dice", "bce_dice", "focal"])
def test_mixed_supervision_gradients_only_where_labels_exist(name: str) -> None:
    batch = _seg_batch()
    mask_logits = torch.randn(4, 1, 8, 8, requires_grad=True)
    logits = torch.randn(4, 1, requires_grad=True)
    loss = build_loss("segment", name)({"mask_logits": mask_logits, "logits": logits}, batch)
    loss.backward()
    per_item_mask_grad = mask_logits.grad.abs().flatten(1).sum(1)
    # Items without a mask (1 and 3) get no gradient from the mask term; items with one do.
    assert per_item_mask_grad[1] == 0 and per_item_mask_grad[3] == 0
    assert per_item_mask_grad[0] > 0 and per_item_mask_grad[2] > 0
    # The image-level logit learns from every item with a known label (item 3 has a label but no mask).
    g = logits.grad[:, 0].abs()
    assert g[1] == 0 and g[0] > 0 and g[2] > 0 and g[3] > 0


def test_segment_loss_terms_and_weights() -> None:
    batch = _seg_batch()
    outputs = {"mask_logits": torch.randn(4, 1, 8, 8), "logits": torch.randn(4, 1)}
    terms = build_loss("segment", "bce_dice", seg_weight=2.0, cls_weight=0.5).terms(outputs, batch)
    assert torch.allclose(terms["loss"], 2.0 * terms["seg"] + 0.5 * terms["cls"])


def test_batch_without_any_mask_or_label_gives_zero_but_keeps_graph() -> None:
    batch = _seg_batch(has_mask=(False, False, False, False))
    batch["defective"] = torch.full((4,), -1.0)
    mask_logits = torch.randn(4, 1, 8, 8, requires_grad=True)
    logits = torch.randn(4, 1, requires_grad=True)
    loss = build_loss("segment", "bce_dice")({"mask_logits": mask_logits, "logits": logits}, batch)
    assert loss.item() == 0.0
    loss.backward()  # still differentiable: DDP needs every parameter in the graph
    assert mask_logits.grad is not None and mask_logits.grad.abs().sum() == 0


def test_segment_task_needs_mask_logits() -> None:
    with pytest.raises(ConfigError, match="segmentation model"):
        build_loss("segment", "dice")({"logits": torch.zeros(2, 1)}, _seg_batch())
