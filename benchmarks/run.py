"""`make bench`: run every benchmarks/bench_*.py module's ``main(out_dir)`` in turn and gather the figures.

Each benchmark returns a dict of its figures; they are printed and written to bench_out/<name>.json.
`python -m benchmarks.run crawl curation` runs only the named ones.
"""
from __future__ import annotations

import importlib
import json
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    chosen = argv or names
    unknown = [n for n in chosen if n not in names]
    if unknown:
        print(f"unknown benchmark(s): {unknown}; available: {names}", file=sys.stderr)
        return 2
    out = Path("bench_out")
    out.mkdir(exist_ok=True)
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, python {platform.python_version()}"
    failed = []
    for name in chosen:
        print(f"\n=== benchmark: {name} ({machine})", flush=True)
        t0 = time.perf_counter()
        try:
            figures = importlib.import_module(f"benchmarks.bench_{name}").main(out / name)
        except Exception as e:  # report and go on: one broken benchmark must not hide the others
            print(f"benchmark {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
            failed.append(name)
            continue
        figures = {"benchmark": name, "machine": machine, "wall_s": round(time.perf_counter() - t0, 2), **(figures or {})}
        (out / f"{name}.json").write_text(json.dumps(figures, indent=2))
        print(json.dumps(figures, indent=2), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
