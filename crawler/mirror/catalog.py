"""What the mirror serves: one record per sound, built from a published-format WavText5K CSV.

Everything the CSV lacks (authors, licences, technical data, file names, page eras) is chosen
deterministically from the sound's id, so the same CSV always gives the same mirror.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from manifests import PUBLISHED_CSV, parse_tags, read_published_csv

SB_AUTHORS = ("Mike Koenig", "mike koenig", "fws.gov", "Daniel Simion", "Marianne Gagnon", "snottyboy",
              "ReamProductions", "Stephan Schutze")
SB_LICENSES = ("Attribution 3.0", "Sampling Plus 1.0", "Public Domain", "Noncommercial 3.0", "Personal Use Only")
BSB_RECORDERS = ("SoundDevices MixPre-3 + Neumann KM184", "Zoom H4n", "Tascam DR-100 + Rode NT4",
                 "Sony PCM-D50")
BSB_CATEGORIES = ("animals", "city", "domestic", "human", "nature", "transport", "weapons", "various")
# (sample rate, bits, channels) combinations of the generated audio: varied like the real files.
AUDIO_SPECS = ((44100, 16, 2), (48000, 24, 1), (22050, 16, 1), (44100, 24, 1), (48000, 16, 2),
               (32000, 16, 1), (96000, 24, 2))


def id_hash(sound_id: str) -> int:
    """A stable integer per id (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(sound_id.encode()).digest()[:8], "big")


@dataclass
class Sound:
    id: str                 # "soundbible:2219" / "bigsoundbank:0100"
    source: str
    source_id: str
    title: str
    description: str
    tags: list[str]
    fname: str              # the published file name (used to find a provided audio file)
    slug: str               # SoundBible: the full href; BigSoundBank: the frozen slug
    author: str
    license: str
    sample_rate: int
    bit_depth: int
    channels: int
    recorder: str = ""
    basename: str = ""      # SoundBible static file basename (may contain spaces)
    category: str = ""
    in_sitemap: bool = True
    sitemap_era: str = "today"  # BigSoundBank: which URL the sitemap lists ("2022" or "today")
    duration_s: float = 0.0     # set by the audio provider once the audio is known
    extra: dict = field(default_factory=dict)


def _sb_basename(title: str, author: str, h: int) -> str:
    # The three file-name families seen on the real site.
    family = h % 3
    if family == 0:
        return f"{title} -SoundBible.com-{h % 2147483647}"
    if family == 1:
        return f"{re.sub(r'[^A-Za-z0-9]+', '_', title).strip('_')}-{author.replace(' ', '_')}-{h % 2147483647}"
    return f"{re.sub(r'[^a-z0-9]+', '-', title.lower()).strip('-')}_{author.split()[0].lower()}"


# The sources the mirror serves (each its own site, see server.py); what they are: manifests/sources.py.
MIRRORED_SOURCES = ("soundbible", "bigsoundbank")


def load_catalog(csv_path: str | os.PathLike = PUBLISHED_CSV, limit: int | None = None) -> list[Sound]:
    """Sounds of both sites from a published-format CSV (rows of other sources are not served); `limit` keeps
    the first N rows of each site."""
    sounds: list[Sound] = []
    counts = dict.fromkeys(MIRRORED_SOURCES, 0)
    seen: set[str] = set()
    basenames: set[str] = set()
    for row in read_published_csv(Path(csv_path)):
        source, sid = row.source, row.source_id
        if source not in counts or row.id in seen:
            continue
        if limit is not None and counts[source] >= limit:
            continue
        counts[source] += 1
        seen.add(row.id)
        h = id_hash(row.id)
        rate, bits, ch = AUDIO_SPECS[h % len(AUDIO_SPECS)]
        if source == "soundbible":
            author = SB_AUTHORS[h % len(SB_AUTHORS)]
            href = row.view_link.rsplit("/", 1)[-1]
            basename = _sb_basename(row.title.strip() or "sound", author, h)
            if basename in basenames:  # one static file per sound: same-titled sounds must not share one
                basename = f"{basename}-{sid}"
            basenames.add(basename)
            sounds.append(Sound(
                id=row.id, source=source, source_id=sid, title=row.title, description=row.description,
                tags=parse_tags(row.tags), fname=row.fname, slug=href, author=author,
                license=SB_LICENSES[(h >> 8) % len(SB_LICENSES)], sample_rate=rate, bit_depth=bits,
                channels=ch, basename=basename))
        else:
            m = re.search(r"(?:detail|sound)-\d+-(.+)\.html$", row.view_link) or re.search(
                r"/([^/]+)-s\d+\.html$", row.view_link)
            slug = m.group(1) if m else f"sound-{sid}"
            words = [w for w in re.findall(r"[a-zà-ÿ]+", row.title.lower()) if len(w) > 3]
            sounds.append(Sound(
                id=row.id, source=source, source_id=sid, title=row.title, description=row.description,
                tags=parse_tags(row.tags) or list(dict.fromkeys(words)), fname=row.fname, slug=slug,
                author="Joseph SARDIN", license="CC0 1.0", sample_rate=rate, bit_depth=bits, channels=ch,
                recorder=BSB_RECORDERS[(h >> 8) % len(BSB_RECORDERS)],
                category=BSB_CATEGORIES[(h >> 16) % len(BSB_CATEGORIES)],
                # A few sounds are missing from the sitemap (reachable from category pages only),
                # and some are listed under their 2022 URL: the spider must handle both.
                in_sitemap=(h >> 24) % 23 != 0, sitemap_era="2022" if (h >> 32) % 5 == 0 else "today"))
    return sounds
