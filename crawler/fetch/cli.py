"""`wt5k-fetch`: the paper's other datasets from where they are published.

    wt5k-fetch clotho --out DIR [--version v2.1|v2|v1] [--splits development,validation,evaluation] [--registry FILE]
    wt5k-fetch audiocaps --out DIR [--version 1|2] [--csv SPLIT=PATH ...] [--splits train,val,test]
                         [--url-template T] [--workers N] [--delay S] [--cookies FILE] [--retry-failed]
    wt5k-fetch coverage --data DIR     # the curated manifests' clips and captions next to the paper's figures

Exit status: 0 everything asked for is there; 1 some files or clips failed (each is reported, the rest is kept);
2 bad arguments or input; 3 the run was stopped by repeated 429 Too Many Requests (run it again later).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from manifests.progress import silence_progress_bars

from manifests.cli_args import key_value, number as _number
from .audiocaps import (CSV_URLS, DEFAULT_URL_TEMPLATE, SPLITS as AC_SPLITS, AudioCapsError, Options,
                        RateLimitedError, fetch_audiocaps, format_coverage)
from .clotho import SPLITS as CLOTHO_SPLITS, VERSIONS, ClothoError, fetch_clotho
from .coverage import coverage_report
from .hosts import UnknownHostError


def _splits(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def _clotho(args) -> int:
    try:
        report = fetch_clotho(args.out, args.version, args.splits, registry=args.registry,
                              endpoint_overrides=dict(args.endpoint), retries=args.retries, timeout=args.timeout,
                              progress=not args.quiet)
    except (ClothoError, UnknownHostError) as e:
        print(f"wt5k-fetch clotho: {e}", file=sys.stderr)
        return 2
    print(f"clotho {args.version} in {report.folder}")
    for f in report.files:
        print(f"  {f.status:<10} {f.name}")
    for split, n in sorted(report.extracted.items()):
        print(f"  {split}: {n} audio files in {report.folder / split}")
    for w in report.warnings:
        print(f"wt5k-fetch clotho: warning: {w}", file=sys.stderr)
    for e in report.errors:
        print(f"wt5k-fetch clotho: {e}", file=sys.stderr)
    return 0 if report.ok else 1


def _audiocaps(args) -> int:
    opts = Options(url_template=args.url_template, workers=args.workers, delay=args.delay, cookies=args.cookies,
                   retry_failed=args.retry_failed, max_rate_limited=args.max_429, progress=not args.quiet,
                   limit=args.limit, default_backoff=args.backoff)
    try:
        coverage = fetch_audiocaps(args.out, args.version, args.splits or AC_SPLITS, csvs=dict(args.csv),
                                   csv_url=args.csv_url, options=opts)
    except RateLimitedError as e:
        print(f"wt5k-fetch audiocaps: {e}", file=sys.stderr)
        return 3
    except AudioCapsError as e:
        print(f"wt5k-fetch audiocaps: {e}", file=sys.stderr)
        return 2
    print(format_coverage(coverage))
    failed = any(s not in ("ok",) for r in coverage.values() for s in r["statuses"])
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-fetch", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = p.add_subparsers(dest="dataset", required=True)
    c = sub.add_parser("clotho", help="Clotho from Zenodo: checked files, safe extraction (crawler/README.md)")
    c.add_argument("--out", required=True, help="output folder: DIR/clotho/<version>/...")
    c.add_argument("--version", default="v2.1", choices=VERSIONS)
    c.add_argument("--splits", type=_splits, help=f"comma-separated (default: all of the version's; "
                                                  f"{','.join(CLOTHO_SPLITS)})")
    c.add_argument("--registry", help='a JSON file list {"files": [{"name","url","md5","split","kind"}]} '
                                      "replacing the built-in one (a mirror, another version)")
    c.add_argument("--endpoint", action="append", type=key_value("zenodo=URL"), default=[], metavar="zenodo=URL",
                   help="base URL replacing https://zenodo.org (also $WT5K_ZENODO_ENDPOINT)")
    c.add_argument("--retries", type=_number(int, 0), default=3, help="resumes of an interrupted transfer (default 3)")
    c.add_argument("--timeout", type=_number(float, 0, strict=True), default=60.0,
                   help="seconds without data before a retry")
    c.add_argument("--quiet", action="store_true", help="no progress bars")
    a = sub.add_parser("audiocaps", help="AudioCaps clips from YouTube through yt-dlp (crawler/README.md)")
    a.add_argument("--out", required=True, help="output folder: DIR/audiocaps/v<version>/...")
    a.add_argument("--version", default="1", choices=sorted(CSV_URLS))
    a.add_argument("--csv", action="append", type=key_value("SPLIT=PATH"), default=[], metavar="SPLIT=PATH",
                   help="a local caption CSV instead of the AudioCaps repository's")
    a.add_argument("--csv-url", help="URL template of the caption CSVs ({split}); default: the AudioCaps repository")
    a.add_argument("--splits", type=_splits, help=f"comma-separated (default {','.join(AC_SPLITS)})")
    a.add_argument("--url-template", default=DEFAULT_URL_TEMPLATE,
                   help="media URL per clip ({youtube_id}, {start_time}); a mirror serving plain media files works")
    a.add_argument("--workers", type=_number(int, 1), default=2, help="parallel downloads (default 2: polite)")
    a.add_argument("--delay", type=_number(float, 0), default=2.0, help="seconds between clips (default 2)")
    a.add_argument("--cookies", help="a Netscape cookies file for yt-dlp (age-restricted clips)")
    a.add_argument("--retry-failed", action="store_true", help="try again clips whose last attempt failed")
    a.add_argument("--max-429", type=_number(int, 1), default=5,
                   help="consecutive 429 answers before the run stops (default 5)")
    a.add_argument("--backoff", type=_number(float, 0), default=60.0,
                   help="seconds to wait after a 429 without Retry-After (times the count; default 60)")
    a.add_argument("--limit", type=_number(int, 1), help="at most N clips this run (a trial)")
    a.add_argument("--quiet", action="store_true", help="no progress bar")
    v = sub.add_parser("coverage", help="clips and captions per dataset and split next to the paper's figures")
    v.add_argument("--data", default="data", help="the folder holding audiocaps/, clotho/ and curated/ (default data)")
    args = p.parse_args(argv)
    if args.dataset == "coverage":
        if not Path(args.data).is_dir():
            v.error(f"--data {args.data}: no such folder")
        table, complete = coverage_report(args.data)
        print(table)
        return 0 if complete else 1
    if getattr(args, "quiet", False):
        silence_progress_bars()
    if args.dataset == "clotho":
        if any(k != "zenodo" for k, _ in args.endpoint):
            p.error("--endpoint takes zenodo=URL")
        return _clotho(args)
    return _audiocaps(args)


if __name__ == "__main__":
    sys.exit(main())
