"""`wt5k-weights`: download the published pretrained weights the configs name, and list what is cached.

    wt5k-weights list [--verify] [--dir DIR]
    wt5k-weights fetch cnn14 roberta-base [--dir DIR] [--endpoint hf=URL] [--force] [--quiet]
    wt5k-weights fetch htsat-audioset --url URL     # no direct published link: a mirror, or a file placed by hand
"""
from __future__ import annotations

import argparse
import os
import sys

from manifests.progress import silence_progress_bars
from manifests.cli_args import key_value, number as _number
from .weights import SOURCES, WeightsError, default_dir, fetch, status


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.1f} MB"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-weights", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="names: " + ", ".join(SOURCES) + "\n\ncache folder: --dir, else "
                                       "$WT5K_WEIGHTS_DIR, else ~/.cache/wavtext5k/weights (now: "
                                       f"{default_dir()})")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="what is known, what is present (and whether it still matches its record)")
    ls.add_argument("--dir", help="cache folder")
    ls.add_argument("--verify", action="store_true", help="re-hash present files (default: compare sizes)")
    fe = sub.add_parser("fetch", help="download (or check) the named weights; 'all' = every direct download")
    fe.add_argument("names", nargs="+", metavar="NAME")
    fe.add_argument("--dir", help="cache folder (e.g. data/pretrained, where the paper configs look)")
    fe.add_argument("--endpoint", action="append", type=key_value("HOST=URL"), default=[], metavar="HOST=URL",
                    help="base URL of a host (zenodo, hf), e.g. a mirror; also $WT5K_ZENODO_ENDPOINT, "
                         "$WT5K_HF_ENDPOINT / $HF_ENDPOINT")
    fe.add_argument("--url", help="download this URL instead of the published one (one NAME only)")
    fe.add_argument("--force", action="store_true", help="download again even if present (replaces a changed file)")
    fe.add_argument("--retries", type=_number(int, 0), default=3, help="resumes of an interrupted transfer (default 3)")
    fe.add_argument("--timeout", type=_number(float, 0, strict=True), default=60.0, help="seconds without data before a retry")
    fe.add_argument("--quiet", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if args.dir and os.path.exists(args.dir) and not os.path.isdir(args.dir):
        p.error(f"--dir {args.dir}: not a folder")

    if args.cmd == "list":
        try:
            rows = status(args.dir, verify=args.verify)
        except WeightsError as e:
            print(f"wt5k-weights: {e}", file=sys.stderr)
            return 2
        print(f"cache folder: {args.dir or default_dir()}")
        w = max(len(n) for n in SOURCES)
        print(f"{'name':<{w}} {'state':<10} {'size':>10}  path")
        for r in rows:
            print(f"{r['name']:<{w}} {r['state']:<10} {_size(r['size']):>10}  {r['path']}")
            for problem in r["problems"]:
                print(f"{'':<{w}} ! {problem}")
        return 1 if any(r["state"] in ("changed", "missing") for r in rows) else 0

    if args.quiet:
        silence_progress_bars()
    names = [n for n in SOURCES if SOURCES[n].kind != "manual"] if args.names == ["all"] else args.names
    if unknown := [n for n in names if n not in SOURCES]:
        p.error(f"unknown weights {', '.join(map(repr, unknown))}; known: {', '.join(SOURCES)} (or all)")
    if args.url and len(names) != 1:
        p.error("--url needs exactly one NAME")
    failed = 0
    for name in names:
        try:
            r = fetch(name, args.dir, endpoint_overrides=dict(args.endpoint), url=args.url, force=args.force,
                      retries=args.retries, timeout=args.timeout, progress=not args.quiet)
        except WeightsError as e:
            message = str(e) if str(e).startswith(f"{name}:") else f"{name}: {e}"
            print(f"wt5k-weights: {message}", file=sys.stderr)
            failed += 1
            continue
        src = SOURCES[name]
        if "files" in r.entry:  # a model folder
            size = sum(f["size"] for f in r.entry["files"].values())
            sha = f"of each of its {len(r.entry['files'])} files in weights.json"
        else:
            size, sha = r.entry["size"], r.entry["sha256"]
        print(f"{name}: {r.status} -> {r.path} ({_size(size)}; sha256 {sha}, {r.entry['sha256_source']})")
        if src.config_key:
            print(f"  config: \"{src.config_key}\": \"{r.path}\"")
        elif src.kind == "hf-snapshot":
            print(f"  config: \"text.name\": \"{r.path}\"")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
