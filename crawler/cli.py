"""`wt5k-crawl`: run the spiders into <out>/<spider>/ (items.jsonl + files/), resumable.

    wt5k-crawl --out data/raw soundbible bigsoundbank                 # the real sites, politely
    wt5k-crawl --out data/raw --soundbible-url http://127.0.0.1:8701 --bigsoundbank-url http://127.0.0.1:8702 \\
               --no-polite soundbible bigsoundbank                    # the offline mirror
    wt5k-crawl --out data/raw --replay manifests/wavtext5k_published.csv manifest
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings

from . import settings as default_settings
from manifests.crawl_record import ITEMS_FILE, last_records


SPIDERS = ("soundbible", "bigsoundbank", "manifest")


def build_settings(out: str, polite: bool = True, retry_failed: bool = False, user_agent: str | None = None,
                   overrides: dict | None = None) -> Settings:
    settings = Settings()
    settings.setmodule(default_settings, priority="project")
    settings.set("WT5K_OUT", out, priority="cmdline")
    settings.set("WT5K_RETRY_FAILED", retry_failed, priority="cmdline")
    settings.set("WT5K_POLITE", polite, priority="cmdline")  # the spiders apply NO_POLITE_OVERRIDES
    if user_agent:
        settings.set("USER_AGENT", user_agent, priority="cmdline")
    settings.update(overrides or {}, priority="cmdline")
    return settings


def summarize(folder: Path) -> dict[str, int]:
    """Count of the final records of a spider's folder by status."""
    return dict(collections.Counter(r.status for r in last_records(folder / ITEMS_FILE).values()))


def _setting(kv: str) -> tuple[str, str]:
    """An argparse type for --set: a usage error (exit 2) when it is not KEY=VALUE."""
    key, sep, value = kv.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got {kv!r}")
    return key, value


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-crawl", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spiders", nargs="+", choices=SPIDERS, metavar="SPIDER", help=f"one or more of {SPIDERS}")
    p.add_argument("--out", default="data/raw", help="output root; each spider writes <out>/<spider>/")
    p.add_argument("--soundbible-url", help="SoundBible base URL (default: the real site)")
    p.add_argument("--bigsoundbank-url", help="BigSoundBank base URL (default: the real site)")
    p.add_argument("--replay", help="published-format CSV for the manifest spider (default: the WavText5K one)")
    p.add_argument("--retry-failed", action="store_true", help="fetch again the sounds whose last record failed")
    p.add_argument("--no-polite", action="store_true",
                   help="no delay, no AutoThrottle, 16 connections per site: for the local mirror only")
    p.add_argument("--user-agent", help="override the default User-Agent (keep it honest)")
    p.add_argument("--limit", type=int, help="process at most N new sounds per spider in this run")
    p.add_argument("--set", action="append", default=[], type=_setting, metavar="KEY=VALUE", help="any Scrapy setting")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)

    overrides = {"LOG_LEVEL": a.log_level, **dict(a.set)}
    settings = build_settings(a.out, polite=not a.no_polite, retry_failed=a.retry_failed,
                              user_agent=a.user_agent, overrides=overrides)
    process = CrawlerProcess(settings)
    crawlers = {}
    for name in dict.fromkeys(a.spiders):
        crawlers[name] = crawler = process.create_crawler(name)
        if name == "manifest":
            process.crawl(crawler, replay=a.replay, soundbible_url=a.soundbible_url,
                          bigsoundbank_url=a.bigsoundbank_url, limit=a.limit)
        else:
            process.crawl(crawler, base_url=getattr(a, f"{name}_url"), limit=a.limit)
    process.start()
    complete = True
    for name, crawler in crawlers.items():
        folder = Path(a.out) / name
        reason = crawler.stats.get_value("finish_reason") if crawler.stats else None
        complete &= reason == "finished"
        print(f"{name}: {reason}: {folder / ITEMS_FILE}: {summarize(folder)}", flush=True)
    if not complete:
        print("not every spider finished: run the same command again to resume", file=sys.stderr)
    return 0 if complete else 1


if __name__ == "__main__":
    sys.exit(main())
