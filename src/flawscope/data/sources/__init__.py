"""Dataset format indexers: each format turns a folder (or manifest) into a `DatasetIndex`.

A format is a module in this package that registers one function with `@register_source(name, detect=...)`.
The function takes `(root, ctx)`, where `ctx` is a `SourceContext` carrying the caller's options, and returns
a `DatasetIndex` whose samples are in a deterministic (sorted-path) order.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from flawscope.data.sample import DatasetIndex
from flawscope.data.sources._common import OnBadFile, SourceContext
from flawscope.errors import ConfigError, DatasetError, did_you_mean

__all__ = [
    "SourceContext",
    "SourceEntry",
    "detect_format",
    "format_descriptions",
    "list_formats",
    "load_dataset",
    "register_source",
]

SourceFn = Callable[[Path, SourceContext], DatasetIndex]
DetectFn = Callable[[Path], bool]


@dataclass(frozen=True)
class SourceEntry:
    """A registered dataset format.

    Attributes:
        name: the format's name (`--format NAME`).
        fn: indexer `fn(root, ctx) -> DatasetIndex`.
        detect: `detect(root) -> bool`, True when `root` looks like this format; None = never auto-detected.
        description: one line shown by `flawscope data formats`.
        priority: lower is tried first by `detect_format` (specific layouts before generic ones).
    """

    name: str
    fn: SourceFn
    detect: DetectFn | None
    description: str
    priority: int


_SOURCES: dict[str, SourceEntry] = {}

# Built-in format modules, imported on first use so `import flawscope` stays quick.
_BUILTIN_MODULES = (
    "manifest", "mvtec", "dagm", "neu", "severstal", "gdxray", "magnetic_tile", "image_mask", "folders",
)


def register_source(
    name: str, detect: DetectFn | None = None, description: str = "", priority: int = 50
) -> Callable[[SourceFn], SourceFn]:
    """Decorator: register an indexer `fn(root, ctx) -> DatasetIndex` under a format name.

    Args:
        name: format name; must be unique.
        detect: predicate telling whether a root folder looks like this format (used by format="auto").
        description: one-line description; defaults to the first line of the function's docstring.
        priority: detection order, lower first; generic layouts (plain class folders) use a high number.
    """

    def decorator(fn: SourceFn) -> SourceFn:
        if name in _SOURCES:
            owner = _SOURCES[name].fn.__module__
            raise ConfigError(f"dataset format {name!r} is already registered by {owner}")
        doc = description or ((fn.__doc__ or "").strip().splitlines() or [""])[0]
        _SOURCES[name] = SourceEntry(name, fn, detect, doc, priority)
        return fn

    return decorator


def _ensure_registered() -> None:
    for module in _BUILTIN_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def list_formats() -> list[str]:
    """Names of all registered dataset formats, sorted."""
    _ensure_registered()
    return sorted(_SOURCES)


def format_descriptions() -> dict[str, str]:
    """Format name -> one-line description, sorted by name."""
    _ensure_registered()
    return {name: _SOURCES[name].description for name in sorted(_SOURCES)}


def get_source(name: str) -> SourceEntry:
    """The registry entry of a format, or an error listing the valid names."""
    _ensure_registered()
    if name not in _SOURCES:
        hint = did_you_mean(name, _SOURCES)
        valid = ", ".join(sorted(_SOURCES))
        raise ConfigError(f"unknown dataset format {name!r}.{hint} Valid formats: {valid}")
    return _SOURCES[name]


def detect_format(root: str | Path) -> str:
    """Name of the format whose layout `root` matches (specific layouts are tried before generic ones).

    Raises:
        DatasetError: when `root` does not exist or matches no format; the message lists the formats.
    """
    _ensure_registered()
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset path {root} does not exist; pass a dataset folder or a manifest .csv")
    for entry in sorted(_SOURCES.values(), key=lambda e: (e.priority, e.name)):
        if entry.detect is not None and entry.detect(root):
            return entry.name
    lines = "\n".join(f"  {name}: {desc}" for name, desc in format_descriptions().items())
    raise DatasetError(
        f"cannot tell the dataset format of {root}: it matches none of the known layouts. "
        f"Arrange it as one of these formats (or write a manifest.csv) and pass --format NAME:\n{lines}"
    )


def load_dataset(
    root: str | Path,
    format: str = "auto",
    on_bad_file: OnBadFile = "error",
    defective_classes: Iterable[str] | None = None,
    check: Literal["none", "header"] = "header",
    ok_classes: Iterable[str] | None = None,
) -> DatasetIndex:
    """Index a dataset folder (or manifest file) into a `DatasetIndex`.

    Args:
        root: dataset folder, or a manifest .csv file.
        format: a name from `list_formats()`, or "auto" to detect it from the layout.
        on_bad_file: "error" raises on the first unreadable file; "skip" leaves it out and lists it in
            `index.skipped` with the reason.
        defective_classes: class names that count as defective (for formats with user-named classes:
            folders, manifest); default: every class except ok-like names (ok, good, free, normal, ...).
        check: "header" reads every image's (and mask's) header to catch unreadable files now rather than
            mid-training; "none" only lists files.
        ok_classes: class names that are defect-free, every other class being defective (e.g. ["class_0"]
            for class_0/ and class_1/ folders); exclusive with defective_classes. Formats that take defect
            status from their own annotations (mvtec, dagm, ...) accept only their ok class "ok" here.

    Returns:
        The index: samples in sorted-path order, class names, defective classes and skipped files.
    """
    if on_bad_file not in ("error", "skip"):
        raise ConfigError(f"on_bad_file must be 'error' or 'skip', got {on_bad_file!r}")
    if check not in ("none", "header"):
        raise ConfigError(f"check must be 'none' or 'header', got {check!r}")
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset path {root} does not exist; pass a dataset folder or a manifest .csv")
    name = detect_format(root) if format == "auto" else format
    entry = get_source(name)
    defective_set, ok_set = _class_set(defective_classes), _class_set(ok_classes)
    if defective_set is not None and ok_set is not None:
        raise ConfigError(
            f"give defective_classes or ok_classes, not both (got defective {sorted(defective_set)} and ok "
            f"{sorted(ok_set)}); the classes not named are the other kind"
        )
    ctx = SourceContext(
        on_bad_file=on_bad_file, defective_classes=defective_set, ok_classes=ok_set, check=check
    )
    index = entry.fn(root, ctx)
    if ok_set is not None:
        _check_ok_classes(index, ok_set, name)
    # Sources record bad files on ctx; the index lists them sorted so runs are reproducible.
    index.skipped = sorted([*index.skipped, *ctx.skipped], key=lambda s: str(s.path))
    if not index.samples:
        raise DatasetError(
            f"no images found in {root} as format {name!r}"
            + (f" ({len(index.skipped)} files were skipped: see index.skipped)" if index.skipped else "")
            + "; check the folder layout (see `flawscope data formats`) or pass another --format"
        )
    return index


def _class_set(names: Iterable[str] | None) -> frozenset[str] | None:
    """User-given class names as a set; a str is one name, not its letters."""
    if names is None:
        return None
    return frozenset([names] if isinstance(names, str) else names)


def _check_ok_classes(index: DatasetIndex, ok: frozenset[str], fmt: str) -> None:
    """Refuse ok class names the index does not have, or that its format's own annotations call defective."""
    unknown = sorted(ok - set(index.classes))
    if unknown:
        raise DatasetError(
            f"ok classes {unknown} are not classes of {index.root} ({fmt} format); "
            f"its classes are {index.classes}"
        )
    contradicted = sorted(ok & index.defective_classes)
    if contradicted:
        raise DatasetError(
            f"ok classes {contradicted} of {index.root} are defective by its {fmt} annotations, which decide "
            "defect status for this format; drop the ok-class option"
        )
