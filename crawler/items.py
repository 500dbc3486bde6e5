"""The one item type every spider yields: a sound, its metadata and what happened to its download."""
from __future__ import annotations

import scrapy

# Field order = key order in items.jsonl. Every key is always written (None when unknown).
FIELDS = (
    "id", "source", "source_id", "title", "description", "tags", "author", "license", "view_link",
    "download_link", "audio_urls", "duration_s", "sample_rate", "bit_depth", "channels", "recorder",
    "listing_position", "crawl_time", "spider", "status", "error", "file_path", "file_size", "sha256",
    "audio_format",
)


class SoundItem(scrapy.Item):
    """One sound. Spiders fill the metadata and `audio_urls` (preference order); the download pipeline
    fills download_link, status, error and the file fields; the store pipeline writes it."""
    id = scrapy.Field()
    source = scrapy.Field()
    source_id = scrapy.Field()
    title = scrapy.Field()
    description = scrapy.Field()
    tags = scrapy.Field()
    author = scrapy.Field()
    license = scrapy.Field()
    view_link = scrapy.Field()
    download_link = scrapy.Field()
    audio_urls = scrapy.Field()
    duration_s = scrapy.Field()
    sample_rate = scrapy.Field()
    bit_depth = scrapy.Field()
    channels = scrapy.Field()
    recorder = scrapy.Field()
    listing_position = scrapy.Field()
    crawl_time = scrapy.Field()
    spider = scrapy.Field()
    status = scrapy.Field()
    error = scrapy.Field()
    file_path = scrapy.Field()
    file_size = scrapy.Field()
    sha256 = scrapy.Field()
    audio_format = scrapy.Field()

    @classmethod
    def new(cls, **values) -> "SoundItem":
        item = cls({name: None for name in FIELDS})
        item.update(values)
        return item

    def record(self) -> dict:
        """The JSON-ready record, keys in FIELDS order."""
        return {name: self.get(name) for name in FIELDS}
