"""Augmentation keeps image, mask and boxes aligned; it is deterministic under a seed."""

import math

import pytest
import torch

from flawscope.data.config import PreprocessConfig
from flawscope.data.transforms import AugmentConfig, build_eval_transform, build_train_transform, sample_seed
from flawscope.errors import ConfigError

PRE = PreprocessConfig(input_size=(32, 32), resize=True, mean=(0.5,), std=(0.25,))


def _one_bright_pixel(h: int = 32, w: int = 32, y: int = 5, x: int = 9):
    image = torch.zeros(1, h, w)
    image[0, y, x] = 1.0
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[y, x] = True
    boxes = torch.tensor([[x, y, x + 1, y + 1]], dtype=torch.float32)
    return image, mask, boxes


def test_presets():
    assert AugmentConfig.preset("none").hflip == 0 and AugmentConfig.preset("none").vflip == 0
    flips = AugmentConfig.preset("flips")
    assert flips.hflip == pytest.approx(1 / math.sqrt(2)) and flips.noise_std == 0
    radio = AugmentConfig.preset("radiograph", rotate=3.0)
    assert radio.noise_std == 0.15 and radio.rotate == 3.0 and radio.scale[0] < 1 < radio.scale[1]
    with pytest.raises(ConfigError, match="radiograph"):
        AugmentConfig.preset("xray")
    with pytest.raises(ConfigError, match="probability"):
        AugmentConfig(hflip=1.5)


@pytest.mark.parametrize(
    ("hflip", "vflip", "expected"), [(1.0, 0.0, (5, 22)), (0.0, 1.0, (26, 9)), (1.0, 1.0, (26, 22))]
)
def test_flip_moves_mask_and_box_with_the_image(hflip, vflip, expected):
    image, mask, boxes = _one_bright_pixel()
    t = build_train_transform(AugmentConfig(hflip=hflip, vflip=vflip), PRE)
    out = t(image, mask, boxes, seed=0)
    img = out["image"][0]
    y, x = divmod(int(img.argmax()), img.shape[1])
    assert (y, x) == expected
    assert out["mask"].shape == (1, 32, 32) and out["mask"].dtype == torch.float32
    assert out["mask"][0].nonzero().tolist() == [[y, x]]
    assert out["boxes"].tolist() == [[x, y, x + 1, y + 1]]


@pytest.mark.parametrize("seed", range(6))
def test_random_geometry_keeps_alignment(seed):
    """Random flips, zoom and rotation with a resize: the bright spot stays on the mask."""
    image, mask, _ = _one_bright_pixel(48, 40, 20, 12)
    image[0, 19:22, 11:14] = 1.0
    mask[19:22, 11:14] = True
    aug = AugmentConfig(scale=(0.9, 1.1), rotate=8.0)
    out = build_train_transform(aug, PRE)(image, mask, seed=seed)
    img, m = out["image"][0], out["mask"][0]
    assert img.shape == (32, 32)
    y, x = divmod(int(img.argmax()), 32)
    assert m[y, x] == 1
    assert set(m.unique().tolist()) <= {0.0, 1.0}  # nearest-neighbour: still a binary mask


def test_same_seed_same_output_and_global_rng_untouched():
    image = torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(0))
    t = build_train_transform(AugmentConfig.preset("radiograph"), PRE)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a, b = t(image, seed=sample_seed(0, 1, 7)), t(image, seed=sample_seed(0, 1, 7))
    assert torch.equal(a["image"], b["image"])
    assert torch.equal(torch.random.get_rng_state(), before)
    c = t(image, seed=sample_seed(0, 2, 7))
    assert not torch.equal(a["image"], c["image"])
    assert sample_seed(0, 1, 7) != sample_seed(0, 7, 1)


def test_eval_normalises_and_resizes():
    image = torch.full((1, 20, 30), 0.75)
    out = build_eval_transform(PRE)(image)
    assert out["image"].shape == (1, 32, 32)
    assert torch.allclose(out["image"], torch.ones(1, 32, 32))  # (0.75 - 0.5) / 0.25
    assert out["mask"] is None and out["boxes"] is None


def test_no_resize_crops_in_training_and_centre_crops_or_pads_in_eval():
    pre = PreprocessConfig(input_size=(16, 16), resize=False, mean=(0.0,), std=(1.0,))
    image = torch.rand(1, 24, 40)
    train = build_train_transform(AugmentConfig.preset("none"), pre)(image, seed=1)["image"]
    assert train.shape == (1, 16, 16)
    # A random crop is a window of the original, unscaled.
    windows = image.unfold(1, 16, 1).unfold(2, 16, 1)[0]
    assert (windows == train[0]).flatten(2).all(-1).any()
    centre = build_eval_transform(pre)(image)["image"]
    assert torch.equal(centre, image[:, 4:20, 12:28])
    small = build_eval_transform(pre)(torch.ones(1, 10, 16))["image"]
    assert small.shape == (1, 16, 16) and small[0, 0].sum() == 0 and small[0, 8].sum() == 16


def test_rgb_preprocess_and_mask_size_check():
    pre = PreprocessConfig(in_chans=3, input_size=(8, 8))
    out = build_train_transform(AugmentConfig.preset("radiograph"), pre)(torch.rand(3, 12, 12), seed=0)
    assert out["image"].shape == (3, 8, 8)
    with pytest.raises(ConfigError, match="mask is"):
        build_eval_transform(pre)(torch.rand(3, 12, 12), torch.zeros(10, 12))
