"""The published WavText5K CSV as a manifest, cleaned and filtered as curation would (``import-published`` and
``stats`` on a published-format CSV both use it)."""
from __future__ import annotations

from typing import Iterable

from manifests import ManifestRow, PublishedRow, make_caption, published_to_manifest

from .split import DEFAULT_FRACTIONS, assign_split
from .text import clean_tags, clean_text, missing_metadata


def import_published(published: Iterable[PublishedRow], caption_mode: str = "title_description",
                     audio_dir: str = "audio", fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                     require_both: bool = False) -> tuple[list[ManifestRow], dict[str, int]]:
    """(one manifest row per published row, {filter reason: rows}). Text and tags are cleaned as curation
    cleans them (the published values stay in the raw columns); a row the text filter rejects stays in the
    manifest, so that the published file survives a round trip whole, but gets no split: no training or
    evaluation split uses it, as curation would reject it."""
    rows = published_to_manifest(published, caption_mode=caption_mode, audio_dir=audio_dir)
    failing: dict[str, int] = {}
    for r in rows:
        r.title, r.description = clean_text(r.title_raw), clean_text(r.description_raw)
        r.tags = clean_tags(r.tags)
        r.caption = make_caption(r.title, r.description, caption_mode)
        missing = missing_metadata(r.title, r.description, require_both)
        r.split = "" if missing else assign_split(r.id, fractions)
        if missing:
            failing[missing] = failing.get(missing, 0) + 1
    return rows, failing
