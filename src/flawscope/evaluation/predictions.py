"""Scores of a plain model over a data loader, and the metrics of one split from them.

Training (its val and test splits), `flawscope evaluate` and the benchmark score items the same way:
`predict_loader` runs the model's `forward_outputs` and reads them with
`flawscope.models.base.image_probabilities`, then `split_metrics` turns the scores into metrics.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

    from flawscope.models.base import FlawModel


def predict_loader(
    model: FlawModel, loader: Any, device: torch.device | str = "cpu"
) -> dict[str, Any]:
    """Scores of every item of a loader, in dataset order, with their labels (and pixel counts for masks).

    The model is put in eval mode and moved to `device` (it stays there).

    Args:
        model: the plain model.
        loader: yields batch dicts (docs/design.md "Batches") with "image" and "index".
        device: where the forward passes run.

    Returns:
        "index", "scores" ((N,) or (N, K)), "defective", "label", in dataset order; for segmenters with masked
        items also "segmentation" (a SegmentationScorer: pixel and flaw-level scores of each masked item at
        mask probability 0.5, in loader order; numbers only) and "mask_index" (those items' positions).
    """
    import torch

    from flawscope.evaluation.segmentation import SegmentationScorer
    from flawscope.models.base import image_probabilities

    model.eval()
    model.to(device)
    parts: dict[str, list[np.ndarray]] = {"index": [], "scores": [], "defective": [], "label": []}
    scorer = SegmentationScorer(threshold=0.5)
    mask_index: list[int] = []
    with torch.inference_mode():
        for batch in loader:
            batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
            outputs = model.forward_outputs(batch["image"])
            out = {"scores": image_probabilities(outputs)}
            for key in ("index", "defective", "label"):
                if key in batch:
                    out[key] = batch[key]
            for key in parts:
                parts[key].append(out[key].detach().cpu().numpy())
            if "mask_logits" in outputs and batch["has_mask"].any():
                has = batch["has_mask"].bool()
                # Per item, on the CPU: flaw matching labels connected regions one image at a time.
                pred = (torch.sigmoid(outputs["mask_logits"][has]) >= 0.5).cpu().numpy()
                gt = (batch["mask"][has] >= 0.5).cpu().numpy()
                for p, g in zip(pred, gt, strict=True):
                    scorer.update(p, g)
                mask_index += batch["index"][has].tolist()
    result: dict[str, Any] = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.argsort(result["index"], kind="stable")
    result = {k: v[order] for k, v in result.items()}
    if len(scorer):
        result["segmentation"], result["mask_index"] = scorer, np.array(mask_index, dtype=np.int64)
    return result


def defect_scores(pred: dict[str, np.ndarray], classes: list[str], defective: tuple[str, ...]) -> np.ndarray:
    """P(defective) per item: the sigmoid output, or the summed probability of the defective classes."""
    scores = pred["scores"]
    if scores.ndim == 1:
        return scores
    idx = [classes.index(c) for c in defective]
    return scores[:, idx].sum(axis=1)


def split_metrics(pred: dict[str, Any], threshold: float, model: FlawModel) -> dict[str, Any]:
    """Metrics of one split at `threshold`: binary (or multi-class), plus a segmenter's "pixel" and "flaw"."""
    from flawscope.evaluation.metrics import binary_metrics, multiclass_metrics

    classes = list(model.config.class_names)
    defective = tuple(model.config.defective_classes)
    known = pred["defective"] >= 0
    scores = defect_scores(pred, classes, defective)
    if pred["scores"].ndim == 2:
        labelled = pred["label"] >= 0
        out = multiclass_metrics(
            pred["label"][labelled], pred["scores"][labelled], classes, defective, threshold
        )
    else:
        out = binary_metrics(pred["defective"][known].astype(np.int64), scores[known], threshold)
    if "segmentation" in pred:
        out.update(pred["segmentation"].compute())  # "pixel" and "flaw"
    return out


def json_safe(value: Any) -> Any:
    """NaN/inf become null (and numpy scalars plain numbers) so metrics.json stays strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
