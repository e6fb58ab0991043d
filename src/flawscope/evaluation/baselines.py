"""Classical peer baselines, behind the Predictor's Backend seam so they are scored exactly as networks are.

`LbpSvm`: uniform local binary patterns + a linear SVM, the method that won Mery & Arteta's comparison on
GDXray Xdefects ("Automatic defect recognition in X-ray testing using computer vision", WACV 2017: 97 %
precision, 94 % recall on their split). Each 32×32 patch gives the 59-bin histogram of its non-rotation-
invariant uniform LBP(8, 1) codes (scikit-image), standardised, fed to scikit-learn's LinearSVC. The SVM
margin goes through a sigmoid as the image logit's probability, so thresholds are chosen on validation
like every model's. LBP codes are invariant to monotonic intensity changes, so the normalisation mode of
the inputs does not matter.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from flawscope.models.base import ModelConfig

LBP_POINTS, LBP_RADIUS = 8, 1
LBP_BINS = LBP_POINTS * (LBP_POINTS - 1) + 3  # 59 "nri_uniform" codes for 8 neighbours


def lbp_histograms(batch: np.ndarray) -> np.ndarray:
    """(N, 59) normalised uniform-LBP(8, 1) histograms of (N, C, h, w) inputs (channel mean when C > 1)."""
    from skimage.feature import local_binary_pattern

    x = np.asarray(batch, dtype=np.float64)
    if x.ndim != 4:
        raise ConfigError(f"LBP features need a (N, C, h, w) batch, got shape {x.shape}")
    out = np.zeros((x.shape[0], LBP_BINS), dtype=np.float32)
    for i, image in enumerate(x.mean(axis=1)):
        # 8-bit levels per patch, as the radiographs were: LBP compares neighbours, so any monotonic
        # rescaling gives the same codes, and integers avoid float ties that split equal pixels.
        low, high = float(image.min()), float(image.max())
        levels = np.round((image - low) / (high - low) * 255) if high > low else np.zeros_like(image)
        codes = local_binary_pattern(levels.astype(np.uint8), LBP_POINTS, LBP_RADIUS, method="nri_uniform")
        hist = np.bincount(codes.astype(np.int64).ravel(), minlength=LBP_BINS)[:LBP_BINS]
        out[i] = hist / max(1, hist.sum())
    return out


class LbpSvm:
    """Uniform-LBP histograms + linear SVM as a Backend: `fit` on model inputs, then `run` like a network.

    Args:
        config: the ModelConfig records carry (binary classes, preprocessing of the inputs, threshold).
        c: the SVM's regularisation constant.
        seed: LinearSVC's random state.
    """

    def __init__(self, config: ModelConfig, c: float = 1.0, seed: int = 0) -> None:
        if len(config.class_names) != 2:
            raise ConfigError(f"the LBP + SVM baseline is binary; {config.name!r} has classes "
                              f"{list(config.class_names)}")
        self.config = config
        self.model_id = f"{config.name}@lbp{LBP_POINTS}-{LBP_RADIUS}-svm-c{c:g}"
        self.c, self.seed = c, seed
        self._pipeline: Any = None

    def fit(self, inputs: np.ndarray | torch.Tensor, defective: Sequence[int]) -> LbpSvm:
        """Fit on (N, C, h, w) model inputs and their 1 (defective) / 0 labels."""
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import LinearSVC

        y = np.asarray(defective, dtype=np.int64)
        if set(np.unique(y)) != {0, 1}:
            raise ConfigError("the LBP + SVM baseline needs defective (1) and ok (0) training patches")
        self._pipeline = make_pipeline(StandardScaler(), LinearSVC(C=self.c, random_state=self.seed,
                                                                   max_iter=20000))
        self._pipeline.fit(lbp_histograms(np.asarray(inputs)), y)
        return self

    def run(self, batch: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """{"logits": (B, 1)}: the SVM margin (positive = defective), a network's image logit."""
        if self._pipeline is None:
            raise ConfigError("LbpSvm.run before fit: fit it on training patches first")
        margin = self._pipeline.decision_function(lbp_histograms(np.asarray(batch)))
        return {"logits": margin.astype(np.float32)[:, None]}


def lbp_svm_split_metrics(index: Any, split: Any, input_size: tuple[int, int] = (32, 32), c: float = 1.0,
                          seed: int = 0, cache: Any = None) -> dict[str, Any]:
    """Fit LBP + SVM on a split's train part, choose the threshold on val (best F1), score val and test.

    Args:
        index: the DatasetIndex (patches, e.g. a `flawscope data patches --xdefects` manifest).
        split: its Split (e.g. a study fold's split.csv read by `flawscope.data.splits.load_split`).
        input_size: the patch size the baseline sees (native resolution, centre crop/pad).

    Returns:
        {"threshold", "val": metrics, "test": metrics, "fit_seconds"} with the Predictor's binary metrics.
    """
    import time

    from flawscope.data.config import PreprocessConfig
    from flawscope.evaluation.scoring import sample_flag, score_samples, split_metrics
    from flawscope.evaluation.threshold import choose_threshold
    from flawscope.inference.predictor import DecisionPolicy, Predictor
    from flawscope.inference.preprocess import Preprocessor
    from flawscope.models.base import ModelConfig

    if not index.is_binary:
        raise ConfigError(f"the LBP + SVM baseline is binary; dataset {index.root} has classes "
                          f"{index.classes}")
    pre = PreprocessConfig(input_size=tuple(input_size), resize=False)
    ok = [c for c in index.classes if c not in index.defective_classes]
    classes = (ok[0], sorted(index.defective_classes)[0])
    config = ModelConfig(name="lbp_svm", task="classify", preprocess=pre, class_names=classes,
                         defective_classes=(classes[1],), threshold=0.5)
    preprocessor = Preprocessor(pre)
    train = [index.samples[i] for i in split.train]
    start = time.perf_counter()
    inputs = np.stack([preprocessor(preprocessor.load_sample(s, cache)[0]).numpy() for s in train])
    flags = [sample_flag(s, index.defective_classes) for s in train]
    backend = LbpSvm(config, c=c, seed=seed).fit(inputs, flags)
    fit_seconds = time.perf_counter() - start
    out: dict[str, Any] = {"fit_seconds": fit_seconds}
    val = score_samples(Predictor(backend, DecisionPolicy(threshold=0.5)),
                        [index.samples[i] for i in split.val], cache)
    known = val.labels() >= 0
    threshold = choose_threshold(val.labels()[known], val.scores()[known], "f1")
    out["threshold"] = threshold
    out["val"] = split_metrics(val, config, threshold)
    test = score_samples(Predictor(backend, DecisionPolicy(threshold=threshold)),
                         [index.samples[i] for i in split.test], cache)
    out["test"] = split_metrics(test, config, threshold)
    return out
