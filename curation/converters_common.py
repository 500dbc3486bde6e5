"""What the AudioCaps and Clotho converters share: reading their caption CSVs and finding their audio files."""
from __future__ import annotations

import csv
import os
from pathlib import Path

from manifests import ManifestError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".aiff", ".aif")


def read_csv(path: str | os.PathLike, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a dataset's own CSV; an error names the file and the missing column."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, None, "no such CSV file")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        reader.fieldnames = header
        missing = [c for c in required if c not in header]
        if missing:
            raise ManifestError(path, 1, missing[0], f"missing column(s): {', '.join(missing)}")
        return [(reader.line_num, {k: (v or "") for k, v in row.items() if k is not None}) for row in reader]


def index_audio(folder: str | os.PathLike) -> dict[str, Path]:
    """Audio files under a folder by file name and by name without extension (first found wins)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no audio folder at {folder}")
    index: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file():
            index.setdefault(p.name, p.resolve())
            index.setdefault(p.stem, p.resolve())
    return index
