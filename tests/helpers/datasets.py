"""Writers of tiny datasets in every supported format (a few 32×32 images each), for everybody's tests.

Every `make_<format>_dataset(root, ...)` writes under `root` and returns the path to pass to `load_dataset`.
Images are written with PIL directly (not flawscope's writer) so reader tests check something. Defective
images carry a bright square whose mask/box is written with them; everything is deterministic in `seed`.
`FORMAT_MAKERS` maps format name -> maker, with `EXPECTED` giving what each maker's defaults produce.
`blob_image` / `write_blob_folder` make the blob task (a bright square at a seeded place) that training,
evaluation and prediction tests train or run small models on.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

SIZE = 32
_OK_NAMES = ("ok", "good", "free", "normal", "no_defect", "non_defective")
DEFECT_BOX = (8, 10, 16, 20)  # x1, y1, x2, y2 of the bright square in every defective image


def tiny_image(
    seed: int, defective: bool, size: int | tuple[int, int] = SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image, bool mask): smooth noise, plus a bright square at DEFECT_BOX when defective."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    img = rng.integers(60, 120, size=(h, w), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    if defective:
        x1, y1, x2, y2 = DEFECT_BOX
        mask[y1:y2, x1:x2] = True
        img[mask] = 230
    return img, mask


def blob_image(
    seed: int, defective: bool, size: int | tuple[int, int] = SIZE, blob: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 image, bool mask): dim noise (40..89); a defective image holds a bright (230) blob×blob square
    at a seeded place 2 px or more from the border, which is its mask. The blob task small models learn."""
    h, w = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    img = rng.integers(40, 90, size=(h, w), dtype=np.uint8)
    mask = np.zeros((h, w), dtype=bool)
    if defective:
        r, c = (int(v) for v in rng.integers(2, np.array([h, w]) - blob - 2))
        mask[r:r + blob, c:c + blob] = True
        img[mask] = 230
    return img, mask


def write_blob_folder(
    root: Path, n_per_class: int = 16, size: int = SIZE, seed: int = 0,
    classes: Sequence[str] = ("ok", "defect"), blob: int = 5,
) -> Path:
    """`folders` dataset root/<class>/<class>_<i>.png of `blob_image`s; every class but the first has a blob.

    Image i of the k-th class is drawn from seed + 1000·k + i alone, so the same call in another folder
    writes the same bytes.
    """
    for k, cls in enumerate(classes):
        for i in range(n_per_class):
            save(root / cls / f"{cls}_{i:03d}.png", blob_image(seed + 1000 * k + i, k > 0, size, blob)[0])
    return root


