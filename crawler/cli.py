"""`wt5k-crawl`: run the spiders into <out>/<spider>/ (items.jsonl + files/), resumable.

    wt5k-crawl --out data/raw soundbible bigsoundbank                 # the real sites, politely
    wt5k-crawl --out data/raw --url soundbible=http://127.0.0.1:8701 --url bigsoundbank=http://127.0.0.1:8702 \\
               --no-polite soundbible bigsoundbank                    # the offline mirror
    wt5k-crawl --out data/raw --replay manifests/wavtext5k_published.csv manifest
    wt5k-crawl --spider-module mypkg.spiders --url my-site=http://127.0.0.1:9000 my-site   # a spider of your own

Spiders are those Scrapy's spider loader finds in SPIDER_MODULES (crawler.spiders, plus --spider-module).
SIGTERM or Ctrl-C stops the crawl within seconds (run the same command to resume); a second one at once.
Exit status: 0 when every spider finished and something was downloaded or nothing failed; 1 when a spider
did not finish (stopped, --max-bytes reached) or when no sound was downloaded and some failed; 2 usage.
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings
from scrapy.spiderloader import get_spider_loader

from . import settings as default_settings
from manifests import PUBLISHED_CSV, read_published_csv
from manifests.cli_args import key_value, positive
from manifests.crawl_record import ITEMS_FILE, last_records


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


HTTP_URL = re.compile(r"https?://[^/]")


def _http_url(url: str) -> str:
    """An argparse type: an http(s) URL, without a trailing slash."""
    if not HTTP_URL.match(url):
        raise argparse.ArgumentTypeError(f"expects an http(s) URL, got {url!r}")
    return url.rstrip("/")


def _site_url(kv: str) -> tuple[str, str]:
    """An argparse type for --url: SPIDER=URL with an http(s) URL."""
    name, sep, url = kv.partition("=")
    if not sep or not name or not HTTP_URL.match(url):
        raise argparse.ArgumentTypeError(f"expects SPIDER=URL with an http(s) URL, got {kv!r}")
    return name, url.rstrip("/")


def _size(text: str) -> int:
    """An argparse type for sizes: bytes, or with a K/M/G/T suffix (powers of 1024)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"expects a size such as 500000000, 500M or 2G, got {text!r}")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def this_run(crawler) -> collections.Counter:
    """Statuses recorded by this run (from the crawler's stats)."""
    stats = crawler.stats.get_stats() if crawler.stats else {}
    return collections.Counter({k.rsplit("/", 1)[1]: v for k, v in stats.items() if k.startswith("wt5k/status/")})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-crawl", description=__doc__.split("\n")[0],
                                epilog=__doc__.split("\n", 2)[2], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spiders", nargs="+", metavar="SPIDER", help="one or more spiders (see the error for a list)")
    p.add_argument("--out", default="data/raw", help="output root; each spider writes <out>/<spider>/")
    p.add_argument("--url", action="append", default=[], type=_site_url, metavar="SPIDER=URL",
                   help="where a site is served (default: the real site); the manifest spider rebases each source's "
                        "links on its URL")
    p.add_argument("--soundbible-url", type=_http_url, help="same as --url soundbible=URL")
    p.add_argument("--bigsoundbank-url", type=_http_url, help="same as --url bigsoundbank=URL")
    p.add_argument("--spider-module", action="append", default=[], metavar="MODULE",
                   help="also look for spiders in this Python module (added to SPIDER_MODULES)")
    p.add_argument("--replay", help="published-format CSV for the manifest spider (default: the WavText5K one)")
    p.add_argument("--retry-failed", action="store_true", help="fetch again the sounds whose last record failed")
    p.add_argument("--no-polite", action="store_true",
                   help="no delay, no AutoThrottle, 16 connections per site: for the local mirror only")
    p.add_argument("--user-agent", help="override the default User-Agent (keep it honest)")
    p.add_argument("--limit", type=positive, help="process at most N new sounds per spider in this run")
    p.add_argument("--max-bytes", type=_size, metavar="SIZE",
                   help="disk budget: stop once this run has written SIZE of audio (e.g. 500M, 20G); the sounds "
                        "left are recorded as cancelled and fetched by the next run")
    p.add_argument("--set", action="append", default=[], type=key_value(empty_value=True), metavar="KEY=VALUE",
                   help="any Scrapy setting")
    p.add_argument("--log-level", default="INFO")
    a = p.parse_args(argv)

    urls = dict(a.url)
    for name, url in (("soundbible", a.soundbible_url), ("bigsoundbank", a.bigsoundbank_url)):
        if url:
            urls.setdefault(name, url)
    overrides = {"LOG_LEVEL": a.log_level, **dict(a.set)}
    if a.max_bytes is not None:
        overrides["WT5K_MAX_BYTES"] = a.max_bytes
    settings = build_settings(a.out, polite=not a.no_polite, retry_failed=a.retry_failed,
                              user_agent=a.user_agent, overrides=overrides)
    if a.spider_module:
        settings.set("SPIDER_MODULES", [*settings.getlist("SPIDER_MODULES"), *a.spider_module], priority="cmdline")
    try:
        known = get_spider_loader(settings).list()
    except ImportError as e:
        p.error(f"--spider-module: cannot import {e.name or e}")
    unknown = [n for n in a.spiders if n not in known]
    if unknown:
        p.error(f"unknown spider {', '.join(map(repr, unknown))}: choose from {', '.join(sorted(known))} "
                f"(a spider of your own: --spider-module MODULE)")
    if bad := [n for n in urls if n not in known and n not in a.spiders]:
        print(f"warning: --url for {', '.join(bad)}, which is not a spider: used by the manifest spider only",
              file=sys.stderr)
    if "manifest" in a.spiders:  # a replay CSV that is missing or not one: a usage error, before Scrapy starts
        try:
            read_published_csv(a.replay or PUBLISHED_CSV, [])
        except ValueError as e:  # ManifestError names the file, row and column
            p.error(f"--replay: {e}")
    process = CrawlerProcess(settings)
    crawlers = {}
    for name in dict.fromkeys(a.spiders):
        crawlers[name] = crawler = process.create_crawler(name)
        kwargs = {"site_urls": urls, "limit": a.limit}
        if a.replay:
            kwargs["replay"] = a.replay
        process.crawl(crawler, **kwargs)
    process.start()
    complete, run, pages_failed = True, collections.Counter(), 0
    for name, crawler in crawlers.items():
        folder = Path(a.out) / name
        reason = crawler.stats.get_value("finish_reason") if crawler.stats else None
        complete &= reason == "finished"
        statuses = this_run(crawler)
        run += statuses
        pages_failed += crawler.stats.get_value("wt5k/listing_failed", 0) if crawler.stats else 0
        print(f"{name}: {reason}: {folder / ITEMS_FILE}: {summarize(folder)}; this run: {dict(statuses)}", flush=True)
    failed = sum(n for s, n in run.items() if s != "ok")
    if not complete:
        print("not every spider finished: run the same command again to resume", file=sys.stderr)
        return 1
    if (failed or pages_failed) and not run["ok"]:
        print(f"no sound was downloaded and {failed} failed ({dict(run)}), {pages_failed} listing pages failed: "
              f"see the log and the error column of items.jsonl", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
