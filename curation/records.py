"""What users bring, read for the statistics: a manifest, a published-format CSV, AudioCaps or Clotho caption
CSVs, each told from its header row and read into Table 1 records (``AudioText``, curation/table1.py), with
the durations of a manifest's audio. The reports (curation/stats.py) sit on these readers; nothing here
writes."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import soundfile as sf

from manifests import COLUMNS, ManifestError, ManifestRow, read_manifest, read_published_csv, resolve_audio
from manifests.file_kind import binary_kind
from manifests.published import PUBLISHED_COLUMNS
from manifests.schema import decoded_lines

from .audiocaps import COLUMNS as AUDIOCAPS_COLUMNS, audiocaps_items
from .clotho import CAPTION_COLUMNS, clotho_items
from .dataset_files import DEFAULT_ENCODING, ENCODING_HINT
from .published import import_published
from .table1 import AudioText, records_from_captions, records_from_manifest_rows

CLOTHO_COLUMNS = ("file_name",) + CAPTION_COLUMNS


def detect_kind(path: str | os.PathLike, encoding: str = DEFAULT_ENCODING) -> str:
    """"manifest", "published", "audiocaps" or "clotho", from the CSV's header row; every line must be
    ``encoding`` text (a bad byte is reported with its row)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(path, None, None, "no such file")
    kind = binary_kind(path)
    if kind:
        raise ManifestError(path, None, None, f"the file is {kind}, not a CSV")
    with open(path, "rb") as f:
        lines = decoded_lines(f, path, encoding, ENCODING_HINT)  # a bad byte is reported with its row
        text = next(lines, "")
        for _ in lines:
            pass
    header = {h.strip() for h in next(csv.reader([text]), [])}
    for kind, cols in (("manifest", COLUMNS), ("published", PUBLISHED_COLUMNS), ("audiocaps", AUDIOCAPS_COLUMNS),
                       ("clotho", CLOTHO_COLUMNS)):
        if set(cols) <= header:
            return kind
    raise ManifestError(path, 1, None, "not a manifest, a published WavText5K CSV, an AudioCaps CSV "
                                       f"({', '.join(AUDIOCAPS_COLUMNS)}) or a Clotho CSV (file_name, caption_1..5); "
                                       f"its columns: {', '.join(sorted(header)) or 'none'}")


def audio_durations(rows: list[ManifestRow], manifest_path: str | os.PathLike | None = None) -> dict[str, float | None]:
    """Duration of each id: the manifest's duration_s, else measured from the audio file when it exists."""
    out: dict[str, float | None] = {}
    for r in rows:
        if r.id in out and out[r.id] is not None:
            continue
        d = r.duration_s
        if d is None and manifest_path is not None:
            p = resolve_audio(manifest_path, r)
            if p.is_file():
                try:
                    d = sf.info(str(p)).duration
                except RuntimeError:
                    d = None
        out[r.id] = d
    return out


def read_records(path: str | os.PathLike, split: str | None = None,
                 encoding: str = DEFAULT_ENCODING) -> tuple[str, list[AudioText], list[ManifestRow]]:
    """(kind, records, the manifest's rows) of one file of any supported kind (the rows only for a manifest,
    whose headroom columns the report also counts; else empty); ``split`` names the part of a caption CSV
    (default: the file's stem); AudioCaps and Clotho CSVs are read as ``encoding`` text."""
    kind = detect_kind(path, encoding)
    split = split or Path(path).stem
    if kind == "manifest":
        rows = read_manifest(path)
        return kind, records_from_manifest_rows(rows, audio_durations(rows, path)), rows
    if kind == "published":
        rows, _ = import_published(read_published_csv(path))  # cleaned as import-published does; none dropped
        return kind, records_from_manifest_rows(rows), []
    if kind == "audiocaps":
        items = audiocaps_items({split: path}, None, encoding)
    else:
        items = clotho_items([(split, path, None)], encoding)
    return kind, records_from_captions(kind, split, {it.id: it.captions for it in items}), []
