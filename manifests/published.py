"""The published WavText5K CSV format: ``view_link, download_link, title, description, fname, tags``.

Its tags are Python-list strings (``"['a', 'b']"``); three rows carry leaked ``<li>`` HTML inside the list,
which ``parse_tags`` repairs. Import builds ManifestRows from it; export writes it back.
"""
from __future__ import annotations

import ast
import csv
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .atomic import atomic_path
from .captions import make_caption
from .schema import ManifestError, ManifestRow, iter_csv
from .sources import host_of, source_of_host

PUBLISHED_COLUMNS = ("view_link", "download_link", "title", "description", "fname", "tags")
# The copy of the official CSV that ships with the project (see manifests/README.md for origin and licence).
PUBLISHED_CSV = Path(__file__).with_name("wavtext5k_published.csv")

_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
_TAG_HTML = re.compile(r"<[^>]+>")
# Longest a published field may be (the official CSV's longest: tags 3,079, description 451 characters): a
# longer one is a rejected row, never fed to the parser (100,000 characters of tags exhaust ast's memory).
FIELD_LIMITS = {"tags": 16_384}
FIELD_LIMIT = 65_536


@dataclass
class PublishedRow:
    view_link: str
    download_link: str
    title: str
    description: str
    fname: str
    tags: str
    line: int = field(default=0, compare=False)  # the CSV line it was read from (0: not read from a file)

    @property
    def source(self) -> str:
        return source_of(self.view_link or self.download_link)

    @property
    def source_id(self) -> str:
        return source_id_of(self.view_link, self.download_link)

    @property
    def id(self) -> str:
        return f"{self.source}:{self.source_id}"


def source_of(url: str) -> str:
    """The registered source (manifests/sources.py) whose site the URL is on, or the URL's host."""
    host = host_of(url if "://" in (url or "") else f"http://{url}")
    known = source_of_host(host)
    return known.name if known else (host.removeprefix("www.") or "unknown")


def source_id_of(view_link: str, download_link: str = "") -> str:
    """The site's own id of a sound from its links, by its source's id patterns (BigSoundBank ids keep their
    4-digit zero padding)."""
    for url in (view_link, download_link):
        known = source_of_host(host_of(url))
        if known and (sid := known.id_of(view_link, download_link)):
            return sid
    raise ValueError(f"cannot find a sound id in {view_link!r} / {download_link!r}")


def parse_tags(text: str) -> list[str]:
    """Tags from a Python-list string; leaked HTML items are reduced to their text, blank tags dropped,
    order and duplicates kept as published (the first occurrence of each)."""
    text = (text or "").strip()
    if not text:
        return []
    try:
        if len(text) > FIELD_LIMITS["tags"]:  # the linear repair below instead of the parser
            raise ValueError("too long to parse")
        value = ast.literal_eval(text)
        items = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        # Broken lists: a bare <li>...</li> sits between quoted items, and the string may be cut off.
        items = []
        for part in re.split(r"(<li>.*?</li>)", text.strip("[]")):
            if part.startswith("<li>"):
                items.append(html.unescape(_TAG_HTML.sub("", part)))
            else:
                items.extend(a if a else b for a, b in _QUOTED.findall(part))
    out, seen = [], set()
    for t in items:
        t = " ".join(t.split())
        if t and t not in seen:
            seen.add(t)
            out.append(t)
    return out


def format_tags(tags: Iterable[str]) -> str:
    tags = list(tags)
    return repr(tags) if tags else ""


def read_published_csv(path: str | os.PathLike = PUBLISHED_CSV,
                       rejected: list[tuple[int, str]] | None = None) -> list[PublishedRow]:
    """The rows of a published-format CSV. A row with a field longer than its limit (FIELD_LIMITS) is left out
    and listed in ``rejected`` as (line, why) when a list is given (curation, replay: one rejected row), else
    it is a ManifestError naming the row and column."""
    rows = []
    for line, raw in iter_csv(path, PUBLISHED_COLUMNS, what="published WavText5K CSV"):
        long = next((c for c in PUBLISHED_COLUMNS if len(raw[c] or "") > FIELD_LIMITS.get(c, FIELD_LIMIT)), None)
        if long is not None:
            why = (f"column {long!r} has {len(raw[long]):,} characters, more than the "
                   f"{FIELD_LIMITS.get(long, FIELD_LIMIT):,} a published row may hold")
            if rejected is None:
                raise ManifestError(path, line, long, why)
            rejected.append((line, why))
            continue
        row = PublishedRow(**{c: raw[c] or "" for c in PUBLISHED_COLUMNS}, line=line)
        if not (row.view_link or row.download_link):
            raise ManifestError(path, line, "view_link", "row has neither view_link nor download_link")
        rows.append(row)
    return rows


def write_published_csv(path: str | os.PathLike, rows: Iterable[PublishedRow]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=PUBLISHED_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({c: getattr(r, c) for c in PUBLISHED_COLUMNS})
    return path


def published_to_manifest(rows: Iterable[PublishedRow], caption_mode: str = "title_description",
                          audio_dir: str = "audio") -> list[ManifestRow]:
    """One manifest row per published row, none left out (audio not yet fetched: durations unknown, audio_path
    from fname). The published text and tags are kept exactly in ``title_raw``, ``description_raw`` and
    ``tags_raw``; a row with neither title nor description gets an empty caption and no split (the schema
    allows exactly that), so the published file survives a round trip whole. Which rows a dataset keeps is the
    curation filter's decision, not the import's."""
    out = []
    for r in rows:
        out.append(ManifestRow(
            id=r.id, source=r.source, audio_path=f"{audio_dir}/{r.fname}" if audio_dir else r.fname,
            caption=make_caption(r.title, r.description, caption_mode), title=r.title.strip(),
            description=r.description.strip(), tags=parse_tags(r.tags), view_link=r.view_link,
            download_link=r.download_link, license="", title_raw=r.title, description_raw=r.description,
            tags_raw=r.tags,
        ))
    return out


def manifest_to_published(rows: Iterable[ManifestRow]) -> list[PublishedRow]:
    """One published row per audio (the first row of each id), fname from the audio file's name; the raw
    columns, where a row has them, give back the published text and tags exactly."""
    out, seen = [], set()
    for r in rows:
        if r.id in seen:
            continue
        seen.add(r.id)
        out.append(PublishedRow(
            view_link=r.view_link, download_link=r.download_link,
            title=r.title_raw or r.title, description=r.description_raw or r.description,
            fname=Path(r.audio_path).name, tags=r.tags_raw or format_tags(r.tags),
        ))
    return out
