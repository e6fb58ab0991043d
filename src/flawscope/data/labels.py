"""Image-level facts derived from masks: is a sample defective, when its dataset does not say."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from flawscope.data.sample import DatasetIndex, Sample

if TYPE_CHECKING:
    from flawscope.data.cache import DecodeCache


def defective_from_mask(sample: Sample, cache: DecodeCache | None = None) -> bool | None:
    """Whether a sample's mask has any defect pixel (within its crop, if any); None without a mask.

    With `cache`, the mask is decoded through it (checked against its image's header size) and stays there
    for the data loaders that read it next.
    """
    from flawscope.data.io import load_mask
    from flawscope.data.patches import image_size

    if sample.mask is None:
        return None
    if cache is None:
        mask = load_mask(sample.mask)
    else:
        mask = cache.get_mask(sample.mask, image_size(sample.image), sample.image)
    if sample.crop is not None:
        top, left, h, w = sample.crop
        mask = mask[top: top + h, left: left + w]
    return bool(mask.any())



def flags_from_masks(index: DatasetIndex, cache: DecodeCache | None = None) -> DatasetIndex:
    """Samples with a mask but no defective flag (e.g. the image_mask format) get it from their mask pixels.

    The split needs the flag to stratify and to check that val and test hold defects; the image-level metrics
    need it as ground truth. With `cache` (the run's), the decoded masks stay there for the data loaders.
    """
    if not any(s.defective is None and s.mask is not None for s in index.samples):
        return index
    ok = [c for c in index.classes if c not in index.defective_classes]
    bad = [c for c in index.classes if c in index.defective_classes]
    samples = []
    for s in index.samples:
        if s.defective is None and s.mask is not None:
            flag = defective_from_mask(s, cache)
            # In a binary dataset the flag is the label too (the data module counts classes by label).
            label = s.label or ((bad if flag else ok)[0] if index.is_binary and ok and bad else "")
            s = replace(s, defective=flag, label=label)
        samples.append(s)
    index.samples = samples
    return index
