"""`flawscope predict`: a trained model on image files, through the Predictor (flawscope.deploy.predict)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add `flawscope predict` to the app."""

    @app.command("predict")
    def predict_command(
        model: Annotated[Path, typer.Argument(help="Run folder, its model.pt, or a checkpoint .ckpt.")],
        images: Annotated[list[Path], typer.Argument(help="Image files and/or folders (recursive).")],
        out: Annotated[Path, typer.Option(help="Output folder (must not be inside an input folder).")],
        pixel_size_mm: Annotated[
            float | None, typer.Option(help="Pixel size in mm: flaw sizes also in mm (segmenters).")
        ] = None,
        tile: Annotated[
            int | None,
            typer.Option(help="Tile size for sliding-window inference. Default: the model's input size where "
                         "the image is larger (patch models)."),
        ] = None,
        overlap: Annotated[int | None, typer.Option(help="Tile overlap in pixels. Default: tile/4.")] = None,
        batch_size: Annotated[int, typer.Option(help="Tiles per forward pass.")] = 8,
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "cpu",
        threshold: Annotated[
            float | None,
            typer.Option(help="Decision threshold on P(defect). Default: the model's own, chosen on val."),
        ] = None,
    ) -> None:
        """Predict images: predictions.csv; for segmenters also masks/, overlays/ and flaws.csv."""
        from rich.console import Console

        from flawscope.deploy.predict import predict_files

        result = predict_files(model, images, out, pixel_size_mm=pixel_size_mm, tile=tile, overlap=overlap,
                               batch_size=batch_size, device=device, threshold=threshold)
        console = Console()
        counts = ", ".join(f"{n} {d}" for d, n in result.decisions.items())
        console.print(f"{len(result.records)} images predicted: {counts}", highlight=False)
        if result.skipped:
            console.print(f"[yellow]warning:[/] {len(result.skipped)} file(s) skipped, listed in "
                          f"{out / 'skipped.csv'}:", highlight=False)
            for s in result.skipped[:5]:
                console.print(f"  {s.path}: {s.reason}", highlight=False)
            if len(result.skipped) > 5:
                console.print(f"  ... and {len(result.skipped) - 5} more", highlight=False)
        console.print(f"[bold green]written:[/] {result.predictions}"
                      + (f", {result.flaws}, masks/, overlays/" if result.flaws else ""), highlight=False)
