"""Benchmark tables in the layout of the SA-BCNN paper's Table III, as Markdown, CSV and JSON.

Rows are plain dicts with a "model" key. Several rows of the same model (folds or seeds), or a list of values
in one cell, are shown as mean ± std (sample std, ddof=1); CSV and JSON carry `<key>` (the mean),
`<key>_std` and `n_runs` so that they stay machine-readable.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from flawscope.evaluation.metrics import EvaluationError, mean_std

# (key in the row dicts, header, kind); kinds choose the display format.
TABLE_III_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("model", "Model", "text"),
    ("params", "Params", "params"),
    ("flops", "FLOPs", "flops"),
    ("TP", "TP", "count"),
    ("TN", "TN", "count"),
    ("FP", "FP", "count"),
    ("FN", "FN", "count"),
    ("precision", "Precision", "ratio"),
    ("recall", "Recall", "ratio"),
    ("accuracy", "Accuracy", "ratio"),
    ("miss_rate", "Miss rate", "ratio"),
    ("false_alarm_rate", "False alarm rate", "ratio"),
    ("cpu_ms", "CPU ms", "ms"),
    ("gpu_ms", "GPU ms", "ms"),
)

_KNOWN = {key: (header, kind) for key, header, kind in TABLE_III_COLUMNS}


def _columns(columns: Sequence[str | tuple[str, ...]] | None) -> list[tuple[str, str, str]]:
    if columns is None:
        return list(TABLE_III_COLUMNS)
    out = []
    for c in columns:
        if isinstance(c, str):
            header, kind = _KNOWN.get(c, (c, "auto"))
            out.append((c, header, kind))
        elif len(c) in (2, 3):
            out.append((c[0], c[1], c[2] if len(c) == 3 else _KNOWN.get(c[0], ("", "auto"))[1]))
        else:
            raise EvaluationError(f"column {c!r} must be a key, (key, header) or (key, header, kind)")
    if not out or out[0][0] != "model":
        out.insert(0, TABLE_III_COLUMNS[0])
    return out


def _scale(kind: str) -> tuple[float, str]:
    return {"params": (1e6, "M"), "flops": (1e9, "G")}.get(kind, (1.0, ""))


def _fmt(mean: float, std: float, n: int, kind: str) -> str:
    if n == 0 or math.isnan(mean):
        return "–"
    div, unit = _scale(kind)
    digits = {"count": 0 if n == 1 else 1, "ratio": 4, "ms": 2, "params": 2, "flops": 2}.get(kind, 4)
    text = f"{mean / div:.{digits}f}{unit}" if kind != "number" else f"{mean:.4g}"
    if n > 1 and not (std == 0 and kind in ("params", "flops")):  # model size does not vary by fold
        text += f" ± {std / div:.{digits}f}{unit}" if kind != "number" else f" ± {std:.2g}"
    return text


def _values(v: Any) -> list[float]:
    if v is None:
        return []
    if isinstance(v, Mapping) and "mean" in v:  # an aggregate() entry: keep its mean
        return [float(v["mean"])]
    if isinstance(v, list | tuple):
        return [float(x) for x in v if x is not None]
    try:
        return [float(v)]
    except (TypeError, ValueError):
        raise EvaluationError(f"table value {v!r} is not a number") from None


def benchmark_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str | tuple[str, ...]] | None = None
) -> tuple[str, str, str]:
    """Markdown, CSV and JSON texts of a benchmark table (default columns: the paper's Table III).

    Args:
        rows: one dict per model run with a "model" key and metric values (binary_metrics keys TP, TN, FP,
            FN, precision, ...; model_cost's params, flops; cpu_ms and gpu_ms per image). Rows sharing a model
            name (folds, seeds) are grouped; a cell may also hold a list of per-run values. Missing values
            show as "–" (e.g. GPU ms on a CPU-only machine).
        columns: keys, (key, header) or (key, header, kind) with kind one of text, count, ratio, ms, params,
            flops, number, auto (text when the cells hold strings, else number); None for Table III.

    Returns:
        (markdown, csv, json) texts; Params are shown in millions, FLOPs (2 x MACs) in billions.
    """
    cols = _columns(columns)
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for i, r in enumerate(rows):
        if "model" not in r:
            raise EvaluationError(
                f"row {i} has no 'model' key (keys: {sorted(r)}); name the model of each row"
            )
        groups.setdefault(str(r["model"]), []).append(r)
    if not groups:
        raise EvaluationError("benchmark_table got no rows")

    md_lines = [
        "| " + " | ".join(h for _, h, _ in cols) + " |",
        "|" + "|".join(":---" if k == "text" else "---:" for _, _, k in cols) + "|",
    ]
    records = []
    for model, runs in groups.items():
        cells, record = [model], {"model": model, "n_runs": len(runs)}
        for key, _, kind in cols[1:]:
            if kind == "auto":  # a column not in Table III: text if it holds strings, else a number
                kind = "text" if any(isinstance(r.get(key), str) for r in runs) else "number"
            if kind == "text":  # e.g. input size or dataset: list the distinct values
                text = ", ".join(dict.fromkeys(str(r[key]) for r in runs if r.get(key) is not None))
                cells.append(text or "–")
                record[key] = text or None
                continue
            vals = [x for r in runs for x in _values(r.get(key))]
            mean, std, n = mean_std(vals)
            cells.append(_fmt(mean, std, n, kind))
            record[key] = None if n == 0 else mean
            record[f"{key}_std"] = None if n == 0 else std
        md_lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        records.append(record)

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(records[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in r.items()} for r in records])
    return "\n".join(md_lines) + "\n", buf.getvalue(), json.dumps(records, indent=2)
