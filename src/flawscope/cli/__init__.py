"""Command-line interface (typer + rich); each command calls the same functions a notebook would."""
