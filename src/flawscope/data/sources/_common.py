"""What every format indexer shares: the caller's options, bad-file handling and class naming rules."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flawscope.data.sample import DatasetIndex, Sample, SkippedFile
from flawscope.errors import DatasetError, ImageReadError

if TYPE_CHECKING:
    from flawscope.data.io import ImageInfo

OnBadFile = Literal["error", "skip"]

SKIP_HINT = 'use on_bad_file="skip" (CLI: --on-bad-file skip) to leave it out and list it'

# Class names that mean "no defect" (MT_Free, good, OK, no_defect, non-defective, defect_free, front_ok),
# and, with ok/good/normal first, Kaggle-style names (ok_front, good_parts, normal-1). Words are whole:
# "okay", "broken" and "goodness" are not ok. A "not"/"no"/"non" word (or a defect word after the ok word)
# inverts or contradicts the meaning, so such names count as defective.
_SEP = r"[_\- ]"
_NEGATION = rf"(?:not|no|non){_SEP}"
_DEFECT_WORD = r"(?:not|no|non|def|defects?|defective|bad|ng|nok|faulty|fault|fail(?:ed)?|reject(?:ed)?)"
_OK_NAME = re.compile(
    # One leading word, then the ok word: ok, front_ok, MT_Free, no_defect.
    rf"^(?:(?!{_NEGATION})[a-z0-9]+{_SEP})?"
    rf"(?:ok|good|free|normal|no{_SEP}?defects?|non{_SEP}?defective|defect{_SEP}?free)$"
    # The ok word first, then words that are not defect words: ok_front, good_parts, normal-1.
    rf"|^(?:ok|good|normal|no{_SEP}?defects?|non{_SEP}?defective|defect{_SEP}?free)"
    rf"(?:{_SEP}+(?!{_DEFECT_WORD}(?:{_SEP}|$))[a-z0-9]+)+$",
    re.IGNORECASE,
)


def is_ok_name(name: str) -> bool:
    """True when a class name means "no defect" (ok, good, free, normal, no_defect, front_ok, ok_front)."""
    return bool(_OK_NAME.match(name.strip()))


def image_suffixes() -> frozenset[str]:
    """Lower-case image suffixes the image reader supports (".png", ".jpg", ...)."""
    from flawscope.data.io import SUPPORTED_SUFFIXES

    return frozenset(s.lower() for s in SUPPORTED_SUFFIXES)


def list_images(folder: Path, exclude: Iterable[str] = ()) -> list[Path]:
    """Image files directly inside a folder (case-insensitive suffix), sorted; `exclude`: stem endings.

    Hidden files (".DS_Store", "._x.png" from macOS) are ignored.
    """
    suffixes = image_suffixes()
    excl = tuple(exclude)
    return sorted(
        p for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith(".")
        and not (excl and p.stem.endswith(excl))
    )


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def order_classes(names: Iterable[str], defective: Iterable[str]) -> list[str]:
    """Class order: ok classes first, then defective ones, each sorted.

    Keeps the user's names while honouring the binary convention "index 1 = defective" (["ok", "defect"],
    ["good", "crack"]); multi-class sets stay deterministic.
    """
    bad = set(defective)
    names = sorted(set(names))
    return [n for n in names if n not in bad] + [n for n in names if n in bad]


@dataclass
class SourceContext:
    """The caller's options, handed to every indexer, and the files it left out.

    Attributes:
        on_bad_file: "error" raises on an unreadable file; "skip" records it in `skipped`.
        defective_classes: user-chosen defective class names, or None for `ok_classes` or the ok-name rule.
        ok_classes: user-chosen defect-free class names (every other class is defective), or None;
            exclusive with defective_classes.
        check: "header" reads image/mask headers while indexing; "none" only lists files.
        skipped: files left out so far.
    """

    on_bad_file: OnBadFile = "error"
    defective_classes: frozenset[str] | None = None
    ok_classes: frozenset[str] | None = None
    check: Literal["none", "header"] = "header"
    skipped: list[SkippedFile] = field(default_factory=list)
    _info: dict[Path, ImageInfo] = field(default_factory=dict, repr=False)

    def bad(self, path: Path, reason: str) -> None:
        """Report an unusable file: raise (on_bad_file="error") or record it as skipped."""
        if self.on_bad_file == "error":
            raise ImageReadError(path, reason, SKIP_HINT)
        self.skipped.append(SkippedFile(Path(path), reason))

    def info(self, path: Path, role: str = "image") -> ImageInfo | None:
        """Header of an image or mask file, or None after reporting it as bad (missing or unreadable)."""
        from flawscope.data.io import image_info

        if path in self._info:
            return self._info[path]
        if not path.is_file():
            self.bad(path, f"{role} file not found")
            return None
        try:
            info = image_info(path)
        except ImageReadError as err:
            self.bad(path, f"{role} unreadable: {getattr(err, 'reason', err)}")
            return None
        self._info[path] = info
        return info

    def usable(self, image: Path, mask: Path | None = None) -> bool:
        """Whether a sample's files pass the requested check; a bad mask leaves its image out too.

        With check="header" the headers must be readable and a mask must be its image's size (a mismatch is a
        DatasetError, or a skipped pair); with check="none" only existence is checked (a stat call), so
        annotation rows that name missing files are still caught.
        """
        for path, role in ((image, "image"), (mask, f"mask of {image.name}")):
            if path is None:
                continue
            if self.check == "header":
                if self.info(path, role) is None:
                    if role != "image":
                        self.skipped.append(SkippedFile(image, f"its mask {path} is unusable"))
                    return False
            elif not path.is_file():
                self.bad(path, f"{role} file not found")
                return False
        if mask is not None and self.check == "header":
            return self._mask_fits(image, mask)
        return True

    def _mask_fits(self, image: Path, mask: Path) -> bool:
        """Whether a mask's header size equals its image's; a mismatch is refused here, not mid-training."""
        im, m = self._info[image], self._info[mask]
        if (m.height, m.width) == (im.height, im.width):
            return True
        reason = (f"mask {mask} is {m.height}×{m.width} but image {image} is {im.height}×{im.width}; masks "
                  "must match their image")
        if self.on_bad_file == "error":
            raise DatasetError(f"{reason}: re-export the mask at {im.height}×{im.width} (or check that it is "
                               f"paired with the right image), or {SKIP_HINT}")
        self.skipped.append(SkippedFile(mask, reason))
        self.skipped.append(SkippedFile(image, f"its mask {mask} is unusable"))
        return False

    def is_defective(self, class_name: str) -> bool:
        """Whether a class counts as defective: the user's defective or ok list, else the ok-name rule."""
        if self.defective_classes is not None:
            return class_name in self.defective_classes
        if self.ok_classes is not None:
            return class_name not in self.ok_classes
        return not is_ok_name(class_name)

    def resolve_defective(self, classes: Iterable[str], source: Path) -> frozenset[str]:
        """The defective subset of `classes`; an error when user-given names are not dataset classes."""
        classes = set(classes)
        for what, given in (("defective", self.defective_classes), ("ok", self.ok_classes)):
            unknown = sorted((given or frozenset()) - classes)
            if unknown:
                raise DatasetError(
                    f"{what} classes {unknown} are not classes of {source}; "
                    f"its classes are {sorted(classes)}"
                )
        return frozenset(c for c in classes if self.is_defective(c))


def make_index(
    root: Path, fmt: str, samples: list[Sample], classes: list[str], defective: Iterable[str]
) -> DatasetIndex:
    """A DatasetIndex with samples sorted by image path (then crop), the order every source promises."""
    samples = sorted(samples, key=lambda s: (str(s.image), s.crop or (0, 0, 0, 0)))
    return DatasetIndex(root, fmt, samples, list(classes), frozenset(defective))


def binary_label(defective: bool | None) -> str:
    """Label in the binary convention: "defect", "ok", or "" when unknown."""
    if defective is None:
        return ""
    return "defect" if defective else "ok"


BINARY_CLASSES = ["ok", "defect"]
