"""FlawDataset items and FlawDataModule batches follow docs/design.md; errors come before training."""

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from flawscope.data import cache as cache_mod
from flawscope.data.config import PreprocessConfig
from flawscope.data.datamodule import EpochSampler, FlawDataModule, FlawDataset, loader_throughput
from flawscope.data.patches import extract_patches
from flawscope.data.sample import DatasetIndex, Sample
from flawscope.data.splits import Split, make_split
from flawscope.data.transforms import AugmentConfig, build_eval_transform
from flawscope.errors import ConfigError, DatasetError

PRE = PreprocessConfig(input_size=(16, 16), resize=True, mean=(0.5,), std=(0.25,))


@pytest.fixture
def dataset(tmp_path):
    """12 images of 24×28 in 6 groups; odd images are defective with a 3×3 mask at (10, 12)."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(12):
        path = tmp_path / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 200, (24, 28), dtype=np.uint8)).save(path)
        defect = i % 2 == 1
        mask = None
        if defect:
            mask = tmp_path / f"img{i:02d}_mask.png"
            m = np.zeros((24, 28), np.uint8)
            m[10:13, 12:15] = 255
            Image.fromarray(m).save(mask)
        samples.append(Sample(path, label="defect" if defect else "ok", defective=defect, mask=mask,
                              group=f"g{i // 2}", flaw_types=("pore",) if defect else ()))
    return DatasetIndex(tmp_path, "test", samples, ["ok", "defect"], frozenset({"defect"}))


def _module(index, split=None, **kw):
    split = split or Split(list(range(8)), [8, 9], [10, 11], 0, "manual")
    return FlawDataModule(index, split, PRE, batch_size=4, **kw)


def test_batches_have_documented_shapes_and_dtypes(dataset):
    dm = _module(dataset, augment=AugmentConfig.preset("radiograph"))
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 1, 16, 16) and batch["image"].dtype == torch.float32
    assert batch["label"].dtype == torch.int64 and batch["label"].shape == (4,)
    assert batch["defective"].dtype == torch.float32 and set(batch["defective"].tolist()) <= {0.0, 1.0}
    assert torch.equal(batch["defective"], batch["label"].float())
    assert batch["mask"].shape == (4, 1, 16, 16) and batch["mask"].dtype == torch.float32
    assert batch["has_mask"].dtype == torch.bool and torch.equal(batch["has_mask"], batch["label"] == 1)
    assert batch["mask"][~batch["has_mask"]].sum() == 0
    assert batch["flaw_types"].shape == (4, 1) and torch.equal(batch["flaw_types"][:, 0], batch["defective"])
    assert batch["index"].dtype == torch.int64 and len(set(batch["index"].tolist())) == 4
    val = next(iter(dm.val_dataloader()))
    assert val["index"].tolist() == [0, 1] and val["label"].tolist() == [0, 1]
    assert dm.class_counts == [4, 4]


def test_eval_item_matches_the_file(dataset):
    ds = FlawDataset(dataset.samples, dataset.classes, PreprocessConfig(input_size=(24, 28)),
                     build_eval_transform(PreprocessConfig(input_size=(24, 28))))
    item = ds[1]
    pixels = np.asarray(Image.open(dataset.samples[1].image), dtype=np.float32) / 255
    assert torch.allclose(item["image"][0], (torch.from_numpy(pixels) - 0.5) / 0.25, atol=1e-5)
    assert item["mask"][0].nonzero().min(0).values.tolist() == [10, 12] and item["mask"].sum() == 9
    assert item["label"] == 1 and item["has_mask"]
    unknown = Sample(dataset.samples[0].image)
    unlabelled = FlawDataset([unknown], dataset.classes, PRE, build_eval_transform(PRE))
    assert unlabelled[0]["label"] == -1 and unlabelled[0]["defective"] == -1


def test_patches_crop_image_and_mask_and_decode_each_image_once(dataset, monkeypatch):
    decoded = Counter()
    real = cache_mod._decode_image

    def counting(path, *args):
        decoded[path.name] += 1
        return real(path, *args)

    monkeypatch.setattr(cache_mod, "_decode_image", counting)
    patches = extract_patches(dataset.subset([0, 1]), 8, stride=4)
    pre = PreprocessConfig(input_size=(8, 8), resize=False, mean=(0.0,), std=(1.0,))
    ds = FlawDataset(patches.samples, patches.classes, pre, build_eval_transform(pre))
    full = {s.image: np.asarray(Image.open(s.image), dtype=np.float32) / 255 for s in dataset.samples[:2]}
    for i, s in enumerate(patches.samples):
        item = ds[i]
        top, left, h, w = s.crop
        expected = full[s.image][top : top + h, left : left + w]
        assert torch.allclose(item["image"][0], torch.from_numpy(expected))
        assert bool(item["mask"].sum() > 0) == s.defective
    assert decoded == {"img00.png": 1, "img01.png": 1}
    assert len(patches) == 2 * 5 * 6


def test_errors_before_training(dataset):
    with pytest.raises(DatasetError, match="train split .* is empty"):
        _module(dataset, Split([], [0, 1], [2, 3], 0, "manual"))
    with pytest.raises(DatasetError, match=r"only class\(es\) \['ok'\]"):
        _module(dataset, Split([0, 2, 4], [1], [3], 0, "manual"))
    dm = _module(dataset, Split(list(range(10)), [], [10, 11], 0, "manual"))
    with pytest.raises(DatasetError, match="val split .* is empty"):
        dm.val_dataloader()


def test_augmentation_is_seeded_by_epoch_not_by_worker(dataset):
    dm = _module(dataset, augment=AugmentConfig.preset("radiograph"), seed=3)
    ds = dm._dataset("train")
    assert torch.equal(ds[(2, 0)]["image"], ds[(2, 0)]["image"])
    assert not torch.equal(ds[(2, 0)]["image"], ds[(2, 1)]["image"])
    one_proc = [b["image"] for b in dm.train_dataloader()]
    workers = _module(dataset, augment=AugmentConfig.preset("radiograph"), seed=3, num_workers=1)
    assert all(torch.equal(a, b["image"]) for a, b in zip(one_proc, workers.train_dataloader(), strict=True))


def test_sampler_reshuffles_each_epoch_and_oversamples(dataset):
    sampler = EpochSampler(8, seed=0)
    first, second = list(sampler), list(sampler)
    assert sorted(i for i, _ in first) == list(range(8)) and {e for _, e in second} == {1}
    sampler.set_epoch(0)
    assert list(sampler) == first and [i for i, _ in first] != [i for i, _ in second]
    # 2 defective vs 6 ok in train: oversampling draws both classes about equally.
    dm = _module(dataset, Split([0, 2, 4, 6, 8, 10, 1, 3], [5, 7], [9, 11], 0, "manual"), oversample=True)
    assert dm.class_counts == [6, 2]
    oversampler, draws = dm.train_sampler(), []
    for epoch in range(50):
        oversampler.set_epoch(epoch)
        draws += [i for i, _ in oversampler]
    labels = Counter(dm._dataset("train").labels[i] for i in draws)
    assert 0.4 < labels[1] / len(draws) < 0.6


def test_lightning_fit_runs_and_throughput(dataset):
    import lightning as L

    class Tiny(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 1))
            self.epochs_seen = []

        def training_step(self, batch, _):
            self.epochs_seen.append(self.trainer.train_dataloader.sampler.epoch)
            return torch.nn.functional.binary_cross_entropy_with_logits(self.net(batch["image"])[:, 0],
                                                                         batch["defective"])

        def validation_step(self, batch, _):
            pass

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    dm = _module(dataset, make_split(dataset, val_fraction=0.34, test_fraction=0.0, seed=1))
    model = Tiny()
    trainer = L.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    # Lightning sets the epoch on the sampler before each epoch (the sampler then moves one ahead).
    assert model.epochs_seen[0] == 1 and model.epochs_seen[-1] == 2
    assert loader_throughput(dm, n_batches=3) > 0


@pytest.mark.parametrize("oversample", [False, True])
def test_train_loader_never_yields_a_batch_of_one(dataset, oversample):
    # 9 = 2 × 4 + 1 train samples: the last batch would hold one sample, which BatchNorm refuses in training.
    dm = _module(dataset, Split(list(range(9)), [9, 10], [11], 0, "manual"), oversample=oversample)
    sizes = [b["image"].shape[0] for b in dm.train_dataloader()]
    assert sizes == [4, 4]
    # Evaluation keeps every sample; a remainder other than one is kept in training too.
    assert [b["image"].shape[0] for b in dm.val_dataloader()] == [2]
    dm = _module(dataset, Split(list(range(10)), [10], [11], 0, "manual"), oversample=oversample)
    assert [b["image"].shape[0] for b in dm.train_dataloader()] == [4, 4, 2]


def test_train_loader_drops_a_batch_of_one_per_ddp_rank(dataset):
    from types import SimpleNamespace

    # 10 samples on 2 ranks: 5 per rank = 4 + 1, so each rank would end on a batch of one.
    dm = _module(dataset, Split(list(range(10)), [10], [11], 0, "manual"))
    dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": 0})
    assert dm.train_dataloader().drop_last
    dm.trainer = None
    assert not dm.train_dataloader().drop_last


def test_group_oversampling_gives_each_class_and_each_series_in_it_equal_mass():
    from flawscope.data.datamodule import group_class_weights

    # Series A: 6 defects, 1 ok; series B: 1 defect, 2 ok.
    groups = ["A"] * 7 + ["B"] * 3
    labels = [1] * 6 + [0] + [1] + [0, 0]
    w = np.array(group_class_weights(groups, labels))
    mass = lambda g, k: w[[i for i in range(10) if groups[i] == g and labels[i] == k]].sum()  # noqa: E731
    assert mass("A", 1) == pytest.approx(mass("B", 1)) == pytest.approx(mass("A", 0)) == pytest.approx(0.25)
    assert w.sum() == pytest.approx(1.0)


def test_bad_oversample_mode_is_named(dataset):
    with pytest.raises(ConfigError, match="oversample 'series' is not valid; use one of none, class, group"):
        _module(dataset, Split(list(range(8)), [8, 9], [10, 11], 0, "manual"), oversample="series")
