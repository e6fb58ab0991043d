"""The Preprocessor reads a file, its bytes and its decoded pixels to the same input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flawscope.data.config import IntensityConfig, PreprocessConfig
from flawscope.data.io import load_image
from flawscope.errors import ConfigError
from flawscope.inference.preprocess import Preprocessor


@pytest.mark.parametrize("intensity", ["dtype", "minmax"])
def test_file_bytes_and_pixels_give_the_same_image(tmp_path: Path, intensity: str) -> None:
    rgb = np.random.default_rng(0).integers(20, 200, size=(12, 16, 3), dtype=np.uint8)
    path = tmp_path / "part.png"
    Image.fromarray(rgb).save(path)
    pre = Preprocessor(PreprocessConfig(intensity=IntensityConfig.parse(intensity)))
    from_file = pre.load(path)
    np.testing.assert_array_equal(from_file, load_image(path, IntensityConfig.parse(intensity)))
    np.testing.assert_array_equal(pre.load(path.read_bytes()), from_file)
    np.testing.assert_array_equal(pre.load(rgb), from_file)  # luma before scaling, as for files
    assert from_file.shape == (1, 12, 16)
    with pytest.raises(ConfigError, match="shape"):
        pre.load(np.zeros((2, 3, 4, 5)))


def test_bytes_that_are_no_image_name_what_they_are() -> None:
    from flawscope.errors import ImageReadError

    with pytest.raises(ImageReadError, match="uploaded bytes.*not a PNG, JPEG, TIFF, BMP or DICOM"):
        Preprocessor(PreprocessConfig()).load(b"operator notes, not an image")
