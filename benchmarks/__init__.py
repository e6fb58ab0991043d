"""flawscope benchmark suite (`make bench`): measurements, not tests.

Each section module exposes `NAME`, `NEEDS_DATA` and `run(ctx) -> SectionResult`; `benchmarks.run` runs the
chosen sections, writes `<out>/<section>.json` and `<out>/<section>.md`, and assembles `<out>/benchmarks.md`.
"""
