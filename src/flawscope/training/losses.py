"""Losses by name, for classifiers and segmenters, with mixed supervision.

Every loss is called as `loss(outputs, batch)` with the model's `forward_outputs` dict and the batch dict
(docs/design.md). Missing labels are skipped, never guessed: the image-level term uses only items whose
`defective` (binary) or `label` (multi-class) is >= 0, and the mask term only items with `batch["has_mask"]`.
So one segmenter trains its mask head on images with masks and its image-level logit on images with only a
label (mixed supervision).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from flawscope.errors import ConfigError, did_you_mean

LOSSES: dict[str, str] = {
    "bce": "sigmoid + binary cross-entropy (pos_weight for rare defects); per pixel for segmenters",
    "ce": "softmax cross-entropy over classes (class weights, label smoothing)",
    "dice": "soft Dice on the mask with add-one smoothing (segmentation)",
    "bce_dice": "pixel BCE + soft Dice on the mask (segmentation)",
    "focal": "sigmoid focal loss (torchvision.ops.sigmoid_focal_loss)",
}
_SEG_ONLY = ("dice", "bce_dice")


def list_losses() -> list[str]:
    """Names accepted by `build_loss`."""
    return sorted(LOSSES)


def _zero(like: torch.Tensor) -> torch.Tensor:
    # Keeps the graph connected (DDP needs every parameter to get a gradient) while adding nothing.
    return like.sum() * 0.0


def soft_dice_loss(mask_logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per image, averaged; add-one smoothing makes an empty guess of an empty mask cost 0."""
    probs = torch.sigmoid(mask_logits).flatten(1)
    target = target.flatten(1)
    inter = (probs * target).sum(1)
    dice = (2 * inter + smooth) / (probs.sum(1) + target.sum(1) + smooth)
    return (1 - dice).mean()


class FlawLoss(nn.Module):
    """Image-level term (+ mask term for segmenters), each only on the items that have its label.

    Args:
        task: "classify" or "segment".
        name: one of `list_losses()`.
        class_weights: per-class weights for "ce" (K values).
        pos_weight: weight of the defective class in "bce" (e.g. n_ok / n_defect).
        seg_weight: factor of the mask term (segmenters).
        cls_weight: factor of the image-level term.
        label_smoothing: for "ce".
        focal_alpha, focal_gamma: for "focal".
    """

    def __init__(
        self,
        task: str,
        name: str,
        class_weights: torch.Tensor | None = None,
        pos_weight: float | None = None,
        seg_weight: float = 1.0,
        cls_weight: float = 1.0,
        label_smoothing: float = 0.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ) -> None:
        super().__init__()
        self.task, self.name = task, name
        self.seg_weight, self.cls_weight = seg_weight, cls_weight
        self.label_smoothing = label_smoothing
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        # Buffers so the weights follow the module to the training device.
        cw = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)
        pw = None if pos_weight is None else torch.tensor([float(pos_weight)], dtype=torch.float32)
        self.register_buffer("class_weights", cw)
        self.register_buffer("pos_weight", pw)

    # -- image-level term -------------------------------------------------------------------------------
    def classification_term(self, logits: torch.Tensor, batch: dict, name: str | None = None) -> torch.Tensor:
        """Loss of the image-level logits on items with a known label; 0 when none has one."""
        name = name or self.name
        if logits.ndim != 2:
            raise ConfigError(f"image-level logits must be (batch, K), got shape {tuple(logits.shape)}")
        if logits.shape[1] == 1:
            if name == "ce":
                raise ConfigError("loss 'ce' needs one logit per class, but the model is binary (1 logit); "
                                  "use --loss bce or focal")
            target = batch["defective"].to(logits.dtype).reshape(-1)
            keep = target >= 0
            if not keep.any():
                return _zero(logits)
            z, t = logits[keep, 0], target[keep]
            if name == "focal":
                from torchvision.ops import sigmoid_focal_loss

                return sigmoid_focal_loss(z, t, self.focal_alpha, self.focal_gamma, reduction="mean")
            return F.binary_cross_entropy_with_logits(z, t, pos_weight=self.pos_weight)
        labels = batch["label"].long().reshape(-1)
        keep = labels >= 0
        if not keep.any():
            return _zero(logits)
        z, y = logits[keep], labels[keep]
        if name == "focal":
            from torchvision.ops import sigmoid_focal_loss

            onehot = F.one_hot(y, logits.shape[1]).to(z.dtype)
            return sigmoid_focal_loss(z, onehot, self.focal_alpha, self.focal_gamma, reduction="mean")
        if name == "bce":
            # Binary BCE on a K-class head would ignore the class structure; say what to use instead.
            raise ConfigError(f"loss 'bce' is for binary models, but this one has {logits.shape[1]} classes; "
                              "use --loss ce or focal")
        return F.cross_entropy(z, y, weight=self.class_weights, label_smoothing=self.label_smoothing)

    # -- mask term --------------------------------------------------------------------------------------
    def segmentation_term(self, mask_logits: torch.Tensor, batch: dict) -> torch.Tensor:
        """Loss of the mask logits on items with `has_mask`; 0 when none has a mask."""
        keep = batch["has_mask"].bool().reshape(-1)
        if not keep.any():
            return _zero(mask_logits)
        z = mask_logits[keep]
        t = batch["mask"][keep].to(z.dtype)
        if t.shape != z.shape:
            raise ConfigError(f"mask logits have shape {tuple(z.shape)} but masks {tuple(t.shape)}; "
                              "the segmenter must output masks at input resolution")
        if self.name == "dice":
            return soft_dice_loss(z, t)
        if self.name == "focal":
            from torchvision.ops import sigmoid_focal_loss

            return sigmoid_focal_loss(z, t, self.focal_alpha, self.focal_gamma, reduction="mean")
        bce = F.binary_cross_entropy_with_logits(z, t, pos_weight=self.pos_weight)
        return bce + soft_dice_loss(z, t) if self.name == "bce_dice" else bce

    def terms(self, outputs: dict[str, torch.Tensor], batch: dict) -> dict[str, torch.Tensor]:
        """The weighted total ("loss") and its parts ("cls", and "seg" for segmenters)."""
        out: dict[str, torch.Tensor] = {}
        if self.task == "segment":
            if "mask_logits" not in outputs:
                raise ConfigError("task 'segment' needs a segmentation model (no 'mask_logits' output);"
                                  " pick a segmenter with `flawscope models list` or use --task classify")
            out["seg"] = self.segmentation_term(outputs["mask_logits"], batch)
            total = self.seg_weight * out["seg"]
            if "logits" in outputs:
                # A segmenter's image-level head takes a classification term: Dice has no meaning there.
                name = "bce" if self.name in _SEG_ONLY else self.name
                out["cls"] = self.classification_term(outputs["logits"], batch, name)
                total = total + self.cls_weight * out["cls"]
        else:
            out["cls"] = self.classification_term(outputs["logits"], batch)
            total = self.cls_weight * out["cls"]
        out["loss"] = total
        return out

    def forward(self, outputs: dict[str, torch.Tensor], batch: dict) -> torch.Tensor:
        return self.terms(outputs, batch)["loss"]


