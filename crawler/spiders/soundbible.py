"""SoundBible: newest-first listing pages, followed to the end, then every detail page."""
from __future__ import annotations

import re

from scrapy.http import Response

from ..items import SoundItem
from .base import SoundSpider

DETAIL_HREF = re.compile(r"(?:^|/)(\d+)-[^/]*\.html$")
KNOWN_LICENSES = re.compile(r"Attribution(?: Noncommercial)? \d\.\d|Sampling Plus \d\.\d|Public Domain|"
                            r"Personal Use Only|Noncommercial \d\.\d")


def _info_block(response: Response) -> tuple[str | None, str | None]:
    """(author, licence) from the sound's information block (``section#course-details div.course-info``:
    ``<h5>Author</h5><p>Recorded by X</p>``, ``<h5>License</h5><p>...</p>``), never from free text elsewhere:
    a description saying "Recorded by ..." or "Public Domain" is not the sound's author or licence."""
    author = license_ = None
    for block in response.css("section#course-details div.course-info"):
        label = (block.xpath("./h5").xpath("string()").get() or "").strip().lower()
        value = (block.xpath("./p").xpath("string()").get() or "").strip()  # raw, as the site shows it
        if not value:
            continue
        m = re.search(r"Recorded by\s+(.+)", value)
        if author is None and (label.startswith("author") or (m and not label)):
            author = m.group(1).strip() if m else value
        elif license_ is None and label.startswith("licen"):
            license_ = value
    if license_ is None:  # an unlabelled block naming one of the site's licences
        texts = response.css("section#course-details div.course-info p").xpath("string()").getall()
        license_ = next((m.group(0) for t in texts if (m := KNOWN_LICENSES.search(t))), None)
    return author, license_


def parse_detail(response: Response, position: int | None = None, listing_title: str | None = None) -> SoundItem:
    """A SoundItem from a detail page (raw texts as shown; audio_urls: wav, mp3, then the player's mp3)."""
    m = DETAIL_HREF.search(response.url)
    sid = m.group(1) if m else None
    main = response.css("section#course-details .col-lg-8")
    title = listing_title
    if title is None:
        title = main.xpath("(.//h1|.//h2|.//h3)[1]").xpath("string()").get()
    description = main.xpath("(.//p)[1]").xpath("string()").get()
    visible = [t for t in (a.xpath("string()").get() for a in response.css("li a[href^='tags-']")) if t.strip()]
    keywords = response.xpath("//meta[@name='keywords']/@content").get() or ""
    tags = list(dict.fromkeys(t.strip() for t in visible + keywords.split(",") if t.strip()))
    author, license_ = _info_block(response)
    urls = [response.urljoin(h) for h in response.css("a[href*='grab.php']::attr(href)").getall()]
    player = response.css("#ag1::attr(data-source)").get()
    if player:  # relative to the site root, whatever the page's path
        root = re.match(r"https?://[^/]+", response.url)
        urls.append(f"{root.group(0)}/{player.lstrip('/')}" if root else response.urljoin(player))
    return SoundItem.new(
        id=f"soundbible:{sid}", source="soundbible", source_id=sid, title=title, description=description,
        tags=tags, author=author, license=license_.strip() if license_ else None, view_link=response.url,
        audio_urls=SoundBibleSpider.sort_audio_urls(urls), listing_position=position)


class SoundBibleSpider(SoundSpider):
    """Listing pages `/free-sound-effects-{N}.html` (newest first), each item `<h3><a href="{id}-{Slug}.html">`,
    followed until a page has none; then each sound's detail page."""
    name = "soundbible"
    source = "soundbible"
    default_base_url = "https://soundbible.com"
    format_preference = ("wav", "mp3")
    detail_url = DETAIL_HREF
    listing_path = "/free-sound-effects-{page}.html"
    listing_links = "h3 > a"

    def parse_detail(self, response: Response, position: int | None = None, link_text: str | None = None):
        return parse_detail(response, position, link_text)
