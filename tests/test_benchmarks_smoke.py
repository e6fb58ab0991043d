"""Smoke test of the benchmark harness (`python -m benchmarks.run --quick`), sections without real data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `benchmarks` sits beside src/, not inside the installed package
    sys.path.insert(0, str(REPO_ROOT))


def test_quick_run_writes_numbers_and_skips_real_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from benchmarks.run import main

    monkeypatch.delenv("FLAWSCOPE_DATA", raising=False)
    out = tmp_path / "bench"
    code = main(["--out", str(out), "--quick", "--only", "throughput,latency,loader,real_classify",
                 "--models", "small_cnn", "--threads", "1", "--seed", "3"])
    assert code == 0
    records = {n: json.loads((out / f"{n}.json").read_text())
               for n in ("throughput", "latency", "loader", "real_classify")}
    assert [r["status"] for r in records.values()] == ["ok", "ok", "ok", "skipped"]
    assert "--data" in records["real_classify"]["error"]
    (row,) = records["throughput"]["data"]["rows"]
    assert row["model"] == "small_cnn" and row["images_per_s"] > 0
    lat = records["latency"]["data"]["rows"][0]
    assert lat["flops"] > 0 and lat["ms_per_image_b1"] > 0
    loader = records["loader"]["data"]
    assert loader["synthetic"]["warm_images_per_s"] > 0 and "skipped" in loader["xdefects"]
    assert records["throughput"]["seed"] == 3 and records["throughput"]["machine"]["torch_threads"] == 1
    md = (out / "benchmarks.md").read_text()
    for title in ("Training throughput", "Inference latency", "Data loading", "Skipped"):
        assert title in md


def test_unknown_section_is_refused(tmp_path: Path) -> None:
    from benchmarks.run import main

    with pytest.raises(SystemExit, match="unknown section.*valid: throughput"):
        main(["--out", str(tmp_path), "--only", "throughput,nonsense"])
