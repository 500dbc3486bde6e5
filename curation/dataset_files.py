"""Reading a dataset's own files (AudioCaps, Clotho, a folder of your sounds): its caption CSVs, decoded row by
row in a given encoding, and its audio files, found by name anywhere under its folder."""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

from manifests.audio_formats import is_audio_name
from manifests.schema import iter_csv


DEFAULT_ENCODING = "utf-8-sig"  # UTF-8, with or without a byte order mark
ENCODING_HINT = "pass --encoding with the file's encoding (copies of Clotho's CSVs circulate in cp949)"


def read_csv(path: str | os.PathLike, required: tuple[str, ...], encoding: str = DEFAULT_ENCODING,
             one_of: tuple[str, ...] = ()) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) pairs of a dataset's own CSV (with every ``required`` column and one of ``one_of``); an
    error names the file, the row and the missing column or the encoding tried."""
    return [(line, {k: v or "" for k, v in row.items()})
            for line, row in iter_csv(path, required, what="CSV", encoding=encoding, hint=ENCODING_HINT,
                                      one_of=one_of)]


def index_audio(folder: str | os.PathLike) -> dict[str, Path]:
    """Audio files under a folder (subfolders too) by their path relative to it (``class/name.wav``), by file
    name and by name without extension (first found wins)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no audio folder at {folder}")
    index: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if is_audio_name(p.name) and p.is_file():
            rel = p.relative_to(folder).as_posix()
            for key in (rel, rel[:-len(p.suffix)] if p.suffix else rel, p.name, p.stem):
                index.setdefault(key, p.resolve())
    return index


def find_audio(index: dict[str, Path], name: str) -> Path | None:
    """The file a dataset's CSV names (``name`` may hold subfolders, with ``/`` or ``\\``): by its path
    relative to the folder, else by its file name anywhere under it."""
    name = name.replace("\\", "/")
    return index.get(name) or index.get(posixpath.basename(name))


def not_found(name: str, folder: str | os.PathLike, index: dict[str, Path]) -> str:
    """What was looked for, for the reject of a file that is not there."""
    base = posixpath.basename(name.replace("\\", "/"))
    files = len({str(p) for p in index.values()})
    return (f"no file {name!r} in {folder}: looked for {name!r} relative to it and for a file named {base!r} in "
            f"any of its subfolders ({files} audio files there)")
