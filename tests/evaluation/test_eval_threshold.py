"""Threshold selection on a toy validation set."""

from __future__ import annotations

import numpy as np
import pytest

from flawscope.errors import ConfigError, FlawscopeError
from flawscope.evaluation.metrics import binary_metrics
from flawscope.evaluation.threshold import choose_threshold

Y = [0, 0, 0, 1, 0, 1, 1, 1]
S = [0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8]


def test_best_f1() -> None:
    # At 0.35: TP 4, FP 1 -> F1 8/9, better than 0.6 (TP 3, FP 0 -> 6/7) and 0.4 (0.75).
    t = choose_threshold(Y, S)
    assert t == pytest.approx(0.35)
    assert binary_metrics(Y, S, t)["f1"] == pytest.approx(8 / 9)


@pytest.mark.parametrize(("target", "expected"), [(0.0, 0.35), (0.25, 0.6), (0.5, 0.7)])
def test_miss_rate_target(target: float, expected: float) -> None:
    t = choose_threshold(Y, S, method="miss_rate", target=target)
    assert t == pytest.approx(expected)  # the highest threshold meeting the budget
    assert binary_metrics(Y, S, t)["miss_rate"] <= target


def test_miss_rate_target_respected_on_random_data() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(0.3 * y + rng.normal(0.4, 0.2, 200), 0, 1)
    for target in (0.0, 0.05, 0.2):
        t = choose_threshold(y, s, method="miss_rate", target=target)
        assert binary_metrics(y, s, t)["miss_rate"] <= target
        # Any higher observed score as threshold would break the budget.
        higher = s[s > t]
        if higher.size:
            assert binary_metrics(y, s, higher.min())["miss_rate"] > target


def test_youden() -> None:
    # TPR - FPR is 0.75 at both 0.35 and 0.6; the higher threshold wins the tie.
    assert choose_threshold(Y, S, method="youden") == pytest.approx(0.6)


def test_errors() -> None:
    with pytest.raises(FlawscopeError, match="both defective and ok"):
        choose_threshold([1, 1, 1], [0.2, 0.5, 0.9])
    with pytest.raises(ConfigError, match="target"):
        choose_threshold(Y, S, method="miss_rate")
    with pytest.raises(ConfigError, match="unknown"):
        choose_threshold(Y, S, method="best")  # type: ignore[arg-type]
