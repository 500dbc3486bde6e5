"""Converters: a dataset's own files read into items (curation/audiocaps.py, clotho.py, ...) and taken through
the one curation pipeline, so that everything curation guarantees holds for them too (44.1 kHz, headroom,
duplicates, rejects with reasons, safe output paths, resume). Each writes its manifest under its own name."""
from __future__ import annotations

import os
from pathlib import Path

from .audiocaps import audiocaps_items
from .clotho import clotho_items
from .dataset_files import DEFAULT_ENCODING
from .folder import FolderScan, describe_folder_source, folder_items
from .pipeline import CurateOptions, CurateReport, curate


def convert_audiocaps(csvs: dict[str, str | os.PathLike], clips_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      options: CurateOptions | None = None, encoding: str = DEFAULT_ENCODING) -> CurateReport:
    opts = options or CurateOptions(manifest_name="audiocaps.csv")
    return curate(Path(out_dir), items=audiocaps_items(csvs, clips_dir, encoding), options=opts)


def convert_clotho(splits: list[tuple[str, str | os.PathLike, str | os.PathLike]], out_dir: str | os.PathLike,
                   options: CurateOptions | None = None, encoding: str = DEFAULT_ENCODING) -> CurateReport:
    opts = options or CurateOptions(manifest_name="clotho.csv")
    return curate(Path(out_dir), items=clotho_items(splits, encoding), options=opts)


def convert_folder(folder: str | os.PathLike, out_dir: str | os.PathLike, name: str, *,
                   captions: str | os.PathLike | None = None, labels_from_subfolders: bool = False,
                   sidecar_text: bool = False, options: CurateOptions | None = None,
                   encoding: str = DEFAULT_ENCODING) -> tuple[CurateReport, FolderScan]:
    """A folder of your own sounds (curation/folder.py says where the captions come from), curated into
    ``out_dir`` as the dataset ``name`` (manifest ``<name>.csv`` unless the options name another)."""
    opts = options or CurateOptions(manifest_name=f"{name}.csv")
    describe_folder_source(name, "captions CSV" if captions is not None
                           else "folder labels (subfolder names)" if labels_from_subfolders else "sidecar text files")
    scan = folder_items(folder, name, captions=captions, labels_from_subfolders=labels_from_subfolders,
                        sidecar_text=sidecar_text, encoding=encoding, allow_outside=opts.allow_outside,
                        skip=[out_dir])
    return curate(Path(out_dir), items=scan.items, rejects=scan.rejects, options=opts), scan