def save(path: Path, array: np.ndarray) -> Path:
    """Write an 8-bit image or a bool mask (saved 0/255) by suffix; parents are created."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    Image.fromarray(arr).save(path, **({"quality": 95} if path.suffix.lower() in (".jpg", ".jpeg") else {}))
    return path


def rle_encode(mask: np.ndarray) -> str:
    """Kaggle RLE (1-based starts, column-major), written here independently of flawscope.data.rle."""
    pixels = np.concatenate([[0], mask.astype(np.uint8).ravel(order="F"), [0]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(str(x) for x in runs)


def make_folders_dataset(
    root: Path, classes: dict[str, int] | None = None, empty: Sequence[str] = (), seed: int = 0,
    suffix: str = ".png",
) -> Path:
    """root/<class>/<class>_<i>.png; ok-like class names get clean images. Default: ok 3, defect 2."""
    classes = {"ok": 3, "defect": 2} if classes is None else classes
    for c, (name, n) in enumerate(sorted(classes.items())):
        for i in range(n):
            img = tiny_image(seed + 100 * c + i, name not in _OK_NAMES)[0]
            save(root / name / f"{name}_{i:03d}{suffix}", img)
    for name in empty:
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


def make_image_mask_dataset(
    root: Path, n: int = 4, defective: int = 2, mask_suffix: str = "_mask", unmasked: int = 0, seed: int = 0
) -> Path:
    """images/img_<i>.png + masks/img_<i><mask_suffix>.png; the first `defective` masks have defect pixels,
    the last `unmasked` images have no mask file."""
    for i in range(n):
        img, mask = tiny_image(seed + i, i < defective)
        save(root / "images" / f"img_{i:03d}.png", img)
        if i < n - unmasked:
            save(root / "masks" / f"img_{i:03d}{mask_suffix}.png", mask)
    return root


def make_magnetic_tile_dataset(root: Path, counts: dict[str, int] | None = None, seed: int = 0) -> Path:
    """MT_<Class>/Imgs/exp_<c>_<i>.jpg + .png masks. Default: Blowhole 2, Crack 1, Free 3."""
    counts = {"Blowhole": 2, "Crack": 1, "Free": 3} if counts is None else counts
    for c, (name, n) in enumerate(sorted(counts.items())):
        for i in range(n):
            img, mask = tiny_image(seed + 100 * c + i, name != "Free")
            stem = root / f"MT_{name}" / "Imgs" / f"exp{c}_num_{i}"
            save(stem.with_suffix(".jpg"), img)
            save(stem.with_suffix(".png"), mask)
    return root


def make_gdxray_dataset(
    root: Path, series: Sequence[str] = ("C0001", "C0002"), images: int = 3, welds: int = 0, seed: int = 0
) -> Path:
    """GDXray series <S>/<S>_000i.png; in each castings series image 1 has two boxes, image 2 one, the rest
    none (ok). welds > 0 adds W0001 (images, boxes on each) and W0002 (their masks)."""
    x1, y1, x2, y2 = DEFECT_BOX
    for s, name in enumerate(series):
        for i in range(1, images + 1):
            save(root / name / f"{name}_{i:04d}.png", tiny_image(seed + 100 * s + i, i <= 2)[0])
        # GDXray column order: index x1 x2 y1 y2 (floats, as in the release files)
        rows = [(1, x1, x2, y1, y2), (1, 20.5, 28.5, 2.0, 6.0), (2, x1, x2, y1, y2)]
        (root / name / "ground_truth.txt").write_text(
            "".join("".join(f"{v:16.7e}" for v in row) + "\n" for row in rows if row[0] <= images))
    if welds:
        rows = []
        for i in range(1, welds + 1):
            img, mask = tiny_image(seed + 1000 + i, True, size=(SIZE, 2 * SIZE))
            save(root / "W0001" / f"W0001_{i:04d}.png", img)
            save(root / "W0002" / f"W0002_{i:04d}.png", mask)
            rows.append((i, x1, x2, y1, y2))
        for name in ("W0001", "W0002"):
            (root / name / "ground_truth.txt").write_text(
                "".join("".join(f"{v:16.7e}" for v in row) + "\n" for row in rows))
    return root


def make_mvtec_dataset(
    root: Path, category: str = "bottle", train_good: int = 3, test_good: int = 1,
    defects: dict[str, int] | None = None, seed: int = 0,
) -> Path:
    """<category>/train/good, test/good, test/<type> with ground_truth/<type>/X_mask.png. Default: crack 2."""
    defects = {"crack": 2} if defects is None else defects
    cat = root / category
    for i in range(train_good):
        save(cat / "train" / "good" / f"{i:03d}.png", tiny_image(seed + i, False)[0])
    for i in range(test_good):
        save(cat / "test" / "good" / f"{i:03d}.png", tiny_image(seed + 50 + i, False)[0])
    for t, (name, n) in enumerate(sorted(defects.items())):
        for i in range(n):
            img, mask = tiny_image(seed + 100 * (t + 1) + i, True)
            save(cat / "test" / name / f"{i:03d}.png", img)
            save(cat / "ground_truth" / name / f"{i:03d}_mask.png", mask)
    return root


def make_dagm_dataset(
    root: Path, classes: int = 1, train: int = 4, test: int = 2, defective_every: int = 2, seed: int = 0
) -> Path:
    """Class<k>/{Train,Test}/NNNN.PNG + Label/Labels.txt (+ NNNN_label.PNG for every n-th image)."""
    for k in range(1, classes + 1):
        for split, n in (("Train", train), ("Test", test)):
            folder = root / f"Class{k}" / split
            lines = ["1"]  # the release's one-number header line
            for i in range(1, n + 1):
                bad = i % defective_every == 0
                img, mask = tiny_image(seed + 1000 * k + 100 * (split == "Test") + i, bad)
                save(folder / f"{i:04d}.PNG", img)
                label = f"{i:04d}_label.PNG" if bad else "0"
                if bad:
                    save(folder / "Label" / label, mask)
                lines.append(f"{i}\t{int(bad)}\t{i:04d}.PNG\t0\t{label}")
            (folder / "Label").mkdir(parents=True, exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n")
    return root


def make_neu_dataset(
    root: Path, classes: Sequence[str] = ("crazing", "scratches"), train: int = 2, val: int = 1,
    misplace_first_xml: bool = True, seed: int = 0,
) -> Path:
    """{train,validation}/images/<class>/<class>_<i>.jpg + annotations/*.xml (VOC, 1-based coordinates).

    With misplace_first_xml the xml of the first train image sits in validation/annotations (as crazing_240
    does in the release)."""
    x1, y1, x2, y2 = DEFECT_BOX
    for c, name in enumerate(classes):
        for i in range(1, train + val + 1):
            split = "train" if i <= train else "validation"
            stem = f"{name}_{i}"
            save(root / split / "images" / name / f"{stem}.jpg", tiny_image(seed + 100 * c + i, True)[0])
            xml_split = "validation" if (misplace_first_xml and c == 0 and i == 1) else split
            xml = (
                f"<annotation><filename>{stem}.jpg</filename><size><width>{SIZE}</width>"
                f"<height>{SIZE}</height><depth>1</depth></size><object><name>{name}</name><bndbox>"
                f"<xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax>"
                "</bndbox></object></annotation>\n"
            )
            (root / xml_split / "annotations").mkdir(parents=True, exist_ok=True)
            (root / xml_split / "annotations" / f"{stem}.xml").write_text(xml)
    return root


def make_severstal_dataset(
    root: Path, n: int = 4, defective: int = 2, old_layout: bool = False, seed: int = 0
) -> Path:
    """train_images/<id>.jpg (32×64) + train.csv; the first `defective` images have class 1 (and the first
    also class 3) runs. old_layout writes ImageId_ClassId,EncodedPixels with empty rows."""
    rows = []
    for i in range(n):
        img, mask = tiny_image(seed + i, i < defective, size=(SIZE, 2 * SIZE))
        image_id = f"{i:08x}a.jpg"
        save(root / "train_images" / image_id, img)
        runs = {}
        if i < defective:
            runs["1"] = rle_encode(mask)
            if i == 0:
                extra = np.zeros_like(mask)
                extra[0:4, 40:50] = True
                runs["3"] = rle_encode(extra)
        if old_layout:
            rows += [(f"{image_id}_{c}", runs.get(str(c), "")) for c in range(1, 5)]
        else:
            rows += [(image_id, c, r) for c, r in runs.items()]
    with (root / "train.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        old, new = ["ImageId_ClassId", "EncodedPixels"], ["ImageId", "ClassId", "EncodedPixels"]
        header = old if old_layout else new
        writer.writerow(header)
        writer.writerows(rows)
    return root


def make_manifest_dataset(
    root: Path, n: int = 4, defective: int = 2, splits: Sequence[str] = ("train", "train", "val", "test"),
    extra_columns: dict[str, Sequence[str]] | None = None, seed: int = 0,
) -> Path:
    """images/im_<i>.png (+ masks/ for defective) and manifest.csv with every column; returns the folder."""
    x1, y1, x2, y2 = DEFECT_BOX
    header = ["path", "label", "mask", "group", "split", "flaw_types", "boxes", "defective"]
    rows = []
    for i in range(n):
        bad = i < defective
        img, mask = tiny_image(seed + i, bad)
        save(root / "images" / f"im_{i}.png", img)
        if bad:
            save(root / "masks" / f"im_{i}.png", mask)
        rows.append([
            f"images/im_{i}.png", "defect" if bad else "ok", f"masks/im_{i}.png" if bad else "",
            f"part{i // 2}", splits[i % len(splits)], "pore;crack" if i == 0 else ("pore" if bad else ""),
            f"{x1} {y1} {x2} {y2}" if bad else "", "1" if bad else "0",
        ])
    for name, values in (extra_columns or {}).items():
        header.append(name)
        for row, value in zip(rows, values, strict=False):
            row.append(value)
    with (root / "manifest.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return root


FORMAT_MAKERS: dict[str, Callable[..., Path]] = {
    "folders": make_folders_dataset,
    "image_mask": make_image_mask_dataset,
    "magnetic_tile": make_magnetic_tile_dataset,
    "gdxray": make_gdxray_dataset,
    "mvtec": make_mvtec_dataset,
    "dagm": make_dagm_dataset,
    "neu": make_neu_dataset,
    "severstal": make_severstal_dataset,
    "manifest": make_manifest_dataset,
}

# What each maker writes with its defaults: samples, defective (None = decided from masks), masks, boxes.
EXPECTED: dict[str, dict[str, int | None]] = {
    "folders": {"samples": 5, "defective": 2, "masks": 0, "boxes": 0},
    "image_mask": {"samples": 4, "defective": None, "masks": 4, "boxes": 0},
    "magnetic_tile": {"samples": 6, "defective": 3, "masks": 6, "boxes": 0},
    "gdxray": {"samples": 6, "defective": 4, "masks": 0, "boxes": 6},
    "mvtec": {"samples": 6, "defective": 2, "masks": 2, "boxes": 0},
    "dagm": {"samples": 6, "defective": 3, "masks": 3, "boxes": 0},
    "neu": {"samples": 6, "defective": 6, "masks": 0, "boxes": 6},
    "severstal": {"samples": 4, "defective": 2, "masks": 4, "boxes": 0},
    "manifest": {"samples": 4, "defective": 2, "masks": 2, "boxes": 2},
}
