"""Image I/O for inspection images: radiographs are not photos.

Radiographs come as 8/12/16-bit PNG, TIFF or DICOM/DICONDE and their bit depth carries information, so files
are read in their own dtype (`read_raw`) and mapped to [0, 1] explicitly (`normalize_intensity`,
`IntensityConfig`).
Surface photos (JPEG/BMP) go through the same path, with EXIF orientation honoured.

Every failure raises `flawscope.errors.ImageReadError(path, reason, hint)`; library exceptions are wrapped.
"""

from __future__ import annotations

import hashlib
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flawscope.data.config import IntensityConfig
from flawscope.data.rle import rle_decode
from flawscope.data.sample import RleMask
from flawscope.errors import ConfigError, DatasetError, FlawscopeError, ImageReadError

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = [
    "MAX_PIXELS",
    "SOFT_EDGE_FRACTION",
    "SUPPORTED_SUFFIXES",
    "ImageInfo",
    "RawImage",
    "file_digest",
    "image_info",
    "load_image",
    "load_mask",
    "normalize_intensity",
    "read_raw",
    "write_image",
    "write_mask",
]

#: Largest image (height × width) `read_raw` decodes; bigger ones must be tiled or cropped first.
MAX_PIXELS = 200_000_000

_FORMATS = {
    ".png": "PNG",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".bmp": "BMP",
    ".dcm": "DICOM",
    ".dicom": "DICOM",
}
#: File suffixes `read_raw` understands (lower case); DICOM files without a suffix are recognised by content.
SUPPORTED_SUFFIXES: tuple[str, ...] = tuple(_FORMATS)

# ITU-R BT.601 luma, the weights PIL's convert("L") uses.
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True, eq=False)  # eq=False: comparing/hashing pixel arrays field-wise is meaningless
class RawImage:
    """Pixels as stored in the file.

    Attributes:
        pixels: (H, W) or (H, W, 3) in the file's dtype (uint8, uint16 or float32); alpha is dropped.
        bit_depth: significant bits: 8 for uint8, 16 for uint16 (DICOM: BitsStored, e.g. 12), 32 for float.
        path: the file read.
    """

    pixels: np.ndarray
    bit_depth: int
    path: Path

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


@dataclass(frozen=True)
class ImageInfo:
    """What `read_raw` would return, learned from the header only where the format allows.

    Attributes:
        height, width: pixel size (after EXIF orientation for photos).
        channels: 1 (grayscale) or 3 (RGB).
        bit_depth: as in `RawImage.bit_depth`.
        dtype: numpy dtype name of `RawImage.pixels`.
        format: "PNG", "TIFF", "JPEG", "BMP" or "DICOM".
    """

    height: int
    width: int
    channels: int
    bit_depth: int
    dtype: str
    format: str

    @property
    def n_pixels(self) -> int:
        return self.height * self.width


# ----------------------------------------------------------------------------------------------------- checks


def _check_file(path: str | os.PathLike) -> tuple[Path, str]:
    """Existence, size and format of a file, or an ImageReadError saying what is wrong."""
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = "check the path and that the dataset is fully copied"
        raise ImageReadError(path, "file not found", hint) from None
    except OSError as err:
        raise ImageReadError(path, f"cannot access the file ({err.strerror or err})") from None
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    if st.st_size == 0:
        raise ImageReadError(
            path, "file is empty (0 bytes)",
            "the copy was probably interrupted; copy it again, or skip bad files (on_bad_file='skip')",
        )
    suffix = path.suffix.lower()
    if suffix in _FORMATS:
        return path, _FORMATS[suffix]
    if _has_dicom_preamble(path):  # DICOM/DICONDE files often come without a suffix
        return path, "DICOM"
    raise ImageReadError(
        path, f"unsupported file type {path.suffix or '(no suffix)'!r}",
        f"supported: {', '.join(SUPPORTED_SUFFIXES)}; convert the file (e.g. to 16-bit PNG or TIFF) first",
    )


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def _first_bytes(path: Path, n: int = 16) -> bytes:
    try:
        with path.open("rb") as f:
            return f.read(n)
    except OSError:
        return b""


