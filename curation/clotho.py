"""Clotho read into items: per split, the caption CSV (``file_name, caption_1 ... caption_5``) and its audio folder.

Ids are ``clotho:<file_name>``; one manifest row per caption, title "" and description = caption; the split is
the one given for the CSV (development -> train, validation -> val, evaluation -> test by convention)."""
from __future__ import annotations

import os

from manifests import ManifestError

from .dataset_files import DEFAULT_ENCODING, find_audio, index_audio, not_found, read_csv
from .sources import Item

CAPTION_COLUMNS = tuple(f"caption_{i}" for i in range(1, 6))


def clotho_items(splits: list[tuple[str, str | os.PathLike, str | os.PathLike]],
                 encoding: str = DEFAULT_ENCODING) -> list[Item]:
    """Items of Clotho splits given as (split, captions csv, audio folder); the CSVs are read as ``encoding``.
    An audio folder None: captions only, no audio looked up (statistics)."""
    items: dict[str, Item] = {}
    for split, csv_path, audio_dir in splits:
        index = index_audio(audio_dir) if audio_dir is not None else {}
        for line, row in read_csv(csv_path, ("file_name",) + CAPTION_COLUMNS, encoding):
            name = row["file_name"].strip()
            if not name:
                raise ManifestError(csv_path, line, "file_name", "must not be empty")
            audio = find_audio(index, name)
            items[f"clotho:{name}"] = Item(
                id=f"clotho:{name}", source="clotho", source_id=name, audio=str(audio) if audio else None,
                split=split, captions=[row[c] for c in CAPTION_COLUMNS],
                status="ok" if audio else "missing_audio", fail_stage="input",
                error="" if audio else not_found(name, audio_dir, index),
            )
    return list(items.values())

