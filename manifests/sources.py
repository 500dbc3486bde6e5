"""What each source of sounds and captions is: one registry read by every stage.

The crawler (spiders' hosts, the manifest replay's candidate URLs), the published-CSV reader (which site a link
belongs to, the sound's id in it), curation's Table 1 (language, text source, whether titles and descriptions
exist) and the offline mirror all read a source's facts from here. Adding a source is one ``Source(...)`` entry
(or ``register(Source(...))`` from a user's own code); a source that is not registered still works everywhere,
with "unknown" facts and its URL host as its name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Source:
    name: str                                        # the "source" column / the prefix of "source:id"
    hosts: tuple[str, ...] = ()                      # the site's host names ("www." is accepted in front)
    audio_hosts: tuple[str, ...] = ()                # other hosts its pages are known to serve audio from
    # Where the sound's id is in its links: (link column, regular expression whose group 1 is the id), in order.
    id_patterns: tuple[tuple[str, str], ...] = ()
    # Other download URLs of the same sound, best first: str.format templates of {root} and {id}.
    audio_url_templates: tuple[str, ...] = ()
    language: str = "unknown"
    text_source: str = "unknown"                     # where its captions come from (Table 1)
    has_titles: bool = True                          # False for human-captioned datasets: no title,
    has_descriptions: bool = True                    # description or tags, Table 1 says n/a
    has_tags: bool = True
    _compiled: tuple = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_compiled", tuple((col, re.compile(rx)) for col, rx in self.id_patterns))

    @property
    def captioned(self) -> bool:
        """Human captions only (no web metadata)."""
        return not (self.has_titles or self.has_descriptions or self.has_tags)

    def id_of(self, view_link: str = "", download_link: str = "") -> str | None:
        links = {"view_link": view_link or "", "download_link": download_link or ""}
        for column, pattern in self._compiled:
            if m := pattern.search(links[column]):
                return m.group(1)
        return None

    def other_audio_urls(self, root: str, source_id: str) -> list[str]:
        return [t.format(root=root.rstrip("/"), id=source_id) for t in self.audio_url_templates]


SOURCES: dict[str, Source] = {}


def register(source: Source) -> Source:
    """Add (or replace) a source; returns it."""
    SOURCES[source.name] = source
    return source


def source_info(name: str) -> Source:
    """The registered source of that name, or one with unknown facts."""
    return SOURCES.get(name) or Source(name)


def source_of_host(host: str) -> Source | None:
    """The registered source serving that host (its pages or its audio), if any."""
    host = (host or "").lower().removeprefix("www.")
    return next((s for s in SOURCES.values() if host in s.hosts or host in s.audio_hosts), None)


def host_of(url: str) -> str:
    try:
        return (urlsplit(url or "").hostname or "").lower()
    except ValueError:
        return ""


WEB = "web metadata (title, description)"
HUMAN = "human captions (crowdsourced)"

register(Source(
    name="soundbible", hosts=("soundbible.com",),
    id_patterns=(("view_link", r"soundbible\.com/(\d+)-[^/]*\.html"), ("download_link", r"[?&]id=(\d+)")),
    audio_url_templates=("{root}/grab.php?id={id}&type=wav", "{root}/grab.php?id={id}&type=mp3"),
    language="English", text_source=WEB))
register(Source(
    name="bigsoundbank", hosts=("bigsoundbank.com",),
    id_patterns=(("view_link", r"bigsoundbank\.com/(?:detail-|sound-)(\d{4,})-"),
                 ("view_link", r"bigsoundbank\.com/(?:[^/]*-)?s(\d{4,})\.html"),
                 ("download_link", r"/UPLOAD/[^/]+/(\d{4,})\.\w+")),
    audio_url_templates=("{root}/UPLOAD/flac/{id}.flac", "{root}/UPLOAD/wav/{id}.wav",
                         "{root}/UPLOAD/bwf-en/{id}.wav", "{root}/UPLOAD/ogg/{id}.ogg",
                         "{root}/UPLOAD/mp3/{id}.mp3"),
    language="English", text_source=WEB))
register(Source(name="audiocaps", language="English", text_source=HUMAN,
                has_titles=False, has_descriptions=False, has_tags=False))
register(Source(name="clotho", language="English", text_source=HUMAN,
                has_titles=False, has_descriptions=False, has_tags=False))
