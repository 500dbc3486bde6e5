"""Converters: a dataset's own files read into items (curation/audiocaps.py, clotho.py, ...) and taken through
the one curation pipeline, so that everything curation guarantees holds for them too (44.1 kHz, headroom,
duplicates, rejects with reasons, safe output paths, resume). Each writes its manifest under its own name."""
from __future__ import annotations

import os
from pathlib import Path

from .audiocaps import audiocaps_items
from .clotho import clotho_items
from .dataset_files import DEFAULT_ENCODING
from .pipeline import CurateOptions, CurateReport, curate


def convert_audiocaps(csvs: dict[str, str | os.PathLike], clips_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      options: CurateOptions | None = None, encoding: str = DEFAULT_ENCODING) -> CurateReport:
    opts = options or CurateOptions(manifest_name="audiocaps.csv")
    return curate(Path(out_dir), items=audiocaps_items(csvs, clips_dir, encoding), options=opts)


def convert_clotho(splits: list[tuple[str, str | os.PathLike, str | os.PathLike]], out_dir: str | os.PathLike,
                   options: CurateOptions | None = None, encoding: str = DEFAULT_ENCODING) -> CurateReport:
    opts = options or CurateOptions(manifest_name="clotho.csv")
    return curate(Path(out_dir), items=clotho_items(splits, encoding), options=opts)
