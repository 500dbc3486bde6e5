"""What every spider shares: base URL, output folder, the resume state, and failure items."""
from __future__ import annotations

from pathlib import Path

import scrapy
from scrapy import signals

from ..items import SoundItem
from ..settings import NO_POLITE_OVERRIDES
from ..state import CrawlState
from ..statuses import classify_failure


class SoundSpider(scrapy.Spider):
    source = ""              # "soundbible" / "bigsoundbank"; the manifest spider has several
    default_base_url = ""

    def __init__(self, base_url: str | None = None, limit: int | str | None = None, **kwargs):
        super().__init__(**kwargs)
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        self.limit = int(limit) if limit else None  # process at most this many sounds in this run
        self.state: CrawlState | None = None
        self.claimed: set[str] = set()
        self.to_process = 0

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

    def page_failed(self, failure):
        """Errback of a detail page: the sound still gets an item, with the reason."""
        request = failure.request
        status, message = classify_failure(failure.value)
        sid = request.meta["source_id"]
        yield SoundItem.new(id=f"{self.source}:{sid}", source=self.source, source_id=sid, tags=[],
                            view_link=request.url, audio_urls=[],
                            listing_position=request.cb_kwargs.get("position"),
                            status=status, error=f"detail page: {message}")

    def listing_failed(self, failure):
        status, message = classify_failure(failure.value)
        self.crawler.stats.inc_value("wt5k/listing_failed")
        self.logger.error("listing/discovery page %s failed (%s): %s", failure.request.url, status, message)
