"""Replays a manifest in the published WavText5K CSV format: downloads what it lists, no page is parsed.

Title, description and tags come from the CSV; the audio URLs are the row's download_link first, then
the other formats of the same sound (the 2022 BigSoundBank WAV links now lead to an HTML page)."""
from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from manifests import PUBLISHED_CSV, parse_tags, read_published_csv, source_id_of, source_of
from manifests.sources import source_info

from ..items import SoundItem
from .base import SoundSpider, registered_sources

SB_FNAME_POSITION = re.compile(r"_(\d+)\.wav$")  # published SoundBible fname: {title}_{listing position}.wav


def candidate_urls(source: str, source_id: str, download_link: str, view_link: str = "") -> list[str]:
    """The row's link, then the same sound in the other formats its source serves (manifests/sources.py),
    best first, on the site of the row's links (a link to elsewhere does not move them)."""
    root = next((f"{p.scheme}://{p.netloc}" for p in map(urlsplit, (download_link, view_link))
                 if source_of(p.geturl()) == source and p.scheme in ("http", "https")), None)
    others = source_info(source).other_audio_urls(root, source_id) if root else []
    return list(dict.fromkeys([download_link, *others] if download_link else others))


class ManifestSpider(SoundSpider):
    name = "manifest"

    def __init__(self, replay: str | None = None, soundbible_url: str | None = None,
                 bigsoundbank_url: str | None = None, site_urls: dict[str, str] | None = None, **kwargs):
        # Where each site is served (site_urls: source -> base URL; the real sites by default, the mirror in
        # tests and the demo). soundbible_url / bigsoundbank_url: the older spider arguments.
        site_urls = {**(site_urls or {}), **{k: v for k, v in (("soundbible", soundbible_url),
                                                               ("bigsoundbank", bigsoundbank_url)) if v}}
        super().__init__(site_urls=site_urls, **kwargs)
        self.replay = replay or str(PUBLISHED_CSV)

    def sources(self) -> list[str]:
        return registered_sources()

    def rebase(self, url: str) -> str:
        root = self.site_urls.get(source_of(url))
        if not url or not root:
            return url
        new, old = urlsplit(root), urlsplit(url)
        return urlunsplit((new.scheme, new.netloc, old.path, old.query, old.fragment))

    async def start(self):
        too_long: list[tuple[int, str]] = []
        rows = read_published_csv(self.replay, too_long)
        for line, why in too_long:  # recorded as a bad row like any other, never parsed
            if self.claim(f"unknown:row{line}"):
                yield SoundItem.new(id=f"unknown:row{line}", source=None, source_id=None, audio_urls=[],
                                    status="bad_row", error=f"{self.replay} line {line}: {why}")
        for row in rows:
            line = row.line
            try:
                source, sid = source_of(row.view_link or row.download_link), source_id_of(row.view_link,
                                                                                          row.download_link)
            except ValueError as e:
                if not self.claim(f"unknown:row{line}"):
                    continue
                yield SoundItem.new(id=f"unknown:row{line}", source=None, source_id=None, title=row.title,
                                    description=row.description, tags=parse_tags(row.tags),
                                    view_link=row.view_link, download_link=row.download_link, audio_urls=[],
                                    status="bad_row", error=f"{self.replay} line {line}: {e}")
                continue
            sound_id = f"{source}:{sid}"
            if not self.claim(sound_id):
                continue
            m = SB_FNAME_POSITION.search(row.fname) if source == "soundbible" else None
            yield self.checked(SoundItem.new(
                id=sound_id, source=source, source_id=sid, title=row.title, description=row.description,
                tags=parse_tags(row.tags), view_link=self.rebase(row.view_link),
                audio_urls=[self.rebase(u) for u in candidate_urls(source, sid, row.download_link, row.view_link)],
                listing_position=int(m.group(1)) if m else None))
