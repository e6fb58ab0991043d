"""The LBP + linear SVM peer baseline: fitted on patches, scored through the Predictor like any model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flawscope.data.sources import load_dataset
from flawscope.data.splits import make_split
from flawscope.errors import ConfigError
from flawscope.evaluation.baselines import LBP_BINS, lbp_histograms, lbp_svm_split_metrics
from helpers.datasets import write_blob_folder


def test_histograms_are_normalised_and_ignore_monotonic_intensity_changes() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(3, 1, 32, 32)).astype(np.float32)
    h = lbp_histograms(x)
    assert h.shape == (3, LBP_BINS) and np.allclose(h.sum(axis=1), 1)
    assert np.allclose(lbp_histograms(3 * x - 1), h)  # another exposure, same texture
    with pytest.raises(ConfigError, match=r"\(N, C, h, w\) batch"):
        lbp_histograms(x[0])


def test_baseline_learns_the_blob_task_with_a_val_chosen_threshold(tmp_path: Path) -> None:
    index = load_dataset(write_blob_folder(tmp_path / "blobs", n_per_class=30, blob=6), format="folders")
    split = make_split(index, 0.25, 0.25, seed=0, by_group=True)
    result = lbp_svm_split_metrics(index, split)
    assert 0 <= result["threshold"] <= 1
    assert result["test"]["roc_auc"] > 0.75 and result["test"]["n"] == len(split.test)