def _check_size(path: Path, height: int, width: int) -> None:
    limit = MAX_PIXELS  # looked up at call time, so users (and tests) can change flawscope.data.io.MAX_PIXELS
    if height * width > limit:
        raise ImageReadError(
            path, f"{height}×{width} = {height * width:,} pixels is more than MAX_PIXELS ({limit:,})",
            "tile or crop it first, e.g. with tifffile or vips, or raise flawscope.data.io.MAX_PIXELS",
        )


@contextmanager
def _wrap_errors(path: Path, fmt: str, hint: str = "") -> Iterator[None]:
    """Turn any library exception into an ImageReadError naming the file; ours pass through unchanged."""
    try:
        yield
    except (FlawscopeError, MemoryError):
        raise
    except Exception as err:  # the libraries raise many unrelated types (OSError, SyntaxError, struct.error)
        reason = f"not a readable {fmt} file ({type(err).__name__}: {err})"
        if not hint:
            hint = "the file may be truncated or corrupt, or not the format its suffix says; re-export it"
            head = _first_bytes(path)
            if head and all(32 <= b < 127 or b in (9, 10, 13) for b in head):
                hint = f"the file looks like text (it starts with {head!r}), not an image"
        raise ImageReadError(path, reason, hint) from err


# ------------------------------------------------------------------------------------------------------- PIL

_PIL_OPEN_LOCK = threading.Lock()


@contextmanager
def _pil_open(path: Path) -> Iterator[PILImage.Image]:
    """Lazily open an image with PIL; our MAX_PIXELS check stands in for PIL's decompression-bomb check.

    PIL warns above ~89 Mpixel and refuses above ~179 Mpixel; that warning would leak to users and the refusal
    would override MAX_PIXELS, so PIL's limit is lifted for the (header-only) open, under a lock as it is
    global.
    """
    from PIL import Image

    with _PIL_OPEN_LOCK:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            im = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with im:
        yield im


def _exif_swaps_axes(im: PILImage.Image) -> bool:
    # PNG's getexif() decodes the whole image to find a trailing eXIf chunk; radiograph PNGs carry no
    # camera orientation, so only JPEG/TIFF-like photos are checked (header reads stay header-only).
    if im.format == "PNG":
        return False
    try:
        return im.getexif().get(0x0112, 1) in (5, 6, 7, 8)  # orientations that rotate by 90°
    except Exception:  # a broken EXIF block: exif_transpose will leave the image as is too
        return False


def _palette_is_gray(im: PILImage.Image) -> bool:
    pal = im.getpalette() or []
    return all(pal[i] == pal[i + 1] == pal[i + 2] for i in range(0, len(pal) - 2, 3))


