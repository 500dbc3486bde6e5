"""BigSoundBank: sounds from the sitemap and the category pages; JSON-LD first, visible text as fallback.
Handles the 2022 `detail-NNNN-slug.html`, the 2023 `sound-NNNN-slug.html` and today's `slug-sNNNN.html`."""
from __future__ import annotations

import json
import re

import scrapy
from scrapy.http import Response
from scrapy.utils.sitemap import Sitemap

from ..items import SoundItem
from .base import SoundSpider

DETAIL_URL = re.compile(r"/(?:detail|sound)-(\d{4,})-[^/]*\.html$|/(?:[^/]*-)?s(\d{4,})\.html$")
TECH = re.compile(r"([\d][\d,.\s]*)\s*Hz\s*/\s*(\d+)\s*bits?\s*(?:,\s*([^,]+?))?\s*(?:,\s*(.+))?$", re.I)
ISO_DURATION = re.compile(r"^P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$")


def detail_id(url: str) -> str | None:
    m = DETAIL_URL.search(url.split("?")[0])
    return (m.group(1) or m.group(2)).zfill(4) if m else None


def iso_duration_s(text: str | None) -> float | None:
    m = ISO_DURATION.match((text or "").strip())
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (float(g) if g else 0.0 for g in m.groups())
    return round(((d * 24 + h) * 60 + mi) * 60 + s, 3)


def _audio_object(response: Response) -> dict:
    for raw in response.xpath("//script[@type='application/ld+json']/text()").getall():
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            continue
        stack = data if isinstance(data, list) else [data]
        while stack:
            obj = stack.pop(0)
            if isinstance(obj, dict):
                if obj.get("@type") == "AudioObject" or "AudioObject" in (obj.get("@type") or []):
                    return obj
                stack.extend(obj.get("@graph") or [])
    return {}


def _channels(word: str | None) -> int | None:
    w = (word or "").lower()
    if w.startswith("mono"):
        return 1
    if w.startswith("stereo"):
        return 2
    m = re.match(r"(\d+)\s*channels?", w)
    return int(m.group(1)) if m else None


def parse_detail(response: Response) -> SoundItem:
    ld = _audio_object(response)
    texts = [t.strip() for t in response.xpath("//body//text()").getall() if t.strip()]

    def labelled(label: str) -> str | None:
        return next((m.group(1).strip() for t in texts if (m := re.match(label + r"\s*:\s*(.+)", t, re.I))), None)

    sid = detail_id(response.url)
    if sid is None and (number := labelled("Sound number")):
        sid = re.sub(r"\D", "", number).zfill(4)
    title = ld.get("name")
    if isinstance(title, str):
        title = re.sub(r" — [^—]*$", "", title)  # "Forest — BigSoundBank"
    else:
        title = response.xpath("//h1").xpath("string()").get()
    description = ld.get("description")
    if not isinstance(description, str):
        description = response.xpath("//*[contains(@class,'description')]").xpath("string()").get()
    keywords = ld.get("keywords")
    if keywords is None:
        keywords = response.xpath("//meta[@name='keywords']/@content").get() or ""
    tags = keywords if isinstance(keywords, list) else keywords.split(",")
    duration = iso_duration_s(ld.get("duration"))
    if duration is None and (vis := labelled("Duration")):
        parts = [float(p) for p in re.findall(r"[\d.]+", vis)]
        duration = round(sum(p * 60 ** i for i, p in enumerate(reversed(parts))), 3) if parts else None
    author = ld.get("author")
    author = author.get("name") if isinstance(author, dict) else author
    author = author or labelled("Author")
    license_ = ld.get("license") or labelled("Licen[cs]e")
    rate = bits = channels = recorder = None
    for t in texts:
        if m := TECH.search(t):
            rate, bits = int(re.sub(r"\D", "", m.group(1))), int(m.group(2))
            channels, recorder = _channels(m.group(3)), (m.group(4) or "").strip() or None
            break
    links = [ld["contentUrl"]] if isinstance(ld.get("contentUrl"), str) else []
    links += response.xpath("//a[contains(@href, '/UPLOAD/')]/@href").getall()
    urls = BigSoundBankSpider.sort_audio_urls([response.urljoin(u) for u in links])
    return SoundItem.new(
        id=f"bigsoundbank:{sid}", source="bigsoundbank", source_id=sid, title=title, description=description,
        tags=[t.strip() for t in tags if str(t).strip()], author=author, license=license_,
        view_link=response.url, audio_urls=urls, duration_s=duration, sample_rate=rate, bit_depth=bits,
        channels=channels, recorder=recorder)


class BigSoundBankSpider(SoundSpider):
    """Sounds from the sitemap and the category pages (the sitemap misses some), each detail page once."""
    name = "bigsoundbank"
    source = "bigsoundbank"
    default_base_url = "https://bigsoundbank.com"
    format_preference = ("flac", "wav", "ogg", "mp3")  # lossless first

    def detail_id(self, url: str) -> str | None:
        return detail_id(url)

    async def start(self):
        yield scrapy.Request(f"{self.base_url}/sitemap_bsb.xml", callback=self.parse_sitemap,
                             errback=self.listing_failed)
        yield scrapy.Request(f"{self.base_url}/categories.html", callback=self.parse_categories,
                             errback=self.listing_failed)

    def parse_sitemap(self, response: Response):
        for entry in Sitemap(response.body):
            yield from self.detail_request(response, entry["loc"])

    def parse_categories(self, response: Response):
        for href in response.css("a::attr(href)").getall():
            if re.search(r"/categor[^/]*-[^/]+\.html$", href) and detail_id(href) is None:
                yield response.follow(href, callback=self.parse_results, errback=self.listing_failed)

    def parse_results(self, response: Response):
        for href in response.css("h2 a::attr(href)").getall():
            yield from self.detail_request(response, href)
        for href in response.css("a[rel=next]::attr(href), .pagination a::attr(href)").getall():
            yield response.follow(href, callback=self.parse_results, errback=self.listing_failed)

    def parse_detail(self, response: Response):
        return parse_detail(response)
