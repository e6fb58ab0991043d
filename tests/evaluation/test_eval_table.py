"""Benchmark tables: Table III layout, mean ± std over folds, CSV/JSON stay machine-readable."""

from __future__ import annotations

import csv
import io
import json

import pytest

from flawscope.errors import FlawscopeError
from flawscope.evaluation.table import benchmark_table


def _row(model: str, tp: int, recall: float, **kw: float) -> dict:
    return {"model": model, "params": 1_234_567, "flops": 2.5e9, "TP": tp, "TN": 50, "FP": 2, "FN": 3,
            "precision": 0.9, "recall": recall, "accuracy": 0.95, "miss_rate": 1 - recall,
            "false_alarm_rate": 0.1, "cpu_ms": 12.345, **kw}


def test_table_iii_markdown_csv_json() -> None:
    rows = [_row("SA-BCNN", 10, 0.8, gpu_ms=1.5), _row("SA-BCNN", 12, 0.9, gpu_ms=1.7), _row("BCNN", 9, 0.7)]
    md, text_csv, text_json = benchmark_table(rows)
    lines = md.strip().splitlines()
    assert lines[0].startswith("| Model | Params | FLOPs | TP | TN | FP | FN | Precision | Recall")
    assert lines[0].endswith("| CPU ms | GPU ms |") and len(lines) == 4
    sa = lines[2]
    assert "| SA-BCNN | 1.23M | 2.50G | 11.0 ± 1.4 |" in sa
    assert "0.8500 ± 0.0707" in sa and "1.60 ± 0.14" in sa and "| 50.0 ± 0.0 |" in sa
    assert lines[3].startswith("| BCNN | 1.23M | 2.50G | 9 |") and lines[3].endswith("| 12.35 | – |")
    records = list(csv.DictReader(io.StringIO(text_csv)))
    assert records[0]["model"] == "SA-BCNN" and records[0]["n_runs"] == "2"
    assert float(records[0]["TP"]) == 11.0 and float(records[0]["TP_std"]) == pytest.approx(2**0.5)
    assert records[1]["gpu_ms"] == ""
    data = json.loads(text_json)
    assert data[1]["gpu_ms"] is None and data[0]["recall"] == pytest.approx(0.85)


def test_custom_columns_and_list_cells() -> None:
    md, _, text_json = benchmark_table(
        [{"model": "unet", "dataset": "welds", "iou": [0.5, 0.7]}],
        columns=["dataset", ("iou", "IoU", "ratio")],
    )
    assert "| Model | dataset | IoU |" in md and "| unet | welds | 0.6000 ± 0.1414 |" in md
    assert json.loads(text_json)[0]["iou_std"] == pytest.approx(0.1414, abs=1e-4)


def test_errors() -> None:
    with pytest.raises(FlawscopeError, match="'model'"):
        benchmark_table([{"TP": 3}])
    with pytest.raises(FlawscopeError, match="not a number"):
        benchmark_table([{"model": "a", "TP": "many"}])