def _pil_layout(im: PILImage.Image, path: Path) -> tuple[int, int, str]:
    """(channels, bit_depth, dtype) that `_pil_pixels` gives for this image."""
    mode = im.mode
    # PIL reads 16-bit colour (and gray + alpha) PNG as 8-bit; those are decoded with OpenCV instead.
    png16 = im.format == "PNG" and bool(im.tile) and ";16" in str(im.tile[0].args)
    if mode in ("LA", "La") and png16:
        return 1, 16, "uint16"
    if mode in ("1", "L", "LA", "La"):
        return 1, 8, "uint8"
    if mode == "P":
        return (1 if _palette_is_gray(im) else 3), 8, "uint8"
    if mode.startswith("I;16") or mode == "I":
        return 1, 16, "uint16"
    if mode == "F":
        return 1, 32, "float32"
    if mode in ("RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
        return (3, 16, "uint16") if png16 else (3, 8, "uint8")
    raise ImageReadError(path, f"image mode {mode!r} is not supported", "convert it to grayscale or RGB")


def _pil_pixels(im: PILImage.Image, path: Path, palette_indices: bool = False) -> tuple[np.ndarray, int]:
    """Decode an opened PIL image to (pixels, bit_depth) in the file's own dtype."""
    from PIL import ImageOps

    channels, bit_depth, dtype = _pil_layout(im, path)
    if im.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N") and dtype == "uint16":
        arr = _cv2_read_png16(path)
        return (arr[..., 0] if channels == 1 and arr.ndim == 3 else arr), 16
    im.load()
    im = ImageOps.exif_transpose(im)  # a no-op without an EXIF orientation tag
    mode = im.mode
    if mode == "1":
        return np.array(im, dtype=np.uint8) * np.uint8(255), 8
    if mode == "P":
        if palette_indices:  # masks: the index is the class, the colour is only for display
            return np.array(im), 8
        im = im.convert("RGBA")  # via RGBA: PIL warns when a palette with transparency goes straight to RGB
        im = im.getchannel(0) if channels == 1 else im.convert("RGB")
    elif mode in ("LA", "La"):
        im = im.getchannel(0)
    elif mode not in ("L", "RGB", "F") and not mode.startswith("I"):
        im = im.convert("RGB")
    arr = np.array(im)  # np.array, not asarray: a writable copy
    if mode == "I":
        if arr.min(initial=0) < 0 or arr.max(initial=0) > 65535:
            return arr.astype(np.float32), 32
        arr = arr.astype(np.uint16)
    elif mode.startswith("I;16"):
        arr = arr.astype(np.uint16)
    return arr, bit_depth


def _cv2_read_png16(path: Path) -> np.ndarray:
    import cv2

    with _wrap_errors(path, "PNG"):
        buf = np.fromfile(path, dtype=np.uint8)
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ImageReadError(path, "OpenCV cannot decode this 16-bit PNG", "the file may be truncated")
    if arr.ndim == 3:
        arr = arr[..., 2::-1] if arr.shape[2] >= 3 else arr  # OpenCV decodes to BGR(A): to RGB, alpha dropped
    return np.ascontiguousarray(arr)


def _info_pil(path: Path, fmt: str) -> ImageInfo:
    with _wrap_errors(path, fmt), _pil_open(path) as im:
        channels, bit_depth, dtype = _pil_layout(im, path)
        w, h = im.size
        if _exif_swaps_axes(im):
            h, w = w, h
        return ImageInfo(h, w, channels, bit_depth, dtype, fmt)


def _read_pil(path: Path, fmt: str, palette_indices: bool = False) -> tuple[np.ndarray, int]:
    with _wrap_errors(path, fmt), _pil_open(path) as im:
        _check_size(path, im.size[1], im.size[0])
        return _pil_pixels(im, path, palette_indices)


# ------------------------------------------------------------------------------------------------------ TIFF


def _tiff_layout(page: Any, path: Path) -> tuple[int, int, int, int, str]:
    """(height, width, channels, bit_depth, dtype) of a tifffile page, from its tags only."""
    axes, shape = page.axes, page.shape
    if set(axes) - {"Y", "X", "S"} or "Y" not in axes or "X" not in axes:
        raise ImageReadError(
            path, f"TIFF page has axes {axes!r} (shape {shape}); expected a 2-D grayscale or RGB image",
            "save one 2-D image per page",
        )
    h, w = shape[axes.index("Y")], shape[axes.index("X")]
    samples = shape[axes.index("S")] if "S" in axes else 1
    channels = 3 if samples >= 3 else 1  # 2 = gray + alpha, 4 = RGBA: alpha is dropped
    dt = np.dtype(page.dtype)
    if dt == np.uint8 or dt == np.bool_:
        return h, w, channels, 8, "uint8"
    if dt == np.uint16:
        bits = page.bitspersample
        return h, w, channels, (bits if isinstance(bits, int) and 8 < bits <= 16 else 16), "uint16"
    # Signed or 32-bit integers and all floats become float32; "dtype" scaling then means "clip or min-max".
    return h, w, channels, 32, "float32"


def _tiff_pixels(arr: np.ndarray, axes: str, dtype: str) -> np.ndarray:
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1)  # planar (SYX) -> interleaved (YXS)
        arr = arr[..., :3] if arr.shape[-1] >= 3 else arr[..., 0]
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * np.uint8(255)
    return np.ascontiguousarray(arr.astype(dtype, copy=False))


def _info_tiff(path: Path) -> ImageInfo:
    import tifffile

    with _wrap_errors(path, "TIFF"), tifffile.TiffFile(path) as tif:
        h, w, channels, bits, dtype = _tiff_layout(tif.pages.first, path)
        return ImageInfo(h, w, channels, bits, dtype, "TIFF")


