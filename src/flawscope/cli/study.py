"""`flawscope study KIND`: the studies of seed 001 (init, fraction, convergence, sensitivity, features)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

# Options of a run's config.yaml that the study sets per run: dropped from --config (and said so).
_PER_RUN_IN_RUN_CONFIG = ("init", "seed", "split_file", "out", "name", "resume")


def _train_options(config: Path | None, set_: list[str], direct: dict[str, Any]) -> tuple[dict[str, Any],
                                                                                          list[str]]:
    """Train options from --config (a run's config.yaml or any TrainConfig YAML), --set and direct options."""
    import yaml

    from flawscope.cli.benchmark import _overrides
    from flawscope.errors import ConfigError
    from flawscope.training.config import TrainConfig

    options: dict[str, Any] = {}
    dropped: list[str] = []
    if config is not None:
        if not config.is_file():
            raise ConfigError(f"config file {config} does not exist")
        try:
            loaded = yaml.safe_load(config.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config file {config} is not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config file {config} must hold a mapping option: value")
        loaded = TrainConfig.upgrade(loaded)
        TrainConfig.check_keys(loaded, str(config))
        dropped = [k for k in _PER_RUN_IN_RUN_CONFIG if k in loaded]
        options = {k: v for k, v in loaded.items() if k not in _PER_RUN_IN_RUN_CONFIG}
    options.update(_overrides(set_))
    options.update({k: v for k, v in direct.items() if v is not None})
    return options, dropped


def parse_recipes(items: list[str]) -> dict[str, dict[str, Any]]:
    """'NAME: KEY=VALUE,KEY=VALUE' strings -> {NAME: {KEY: VALUE}} (values read as YAML scalars)."""
    from flawscope.cli.train import parse_key_values
    from flawscope.errors import ConfigError

    recipes: dict[str, dict[str, Any]] = {}
    for item in items:
        name, sep, rest = item.partition(":")
        if not sep or not name.strip():
            raise ConfigError(f"--recipe {item!r} is not 'NAME: KEY=VALUE,...' "
                              "(e.g. 'std: normalize=standardize')")
        if name.strip() in recipes:
            raise ConfigError(f"--recipe {name.strip()!r} is given twice; name each recipe once")
        pairs = [p for p in rest.split(",") if p.strip()]
        recipes[name.strip()] = parse_key_values(pairs, "--recipe") if pairs else {}
    return recipes


def _list(text: str | None) -> list[str] | None:
    return None if text is None else [v.strip() for v in text.split(",") if v.strip()]


def register(app: typer.Typer) -> None:
    """Add `flawscope study` to the app."""

    @app.command("study")
    def study_command(
        kind: Annotated[str, typer.Argument(
            help="init | fraction | convergence | sensitivity | features | recipes.", show_default=False)],
        data: Annotated[Path | None, typer.Option(help="Dataset folder or manifest .csv.")] = None,
        model: Annotated[str | None, typer.Option(help="Model name (`flawscope models list`).")] = None,
        task: Annotated[str | None, typer.Option(help="classify or segment. Default: the model's.")] = None,
        epochs: Annotated[int | None, typer.Option(help="Maximum epochs per run.")] = None,
        input_size: Annotated[str | None, typer.Option(help="Model input size: 224 or HxW.")] = None,
        batch_size: Annotated[int | None, typer.Option(help="Samples per step (not sensitivity).")] = None,
        lr: Annotated[float | None, typer.Option(help="Learning rate (all but sensitivity).")] = None,
        limit_batches: Annotated[float | None, typer.Option(
            metavar="COUNT|FRACTION", help="Batches per epoch for smoke runs: a count or a fraction.")
        ] = None,
        config: Annotated[Path | None, typer.Option(
            help="YAML of train options shared by every run (e.g. a run's config.yaml; its init, seed, "
                 "split_file, out and name are set per run by the study).")] = None,
        set_: Annotated[list[str] | None, typer.Option(
            "--set", help="Any other train option as KEY=VALUE (repeatable), e.g. augment=light.")] = None,
        study_config: Annotated[Path | None, typer.Option(
            help="A study YAML (e.g. <out>/<kind>.yaml written by an earlier study); options given here "
                 "win.")] = None,
        inits: Annotated[list[str] | None, typer.Option(
            "--init", help="An init to compare (repeatable): random, checkpoint:<backbone.pt>, "
                           "imagenet[:<file or timm name>]. Default: random.")] = None,
        recipes: Annotated[list[str] | None, typer.Option(
            "--recipe", help="A recipe of the recipes study (repeatable): 'NAME: KEY=VALUE,KEY=VALUE' of "
                             "train options, e.g. 'std: normalize=standardize,augment=radiograph'; "
                             "'NAME:' alone = the shared options.")] = None,
        folds: Annotated[int | None, typer.Option(help="K of the group k-fold split. Default 5.")] = None,
        seed: Annotated[int | None, typer.Option(help="Seeds folds, runs, t-SNE. Default 0.")] = None,
        fractions: Annotated[str | None, typer.Option(
            help="Train fractions (fraction study), comma-separated. Default: 0.25,0.5,0.75,1.0.")] = None,
        batch_sizes: Annotated[str | None, typer.Option(
            help="Batch sizes of the sensitivity grid. Default: 8,16,32.")] = None,
        lrs: Annotated[str | None, typer.Option(
            help="Learning rates of the sensitivity grid. Default: 1e-4,1e-3,1e-2.")] = None,
        out: Annotated[Path | None, typer.Option(help="Study folder. Default: study.")] = None,
        threads: Annotated[int | None, typer.Option(help="Torch CPU threads. Default: torch's.")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", help="No training progress bars.")] = False,
    ) -> None:
        """Run one study of seed 001; write <out>/<kind>.md/.csv/.json, figures/ and report.html."""
        from rich.console import Console

        from flawscope.training.study import StudyConfig, run_study

        console = Console()
        direct = {"data": str(data) if data is not None else None, "model": model, "task": task,
                  "epochs": epochs, "input_size": input_size, "batch_size": batch_size, "lr": lr,
                  "limit_batches": limit_batches}
        train, dropped = _train_options(config, set_ or [], direct)
        if dropped:
            console.print(f"[bold]study:[/] {config}: {', '.join(dropped)} not used (set per run by the "
                          "study)", highlight=False)
        options: dict[str, Any] = {
            "kind": kind, "inits": list(inits) if inits else None, "folds": folds, "seed": seed,
            "fractions": _list(fractions), "batch_sizes": _list(batch_sizes), "lrs": _list(lrs),
            "out": str(out) if out is not None else None, "threads": threads,
            "recipes": parse_recipes(recipes) if recipes else None,
        }
        options = {k: v for k, v in options.items() if v is not None}
        if study_config is not None:
            base = StudyConfig.from_yaml(study_config)
            cfg = StudyConfig.from_yaml(study_config, **options, train={**base.train, **train})
        else:
            cfg = StudyConfig.from_dict({**options, "train": train}, "study options")
        def say(msg: str) -> None:
            console.print(f"[bold]study {cfg.kind}:[/] {msg}", highlight=False)

        result = run_study(cfg, progress=not quiet, log=say)
        console.print(result.tables["md"].read_text(), highlight=False, markup=False)
        written = [*result.tables.values(), *result.figures.values(), result.report]
        console.print(f"[bold green]written:[/] {', '.join(str(p) for p in written)}", highlight=False)
