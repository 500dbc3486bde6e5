"""Crawl speed: both spiders over a mirror of all 4,525 published WavText5K sounds (short generated audio),
politeness off; then what the default polite settings imply for the real sites."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from crawler import settings as crawl_settings
from crawler.cli import summarize
from crawler.mirror import start_mirror
from manifests import PUBLISHED_CSV

ROOT = Path(__file__).resolve().parents[1]
# Sounds on the real sites today (SITES.md): about 2,120 on SoundBible; BigSoundBank as published.
REAL_SITE_SOUNDS = {"soundbible": 2120, "bigsoundbank": 2467}


def main(out_dir: str | Path, limit: int | None = None, max_duration: float = 0.25) -> dict:
    out = Path(out_dir) / "raw"
    shutil.rmtree(out, ignore_errors=True)  # a fresh crawl: a resumed one would skip everything
    spiders = ["soundbible", "bigsoundbank"]
    with start_mirror(PUBLISHED_CSV, limit=limit, max_duration=max_duration) as mirror:
        # One crawler process per site: the sites are independent, and one Scrapy process uses one core.
        procs = []
        t0 = time.perf_counter()
        for spider in spiders:
            cmd = [sys.executable, "-m", "crawler.cli", "--out", str(out), "--no-polite", "--log-level", "WARNING",
                   "--url", f"soundbible={mirror.soundbible_url}", "--url", f"bigsoundbank={mirror.bigsoundbank_url}",
                   spider]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [p.communicate() for p in procs]
        wall = time.perf_counter() - t0
        for p, (_, err) in zip(procs, results):
            if p.returncode != 0:
                raise RuntimeError(err[-3000:])
        served = dict(mirror.state.requests_by_site)
        n_sounds = {"soundbible": len(mirror.state.sb), "bigsoundbank": len(mirror.state.bsb)}
    statuses = {s: summarize(out / s) for s in spiders}
    items = sum(sum(c.values()) for c in statuses.values())
    requests = sum(served.values())
    size = sum(p.stat().st_size for p in out.rglob("files/*/*"))
    figures = {
        "sounds_in_mirror": sum(n_sounds.values()), "items": items, "statuses": statuses,
        "requests": requests, "wall_s": round(wall, 1), "requests_per_s": round(requests / wall, 1),
        "items_per_s": round(items / wall, 1), "audio_mb": round(size / 1e6, 1),
        "target_s": 120, "target_met": wall < 120,
    }
    # The polite defaults: one request at a time per site, DOWNLOAD_DELAY between them (AutoThrottle only
    # ever waits longer), both sites crawled in parallel. Requests per sound measured on the mirror.
    delay = crawl_settings.DOWNLOAD_DELAY
    estimate = {}
    for site, n in REAL_SITE_SOUNDS.items():
        per_sound = served[site] / max(1, n_sounds[site])
        estimate[site] = round(n * per_sound * delay / 3600, 2)
    figures["polite_estimate_hours"] = {**estimate, "both_in_parallel": max(estimate.values()),
                                        "download_delay_s": delay}
    print(f"crawl: {items} items, {requests} requests in {wall:.1f} s "
          f"({requests / wall:.0f} req/s, {items / wall:.0f} items/s) on the local mirror, politeness off")
    print(f"polite defaults (DOWNLOAD_DELAY={delay} s, 1 request at a time per site): at least "
          f"{estimate['soundbible']:.1f} h for SoundBible and {estimate['bigsoundbank']:.1f} h for BigSoundBank "
          f"(in parallel: {max(estimate.values()):.1f} h) before transfer time; AutoThrottle only lengthens it.")
    return figures


if __name__ == "__main__":
    import json
    print(json.dumps(main(sys.argv[1] if len(sys.argv) > 1 else "bench_out/crawl",
                          limit=int(sys.argv[2]) if len(sys.argv) > 2 else None), indent=2))