def _read_tiff(path: Path) -> tuple[np.ndarray, int]:
    import tifffile

    try:
        with _wrap_errors(path, "TIFF"), tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            h, w, _, bits, dtype = _tiff_layout(page, path)
            _check_size(path, h, w)
            pixels, n_pages = _tiff_pixels(page.asarray(), page.axes, dtype), len(tif.pages)
    except ImageReadError as err:
        # tifffile decodes LZW/JPEG-compressed TIFFs only with `imagecodecs`; PIL (libtiff) reads most.
        if "imagecodecs" not in str(err):
            raise
        try:
            return _read_pil(path, "TIFF")
        except ImageReadError:
            raise ImageReadError(
                path, f"its compression needs a codec that is not installed ({err.reason})",
                "pip install imagecodecs, or re-save the TIFF uncompressed or zlib-compressed",
            ) from err
    if n_pages > 1:  # outside _wrap_errors: a warning turned into an error must stay a warning
        warnings.warn(f"{path} has {n_pages} pages; reading only the first", stacklevel=4)
    return pixels, bits


# ----------------------------------------------------------------------------------------------------- DICOM


def _dicom_open(path: Path, header_only: bool) -> Any:
    import pydicom
    from pydicom.errors import InvalidDicomError

    with _wrap_errors(path, "DICOM"):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=header_only)
        except InvalidDicomError:
            # Some DICONDE/older files lack the 128-byte preamble; read them as a bare dataset.
            ds = pydicom.dcmread(path, stop_before_pixels=header_only, force=True)
    if "Rows" not in ds or "Columns" not in ds:
        raise ImageReadError(
            path, "not a DICOM image (no Rows/Columns elements)",
            "is this a DICOM structured report or a non-DICOM file with a .dcm suffix?",
        )
    if not header_only and "PixelData" not in ds and "FloatPixelData" not in ds:
        hint = "export the image with its pixels, not only the header"
        raise ImageReadError(path, "DICOM file has no pixel data", hint)
    return ds


def _dicom_has_modality_lut(ds: Any) -> bool:
    """Whether stored values go through a rescale or LUT before they mean anything (DICOM PS3.3 C.11.1)."""
    slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
    intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    return (slope, intercept) != (1.0, 0.0) or "ModalityLUTSequence" in ds


def _dicom_layout(ds: Any) -> tuple[int, int, int, int, str]:
    """(height, width, channels, bit_depth, dtype) of a DICOM header."""
    h, w = int(ds.Rows), int(ds.Columns)
    bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    if int(ds.get("SamplesPerPixel", 1)) >= 3:
        return h, w, 3, bits_stored, ("uint8" if bits_stored <= 8 else "uint16")
    if _dicom_has_modality_lut(ds) or int(ds.get("PixelRepresentation", 0)) == 1 or bits_stored > 16:
        return h, w, 1, 32, "float32"  # rescaled or signed values lose the "stored bits" range
    return h, w, 1, bits_stored, ("uint8" if bits_stored <= 8 else "uint16")


def _info_dicom(path: Path) -> ImageInfo:
    h, w, channels, bits, dtype = _dicom_layout(_dicom_open(path, header_only=True))
    return ImageInfo(h, w, channels, bits, dtype, "DICOM")


def _read_dicom(path: Path) -> tuple[np.ndarray, int]:
    ds = _dicom_open(path, header_only=False)
    h, w, channels, bits, dtype = _dicom_layout(ds)
    _check_size(path, h, w)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    with _wrap_errors(
        path, "DICOM",
        "compressed DICOM needs a decoder: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg, "
        "or decompress it (gdcmconv --raw)",
    ):
        if frames > 1:
            ds.pixel_array_options(index=0)
        arr = ds.pixel_array
    if frames > 1:
        warnings.warn(f"{path} has {frames} frames; reading only the first", stacklevel=4)
    if channels == 3:
        return np.ascontiguousarray(arr[..., :3].astype(np.uint8 if bits <= 8 else np.uint16)), bits

    signed = int(ds.get("PixelRepresentation", 0)) == 1
    bits_stored = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2**bits_stored - 1)
    # Unused high bits may hold overlay data or junk; keep values within the stored range.
    arr = np.clip(arr, lo, hi)
    invert = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1"
    if dtype != "float32":
        arr = arr.astype(dtype)
        if invert:  # MONOCHROME1: low values are bright; flip so that bright = high, as for every other file
            arr = (hi - arr).astype(dtype)
        return arr, bits
    from pydicom.pixels import apply_modality_lut

    with _wrap_errors(path, "DICOM", "check RescaleSlope/RescaleIntercept or the Modality LUT of the file"):
        out = np.asarray(apply_modality_lut(arr, ds), dtype=np.float32)
        if invert:  # flip within the rescaled range of the stored values
            ends = np.asarray(apply_modality_lut(np.array([lo, hi], dtype=arr.dtype), ds), dtype=np.float32)
            out = ends.min() + ends.max() - out
    return out, 32


