"""The Predictor: every path from pixels to a decision (training's reports, evaluate, predict, benchmarks).

It owns, in one place:
- probabilities: sigmoid of one logit (binary) or softmax of K logits; P(defect) is the sigmoid output or the
  summed probability of the defective classes;
- the decision rule (`DecisionPolicy`): "defect" at P(defect) >= threshold, else "ok"; "unsure" (abstained,
  needs review) inside the reject band; a model without an ok class (every class a defect type) has no
  threshold and its decision is "defect";
- the pixel threshold of segmenters' masks and their flaw regions;
- the tiling policy for images whose size differs from the model input (`TilingPolicy`).

Tiling policy (shared by evaluate and predict):
- a model trained on resized whole images (`preprocess.resize`) sees the whole image resized to its input
  size; a segmenter's map is resized back to the image's size;
- a patch model (`resize` False) sees the image at native resolution: an image of the input size is one
  forward pass; a larger one is cut into tiles of the input size that overlap by a quarter tile (the last
  row and column flush with the border, `flawscope.data.tiling.tile_grid`); a smaller image is padded with
  zeros (intensity 0, before normalisation) at the bottom and right, as training pads patches that reach
  past the border. `TilingPolicy(tile=N)` tiles any model at N px (tiles resized to the input size);
- the image score of a tiled image is its highest tile's P(defect), the class probabilities are that
  tile's, and `Prediction.tile` says where it is; a segmenter's tile maps are blended with a Tukey window
  (`flawscope.inference.sliding`), its image score is the highest tile's image-head probability;
- where a tiled classifier found flaws: every pixel takes the highest P(defect) of the tiles covering it,
  and the connected regions at or above the threshold are its `Prediction.flaws` (the answer to "where?"
  without box labels; each region's score is its best tile's).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.errors import ConfigError, FlawscopeError
from flawscope.inference.backend import Backend, TorchBackend
from flawscope.inference.preprocess import ImageSource, Preprocessor
from flawscope.inference.records import Decision, Prediction, find_flaws

if TYPE_CHECKING:
    import torch

    from flawscope.data.sample import SkippedFile
    from flawscope.models.base import FlawModel, ModelConfig

#: A pixel is called defective at this mask probability unless the policy says otherwise.
PIXEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class DecisionPolicy:
    """How scores become decisions; given per Predictor, so one model can serve several policies.

    Attributes:
        threshold: "defect" at P(defect) >= threshold; None when the model has no ok class.
        reject_band: (low, high): P(defect) inside it is answered "unsure" (abstained); None = never.
        pixel_threshold: mask probability at which a segmenter's pixel counts as defect.
    """

    threshold: float | None = 0.5
    reject_band: tuple[float, float] | None = None
    pixel_threshold: float = PIXEL_THRESHOLD

    def __post_init__(self) -> None:
        if self.threshold is not None and not (math.isfinite(self.threshold) and 0 <= self.threshold <= 1):
            raise ConfigError(f"threshold {self.threshold} must be a probability in [0, 1]")
        if self.reject_band is not None:
            lo, hi = (float(v) for v in self.reject_band)
            if not (0 <= lo <= hi <= 1):
                raise ConfigError(f"reject band {self.reject_band} must be (low, high) with 0 <= low <= high "
                                  "<= 1")
            object.__setattr__(self, "reject_band", (lo, hi))
        if not 0 < self.pixel_threshold < 1:
            raise ConfigError(f"pixel threshold {self.pixel_threshold} must be in (0, 1)")

    @classmethod
    def of(cls, config: ModelConfig, **overrides: Any) -> DecisionPolicy:
        """The policy a model was saved with (its val-chosen threshold and band), with overrides."""
        has_ok = any(c not in config.defective_classes for c in config.class_names)
        policy = cls(threshold=float(config.threshold) if has_ok else None, reject_band=config.reject_band)
        return replace(policy, **{k: v for k, v in overrides.items() if v is not None})

    def decide(self, score: float) -> Decision:
        """"unsure" inside the reject band, else "defect" at score >= threshold, else "ok"."""
        if self.reject_band is not None and self.reject_band[0] <= score <= self.reject_band[1]:
            return "unsure"
        if self.threshold is None:
            return "defect"
        return "defect" if score >= self.threshold else "ok"


@dataclass(frozen=True)
class TilingPolicy:
    """Tiles for images larger than the model input (see the module doc for the rule).

    Attributes:
        tile: tile size in pixels (int or (h, w)); None = the model's input size where tiling is needed.
        overlap: pixels shared by neighbouring tiles; None = a quarter tile.
        keep_tile_map: keep every tile's P(defect) as `Prediction.tile_map`.
    """

    tile: int | tuple[int, int] | None = None
    overlap: int | None = None
    keep_tile_map: bool = False

    def tile_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        """The tile size in pixels."""
        from flawscope.data.tiling import size_pair

        if self.tile is None:
            return int(input_size[0]), int(input_size[1])
        size = size_pair(self.tile, "tile")
        if min(size) < 1:
            raise ConfigError(f"tile {self.tile!r} must be a positive size (e.g. 256)")
        return size

    def overlap_size(self, tile: tuple[int, int]) -> tuple[int, int]:
        """The overlap in pixels for tiles of this size."""
        if self.overlap is None:
            return tile[0] // 4, tile[1] // 4  # wide enough to hide tile seams of small networks
        if self.overlap < 0 or self.overlap >= min(tile):
            raise ConfigError(f"overlap {self.overlap} must be >= 0 and smaller than the tile "
                              f"{tile[0]}x{tile[1]}")
        return self.overlap, self.overlap


@dataclass
class ImageItem:
    """One image to predict, with what the caller knows about it.

    Attributes:
        image: a path, encoded bytes, or an array (see `Preprocessor.load`); decoded (C, H, W) float arrays
            in [0, 1] are used as they are.
        path: shown in the record (default: the image's path).
        crop: (top, left, height, width) of the file the image is, recorded as is.
        label, defective: ground truth when known.
        key: anything the caller wants back on the record (`Prediction` order is the input order anyway).
    """

    image: ImageSource
    path: str = ""
    crop: tuple[int, int, int, int] | None = None
    label: str = ""
    defective: int = -1
    key: Any = None


@dataclass
class _Job:
    item: ImageItem
    image: np.ndarray
    inputs: list[Any]
    corners: list[tuple[int, int]] | None  # None: the whole image resized
    tile: tuple[int, int]
    padded: tuple[int, int]
    outputs: list[dict[str, np.ndarray]] = field(default_factory=list)


class Predictor:
    """One model (or backend) + a decision policy + a tiling policy → prediction records.

    Args:
        model: a FlawModel (run by a TorchBackend on `device`) or any Backend.
        policy: the decision policy; default the model's own (`DecisionPolicy.of(model.config)`).
        tiling: the tiling policy for images larger than the model input.
        device: where a FlawModel runs ("cpu", "cuda", "auto").
        batch_size: model inputs (tiles or images) per forward pass.
        pixel_size_mm: pixel size, for flaw sizes in mm (segmenters).
        model_id: identifies the model in the records; default the backend's.
        tta: test-time flips: every input is also run flipped left-right, up-down and both, and the four
            logits (and flipped-back mask logits) averaged; 4× the compute.
    """

    def __init__(
        self,
        model: FlawModel | Backend,
        policy: DecisionPolicy | None = None,
        tiling: TilingPolicy | None = None,
        device: str = "cpu",
        batch_size: int = 16,
        pixel_size_mm: float | None = None,
        model_id: str | None = None,
        tta: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if pixel_size_mm is not None and not (math.isfinite(pixel_size_mm) and pixel_size_mm > 0):
            raise ConfigError(f"pixel size {pixel_size_mm} mm must be a positive number (e.g. 0.1)")
        self.backend: Backend = model if isinstance(model, Backend) else TorchBackend(model, device, model_id)
        self.config: ModelConfig = self.backend.config
        self.policy = policy if policy is not None else DecisionPolicy.of(self.config)
        self.tiling = tiling if tiling is not None else TilingPolicy()
        self.batch_size = batch_size
        self.pixel_size_mm = pixel_size_mm
        self.model_id = model_id or self.backend.model_id
        self.tta = tta
        self.preprocessor = Preprocessor(self.config.preprocess)
        self.segment = self.config.task == "segment"
        names = list(self.config.class_names)
        self._defective_idx = [names.index(c) for c in self.config.defective_classes if c in names]
        self._tile = self.tiling.tile_size(self.config.preprocess.input_size)
        self._overlap = self.tiling.overlap_size(self._tile)

    def __repr__(self) -> str:
        return f"Predictor({self.backend!r}, {self.policy}, {self.tiling})"

    def with_policy(self, **changes: Any) -> Predictor:
        """The same model and tiling with another decision policy (threshold, reject_band, ...)."""
        other = Predictor.__new__(Predictor)
        other.__dict__.update(self.__dict__)
        other.policy = replace(self.policy, **changes)
        return other

    # -- probabilities and decisions ------------------------------------------------------------------
    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(B, K_classes) class probabilities from (B, 1) sigmoid or (B, K) softmax logits."""
        logits = np.asarray(logits, dtype=np.float64)
        if logits.shape[1] == 1:
            p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            names = self.config.class_names
            defective = set(self.config.defective_classes)
            return np.stack([p if c in defective else 1.0 - p for c in names], axis=1)
        z = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def defect_probability(self, probs: np.ndarray) -> np.ndarray:
        """P(defect) per row of class probabilities: the defective classes' summed probability."""
        return np.clip(probs[:, self._defective_idx].sum(axis=1), 0.0, 1.0)

    # -- single images and batches --------------------------------------------------------------------
    def predict(self, image: ImageSource, path: str = "", **item: Any) -> Prediction:
        """The record of one image (a path, bytes or array of any size)."""
        return next(self.predict_many([ImageItem(image, path=path, **item)]))

    def predict_batch(self, batch: torch.Tensor | np.ndarray, paths: Sequence[str] | None = None
                      ) -> list[Prediction]:
        """Records of a batch already at the model's input and normalised (B, C, h, w): no tiling."""
        outputs = self._forward(batch)
        n = len(outputs["logits"])
        probs = self.probabilities(outputs["logits"])
        records = []
        for i in range(n):
            item = ImageItem(image=np.empty(0), path=paths[i] if paths else "")
            mask = self._sigmoid(outputs["mask_logits"][i, 0]) if self.segment else None
            records.append(self._record(item, probs[i], None, 1, mask, None))
        return records

    def predict_loader(self, loader: Iterable[dict[str, Any]]) -> Iterator[tuple[dict[str, Any], Prediction]]:
        """(item fields, record) for every item of a loader of batch dicts ("image", "index", ...)."""
        for batch in loader:
            for i, record in enumerate(self.predict_batch(batch["image"])):
                fields = {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in batch.items()
                          if k in ("index", "defective", "label")}
                if fields.get("defective", -1) >= 0:
                    record.defective = int(fields["defective"])
                yield fields, record

    # -- images of any size ---------------------------------------------------------------------------
    def predict_many(
        self, items: Iterable[ImageItem | ImageSource], skipped: list[SkippedFile] | None = None
    ) -> Iterator[Prediction]:
        """Records of many images of any size, in input order; tiles of several images share batches.

        Args:
            items: ImageItems, or plain paths / bytes / arrays.
            skipped: when given, an image that cannot be read is appended here (path and reason) and
                left out; when None, the read error is raised.
        """
        from flawscope.data.sample import SkippedFile

        pending: deque[_Job] = deque()
        queue: list[tuple[_Job, Any]] = []
        for raw in items:
            item = raw if isinstance(raw, ImageItem) else ImageItem(raw)
            try:
                job = self._plan(item)
            except FlawscopeError as err:
                if skipped is None or not isinstance(item.image, str | Path):
                    raise
                skipped.append(SkippedFile(Path(item.image), str(err)))
                continue
            pending.append(job)
            queue += [(job, x) for x in job.inputs]
            job.inputs = []
            while len(queue) >= self.batch_size:
                self._run(queue[: self.batch_size])
                del queue[: self.batch_size]
                yield from self._finished(pending)
        while queue:
            self._run(queue[: self.batch_size])
            del queue[: self.batch_size]
        yield from self._finished(pending)

    def embed_many(self, items: Iterable[ImageItem | ImageSource]) -> np.ndarray:
        """Pooled backbone features (N, D) of images seen as `predict_many` sees them (mean over tiles).

        For layer probes and feature studies; needs a backend with `embed` (TorchBackend).
        """
        embed = getattr(self.backend, "embed", None)
        if embed is None:
            raise ConfigError(f"backend {self.backend!r} gives no features; use a TorchBackend")
        import torch

        rows = []
        for raw in items:
            job = self._plan(raw if isinstance(raw, ImageItem) else ImageItem(raw))
            feats = [embed(torch.stack(job.inputs[i : i + self.batch_size]))
                     for i in range(0, len(job.inputs), self.batch_size)]
            rows.append(np.concatenate(feats).mean(axis=0))
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    def _plan(self, item: ImageItem) -> _Job:
        """Decode an item and cut it into normalised model inputs by the tiling policy."""
        import torch

        from flawscope.data.tiling import pad_to_min, tile_grid

        image = self.preprocessor.load(item.image)
        if not item.path and isinstance(item.image, str | Path):
            item.path = str(item.image)
        h, w = image.shape[-2:]
        pre = self.config.preprocess
        x = torch.from_numpy(np.ascontiguousarray(image))
        if pre.resize and self.tiling.tile is None:
            return _Job(item, image, [self.preprocessor(x)], None, tuple(pre.input_size), (h, w))
        th, tw = self._tile
        padded = pad_to_min(x, (th, tw))  # zeros in intensity space, bottom/right
        ph, pw = padded.shape[-2:]
        corners = tile_grid(ph, pw, (th, tw), self._overlap)
        tiles = torch.stack([padded[:, t : t + th, left : left + tw] for t, left in corners])
        if (th, tw) != tuple(pre.input_size):
            import torch.nn.functional as F

            tiles = F.interpolate(tiles, size=tuple(pre.input_size), mode="bilinear", antialias=True,
                                  align_corners=False)
        inputs = list(self.preprocessor.normalize(tiles))
        return _Job(item, image, inputs, corners, (th, tw), (ph, pw))

    def _forward(self, batch: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
        """The backend's outputs; with test-time flips the mean of the 4 flipped views' logits (maps
        flipped back), which is what the records are made of."""
        if not self.tta:
            return self.backend.run(batch)
        import torch

        x = torch.as_tensor(batch)
        views = [(), (-1,), (-2,), (-2, -1)]
        runs = [self.backend.run(x.flip(dims) if dims else x) for dims in views]
        out = {"logits": np.mean([r["logits"] for r in runs], axis=0)}
        if "mask_logits" in runs[0]:
            maps = [np.flip(r["mask_logits"], axis=dims) if dims else r["mask_logits"]
                    for r, dims in zip(runs, views, strict=True)]
            out["mask_logits"] = np.ascontiguousarray(np.mean(maps, axis=0))
        return out

    def _run(self, chunk: list[tuple[_Job, Any]]) -> None:
        import torch

        outputs = self._forward(torch.stack([x for _, x in chunk]))
        for i, (job, _) in enumerate(chunk):
            job.outputs.append({k: v[i] for k, v in outputs.items()})

    def _finished(self, pending: deque[_Job]) -> Iterator[Prediction]:
        while pending and len(pending[0].outputs) == (1 if pending[0].corners is None
                                                     else len(pending[0].corners)):
            yield self._finish(pending.popleft())

    def _finish(self, job: _Job) -> Prediction:
        logits = np.stack([o["logits"] for o in job.outputs])
        probs = self.probabilities(logits)
        scores = self.defect_probability(probs)
        # Highest P(defect); ties (e.g. no ok class) go to the most confident tile.
        best = int(np.lexsort((-probs.max(axis=1), -scores))[0])
        h, w = job.image.shape[-2:]
        tile, tile_map, mask = None, None, None
        if job.corners is not None and (len(job.corners) > 1 or job.padded != (h, w)):
            t, left = job.corners[best]
            tile = (t, left, min(job.tile[0], h - t), min(job.tile[1], w - left))
            if len(job.corners) == 1:
                tile = None  # a small image padded to one tile: the whole image was scored
        if job.corners is not None and self.tiling.keep_tile_map:
            rows, cols = sorted({c[0] for c in job.corners}), sorted({c[1] for c in job.corners})
            tile_map = scores.reshape(len(rows), len(cols)).astype(np.float32)
        if self.segment:
            mask = self._blend(job, [self._sigmoid(o["mask_logits"][0]) for o in job.outputs])
        n_tiles = 1 if job.corners is None else len(job.corners)
        record = self._record(job.item, probs[best], tile, n_tiles, mask, tile_map)
        if not self.segment and n_tiles > 1 and self.policy.threshold is not None:
            record.flaws = self._tile_flaws(job, scores)
        return record

    def _tile_flaws(self, job: _Job, scores: np.ndarray) -> list[Any]:
        """Flaw regions of a tiled classifier: pixels whose best covering tile reaches the threshold."""
        h, w = job.image.shape[-2:]
        th, tw = job.tile
        best = np.zeros(job.padded, dtype=np.float32)
        for (t, left), score in zip(job.corners or [], scores, strict=True):
            view = best[t : t + th, left : left + tw]
            np.maximum(view, score, out=view)
        best = best[:h, :w]
        return find_flaws(best >= float(self.policy.threshold), self.pixel_size_mm, best)

    def _blend(self, job: _Job, maps: list[np.ndarray]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        from flawscope.inference.sliding import tile_weight

        h, w = job.image.shape[-2:]
        if job.corners is None:
            m = torch.from_numpy(maps[0])[None, None]
            return F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)[0, 0].numpy()
        th, tw = job.tile
        acc = torch.zeros(job.padded, dtype=torch.float64)
        weight = torch.zeros(job.padded, dtype=torch.float64)
        for (t, left), m in zip(job.corners, maps, strict=True):
            tm = torch.from_numpy(m).double()
            if tuple(tm.shape) != (th, tw):
                tm = F.interpolate(tm[None, None], size=(th, tw), mode="bilinear", align_corners=False)[0, 0]
            wgt = tile_weight((t, left), (th, tw), self._overlap, job.padded)
            acc[t : t + th, left : left + tw] += tm * wgt
            weight[t : t + th, left : left + tw] += wgt
        return (acc / weight)[:h, :w].float().numpy()

    @staticmethod
    def _sigmoid(x: np.ndarray) -> np.ndarray:
        return (1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float32)))).astype(np.float32)

    def _record(self, item: ImageItem, probs: np.ndarray, tile: Any, n_tiles: int, mask: np.ndarray | None,
                tile_map: np.ndarray | None) -> Prediction:
        names = list(self.config.class_names)
        score = float(self.defect_probability(probs[None])[0])
        decision = self.policy.decide(score)
        flaws = []
        if mask is not None:
            flaws = find_flaws(mask >= self.policy.pixel_threshold, self.pixel_size_mm, mask)
        return Prediction(
            path=item.path, score=score, decision=decision, abstained=decision == "unsure",
            predicted=names[int(np.argmax(probs))], probs={c: float(p) for c, p in zip(names, probs,
                                                                                        strict=True)},
            threshold=self.policy.threshold, reject_band=self.policy.reject_band, model_id=self.model_id,
            crop=item.crop, tile=tile, n_tiles=n_tiles, label=item.label, defective=item.defective,
            mask_prob=mask, pixel_threshold=self.policy.pixel_threshold if mask is not None else None,
            flaws=flaws, tile_map=tile_map,
        )
