"""Patch datasets: grid patches labelled from masks or boxes, and the GDXray Xdefects protocol."""

import numpy as np
import pytest
from PIL import Image

from flawscope.data.patches import extract_patches, image_size, xdefects_patches
from flawscope.data.sample import Box, DatasetIndex, Sample
from flawscope.errors import ConfigError, DatasetError


def _image(path, h, w):
    Image.fromarray(np.full((h, w), 100, np.uint8)).save(path)
    return path


def _mask(path, h, w, pixels):
    m = np.zeros((h, w), np.uint8)
    for y, x in pixels:
        m[y, x] = 255
    Image.fromarray(m).save(path)
    return path


@pytest.fixture
def weld(tmp_path):
    """A 40×70 'radiograph': mask pixels at (5, 5), three near (21, 50) and one at (30, 60)."""
    img = _image(tmp_path / "W0001_0001.png", 40, 70)
    mask = _mask(tmp_path / "W0002_0001.png", 40, 70, [(5, 5), (20, 50), (21, 50), (22, 51), (30, 60)])
    ok = _image(tmp_path / "clean.png", 40, 70)
    samples = [
        Sample(img, label="defect", defective=True, mask=mask, group="W0001", split="train",
               boxes=(Box(50, 20, 52, 23),)),
        Sample(ok, label="ok", defective=False, group="clean"),
    ]
    return DatasetIndex(tmp_path, "test", samples, ["ok", "defect"], frozenset({"defect"}))


def _by_crop(index):
    return {(s.image.name, s.crop): s for s in index.samples}


def test_grid_patches_labelled_from_mask(weld):
    patches = extract_patches(weld, 16)
    assert patches.classes == ["ok", "defect"] and patches.defective_classes == {"defect"}
    # 40 rows -> tops 0, 16, 24; 70 cols -> lefts 0, 16, 32, 48, 54: 15 tiles per image.
    assert len(patches) == 30
    by_crop = _by_crop(patches)
    weld_patches = [s for s in patches.samples if s.image.name == "W0001_0001.png"]
    defect = {s.crop for s in weld_patches if s.label == "defect"}
    # (30, 60) lies in the overlap of the flush last row and column.
    assert defect == {(0, 0, 16, 16), (16, 48, 16, 16), (16, 54, 16, 16), (24, 48, 16, 16), (24, 54, 16, 16)}
    top_left = by_crop[("W0001_0001.png", (0, 0, 16, 16))]
    assert top_left.defective is True and top_left.get_meta("defect_pixels") == "1"
    assert by_crop[("W0001_0001.png", (16, 48, 16, 16))].get_meta("defect_pixels") == "4"
    assert top_left.group == "W0001" and top_left.split == "train" and top_left.mask == weld.samples[0].mask
    assert all(s.label == "ok" and not s.defective for s in patches.samples if s.image.name == "clean.png")
    # A stricter threshold drops the single-pixel patch.
    strict = extract_patches(weld, 16, min_defect_pixels=2)
    assert (0, 0, 16, 16) not in {s.crop for s in strict.samples if s.label == "defect"}


def test_stride_and_labels_from_boxes(weld):
    patches = extract_patches(weld, (16, 20), stride=10, source="boxes")
    crops = [s.crop for s in patches.samples if s.image.name == "W0001_0001.png"]
    assert {c[0] for c in crops} == {0, 10, 20, 24} and {c[1] for c in crops} == {0, 10, 20, 30, 40, 50}
    defect = {s.crop for s in patches.samples if s.label == "defect"}
    # Box x 50..52, y 20..23: every patch touching that area, and only those.
    for top, left, h, w in crops:
        touches = top < 23 and top + h > 20 and left < 52 and left + w > 50
        assert ((top, left, h, w) in defect) == touches


def test_keep_ok_ratio_subsamples_ok_patches(weld):
    patches = extract_patches(weld, 16, keep_ok_ratio=1.0, seed=3)
    labels = [s.label for s in patches.samples]
    assert labels.count("defect") == 5 and labels.count("ok") == 5
    again = extract_patches(weld, 16, keep_ok_ratio=1.0, seed=3)
    assert [s.crop for s in again.samples] == [s.crop for s in patches.samples]


def test_small_images_get_one_padded_patch_and_unlabelable_ones_rejected(tmp_path, weld):
    small = _image(tmp_path / "small.png", 10, 24)
    index = DatasetIndex(tmp_path, "test", [*weld.samples, Sample(small, defective=False)], weld.classes,
                         weld.defective_classes)
    patches = extract_patches(index, 16)
    assert not patches.skipped
    crops = [s.crop for s in patches.samples if s.image == small]
    assert crops == [(0, 0, 16, 16), (0, 8, 16, 16)] and all(s.label == "ok" for s in patches.samples
                                                            if s.image == small)
    unknown = DatasetIndex(tmp_path, "test", [Sample(weld.samples[0].image, defective=True)], weld.classes,
                           weld.defective_classes)
    with pytest.raises(DatasetError, match=r"W0001_0001.png may be defective but has no mask.*'boxes'"):
        extract_patches(unknown, 16)
    with pytest.raises(ConfigError, match="stride"):
        extract_patches(weld, 16, stride=17)