# ------------------------------------------------------------------------------------------------ public API


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Size, channels, bit depth and dtype of an image, reading only its header where the format allows.

    Raises:
        ImageReadError: missing, empty, unsupported or unreadable file.
    """
    path, fmt = _check_file(path)
    if fmt == "TIFF":
        return _info_tiff(path)
    if fmt == "DICOM":
        return _info_dicom(path)
    return _info_pil(path, fmt)


def _read(path: str | os.PathLike, palette_indices: bool = False) -> RawImage:
    path, fmt = _check_file(path)
    if fmt == "TIFF":
        arr, bits = _read_tiff(path)
    elif fmt == "DICOM":
        arr, bits = _read_dicom(path)
    else:
        arr, bits = _read_pil(path, fmt, palette_indices)
    return RawImage(arr, bits, path)


def read_raw(path: str | os.PathLike) -> RawImage:
    """Read an image in its own dtype and bit depth.

    PNG (8/16-bit, 16-bit colour via OpenCV), JPEG and BMP are read with PIL (EXIF orientation applied);
    TIFF with tifffile (first page of multi-page files, with a warning); DICOM/DICONDE with pydicom
    (RescaleSlope/Intercept applied, MONOCHROME1 inverted so bright = high, bit depth from BitsStored).
    Palette images become grayscale or RGB; alpha channels are dropped; 1-bit images become 0/255 uint8.

    Raises:
        ImageReadError: missing, empty, truncated, unsupported or over-large (see MAX_PIXELS) file.
    """
    return _read(path)


def normalize_intensity(pixels: np.ndarray, cfg: IntensityConfig, bit_depth: int) -> np.ndarray:
    """Map raw pixel values to float32 in [0, 1] as `cfg` says (see IntensityConfig).

    "dtype" divides integers by 2**bit_depth - 1 (values above are clipped); float images in [0, 1] are only
    clipped, others are min-max scaled. "minmax" and "percentile" statistics are taken per image over all
    channels (keeping colour balance); a flat image (max == min) falls back to "dtype" scaling rather than
    dividing by zero. "window" clips to [low, high] in raw units. NaNs become 0.
    """
    pixels = np.asarray(pixels)
    if not (np.issubdtype(pixels.dtype, np.number) or pixels.dtype == np.bool_):
        raise ConfigError(f"normalize_intensity needs numeric pixels, got dtype {pixels.dtype}")
    is_int = not np.issubdtype(pixels.dtype, np.floating)
    return _normalize(pixels.astype(np.float32, copy=False), cfg, bit_depth, is_int)


def _normalize(x: np.ndarray, cfg: IntensityConfig, bit_depth: int, is_int: bool) -> np.ndarray:
    def by_dtype() -> np.ndarray:
        if is_int:
            if not 1 <= int(bit_depth) <= 32:
                raise ConfigError(f"bit_depth must be between 1 and 32 for integer pixels, got {bit_depth}")
            return x / np.float32(2 ** int(bit_depth) - 1)
        lo, hi = np.nanmin(x), np.nanmax(x)
        return x if lo >= 0 and hi <= 1 else scale(lo, hi)

    def scale(lo: float, hi: float) -> np.ndarray:
        if not hi > lo:  # flat image: nothing to stretch
            return by_dtype() if is_int else np.clip(x, 0, 1)
        return (x - np.float32(lo)) / np.float32(hi - lo)

    if x.size == 0:
        return x.astype(np.float32)
    if cfg.mode == "dtype":
        out = by_dtype()
    elif cfg.mode == "minmax":
        out = scale(np.nanmin(x), np.nanmax(x))
    elif cfg.mode == "window":
        out = scale(cfg.low, cfg.high)
    elif cfg.mode == "percentile":
        lo, hi = np.nanpercentile(x, [cfg.low, cfg.high])
        out = scale(lo, hi)
    else:  # IntensityConfig validates its mode; this guards hand-made objects
        raise ConfigError(f"intensity mode {cfg.mode!r} is unknown; use minmax, window, percentile or dtype")
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)  # a copy: the caller's pixels stay untouched
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


_DEFAULT_INTENSITY = IntensityConfig()  # frozen, so one shared default is safe


def load_image(
    path: str | os.PathLike, intensity: IntensityConfig = _DEFAULT_INTENSITY, in_chans: int = 1
) -> np.ndarray:
    """Read an image as float32 (C, H, W) in [0, 1].

    Args:
        path: image file (any of SUPPORTED_SUFFIXES).
        intensity: how raw values map to [0, 1].
        in_chans: 1 = grayscale (RGB is converted to BT.601 luma), 3 = RGB (grayscale is replicated).

    Raises:
        ImageReadError: the file cannot be read. ConfigError: in_chans is not 1 or 3.
    """
    if in_chans not in (1, 3):
        raise ConfigError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")
    raw = read_raw(path)
    return pixels_to_image(raw.pixels, raw.bit_depth, intensity, in_chans)


def pixels_to_image(
    pixels: np.ndarray, bit_depth: int, intensity: IntensityConfig = _DEFAULT_INTENSITY, in_chans: int = 1
) -> np.ndarray:
    """Decoded pixels (H, W) or (H, W, 3) in their own dtype → float32 (C, H, W) in [0, 1] (as `load_image`).

    Raises:
        ConfigError: in_chans is not 1 or 3, or the pixels are not (H, W) / (H, W, 3).
    """
    if in_chans not in (1, 3):
        raise ConfigError(f"in_chans must be 1 (grayscale) or 3 (RGB), got {in_chans}")
    if not (pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[-1] == 3)):
        raise ConfigError(f"pixels have shape {pixels.shape}; give (H, W) grayscale or (H, W, 3) RGB pixels")
    is_int = not np.issubdtype(pixels.dtype, np.floating)
    x = pixels.astype(np.float32, copy=False)
    if x.ndim == 3 and in_chans == 1:
        x = x @ _LUMA  # luma before scaling so that "minmax" stretches the gray image itself
    x = _normalize(x, intensity, bit_depth, is_int)
    if x.ndim == 2:
        x = x[None]
        if in_chans == 3:
            x = np.repeat(x, 3, axis=0)
    else:
        x = np.moveaxis(x, -1, 0)
    return np.ascontiguousarray(x, dtype=np.float32)


def _describe_mask(ref: object) -> str:
    if isinstance(ref, tuple):
        return f"{_describe_mask(ref[0])} (+{len(ref) - 1} more RLE masks)" if ref else "() (no RLE masks)"
    if isinstance(ref, RleMask):
        text = " ".join(ref.rle.split())
        return f"RLE {text[:30] + '…' if len(text) > 30 else text!r}"
    return str(ref)


#: Largest share of mask pixels that may lie strictly between 0 and full scale as soft (anti-aliased) edges.
SOFT_EDGE_FRACTION = 0.05


def _binary_values(arr: np.ndarray, bit_depth: int) -> np.ndarray | None:
    """The mask as bool, or None when its values are not a binary mask.

    Binary: values within {0, 1}, {0, 255} or {0, full scale}. Soft-edged: a mask saved with anti-aliasing or
    resampling (a third of the magnetic-tile masks have such edges), i.e. full-scale integers with a clearly
    "on" maximum and at most SOFT_EDGE_FRACTION of pixels in between; it is thresholded at half scale. Small
    values such as {0, 7} are class indices, not soft edges, and are refused rather than silently dropped.
    """
    if arr.dtype == np.bool_:
        return arr
    if arr.size == 0:
        return arr.astype(bool)
    if arr.dtype == np.uint8:  # bincount is much faster than unique's sort on large masks
        counts = np.bincount(arr.ravel(), minlength=256)
        values = np.flatnonzero(counts)
    else:
        values = np.unique(arr)
    top = 2**bit_depth - 1 if 8 <= bit_depth <= 16 else None
    for on in {1, 255, top or 1}:
        if np.isin(values, (0, on)).all():
            return arr == on
    if top is not None and values[0] >= 0 and top / 2 < values[-1] <= top:
        between = int(counts[1:-1].sum()) if arr.dtype == np.uint8 else int(((arr > 0) & (arr < top)).sum())
        if between <= SOFT_EDGE_FRACTION * arr.size:
            return arr > top // 2
    return None


def _mask_from_file(path: Path) -> np.ndarray:
    raw = _read(path, palette_indices=True)
    arr = raw.pixels
    if arr.ndim == 3:
        if not (arr == arr[..., :1]).all():
            raise DatasetError(
                f"mask {path} is a colour image with differing channels; a mask must be binary grayscale "
                "(0 = background, 255 or 1 = defect): convert it to grayscale and threshold it"
            )
        arr = arr[..., 0]
    mask = _binary_values(arr, raw.bit_depth)
    if mask is None:
        values = np.unique(arr)
        shown = ", ".join(f"{v:g}" for v in values[:8].tolist()) + (", …" if len(values) > 8 else "")
        hint = (
            "it looks like a grayscale or lossy (JPEG) image: threshold it (e.g. mask > 127) and save as PNG"
            if len(values) > 3 else
            "save defect pixels as 255 (or 1) and background as 0; class indices need one mask per class"
        )
        raise DatasetError(
            f"mask {path} has values {{{shown}}} ({len(values)} distinct); a mask must hold only 0 and 1 or "
            f"0 and 255 (soft edges up to {SOFT_EDGE_FRACTION:.0%} of pixels are thresholded); {hint}"
        )
    return mask


def load_mask(
    ref: str | os.PathLike | RleMask | tuple[RleMask, ...],
    expected_shape: tuple[int, int] | None = None,
    image_path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Load a binary defect mask as bool (H, W).

    Args:
        ref: a mask file (PNG/BMP/TIFF with values {0,1}, {0,255} or 1-bit; 0/255 masks with anti-aliased
            edges are thresholded at 128), an RleMask, or a tuple of RleMask whose union is the mask.
        expected_shape: (height, width) of the image the mask belongs to; checked when given.
        image_path: that image, named in the size-mismatch error.

    Raises:
        ImageReadError: the mask file cannot be read. DatasetError (a FlawscopeError): values are not binary,
        or the mask size differs from expected_shape.
    """
    if isinstance(ref, str | os.PathLike):
        mask = _mask_from_file(Path(ref))
    elif isinstance(ref, RleMask):
        mask = rle_decode(ref.rle, ref.height, ref.width)
    elif isinstance(ref, tuple) and all(isinstance(r, RleMask) for r in ref):
        if not ref:
            if expected_shape is None:
                raise DatasetError("an empty tuple of RLE masks has no size; give expected_shape")
            mask = np.zeros(expected_shape, dtype=bool)
        else:
            sizes = {(r.height, r.width) for r in ref}
            if len(sizes) > 1:
                raise DatasetError(f"RLE masks of one image differ in size {sorted(sizes)}; they must agree")
            mask = np.zeros(next(iter(sizes)), dtype=bool)
            for r in ref:
                mask |= rle_decode(r.rle, r.height, r.width)
    else:
        raise DatasetError(
            f"mask reference must be a file path, an RleMask or a tuple of RleMask, got {type(ref).__name__}"
        )
    if expected_shape is not None and tuple(mask.shape) != tuple(expected_shape):
        (mh, mw), (h, w) = mask.shape, expected_shape
        image = f"image {image_path}" if image_path is not None else "the image"
        raise DatasetError(
            f"mask {_describe_mask(ref)} is {mh}×{mw} but {image} is {h}×{w}; masks must match their image"
        )
    return mask


