"""Samples -> batches: the torch Dataset of flawscope and its Lightning DataModule."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from flawscope.data.cache import DecodeCache
from flawscope.data.config import OVERSAMPLE_MODES, PreprocessConfig
from flawscope.data.sample import DatasetIndex, Sample
from flawscope.data.splits import PARTS, Split, is_defective
from flawscope.data.tiling import crop_pad
from flawscope.data.transforms import (
    AugmentConfig,
    FlawTransform,
    build_eval_transform,
    build_train_transform,
    sample_seed,
)
from flawscope.errors import ConfigError, DatasetError


class FlawDataset(Dataset):
    """One split's samples as batch items (see docs/design.md, "Batches").

    An item is requested by position, or by (position, epoch) from `EpochSampler`, so the augmentation of
    each sample is seeded by (seed, epoch, position) alone and does not depend on the DataLoader worker.

    Args:
        samples: the split's samples.
        classes: class names in index order; a label outside them is an error, "" gives label -1.
        preprocess: intensity mapping and channels used to decode the images.
        transform: resize/crop, augmentation and normalisation (build_train/eval_transform).
        cache: decode cache shared by the patches of one image.
        flaw_types: flaw-type names of the multi-hot `flaw_types` vector; empty = none.
        defective_classes: classes that count as defective (for samples with `defective` unknown); None =
            the second class of a binary problem, no class otherwise.
        seed: base seed of the augmentation.
    """

    def __init__(
        self,
        samples: list[Sample],
        classes: Sequence[str],
        preprocess: PreprocessConfig,
        transform: FlawTransform,
        cache: DecodeCache | None = None,
        flaw_types: Sequence[str] = (),
        defective_classes: frozenset[str] | None = None,
        seed: int = 0,
    ) -> None:
        self.samples = list(samples)
        self.classes = list(classes)
        self.preprocess = preprocess
        self.transform = transform
        self.cache = cache if cache is not None else DecodeCache()
        self.flaw_types = list(flaw_types)
        if defective_classes is None:
            defective_classes = frozenset(self.classes[1:]) if len(self.classes) == 2 else frozenset()
        self.defective_classes = frozenset(defective_classes)
        self.seed = seed
        for s in self.samples:
            if s.label and s.label not in self.classes:
                raise DatasetError(f"sample {s.image}: label {s.label!r} is not one of {self.classes}")
            unknown = set(s.flaw_types) - set(self.flaw_types)
            if self.flaw_types and unknown:
                raise DatasetError(f"sample {s.image}: flaw types {sorted(unknown)} not in {self.flaw_types}")
        self.labels = [self.classes.index(s.label) if s.label else -1 for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        i, epoch = item if isinstance(item, tuple) else (item, 0)
        s = self.samples[i]
        full = self.cache.get_image(s.image, self.preprocess.intensity, self.preprocess.in_chans)
        image = torch.from_numpy(np.array(crop_pad(full, s.crop)))  # copy: the cached array is read-only
        mask = None
        if s.mask is not None:
            full_mask = self.cache.get_mask(s.mask, tuple(full.shape[-2:]), s.image)
            mask = torch.from_numpy(np.array(crop_pad(full_mask, s.crop)))
        out = self.transform(image, mask, seed=sample_seed(self.seed, epoch, i))
        h, w = out["image"].shape[-2:]
        flag = is_defective(s, self.defective_classes)
        multi_hot = torch.zeros(len(self.flaw_types), dtype=torch.float32)
        for name in s.flaw_types:
            if name in self.flaw_types:
                multi_hot[self.flaw_types.index(name)] = 1.0
        return {
            "image": out["image"],
            "label": torch.tensor(self.labels[i], dtype=torch.int64),
            "defective": torch.tensor(-1.0 if flag is None else float(flag), dtype=torch.float32),
            "mask": out["mask"] if out["mask"] is not None else torch.zeros(1, h, w, dtype=torch.float32),
            "has_mask": torch.tensor(s.mask is not None),
            "flaw_types": multi_hot,
            "index": torch.tensor(i, dtype=torch.int64),
        }


def group_class_weights(groups: Sequence[str], labels: Sequence[int]) -> list[float]:
    """Draw weights giving every class equal mass, split equally over the groups holding that class.

    A sample of class c in group g weighs 1 / (classes · groups holding c · samples of c in g); unlabelled
    samples (-1) count as a class of their own.
    """
    from collections import Counter

    cells = Counter(zip(groups, labels, strict=True))
    groups_per_class = Counter(label for _, label in cells)
    n_classes = len(groups_per_class)
    return [1.0 / (n_classes * groups_per_class[k] * cells[(g, k)])
            for g, k in zip(groups, labels, strict=True)]


class EpochSampler(Sampler):
    """Shuffles (or draws weighted, with replacement) anew each epoch, seeded by (seed, epoch).

    Yields (position, epoch) so the dataset seeds each sample's augmentation by epoch too. Lightning calls
    `set_epoch` before each epoch; without it, each new iteration moves on to the next epoch.
    """

    def __init__(self, n: int, seed: int = 0, weights: Sequence[float] | None = None) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        g = torch.Generator().manual_seed(sample_seed(self.seed, epoch, 0, stream=1))
        if self.weights is None:
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(WeightedRandomSampler(self.weights, self.n, replacement=True, generator=g))
        return iter([(i, epoch) for i in order])


class FlawDataModule(L.LightningDataModule):
    """Train/val/test dataloaders of one dataset split.

    Args:
        index: the dataset (whole images or patches).
        split: positions of each part (make_split, load_split, ...).
        preprocess: the model's preprocessing.
        batch_size: samples per batch.
        augment: training augmentation.
        oversample: "none" shuffles; "class" (or True) draws training samples with probability 1/class count
            (WeightedRandomSampler), so each class is seen equally often; "group" also spreads each class's
            draws equally over the groups (series, parts) that hold it, so a series with many flaws cannot
            teach the network what that series looks like instead of what a flaw looks like.
        num_workers: DataLoader worker processes.
        seed: seed of shuffling, oversampling and augmentation.
        cache: decode cache (one is made when None).
        flaw_types: names for the multi-hot flaw-type target; None = every flaw type in the index.
    """

    def __init__(
        self,
        index: DatasetIndex,
        split: Split,
        preprocess: PreprocessConfig,
        batch_size: int = 16,
        augment: AugmentConfig | None = None,
        oversample: bool | str = "none",
        num_workers: int = 0,
        seed: int = 0,
        cache: DecodeCache | None = None,
        flaw_types: Sequence[str] | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.index, self.split, self.preprocess = index, split, preprocess
        self.oversample = {True: "class", False: "none"}.get(oversample, oversample)  # type: ignore[call-overload]
        if self.oversample not in OVERSAMPLE_MODES:
            raise ConfigError(f"oversample {oversample!r} is not valid; use one of "
                              f"{', '.join(OVERSAMPLE_MODES)}")
        self.batch_size, self.num_workers = batch_size, num_workers
        self.seed = seed
        self.augment = augment if augment is not None else AugmentConfig.preset("flips")
        self.cache = cache if cache is not None else DecodeCache()
        self.flaw_types = (
            list(flaw_types) if flaw_types is not None
            else sorted({t for s in index.samples for t in s.flaw_types})
        )
        self.datasets: dict[str, FlawDataset] = {}
        self._check_train()

    def _samples(self, part: str) -> list[Sample]:
        return [self.index.samples[i] for i in self.split.part(part)]

    def _check_train(self) -> None:
        n = len(self.split.train)
        if n == 0:
            raise DatasetError(
                f"the train split of {self.index.root} is empty; check the split file or its fractions"
            )
        counts = self.class_counts
        present = [c for c, k in zip(self.index.classes, counts, strict=True) if k]
        if len(present) < 2:
            raise DatasetError(
                f"the train split of {self.index.root} holds only class(es) {present or 'none (unlabelled)'} "
                f"({n} samples); training a detector needs at least two — try another split seed or dataset"
            )

    @property
    def class_counts(self) -> list[int]:
        """Training samples per class, in `index.classes` order (for class weights)."""
        counts = [0] * len(self.index.classes)
        for s in self._samples("train"):
            if s.label:
                counts[self.index.class_index(s.label)] += 1
        return counts

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets of every non-empty part (cheap: decoding happens lazily, once, in the cache)."""
        for part in PARTS:
            if part in self.datasets or not self.split.part(part):
                continue
            transform = (
                build_train_transform(self.augment, self.preprocess)
                if part == "train" else build_eval_transform(self.preprocess)
            )
            self.datasets[part] = FlawDataset(
                self._samples(part), self.index.classes, self.preprocess, transform, self.cache,
                self.flaw_types, self.index.defective_classes, self.seed,
            )

    def _dataset(self, part: str) -> FlawDataset:
        self.setup()
        if part not in self.datasets:
            raise DatasetError(
                f"the {part} split of {self.index.root} is empty ({self.split.method}, "
                f"seed {self.split.seed}); "
                f"give the split a {part} part (e.g. a non-zero {part}_fraction)"
            )
        return self.datasets[part]

    def _loader(self, dataset: FlawDataset, sampler: Sampler | None = None, drop_last: bool = False
                ) -> DataLoader:
        return DataLoader(
            dataset, batch_size=self.batch_size, sampler=sampler, shuffle=False, num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0, drop_last=drop_last,
        )

    def _replicas(self) -> int:
        """Processes the train part is shared between (Lightning's distributed sampler), 1 when none."""
        kwargs = getattr(self.trainer, "distributed_sampler_kwargs", None) if self.trainer else None
        return int((kwargs or {}).get("num_replicas", 1))

    def train_sampler(self) -> EpochSampler:
        """The training sampler: seeded shuffle, or class-balanced draws when `oversample`."""
        dataset = self._dataset("train")
        weights = None
        if self.oversample == "class":
            counts = self.class_counts
            # Unlabelled samples (-1) are drawn as often as an average class member.
            mean = float(np.mean([1 / c for c in counts if c]))
            weights = [1 / counts[k] if k >= 0 else mean for k in dataset.labels]
        elif self.oversample == "group":
            weights = group_class_weights([s.group for s in self._samples("train")], list(dataset.labels))
        return EpochSampler(len(dataset), self.seed, weights)

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train")
        drop = ends_on_single(len(dataset), self.batch_size, self._replicas())
        return self._loader(dataset, self.train_sampler(), drop_last=drop)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("val"))

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("test"))


def ends_on_single(n: int, batch_size: int, replicas: int = 1) -> bool:
    """Whether an epoch of `n` samples would end on a batch of one sample (on each of `replicas` processes).

    Training drops such a batch: batch norm cannot normalise one sample ("Expected more than 1 value per
    channel"). Lightning's distributed sampler pads each process to ceil(n / replicas) samples.
    """
    per_process = -(-n // max(replicas, 1))
    return batch_size > 1 and per_process % batch_size == 1


def loader_throughput(datamodule: FlawDataModule, n_batches: int = 10, part: str = "train") -> float:
    """Images per second the dataloader of one part delivers (the first batch, with worker start, excluded).

    Args:
        datamodule: the data module to measure.
        n_batches: batches to time (the loader restarts when it runs out).
        part: "train", "val" or "test".
    """
    if n_batches < 1:
        raise ConfigError(f"n_batches must be >= 1, got {n_batches}")
    loader: Any = getattr(datamodule, f"{part}_dataloader")()
    it = iter(loader)
    next(it)
    images, start = 0, time.perf_counter()
    for _ in range(n_batches):
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        images += batch["image"].shape[0]
    return images / (time.perf_counter() - start)
