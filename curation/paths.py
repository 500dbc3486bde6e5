"""Where curation reads and writes: output paths built from record fields, and the check that an input path stays
inside the folder it is relative to.

Output paths are ``audio/<source>/<source_id>.<ext>``, every component cleaned (no separators, no ``..``, no
control characters, no leading dots, bounded length), so nothing is written outside the output folder; and they
are one-to-one: a name that had to be changed, or that would collide with another id's (also ignoring case and
Unicode normal form, as some filesystems do), gets a short hash of the full id, so two ids never share a file.
"""
from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable

# Characters that separate paths, are reserved on Windows or are control characters; each becomes "_".
_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]')
# Names Windows reserves whatever the extension (a dataset is often copied to a Windows share or an NTFS drive).
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
MAX_NAME_BYTES = 100  # well under the 255 bytes of common filesystems, with room for the hash and extension
HASH_CHARS = 10


def clean_component(text: str) -> str:
    """A single path component that means ``text`` as closely as possible: unsafe characters replaced, leading
    dots and surrounding blanks removed (no ``.``, ``..`` or hidden files), trailing dots removed and Windows'
    reserved device names suffixed (``CON`` -> ``CON_``), cut to MAX_NAME_BYTES of UTF-8."""
    name = _UNSAFE.sub("_", unicodedata.normalize("NFC", text)).strip().lstrip(".").strip()
    raw = name.encode("utf-8")
    if len(raw) > MAX_NAME_BYTES:
        name = raw[:MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip()
    name = name.rstrip(". ")  # Windows drops trailing dots and blanks: "a." and "a" would be one file there
    if name.split(".")[0].upper() in _RESERVED:
        name = f"{name}_"
    return name


def id_hash(item_id: str, n: int = HASH_CHARS) -> str:
    return hashlib.sha256(item_id.encode("utf-8", "surrogatepass")).hexdigest()[:n]


def output_paths(items: Iterable[tuple[str, str, str]], extension: str) -> dict[str, str]:
    """{id: relative output path} for (id, source, source_id) triples, one distinct file per id."""
    paths: dict[str, str] = {}
    for item_id, source, source_id in items:
        folder = clean_component(source) or "unknown"
        name = clean_component(source_id)
        # changed or empty (no source_id: "audio/x/.flac" would be a hidden file): another id may clean to it
        if not name or name != source_id or folder != source:
            name = f"{name}-{id_hash(item_id)}" if name else id_hash(item_id)
        paths[item_id] = f"audio/{folder}/{name}.{extension}"
    # Collisions left (names that needed no cleaning but differ only in case or normal form, or an unlikely
    # clash with a hashed name): every id of such a group gets its hash, then a longer one if still needed.
    for n in (HASH_CHARS, 64):
        groups: dict[str, list[str]] = {}
        for item_id, rel in paths.items():
            groups.setdefault(_fold(rel), []).append(item_id)
        clashes = [ids for ids in groups.values() if len(ids) > 1]
        if not clashes:
            break
        for ids in clashes:
            for item_id in ids:
                stem, ext = paths[item_id].rsplit(".", 1)
                paths[item_id] = f"{stem}-{id_hash(item_id, n)}.{ext}"
    return paths


def _fold(rel: str) -> str:
    return unicodedata.normalize("NFC", rel).casefold()


def contained(path: Path, roots: Iterable[Path]) -> bool:
    """Whether ``path`` (resolved: symbolic links followed) lies inside one of ``roots`` (resolved too)."""
    return any(path == r or path.is_relative_to(r) for r in (Path(os.path.realpath(r)) for r in roots))