def build_loss(
    task: str,
    name: str,
    class_weights: torch.Tensor | list[float] | None = None,
    pos_weight: float | None = None,
    seg_weight: float = 1.0,
    cls_weight: float = 1.0,
    **kwargs: float,
) -> FlawLoss:
    """A loss by name for a task.

    Args:
        task: "classify" or "segment".
        name: "bce", "ce", "dice", "bce_dice" or "focal".
        class_weights: per-class weights for "ce".
        pos_weight: defective-class weight for "bce".
        seg_weight, cls_weight: factors of the mask and image-level terms.
        **kwargs: label_smoothing, focal_alpha, focal_gamma.
    """
    if task not in ("classify", "segment"):
        raise ConfigError(f"task {task!r} is unknown; use classify or segment")
    if name not in LOSSES:
        hint = did_you_mean(name, LOSSES, n=2)
        raise ConfigError(f"unknown loss {name!r}.{hint} Valid losses: {', '.join(list_losses())}")
    if task == "classify" and name in _SEG_ONLY:
        raise ConfigError(f"loss {name!r} scores masks; use --task segment, or bce/ce/focal to classify")
    if pos_weight is not None and not pos_weight > 0:
        raise ConfigError(f"pos_weight must be positive, got {pos_weight}")
    if seg_weight < 0 or cls_weight < 0:
        raise ConfigError(f"loss weights must be >= 0, got seg_weight={seg_weight}, cls_weight={cls_weight}")
    return FlawLoss(task, name, None if class_weights is None else torch.as_tensor(class_weights),
                    pos_weight, seg_weight, cls_weight, **kwargs)


def default_loss(task: str, num_classes: int) -> str:
    """Loss used when none is given: BCE (paper's eq. 1) if binary, CE for K classes, BCE+Dice for masks."""
    if task == "segment":
        return "bce_dice"
    return "bce" if num_classes <= 2 else "ce"