@pytest.fixture
def casting(tmp_path):
    img = _image(tmp_path / "C0001_0001.png", 60, 80)
    clean = _image(tmp_path / "C0001_0002.png", 60, 80)
    boxes = (Box(40, 30, 50, 36), Box(0, 0, 6, 4), Box(70.5, 50, 79.5, 59))
    samples = [
        Sample(img, label="defect", defective=True, boxes=boxes, group="C0001"),
        Sample(clean, label="ok", defective=False, group="C0001"),
    ]
    return DatasetIndex(tmp_path, "gdxray", samples, ["ok", "defect"], frozenset({"defect"}))


def test_xdefects_patches_centred_on_boxes(casting):
    patches = xdefects_patches(casting, size=32, n_ok_per_image=5, seed=0)
    defects = [s for s in patches.samples if s.label == "defect"]
    assert [s.crop for s in defects] == [
        (17, 29, 32, 32),  # centre (45, 33) -> top-left (33 - 16, 45 - 16)
        (0, 0, 32, 32),  # near the corner: shifted inside the image
        (28, 48, 32, 32),  # centre (75, 54.5): clipped to the bottom-right border
    ]
    assert all(s.group == "C0001" for s in patches.samples)
    assert defects[0].get_meta("box") == "40,30,50,36"


def test_xdefects_ok_patches_avoid_boxes_and_include_clean_images(casting):
    patches = xdefects_patches(casting, size=32, n_ok_per_image=5, seed=0)
    ok = [s for s in patches.samples if s.label == "ok"]
    assert sum(s.image.name == "C0001_0001.png" for s in ok) >= 1
    assert sum(s.image.name == "C0001_0002.png" for s in ok) == 5
    boxes = casting.samples[0].boxes
    for s in ok:
        top, left, h, w = s.crop
        assert 0 <= top <= 60 - h and 0 <= left <= 80 - w
        if s.image.name == "C0001_0001.png":
            assert not any(left < b.x2 and left + w > b.x1 and top < b.y2 and top + h > b.y1 for b in boxes)
    again = xdefects_patches(casting, size=32, n_ok_per_image=5, seed=0)
    assert [s.crop for s in again.samples] == [s.crop for s in patches.samples]
    other = xdefects_patches(casting, size=32, n_ok_per_image=5, seed=1)
    assert [s.crop for s in other.samples] != [s.crop for s in patches.samples]


def test_image_size_reads_header(tmp_path):
    assert image_size(_image(tmp_path / "a.png", 13, 17)) == (13, 17)


@pytest.mark.real_data
def test_xdefects_on_gdxray_castings_split_by_series(shared_data):
    from flawscope.data.sources import load_dataset
    from flawscope.data.splits import check_split, make_split

    root = shared_data / "gdxray-castings"
    if not root.is_dir():
        pytest.skip(f"GDXray castings not found at {root}")
    index = load_dataset(root)
    patches = xdefects_patches(index, size=32, n_ok_per_image=4, seed=0)
    n_boxes = sum(len(s.boxes) for s in index.samples)
    assert sum(s.defective for s in patches.samples) == n_boxes  # one patch per annotated defect
    assert sum(not s.defective for s in patches.samples) > n_boxes  # ok patches from every image
    split = make_split(patches, seed=0)
    check_split(patches, split)  # no series in two parts, both classes everywhere
    series = {p: {patches.samples[i].group for i in split.part(p)} for p in ("train", "val", "test")}
    assert not series["train"] & series["test"] and all(g.startswith("C") for g in series["test"])


@pytest.mark.real_data
def test_weld_patches_from_masks_decode_each_mask_once(shared_data):
    from flawscope.data.cache import DecodeCache
    from flawscope.data.sources import load_dataset

    root = shared_data / "gdxray-welds"
    if not root.is_dir():
        pytest.skip(f"GDXray welds not found at {root}")
    index = load_dataset(root)
    cache = DecodeCache()
    patches = extract_patches(index, 64, cache=cache)
    assert cache.stats.misses == len(index)
    n_defect = sum(s.defective for s in patches.samples)
    assert 0 < n_defect < len(patches) / 2
    assert {s.group for s in patches.samples} == {s.group for s in index.samples}


def test_hard_negatives_lie_on_the_part_near_the_boxes_and_leave_the_protocol_alone(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = np.full((64, 160), 255, np.uint8)  # air: saturated
    pixels[:, 64:] = rng.integers(80, 140, size=(64, 96))  # the part
    Image.fromarray(pixels).save(tmp_path / "C0001_0001.png")
    box = Box(100, 20, 110, 30)
    index = DatasetIndex(tmp_path, "gdxray", [Sample(tmp_path / "C0001_0001.png", label="defect",
                                                     defective=True, boxes=(box,), group="C0001")],
                         ["ok", "defect"], frozenset({"defect"}))
    plain = xdefects_patches(index, size=16, n_ok_per_image=4, seed=0)
    more = xdefects_patches(index, size=16, n_ok_per_image=4, seed=0, n_hard_ok_per_image=5)
    assert [s.crop for s in more.samples if s.get_meta("kind") != "hard"] == [s.crop for s in plain.samples]
    hard = [s for s in more.samples if s.get_meta("kind") == "hard"]
    assert len(hard) == 5 and all(s.label == "ok" for s in hard)
    for s in hard:
        top, left, h, w = s.crop
        assert left >= 64  # on the part, never the air
        assert not (left < box.x2 and left + w > box.x1 and top < box.y2 and top + h > box.y1)
        assert abs(left + w / 2 - 105) <= 2 * 16 + 1  # near the box
    with pytest.raises(ConfigError, match="ok patches per image must be >= 0"):
        xdefects_patches(index, size=16, n_hard_ok_per_image=-1)
