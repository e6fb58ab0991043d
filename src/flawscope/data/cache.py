"""Decode each image once: an in-memory LRU of decoded arrays, with an optional on-disk .npy store."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flawscope.data.config import IntensityConfig
from flawscope.data.sample import MaskRef, RleMask
from flawscope.errors import ConfigError, ImageReadError

# Formats whose decoding costs more than reading an .npy back (lossy codecs, DICOM's parsing).
_DEFAULT_INTENSITY = IntensityConfig()
SLOW_SUFFIXES = frozenset({".jpg", ".jpeg", ".dcm", ".dicom", ".jp2", ".j2k"})


@dataclass
class CacheStats:
    """What the cache did: hits, misses (decodes), disk hits, decode seconds, bytes and items held."""

    hits: int = 0
    misses: int = 0
    disk_hits: int = 0
    decode_seconds: float = 0.0
    bytes: int = 0
    items: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses + self.disk_hits
        return (self.hits + self.disk_hits) / total if total else 0.0


def _decode_image(path: Path, intensity: IntensityConfig, in_chans: int) -> np.ndarray:
    from flawscope.data import io

    return io.load_image(path, intensity, in_chans)


def _decode_mask(ref: MaskRef, shape: tuple[int, int] | None, image_path: Path | None) -> np.ndarray:
    from flawscope.data import io

    return io.load_mask(ref, shape, image_path)


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError as err:
        raise ImageReadError(path, err.strerror or "cannot stat the file", "check the path exists") from None
    return str(path.resolve()), st.st_mtime_ns, st.st_size


class DecodeCache:
    """Decoded images and masks keyed by (path, mtime, size, intensity, in_chans).

    The in-memory store is a least-recently-used cache bounded by `max_bytes`; arrays are returned
    read-only because they are shared by every patch of the image. With `disk_dir`, images from slow
    formats (JPEG, DICOM) are also stored as .npy so later runs and other DataLoader workers skip decoding.
    Each DataLoader worker process holds its own in-memory store.

    Args:
        max_bytes: memory budget of the in-memory store (an array larger than it is returned but not kept).
        disk_dir: folder for the .npy store; None to keep everything in memory only.
    """

    def __init__(self, max_bytes: int = 2 * 1024**3, disk_dir: str | Path | None = None) -> None:
        if max_bytes < 0:
            raise ConfigError(f"cache max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self.stats = CacheStats()
        self._store: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Workers started by spawn get an empty store (not a copy of gigabytes) and a fresh lock.
        state = self.__dict__.copy()
        state["_store"], state["stats"] = OrderedDict(), CacheStats()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Drop the in-memory store (the disk store stays)."""
        with self._lock:
            self._store.clear()
            self.stats.bytes = self.stats.items = 0

    def get_image(
        self, path: str | Path, intensity: IntensityConfig = _DEFAULT_INTENSITY, in_chans: int = 1
    ) -> np.ndarray:
        """The decoded image, float32 (C, H, W) in [0, 1], read-only; decoded only on the first request."""
        path = Path(path)
        key = ("image", *_file_key(path), str(intensity), in_chans)
        found = self._lookup(key)
        if found is not None:
            return found
        disk = self._disk_path(key) if path.suffix.lower() in SLOW_SUFFIXES else None
        if disk is not None and disk.is_file():
            array = np.load(disk)
            with self._lock:
                self.stats.disk_hits += 1
        else:
            array = self._timed(_decode_image, path, intensity, in_chans)
            if disk is not None:
                self._save_disk(disk, array)
        return self._insert(key, np.ascontiguousarray(array, dtype=np.float32))

    def get_mask(
        self, ref: MaskRef, shape: tuple[int, int] | None = None, image_path: str | Path | None = None
    ) -> np.ndarray:
        """The decoded mask, bool (H, W), read-only; `shape` and `image_path` check it matches its image."""
        image_path = Path(image_path) if image_path is not None else None
        if isinstance(ref, RleMask | tuple):
            ident: tuple = ("rle", ref)
        else:
            ref = Path(ref)
            ident = ("file", *_file_key(ref))
        key = ("mask", *ident, tuple(shape) if shape is not None else None)
        found = self._lookup(key)
        if found is not None:
            return found
        array = self._timed(_decode_mask, ref, shape, image_path)
        return self._insert(key, np.ascontiguousarray(array, dtype=bool))

    def _lookup(self, key: tuple) -> np.ndarray | None:
        with self._lock:
            array = self._store.get(key)
            if array is not None:
                self._store.move_to_end(key)
                self.stats.hits += 1
            return array

    def _timed(self, fn: Any, *args: Any) -> np.ndarray:
        start = time.perf_counter()
        array = fn(*args)
        with self._lock:
            self.stats.misses += 1
            self.stats.decode_seconds += time.perf_counter() - start
        return array

    def _insert(self, key: tuple, array: np.ndarray) -> np.ndarray:
        array.setflags(write=False)
        if array.nbytes > self.max_bytes:
            return array
        with self._lock:
            if key not in self._store:
                self._store[key] = array
                self.stats.bytes += array.nbytes
            while self.stats.bytes > self.max_bytes:
                _, old = self._store.popitem(last=False)
                self.stats.bytes -= old.nbytes
            self.stats.items = len(self._store)
        return array

    def _disk_path(self, key: tuple) -> Path | None:
        if self.disk_dir is None:
            return None
        digest = hashlib.sha1(repr(key).encode()).hexdigest()
        return self.disk_dir / f"{digest}.npy"

    def _save_disk(self, target: Path, array: np.ndarray) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a worker never reads a half-written file.
        tmp = target.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp.npy")
        np.save(tmp, array)
        tmp.replace(target)
