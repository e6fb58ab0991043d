"""`flawscope synth`: synthetic radiographs of castings (`generate`, the default) and simulated flaws on real
defect-free radiographs (`superimpose`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import click
import typer
from typer.core import TyperGroup

if TYPE_CHECKING:
    from flawscope.data.synth import SynthConfig


class _GenerateByDefault(TyperGroup):
    """`flawscope synth OUT ...` means `flawscope synth generate OUT ...`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["generate", *args]
        return super().parse_args(ctx, args)


synth_app = typer.Typer(
    cls=_GenerateByDefault,
    help="Synthetic X-ray data: `flawscope synth OUT` renders radiographs of cast parts with pores, cracks "
    "and inclusions (same as `synth generate OUT`); `flawscope synth superimpose SRC_DIR OUT` adds simulated "
    "flaws to real defect-free radiographs. Both write images/, masks/, manifest.csv and synth_config.yaml.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)

# Every option defaults to None = "not given", so only options the user typed override --config values.
_Config = Annotated[Path | None, typer.Option(
    "--config", help="YAML of SynthConfig fields (a previous synth_config.yaml works); options override it.")]
_NImages = Annotated[int | None, typer.Option("--n-images", "-n", help="Number of images (default: 200).")]
_Fraction = Annotated[float | None, typer.Option(
    "--defect-fraction", help="Fraction of images with flaws; the rest are defect-free (default: 0.5).")]
_Types = Annotated[str | None, typer.Option(
    "--flaw-types", help="Comma-separated flaw types: pore, crack, inclusion (default: all three).")]
_MaxFlaws = Annotated[int | None, typer.Option(
    "--max-flaws", help="Most flaws per defective image (default: 4).")]
_FlawSize = Annotated[str | None, typer.Option(
    "--flaw-size", help="MIN,MAX flaw footprint in px (cracks are 2-4x longer) (default: 3,14).")]
_Difficulty = Annotated[float | None, typer.Option(
    "--difficulty", help="0 = high-contrast flaws .. 1 = faint, near the noise (default: 0.5).")]
_Blur = Annotated[float | None, typer.Option("--blur-sigma", help="Detector PSF sigma in px (default: 0.8).")]
_Seed = Annotated[int | None, typer.Option("--seed", help="Base seed; image i uses seed + i (default: 0).")]
_Overwrite = Annotated[bool, typer.Option(
    "--overwrite", help="Write into a non-empty folder; only files of a previous synth run are replaced.")]


def _parse_pair(text: str, option: str, cast: type = float) -> tuple[Any, Any]:
    from flawscope.errors import ConfigError

    parts = [p for p in text.replace("x", ",").split(",") if p.strip()]
    try:
        values = [cast(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 2
    if len(values) != 2:
        raise ConfigError(
            f"{option} {text!r} is not understood; give one number or two as A,B (e.g. 256 or 3,14)"
        )
    return values[0], values[1]


def _build_config(config: Path | None, **options: Any) -> SynthConfig:
    """SynthConfig from an optional YAML file, then the options the user gave."""
    import yaml

    from flawscope.data.synth import SynthConfig
    from flawscope.errors import ConfigError

    values: dict[str, Any] = {}
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"--config {config} does not exist; give a YAML file of synth options")
        try:
            doc = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"--config {config} is not valid YAML ({err})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"--config {config} must hold a mapping of synth options")
        values = dict(doc.get("config", doc))  # a synth_config.yaml nests them under "config"
    if options.get("size") is not None:
        options["size"] = _parse_pair(options["size"], "--size", int)
    if options.get("flaw_size") is not None:
        options["flaw_size"] = _parse_pair(options["flaw_size"], "--flaw-size")
    if options.get("flaw_types") is not None:
        options["flaw_types"] = tuple(t.strip() for t in options["flaw_types"].split(",") if t.strip())
    values.update({k: v for k, v in options.items() if v is not None})
    return SynthConfig.from_dict(values)


def _print_summary(out: Path, seconds: float) -> None:
    from rich.console import Console

    from flawscope.data.synth import summarize_dataset

    Console().print(summarize_dataset(out).line(seconds), highlight=False)


@synth_app.command("generate")
def generate_command(
    out: Annotated[Path, typer.Argument(help="Output folder (created; must be empty unless --overwrite).")],
    n_images: _NImages = None,
    size: Annotated[str | None, typer.Option(
        "--size", help="Image size: 256 (square) or HxW, e.g. 256x320 (default: 256).")] = None,
    defect_fraction: _Fraction = None,
    flaw_types: _Types = None,
    max_flaws: _MaxFlaws = None,
    flaw_size: _FlawSize = None,
    difficulty: _Difficulty = None,
    noise: Annotated[float | None, typer.Option(
        "--noise", help="Photon + electronic noise scale; 0 = noise-free (default: 1).")] = None,
    blur_sigma: _Blur = None,
    heel: Annotated[float | None, typer.Option(
        "--heel", help="Heel-effect gradient and vignetting strength, 0..0.5 (default: 0.15).")] = None,
    bit_depth: Annotated[int | None, typer.Option("--bit-depth", help="16 or 8 (default: 16).")] = None,
    seed: _Seed = None,
    part: Annotated[str | None, typer.Option(
        "--part", help="wheel, plate or mixed (default: wheel).")] = None,
    n_parts: Annotated[int | None, typer.Option(
        "--n-parts", help="Distinct parts the images show; manifest group = part (default: 20).")] = None,
    material: Annotated[str | None, typer.Option(
        "--material", help="aluminium, magnesium or steel (default: aluminium).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Processes to render with (output is identical for any count).")] = 1,
    config: _Config = None,
    overwrite: _Overwrite = False,
) -> None:
    """Render radiographs of cast parts with pores, cracks and inclusions (the default command).

    Beer-Lambert attenuation of a procedural wheel or plate, detector blur, photon noise, 16-bit PNG.
    Each image comes with its mask, flaw boxes and flaw-type labels in manifest.csv.
    """
    import time

    from flawscope.data.synth import generate_dataset

    cfg = _build_config(
        config, n_images=n_images, size=size, defect_fraction=defect_fraction, flaw_types=flaw_types,
        max_flaws=max_flaws, flaw_size=flaw_size, difficulty=difficulty, noise=noise, blur_sigma=blur_sigma,
        heel=heel, bit_depth=bit_depth, seed=seed, part=part, n_parts=n_parts, material=material,
    )
    start = time.perf_counter()
    generate_dataset(out, cfg, progress=True, overwrite=overwrite, workers=workers)
    _print_summary(out, time.perf_counter() - start)


@synth_app.command("superimpose")
def superimpose_command(
    src_dir: Annotated[Path, typer.Argument(help="Folder of defect-free radiographs (searched recursively)")],
    out: Annotated[Path, typer.Argument(help="Output folder (created; must be empty unless --overwrite).")],
    n_images: Annotated[int | None, typer.Option(
        "--n-images", "-n", help="Outputs, cycling over the sources (default: one per source).")] = None,
    defect_fraction: _Fraction = None,
    flaw_types: _Types = None,
    max_flaws: _MaxFlaws = None,
    flaw_size: _FlawSize = None,
    difficulty: _Difficulty = None,
    blur_sigma: _Blur = None,
    seed: _Seed = None,
    config: _Config = None,
    overwrite: _Overwrite = False,
) -> None:
    """Add simulated flaws to real defect-free radiographs (GDXray practice).

    Pores, cracks and inclusions change the path length in the attenuation domain (-log grey value).
    Images keep their bit depth and get masks, boxes and labels in manifest.csv.
    """
    import time

    from flawscope.data.synth import superimpose_dataset

    cfg = _build_config(
        config, defect_fraction=defect_fraction, flaw_types=flaw_types, max_flaws=max_flaws,
        flaw_size=flaw_size, difficulty=difficulty, blur_sigma=blur_sigma, seed=seed,
    )
    start = time.perf_counter()
    superimpose_dataset(src_dir, out, cfg, n_images=n_images, progress=True, overwrite=overwrite)
    _print_summary(out, time.perf_counter() - start)


def register(app: typer.Typer) -> None:
    """Add `flawscope synth` (generate | superimpose) to the app."""
    app.add_typer(synth_app, name="synth")