def _to_container(path: Path, array: np.ndarray, bit_depth: int) -> np.ndarray:
    """Integer pixels for a file of the given bit depth (uint8 up to 8 bits, else uint16)."""
    if not 1 <= bit_depth <= 16:
        raise ConfigError(f"write_image {path}: bit_depth must be 1..16 (usually 8 or 16), got {bit_depth}")
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    top = 2**bit_depth - 1
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] != 3):
        raise ConfigError(f"write_image {path}: expected an (H, W) or (H, W, 3) array, got {array.shape}")
    if array.dtype == np.bool_:
        return array.astype(dtype) * dtype(top)
    if np.issubdtype(array.dtype, np.floating):
        lo, hi = (float(np.nanmin(array)), float(np.nanmax(array))) if array.size else (0.0, 0.0)
        if lo < 0 or hi > 1 or np.isnan(array).any():
            raise ConfigError(
                f"write_image {path}: float pixels must lie in [0, 1] (got {lo:g}..{hi:g}); scale them "
                "first, e.g. with normalize_intensity, or pass integer pixels"
            )
        return np.round(array * top).astype(dtype)
    if not np.issubdtype(array.dtype, np.integer):
        raise ConfigError(f"write_image {path}: unsupported dtype {array.dtype}; use uint8, uint16 or float")
    if array.size and (array.min() < 0 or array.max() > top):
        raise ConfigError(
            f"write_image {path}: values {array.min()}..{array.max()} do not fit {bit_depth} bits "
            f"(0..{top}); "
            "pass a larger bit_depth or scale the data"
        )
    return array.astype(dtype)


