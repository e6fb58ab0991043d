"""`python -m benchmarks.run --data DIR --out DIR [--only SECTION,...] [--quick]`: run the benchmark suite.

Each section writes `<out>/<section>.json` (settings, machine, measurements) and `<out>/<section>.md`; the
fragments present in `<out>` are assembled into `<out>/benchmarks.md`, so sections can be run one at a time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

from benchmarks.common import Context, SectionResult, SectionSkipped, machine, set_threads

SECTIONS = ("throughput", "lightning_overhead", "latency", "loader", "real_classify", "real_segment",
            "bilinear_speed", "pretrain_speed")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=None,
                   help="real datasets folder (default: $FLAWSCOPE_DATA); real-data sections skip without it")
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output folder (default bench-out)")
    p.add_argument("--only", default="",
                   help=f"comma-separated sections (default all): {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="tiny sizes and few steps (smoke run)")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs, splits and training")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--models", default="", help="comma-separated model names to restrict the sections to")
    p.add_argument("--epochs", type=int, default=None,
                   help="real-data sections: this many full epochs instead of their short default budget")
    return p.parse_args(argv)


def choose_sections(only: str) -> list[str]:
    """Section names from --only, each checked; an unknown name exits with the valid ones."""
    names = [s.strip() for s in only.split(",") if s.strip()] or list(SECTIONS)
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"error: unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}")
    return names


def run_section(name: str, ctx: Context) -> dict:
    """Run one section and write its JSON and Markdown fragment; a skip or failure is recorded, not raised."""
    module = importlib.import_module(f"benchmarks.{name}")
    start = time.perf_counter()
    status, error = "ok", None
    try:
        result: SectionResult = module.run(ctx)
    except SectionSkipped as why:
        status, result = "skipped", SectionResult({}, f"_Skipped: {why}_\n")
        error = str(why)
    except Exception as err:  # noqa: BLE001 - one broken section must not lose the others' numbers
        status = "failed"
        error = f"{type(err).__name__}: {err}"
        result = SectionResult({"traceback": traceback.format_exc()}, f"_Failed: `{error}`_\n")
    seconds = time.perf_counter() - start
    record = {
        "section": name, "status": status, "error": error, "seconds": seconds, "quick": ctx.quick,
        "seed": ctx.seed, "machine": machine(),
        "command": " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
        "data": result.data,
    }
    ctx.out.mkdir(parents=True, exist_ok=True)
    (ctx.out / f"{name}.json").write_text(json.dumps(record, indent=2, default=str))
    title = getattr(module, "TITLE", name)
    md = (f"## {title} (`{name}`)\n\n{result.markdown}\n"
          f"_Section wall time {seconds:.0f} s; {record['machine']['date']}; load average "
          f"{record['machine']['loadavg_1_5_15']}._\n")
    (ctx.out / f"{name}.md").write_text(md)
    return record


def assemble(out: Path) -> Path:
    """benchmarks.md from the section fragments present in `out`, in suite order."""
    parts = ["# flawscope benchmarks\n"]
    for name in SECTIONS:
        path = out / f"{name}.json"
        if path.is_file():
            m = json.loads(path.read_text())["machine"]
            parts.append(f"Machine: {m['cpu']}, {m['cpu_count']} CPUs, torch {m['torch']} with "
                         f"{m['torch_threads']} threads, Python {m['python']}.\n")
            break
    for name in SECTIONS:
        if (out / f"{name}.md").is_file():
            parts.append((out / f"{name}.md").read_text())
    target = out / "benchmarks.md"
    target.write_text("\n".join(parts))
    return target


def main(argv: list[str] | None = None) -> int:
    """Run the chosen sections; exit 1 when one failed (skips are fine)."""
    args = parse_args(argv)
    data = args.data or (Path(os.environ["FLAWSCOPE_DATA"]) if os.environ.get("FLAWSCOPE_DATA") else None)
    if data is not None and not data.is_dir():
        print(f"note: data folder {data} does not exist; real-data sections will be skipped", file=sys.stderr)
        data = None
    set_threads(args.threads)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip()) or None
    ctx = Context(data=data, out=args.out, quick=args.quick, seed=args.seed, threads=args.threads,
                  models=models, epochs=args.epochs)
    failed = False
    for name in choose_sections(args.only):
        print(f"[bench] {name} ...", flush=True)
        rec = run_section(name, ctx)
        print(f"[bench] {name}: {rec['status']} in {rec['seconds']:.1f} s"
              + (f" ({rec['error']})" if rec["error"] else ""), flush=True)
        failed |= rec["status"] == "failed"
    print(f"[bench] wrote {assemble(args.out)}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
