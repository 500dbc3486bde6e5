"""Shared pieces of the crawler tests: a published-format CSV of the real edge cases, a crawl run in a
subprocess (the Twisted reactor cannot restart in-process), and readers of the output."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from manifests import PublishedRow, write_published_csv
from manifests.crawl_record import ITEMS_FILE, read_crawl_records

ROOT = Path(__file__).resolve().parents[1]
EDGE_CASES = Path(__file__).with_name("fixtures") / "site_edge_cases.json"


def edge_cases() -> dict[str, list[dict]]:
    return json.loads(EDGE_CASES.read_text(encoding="utf-8"))


def write_edge_case_csv(path: Path) -> Path:
    """The 29 real edge-case records as a published WavText5K CSV (what the mirror is built from)."""
    data = edge_cases()
    rows = [PublishedRow(**{k: r[k] for k in ("view_link", "download_link", "title", "description", "fname", "tags")})
            for site in ("soundbible", "bigsoundbank") for r in data[site]]
    return write_published_csv(path, rows)


def crawl_command(out: Path, spiders: list[str], mirror=None, *extra: str,
                  urls: dict[str, str] | None = None) -> list[str]:
    """A wt5k-crawl command line: each site of the mirror (if any) and of `urls` given with --url."""
    sites = {**(mirror.urls if mirror else {}), **(urls or {})}
    return [sys.executable, "-m", "crawler.cli", "--out", str(out), "--no-polite",
            *(arg for name, url in sites.items() for arg in ("--url", f"{name}={url}")),
            "--log-level", "WARNING", *extra, *spiders]


# The crawl reports its own peak resident memory (VmHWM) as it exits. Not ru_maxrss from wait4: Linux
# folds the forking parent's (pytest's) memory into it.
PEAK_RSS_CRAWL = """
import re, sys
from crawler.cli import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as f:
        print("VmHWM_kB", re.search(r"VmHWM:\\s+(\\d+)", f.read()).group(1), flush=True)
sys.exit(code)
"""


def measured_run(command: list[str], returncode: int = 0) -> tuple[int, subprocess.CompletedProcess]:
    """Run a crawl_command in a subprocess; return its peak resident memory in bytes, and the process."""
    assert command[1:3] == ["-m", "crawler.cli"]
    proc = subprocess.run([command[0], "-c", PEAK_RSS_CRAWL, *command[3:]], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == returncode, proc.stdout[-3000:] + proc.stderr[-5000:]
    return int(re.search(r"^VmHWM_kB (\d+)$", proc.stdout, re.M).group(1)) * 1024, proc


def run_crawl(out: Path, spiders: list[str], mirror=None, *extra: str, timeout: float = 120,
              urls: dict[str, str] | None = None, returncode: int = 0) -> subprocess.CompletedProcess:
    proc = subprocess.run(crawl_command(out, spiders, mirror, *extra, urls=urls), cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert proc.returncode == returncode, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def items_by_id(out: Path, spider: str) -> dict[str, dict]:
    """Records of <out>/<spider>/items.jsonl by id (through the crawl-record reader); fails on a line that is
    no record and on a duplicate id."""
    lines = list(read_crawl_records(out / spider / ITEMS_FILE))
    assert all(line.record for line in lines), [line.error for line in lines if not line.record]
    records = [line.record.to_dict() for line in lines]
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)), f"duplicate ids in {spider}/items.jsonl"
    return {r["id"]: r for r in records}


def audio_hits(mirror) -> dict[str, int]:
    """How many times each audio URL path was requested from the mirror."""
    return {p: len(t) for p, t in mirror.hits.items()
            if p.startswith(("/grab.php", "/mp3/", "/wav/", "/UPLOAD/"))}
