"""Reading a dataset's own files (AudioCaps, Clotho, a folder of your sounds): its caption CSVs, decoded row by
row in a given encoding, and its audio files, found by name anywhere under its folder."""
from __future__ import annotations

import os
from pathlib import Path

from manifests.audio_formats import AUDIO_EXTENSIONS
from manifests.schema import iter_csv


DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte order mark
ENCODING_HINT = "pass --encoding with the file's encoding (copies of Clotho's CSVs circulate in cp949)"


def read_csv(path: str | os.PathLike, required: tuple[str, ...],
             encoding: str = DEFAULT_ENCODING) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a dataset's own CSV; an error names the file, the row and the missing column
    or the encoding tried."""
    return [(line, {k: v or "" for k, v in row.items()})
            for line, row in iter_csv(path, required, what="CSV", encoding=encoding, hint=ENCODING_HINT)]


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
