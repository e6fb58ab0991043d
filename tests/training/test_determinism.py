"""Same seed, same numbers: runs in other folders give the same bytes; what else they depend on is pinned.

What is not reproducible across machines is recorded instead: the torch thread count (parallel sums split
their terms by thread) and the CPU's float kernels (AVX2 / AVX-512 / AMX) change the last bits of training,
and so, after a few epochs, a few decisions. See README, "What `make demo` does and shows".
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from flawscope.training.config import TrainConfig
from flawscope.training.run import train
from helpers.datasets import write_blob_folder


def _run(base: Path, name: str, **options: object):
    """write_blob_folder + small_cnn on 32x32 images (3 batches of 8 per epoch), run folder base/runs/name."""
    data = write_blob_folder(base / "data", n_per_class=12)
    settings: dict[str, object] = dict(
        data=str(data), model="small_cnn", input_size=32, epochs=2, batch_size=8, optimizer="adamw", lr=1e-2,
        augment="flips", patience=0, val_fraction=0.25, test_fraction=0.25, seed=3, accelerator="cpu",
        devices=1, out=str(base / "runs"), name=name,
    )
    return train(TrainConfig(**{**settings, **options}), progress=False)  # type: ignore[arg-type]


def _without_paths(base: Path, run_dir: Path) -> bytes:
    """metrics.json's bytes with the run folder (in path-valued fields: best_checkpoint) written as <run>."""
    data = (run_dir / "metrics.json").read_bytes()
    assert str(run_dir).encode() in data  # best_checkpoint
    data = data.replace(str(run_dir).encode(), b"<run>")
    assert str(base).encode() not in data  # no other field names a file of this run
    return data


def test_two_runs_in_other_folders_write_identical_metrics(tmp_path: Path) -> None:
    from flawscope.models.checkpoint import load_model_from_checkpoint

    a = _run(tmp_path / "first", "a")
    b = _run(tmp_path / "second" / "deeper", "b")
    assert _without_paths(tmp_path / "first", a.run_dir) == _without_paths(tmp_path / "second", b.run_dir)
    # The split is saved with paths relative to the dataset, so it is the same file too; so are the weights.
    assert (a.run_dir / "split.csv").read_bytes() == (b.run_dir / "split.csv").read_bytes()
    wa, wb = (load_model_from_checkpoint(r.model_path).state_dict() for r in (a, b))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_metrics_record_the_torch_threads_and_cpu_kernels(tmp_path: Path) -> None:
    result = _run(tmp_path, "t", epochs=1)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["torch_threads"] == torch.get_num_threads()
    assert metrics["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


def test_demo_trains_with_its_threads_and_records_them(tmp_path: Path) -> None:
    """The demo fixes torch's thread count (default 2, not the core count), records it, and restores ours."""
    from flawscope.demo import DemoConfig, run_demo

    before = torch.get_num_threads()
    want = 2 if before != 2 else 1
    cfg = DemoConfig(out=str(tmp_path / "demo"), n_images=40, image_size=64, patch_size=32, epochs=1,
                     models=("small_cnn",), batch_size=16, threads=want)
    result = run_demo(cfg, progress=False)
    assert torch.get_num_threads() == before
    env = json.loads((tmp_path / "demo" / "environment.json").read_text())
    assert env["torch_threads"] == result["environment"]["torch_threads"] == want and env["seed"] == 0
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability() and env["torch"]
    run = json.loads((tmp_path / "demo" / "runs" / "small_cnn" / "metrics.json").read_text())
    assert run["torch_threads"] == want
    assert DemoConfig().threads == 2


def test_demo_regenerates_data_made_by_another_generator(tmp_path: Path, monkeypatch) -> None:
    """A data folder is reused only when the config and the generator (code, numpy, scipy) are the same."""
    from flawscope import demo

    cfg = demo.DemoConfig(out=str(tmp_path / "demo"), n_images=40, image_size=64, patch_size=32)
    data = demo._synth_data(cfg, progress=False)
    manifest = data / "manifest.csv"
    stamp = manifest.stat().st_mtime_ns
    assert demo._synth_data(cfg, progress=False) == data and manifest.stat().st_mtime_ns == stamp  # reused
    from flawscope.data import synth

    real = synth.generator_fingerprint()
    monkeypatch.setattr(synth, "generator_fingerprint", lambda: {**real, "synth_sha256": "changed"})
    demo._synth_data(cfg, progress=False)
    assert manifest.stat().st_mtime_ns != stamp  # regenerated


def test_folder_listing_order_does_not_change_the_index(tmp_path: Path, monkeypatch) -> None:
    """A directory lists its files in another order on a fresh clone than in an old folder; the index not."""
    from flawscope.data.sources import load_dataset

    root = write_blob_folder(tmp_path / "d", n_per_class=6)
    forward = [s.image for s in load_dataset(root).samples]
    listing = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: iter(sorted(listing(self), reverse=True)))
    assert [s.image for s in load_dataset(root).samples] == forward == sorted(forward)


def test_two_threads_reruns_agree_exactly(tmp_path: Path) -> None:
    """With a fixed thread count other than the tests' one, reruns still agree to the last bit."""
    from flawscope.training.run import torch_threads

    with torch_threads(2):
        a = _run(tmp_path / "a", "a", epochs=1)
        b = _run(tmp_path / "b", "b", epochs=1)
    assert _without_paths(tmp_path / "a", a.run_dir) == _without_paths(tmp_path / "b", b.run_dir)


def test_train_threads_option_is_applied_recorded_and_restored(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    result = _run(tmp_path, "threads", epochs=1, threads=2)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["torch_threads"] == 2 and torch.get_num_threads() == before
    assert "threads: 2" in (result.run_dir / "config.yaml").read_text()
