"""What every spider shares: base URL, output folder, resume checks, the hosts it may reach, the listing ->
detail pattern, audio URL order, and items for pages that failed.

A site spider names its source (manifests/sources.py holds the source's hosts and facts), its default base URL,
how a detail URL carries the sound's id and its audio formats in preference order; it writes `parse_detail`.
A site with numbered listing pages sets `listing_path` and `listing_links`: the base class follows the pages
until one lists no sound (or answers 404) and requests each new sound's detail page once. A site found another
way (a sitemap) yields `self.detail_request(response, url)` for each detail URL it meets.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import scrapy
from scrapy import signals
from scrapy.http import Response

from manifests.sources import SOURCES, source_info

from ..guard import Targets
from ..items import SoundItem
from ..settings import NO_POLITE_OVERRIDES
from ..state import CrawlState
from ..statuses import classify_failure


def audio_format_of(url: str) -> str:
    """The audio format a URL names: its file extension (bwf counts as wav), or a type=/format= query
    parameter (soundbible's grab.php?id=N&type=wav); "" when it names none."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for key in ("type", "format"):
        if query.get(key):
            return query[key][0].lower()
    name = parts.path.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return "wav" if ext == "bwf" else ext


class SoundSpider(scrapy.Spider):
    source = ""                 # a manifests.sources name; the manifest spider has several
    default_base_url = ""
    format_preference: tuple[str, ...] = ()   # audio formats, best first; others after them, in page order
    detail_url: re.Pattern | None = None      # a detail page URL, the sound's id as its first non-empty group
    listing_path = ""           # numbered listing pages, e.g. "/free-sound-effects-{page}.html"
    listing_links = "a"         # CSS selector of a listing page's links to detail pages

    def __init__(self, base_url: str | None = None, limit: int | str | None = None,
                 site_urls: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.site_urls = {k: v.rstrip("/") for k, v in (site_urls or {}).items() if v}
        self.base_url = (base_url or self.site_urls.get(self.name) or self.default_base_url).rstrip("/")
        self.limit = int(limit) if limit else None  # process at most this many sounds in this run
        self.state: CrawlState | None = None
        self.claimed: set[str] = set()
        self.to_process = 0
        self.targets = self.allowed_targets()

    def sources(self) -> list[str]:
        """The sources this spider fetches from (their hosts are the ones it may reach)."""
        return [self.source] if self.source else []

    def allowed_targets(self) -> Targets:
        hosts = [h for s in self.sources() for h in (*source_info(s).hosts, *source_info(s).audio_hosts)]
        bases = [u for u in (self.base_url, *(self.site_urls.get(s) for s in self.sources())) if u]
        for url in (self.default_base_url, *bases):  # a site's own host, registered or not
            if host := urlsplit(url).hostname:
                hosts.append(host)
        return Targets.of(hosts, bases)

    @classmethod
    def update_settings(cls, settings) -> None:
        super().update_settings(settings)
        # Files and items.jsonl of a spider live in <WT5K_OUT>/<spider>/.
        settings.set("FILES_STORE", str(Path(settings.get("WT5K_OUT", "data/raw")) / cls.name), priority="spider")
        if not settings.getbool("WT5K_POLITE", True):  # the mirror, tests, benchmarks; command-line -s still wins
            settings.update(NO_POLITE_OVERRIDES, priority="spider")

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        folder = Path(crawler.settings["FILES_STORE"])
        spider.state = CrawlState(folder, retry_failed=crawler.settings.getbool("WT5K_RETRY_FAILED")).open()
        crawler.signals.connect(spider._close_state, signal=signals.spider_closed)
        return spider

    def _close_state(self) -> None:
        self.state.close()

    # --- ids and resume ---

    def sound_id(self, source_id: str, source: str | None = None) -> str:
        """The "source:id" string of a sound (the crawl record's id)."""
        return f"{source or self.source}:{source_id}"

    def detail_id(self, url: str) -> str | None:
        """The sound's id in a detail page URL (None: not a detail page)."""
        m = self.detail_url.search(urlsplit(url).path) if self.detail_url else None
        return next((g for g in m.groups() if g), None) if m else None

    def claim(self, sound_id: str) -> bool:
        """True the first time this run meets an id that still needs work; counts what it skips."""
        if sound_id in self.claimed:
            return False
        if not self.state.should_fetch(sound_id):
            self.claimed.add(sound_id)
            self.crawler.stats.inc_value("wt5k/skipped_done")
            return False
        if self.limit is not None and self.to_process >= self.limit:
            return False
        self.claimed.add(sound_id)
        self.to_process += 1
        return True

    # --- listing -> detail ---

    async def start(self):
        if self.listing_path:
            yield self.listing_request(1, 0)

    def listing_request(self, page: int, offset: int) -> scrapy.Request:
        return scrapy.Request(self.base_url + self.listing_path.format(page=page), callback=self.parse_listing,
                              errback=self.listing_failed, cb_kwargs={"page": page, "offset": offset})

    def parse_listing(self, response: Response, page: int, offset: int):
        """The detail pages of a listing page's new sounds, in listing order; then the next page. The listing
        ends at a page without sounds (or a 404): no page count is assumed."""
        count = 0
        for a in response.css(self.listing_links):
            href = a.attrib.get("href", "")
            if not self.detail_id(response.urljoin(href)):
                continue
            yield from self.detail_request(response, href, position=offset + count,
                                           link_text=a.xpath("string()").get())
            count += 1
        if count:
            yield self.listing_request(page + 1, offset + count)
        else:
            self.logger.info("listing ends at page %d (%d sounds listed)", page, offset)

    def detail_request(self, response: Response, url: str, **cb_kwargs):
        """A request for a detail page, once per sound that still needs work; its failure is recorded."""
        sid = self.detail_id(response.urljoin(url))
        if sid and self.claim(self.sound_id(sid)):
            yield response.follow(url, callback=self._detail, errback=self.page_failed,
                                  meta={"source_id": sid}, cb_kwargs=cb_kwargs)

    def _detail(self, response: Response, **cb_kwargs):
        yield self.checked(self.parse_detail(response, **cb_kwargs))

    def parse_detail(self, response: Response, **cb_kwargs) -> SoundItem:
        raise NotImplementedError(f"{type(self).__name__} must parse its detail pages")

    # --- audio URLs ---

    @classmethod
    def sort_audio_urls(cls, urls: list[str]) -> list[str]:
        """Unique URLs, in format_preference order (others after, in their order)."""
        rank = {f: i for i, f in enumerate(cls.format_preference)}
        return sorted(dict.fromkeys(urls), key=lambda u: rank.get(audio_format_of(u), len(rank)))

    def checked(self, item: SoundItem) -> SoundItem:
        """The item with only the audio URLs this spider may request; a sound left with none while it had
        some is recorded as refused_url, naming each URL and why (file://, another host, an internal address)."""
        urls = item.get("audio_urls") or []
        refused = {u: why for u in urls if (why := self.targets.refusal(u))}
        if refused:
            item["audio_urls"] = [u for u in urls if u not in refused]
            message = "; ".join(f"refused {u}: {why}" for u, why in refused.items())
            if item["audio_urls"]:
                self.logger.warning("%s: %s", item.get("id"), message)
            elif not item.get("status"):
                item.update(status="refused_url", error=message)
        return item

    # --- failures ---

    def page_failed(self, failure):
        """Errback of a detail page: the sound still gets an item, with the reason."""
        request = failure.request
        status, message = classify_failure(failure.value)
        sid = request.meta["source_id"]
        yield SoundItem.new(id=self.sound_id(sid), source=self.source, source_id=sid, tags=[],
                            view_link=request.url, audio_urls=[],
                            listing_position=request.cb_kwargs.get("position"),
                            status=status, error=f"detail page: {message}")

    def listing_failed(self, failure):
        if getattr(failure.value, "response", None) is not None and failure.value.response.status == 404:
            self.logger.info("listing ends at %s (404)", failure.request.url)
            return None
        status, message = classify_failure(failure.value)
        self.crawler.stats.inc_value("wt5k/listing_failed")
        log = self.logger.info if status == "cancelled" else self.logger.error
        log("listing/discovery page %s failed (%s): %s", failure.request.url, status, message)
        return None


def registered_sources() -> list[str]:
    """Every registered source with hosts: the sites a replayed manifest may name."""
    return [name for name, s in SOURCES.items() if s.hosts]