def write_image(path: str | os.PathLike, array: np.ndarray, bit_depth: int = 8) -> Path:
    """Write pixels to PNG or TIFF (by suffix; JPEG/BMP for 8-bit only); parent folders are created.

    Args:
        path: output file; .png, .tif/.tiff, .jpg/.jpeg or .bmp.
        array: (H, W) or (H, W, 3); integers are written as they are, floats in [0, 1] are scaled to
            2**bit_depth - 1, bool becomes 0 / 2**bit_depth - 1.
        bit_depth: 8, 16, or a depth up to 16 stored in a 16-bit container (e.g. 12 for a 12-bit detector).

    Returns:
        The written path.
    """
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt not in ("PNG", "TIFF", "JPEG", "BMP"):
        raise ConfigError(f"write_image {path}: cannot write {path.suffix!r}; use .png, .tif, .jpg or .bmp")
    if fmt in ("JPEG", "BMP") and bit_depth > 8:
        raise ConfigError(f"write_image {path}: {fmt} holds 8 bits only; use .png/.tif for {bit_depth} bits")
    data = _to_container(path, np.asarray(array), bit_depth)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _wrap_errors(path, fmt, "check the folder is writable and the disk not full"):
        if fmt == "TIFF":
            import tifffile

            tifffile.imwrite(path, data, photometric="rgb" if data.ndim == 3 else "minisblack")
        elif data.ndim == 3 and data.dtype == np.uint16:  # PIL cannot write 16-bit colour PNG
            import cv2

            if not cv2.imwrite(str(path), cv2.cvtColor(data, cv2.COLOR_RGB2BGR)):
                raise OSError("OpenCV could not write the file")
        else:
            from PIL import Image

            options = {"quality": 95} if fmt == "JPEG" else {}
            Image.fromarray(np.ascontiguousarray(data)).save(path, **options)
    return path


def write_mask(path: str | os.PathLike, mask: np.ndarray) -> Path:
    """Write a binary mask (nonzero = defect) as an 8-bit 0/255 PNG (or lossless BMP/TIFF by suffix)."""
    path = Path(path)
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConfigError(f"write_mask {path}: expected an (H, W) mask, got shape {mask.shape}")
    if path.suffix.lower() not in (".png", ".bmp", ".tif", ".tiff"):
        raise ConfigError(f"write_mask {path}: masks must be lossless (.png/.bmp/.tif), not {path.suffix!r}")
    return write_image(path, mask.astype(bool), bit_depth=8)


def file_digest(path: str | os.PathLike) -> str:
    """SHA-1 hex digest of a file's bytes (for duplicate detection), read in chunks."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return hashlib.file_digest(f, "sha1").hexdigest()
    except FileNotFoundError:
        raise ImageReadError(path, "file not found", "check the path") from None
    except OSError as err:
        raise ImageReadError(path, f"cannot read the file ({err.strerror or err})") from None
