"""The one item type every spider yields: a sound, its metadata and what happened to its download.

Its fields are those of the crawl record (manifests/crawl_record.py), the contract curation reads."""
from __future__ import annotations

import scrapy

from manifests.crawl_record import FIELDS, CrawlRecord


class SoundItem(scrapy.Item):
    """One sound. Spiders fill the metadata and `audio_urls` (preference order); the download pipeline
    fills download_link, status, error and the file fields; the store pipeline writes it."""
    fields = {name: scrapy.Field() for name in FIELDS}

    @classmethod
    def new(cls, **values) -> "SoundItem":
        item = cls({name: None for name in FIELDS})
        item.update(values)
        return item

    def record(self) -> CrawlRecord:
        """The crawl record this item becomes."""
        return CrawlRecord(**{name: self.get(name) for name in FIELDS})
