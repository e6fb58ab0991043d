"""`flawscope data`: inspect datasets before training (`data summary`, `data formats`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

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
    on_bad_file: Annotated[Literal["error", "skip"], typer.Option(
        "--on-bad-file",
        help="'error' stops at the first unreadable file; 'skip' leaves it out and lists it.")] = "error",
    defective_class: Annotated[list[str] | None, typer.Option(
        "--defective-class", help="A class name that counts as defective (repeat for several); "
        "default: every class except ok-like names (ok, good, free, normal, ...).")] = None,
    deep: Annotated[bool, typer.Option("--deep", help="Also decode masks: defect status from mask pixels, "
                                       "masks that contradict labels.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the summary as JSON here.")] = (
        None
    ),
) -> None:
    """Count classes, splits, groups, sizes, masks and boxes of a dataset, and list its problems."""
    import json

    from rich.console import Console

    from flawscope.data.sources import load_dataset
    from flawscope.data.summary import summarize

    console = Console()
    with console.status(f"indexing {root} ..."):
        index = load_dataset(root, format=format, on_bad_file=on_bad_file,
                             defective_classes=defective_class or None)
    with console.status(f"reading headers of {len(index)} samples ..."):
        summary = summarize(index, deep=deep)
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
    table = Table("severity", "kind", "problem", title=f"{len(s.problems)} problems")
    style = {"error": "red", "warning": "yellow", "info": "cyan"}
    for p in s.problems[:_MAX_PROBLEMS_SHOWN]:
        # Paths relative to the dataset root keep the distinguishing part visible in a narrow terminal.
        message = p.message.replace(f"{s.root}/", "")
        table.add_row(f"[{style[p.severity]}]{p.severity}[/]", p.kind, message, overflow="fold")
    if len(s.problems) > _MAX_PROBLEMS_SHOWN:
        more = len(s.problems) - _MAX_PROBLEMS_SHOWN
        table.add_row("", "", f"... {more} more (all of them in --json FILE)")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add the `data` command group to the app."""
    app.add_typer(data_app, name="data")
