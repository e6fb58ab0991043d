"""`flawscope data`: inspect and prepare datasets (`summary`, `formats`, `patches`, `split`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from flawscope.data.summary import DECODE_MAX_IMAGES

if TYPE_CHECKING:
    from rich.console import Console

    from flawscope.data.summary import DatasetSummary

data_app = typer.Typer(
    help="Inspect datasets: formats, counts, image sizes, problems.", no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Problems shown in the terminal; the --json file always holds all of them.
_MAX_PROBLEMS_SHOWN = 25


@data_app.command("summary")
def summary_command(
    root: Annotated[Path, typer.Argument(help="Dataset folder, or a manifest .csv file.")],
    format: Annotated[str, typer.Option(
        "--format", "-f", help="Dataset format (see `flawscope data formats`), or 'auto'.")] = "auto",
    on_bad_file: Annotated[Literal["error", "skip"] | None, typer.Option(
        "--on-bad-file", hidden=True,
        help="Accepted for older scripts; a summary always lists every unreadable file.")] = None,
    defective_class: Annotated[list[str] | None, typer.Option(
        "--defective-class", help="A class name that counts as defective (repeat for several); "
        "default: every class except ok-like names (ok, good, free, normal, ...).")] = None,
    ok_class: Annotated[list[str] | None, typer.Option(
        "--ok-class", help="A defect-free class name (repeat for several); every other class is defective. "
        "Exclusive with --defective-class.")] = None,
    decode: Annotated[bool | None, typer.Option(
        "--decode/--no-decode", help="Decode every image and mask in full to find truncated or corrupt "
        f"files (default: decode when the dataset has at most {DECODE_MAX_IMAGES} images, else headers only)."
    )] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also decode masks: defect status from mask pixels, "
                                       "masks that contradict labels.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON here.")] = (
        None
    ),
) -> None:
    """Count classes, splits, groups, sizes, masks and boxes of a dataset, and list all of its problems.

    Unreadable files never stop the summary: each one is listed among the problems.
    """
    import json

    from rich.console import Console

    from flawscope.data.sources import load_dataset
    from flawscope.data.summary import summarize

    console = Console()
    with console.status(f"indexing {root} ..."):
        # Skip (and so list) bad files: a summary names them all instead of stopping at the first.
        index = load_dataset(root, format=format, on_bad_file="skip",
                             defective_classes=defective_class or None, ok_classes=ok_class or None)
    with console.status(f"checking {len(index)} samples ..."):
        summary = summarize(index, deep=deep, decode=decode)
    print_summary(summary, console)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
        console.print(f"summary written to {json_out}")


@data_app.command("formats")
def formats_command() -> None:
    """List the dataset formats `load_dataset` / `--format` understand."""
    from rich.console import Console
    from rich.table import Table

    from flawscope.data.sources import format_descriptions

    table = Table("format", "layout", title="dataset formats (--format NAME; 'auto' detects them)")
    for name, desc in format_descriptions().items():
        table.add_row(name, desc)
    Console().print(table)


def print_summary(summary: DatasetSummary, console: Console) -> None:
    """Print a `DatasetSummary` as rich tables."""
    from rich.table import Table

    s = summary
    overview = Table(title=f"{s.root} ({s.format})", show_header=False)
    overview.add_column(style="bold")
    overview.add_column(justify="right")
    rows = [
        ("samples", s.num_samples), ("image files", s.num_images), ("groups", s.num_groups),
        ("defective", s.defective), ("ok", s.ok), ("unknown", s.unknown), ("with mask", s.masks),
        ("boxes", f"{s.boxes} on {s.images_with_boxes} images"), ("skipped files", s.skipped),
    ]
    for key, value in rows:
        overview.add_row(key, str(value))
    console.print(overview)

    def counts(title: str, header: str, data: dict, limit: int = 15, mark: set | None = None) -> None:
        if not data:
            return
        table = Table(header, "count", title=title)
        for key, n in list(data.items())[:limit]:
            label = f"{key} [red](defective)[/]" if mark and key in mark else str(key)
            table.add_row(label, str(n))
        if len(data) > limit:
            table.add_row(f"... {len(data) - limit} more", "")
        console.print(table)

    counts("classes", "class", s.classes, limit=50, mark=set(s.defective_classes))
    counts("splits", "split", s.splits)
    counts("image sizes (H x W)", "size", s.image_sizes)
    counts("bit depth", "bits", s.bit_depths)
    counts("channels", "channels", s.channels)
    counts("flaw types", "flaw type", s.flaw_types)

    if not s.problems:
        console.print("[green]no problems found[/]")
        return
    from rich.table import Column

    table = Table("severity", "kind", Column("problem", overflow="fold"), title=f"{len(s.problems)} problems")
    style = {"error": "red", "warning": "yellow", "info": "cyan"}
    for p in s.problems[:_MAX_PROBLEMS_SHOWN]:
        # Paths relative to the dataset root keep the distinguishing part visible in a narrow terminal.
        message = p.message.replace(f"{s.root}/", "")
        table.add_row(f"[{style[p.severity]}]{p.severity}[/]", p.kind, message)
    if len(s.problems) > _MAX_PROBLEMS_SHOWN:
        more = len(s.problems) - _MAX_PROBLEMS_SHOWN
        table.add_row("", "", f"... {more} more (all of them in --json FILE)")
    console.print(table)


@data_app.command("patches")
def patches_command(
    root: Annotated[Path, typer.Argument(help="Dataset folder, or a manifest .csv file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Manifest .csv to write (patches as crops).")],
    size: Annotated[int, typer.Option(help="Patch side in pixels (native resolution, no resizing).")] = 64,
    overlap: Annotated[int, typer.Option(help="Overlap between neighbouring patches in pixels.")] = 0,
    min_defect_pixels: Annotated[int, typer.Option(
        help="A patch is defective when its mask (or boxes) covers at least this many pixels.")] = 1,
    source: Annotated[Literal["mask", "boxes"], typer.Option(help="Where defect pixels come from.")] = "mask",
    keep_ok_ratio: Annotated[float | None, typer.Option(
        help="Keep at most this many ok patches per defective patch (random, seeded).")] = None,
    xdefects: Annotated[bool, typer.Option(
        "--xdefects", help="GDXray Xdefects protocol: patches centred on each box plus defect-free patches "
        "of the same images (ignores --overlap/--source).")] = False,
    ok_per_image: Annotated[int, typer.Option(help="With --xdefects: defect-free patches per image.")] = 4,
    hard_ok_per_image: Annotated[int, typer.Option(
        help="With --xdefects: extra defect-free patches per image on the part, near its boxes (hard "
             "negatives; meta kind=hard).")] = 0,
    format: Annotated[str, typer.Option("--format", "-f", help="Dataset format, or 'auto'.")] = "auto",
    on_bad_file: Annotated[Literal["error", "skip"], typer.Option("--on-bad-file")] = "error",
    ok_class: Annotated[list[str] | None, typer.Option(
        "--ok-class", help="A defect-free class name (repeatable); every other class is defective.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for sampled patches.")] = 0,
) -> None:
    """Cut large images into patches at native resolution and write them as a manifest of crops."""
    from rich.console import Console

    from flawscope.data.patches import extract_patches, xdefects_patches
    from flawscope.data.sources import load_dataset
    from flawscope.data.sources.manifest import write_manifest

    console = Console()
    index = load_dataset(root, format=format, on_bad_file=on_bad_file, ok_classes=ok_class or None)
    if xdefects:
        patches = xdefects_patches(index, size=size, n_ok_per_image=ok_per_image, seed=seed,
                                   n_hard_ok_per_image=hard_ok_per_image)
    else:
        patches = extract_patches(index, size, overlap=overlap, min_defect_pixels=min_defect_pixels,
                                  source=source, keep_ok_ratio=keep_ok_ratio, seed=seed)
    write_manifest(patches, out)
    n_bad = sum(1 for s in patches.samples if s.defective)
    console.print(f"{len(patches)} patches ({n_bad} defective, {len(patches) - n_bad} ok) from {len(index)} "
                  f"images in {len({s.group for s in patches.samples})} groups -> {out}")
    for skipped in patches.skipped:
        console.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}")


@data_app.command("split")
def split_command(
    root: Annotated[Path, typer.Argument(help="Dataset folder, or a manifest .csv file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Split .csv to write.")],
    val_fraction: Annotated[float, typer.Option(help="Share of samples (by group) for validation.")] = 0.15,
    test_fraction: Annotated[float, typer.Option(help="Share of samples (by group) for test.")] = 0.15,
    by_group: Annotated[bool, typer.Option(help="Keep each group (series, cast part) in one split.")] = True,
    seed: Annotated[int, typer.Option(help="Split seed; the same seed gives the same split.")] = 0,
    format: Annotated[str, typer.Option("--format", "-f", help="Dataset format, or 'auto'.")] = "auto",
    ok_class: Annotated[list[str] | None, typer.Option(
        "--ok-class", help="A defect-free class name (repeatable); every other class is defective.")] = None,
) -> None:
    """Make a reproducible, group-aware, stratified train/val/test split and save it as a manifest."""
    from rich.console import Console

    from flawscope.data.sources import load_dataset
    from flawscope.data.splits import check_split, make_split, save_split

    index = load_dataset(root, format=format, ok_classes=ok_class or None)
    split = make_split(index, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed,
                       by_group=by_group)
    check_split(index, split, by_group=by_group)
    save_split(index, split, out)
    Console().print(f"split {split.sizes()} (seed {seed}, {split.method}) -> {out}")


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the app."""
    app.add_typer(data_app, name="data")
