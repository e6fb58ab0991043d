"""Tiny image writers for tests, independent of flawscope's own writer so that reader tests check something.

Every function takes the output path, writes exactly one file and returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def random_radiograph(h: int = 48, w: int = 64, seed: int = 0, dtype: type | str = np.uint16) -> np.ndarray:
    """A smooth, radiograph-like image: a bright part with a thickness gradient, noise and two dark pores.

    uint16 images use most of the 16-bit range (values well above 255); uint8 images the 8-bit range.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = 0.35 + 0.4 * np.exp(-(((xx - w / 2) / (0.45 * w)) ** 2)) + 0.1 * yy / max(h - 1, 1)
    for _ in range(2):
        cy, cx, r = rng.uniform(0.2 * h, 0.8 * h), rng.uniform(0.2 * w, 0.8 * w), rng.uniform(2, 4)
        base -= 0.2 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    img = np.clip(base + rng.normal(0, 0.02, size=(h, w)), 0, 1)
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return img.astype(dtype)
    return np.round(img * np.iinfo(dtype).max).astype(dtype)


def write_png(path: Path, arr: np.ndarray) -> Path:
    """8-bit grayscale/RGB PNG (bool arrays become 1-bit PNG)."""
    from PIL import Image

    Image.fromarray(np.asarray(arr)).save(path)
    return Path(path)


def write_png16(path: Path, arr: np.ndarray) -> Path:
    """16-bit grayscale PNG."""
    from PIL import Image

    arr = np.asarray(arr)
    if arr.dtype != np.uint16 or arr.ndim != 2:
        raise ValueError(f"write_png16 takes a 2-D uint16 array, got {arr.dtype} {arr.shape}")
    Image.fromarray(arr).save(path)
    return Path(path)


def write_tiff16(path: Path, arr: np.ndarray, pages: int = 1) -> Path:
    """Uncompressed TIFF of any dtype (16-bit in most tests); pages > 1 writes the image that many times."""
    import tifffile

    arr = np.asarray(arr)
    photometric = "rgb" if arr.ndim == 3 else "minisblack"
    with tifffile.TiffWriter(path) as tif:
        for i in range(pages):
            tif.write(arr if i == 0 else arr[::-1].copy(), photometric=photometric)
    return Path(path)


def write_jpeg(path: Path, arr: np.ndarray, quality: int = 95, orientation: int | None = None) -> Path:
    """8-bit JPEG; `orientation` sets the EXIF Orientation tag (6 = display rotated 90° clockwise)."""
    from PIL import Image

    im = Image.fromarray(np.asarray(arr))
    kwargs: dict = {"quality": quality}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif
    im.save(path, format="JPEG", **kwargs)
    return Path(path)


def write_bmp(path: Path, arr: np.ndarray) -> Path:
    """8-bit BMP."""
    from PIL import Image

    Image.fromarray(np.asarray(arr)).save(path, format="BMP")
    return Path(path)


def write_dicom(
    path: Path,
    arr_uint16: np.ndarray | None,
    bits_stored: int = 12,
    monochrome1: bool = False,
    slope: float = 1.0,
    intercept: float = 0.0,
    with_pixels: bool = True,
    shape: tuple[int, int] | None = None,
) -> Path:
    """A DX/DICONDE-like grayscale DICOM file (Explicit VR Little Endian, 16 bits allocated).

    Args:
        arr_uint16: 2-D uint16 pixels (values < 2**bits_stored); None with `shape` for a header-only file.
        with_pixels: False writes no PixelData element (an unusable image).
        shape: (rows, columns) when `arr_uint16` is None.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rows, cols = arr_uint16.shape if arr_uint16 is not None else shape
    sop_class = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[str(path)])  # deterministic per path
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "DX"
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if (slope, intercept) != (1.0, 0.0):
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
    if with_pixels:
        ds.PixelData = np.ascontiguousarray(arr_uint16, dtype="<u2").tobytes()
    ds.save_as(path, enforce_file_format=True)
    return Path(path)


def write_truncated_jpeg(path: Path, h: int = 48, w: int = 64, keep: float = 0.5) -> Path:
    """A JPEG cut off after `keep` of its bytes (an interrupted copy)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(random_radiograph(h, w, seed=1, dtype=np.uint8)).save(buf, format="JPEG", quality=95)
    data = buf.getvalue()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_truncated_png(path: Path, h: int = 48, w: int = 64, keep: float = 0.6) -> Path:
    """A PNG cut off after `keep` of its bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(random_radiograph(h, w, seed=2, dtype=np.uint16)).save(buf, format="PNG")
    data = buf.getvalue()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def write_zero_byte(path: Path) -> Path:
    """An empty file."""
    Path(path).write_bytes(b"")
    return Path(path)


def write_text_as_png(path: Path) -> Path:
    """A text file with an image suffix (an HTML error page saved by a failed download)."""
    Path(path).write_text("<html><body>404 Not Found</body></html>\n")
    return Path(path)
