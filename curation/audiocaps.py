"""AudioCaps read into items: the dataset's CSVs (``audiocap_id, youtube_id, start_time, caption``; train has one
caption per clip, val and test five) plus a folder of downloaded clips, which is always incomplete: a missing
clip becomes a reject (stage "input", reason "missing_clip"), not an error.

Ids are ``audiocaps:<youtube_id>_<start_time>``; one manifest row per caption, with title "" and
description = caption so that every caption mode yields the caption; the split is the CSV's."""
from __future__ import annotations

import os

from manifests import ManifestError

from .dataset_files import DEFAULT_ENCODING, index_audio, read_csv
from .sources import Item

COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")


def _clip_names(audiocap_id: str, ytid: str, start: int) -> list[str]:
    """File names (without extension) that AudioCaps download tools use for a clip."""
    return [f"{ytid}_{start}", f"Y{ytid}_{start}", f"{ytid}_{start}.000", f"Y{ytid}_{start:.3f}_{start + 10:.3f}",
            f"{ytid}_{start * 1000}", f"Y{ytid}", ytid, audiocap_id]


def audiocaps_items(csvs: dict[str, str | os.PathLike], clips_dir: str | os.PathLike | None,
                    encoding: str = DEFAULT_ENCODING) -> list[Item]:
    """Items of AudioCaps splits ({"train": path, "val": path, "test": path}), one per clip with its captions
    (every caption cell as written, empty ones included); the CSVs are read as ``encoding`` text. ``clips_dir``
    None: captions only, no audio looked up (statistics)."""
    index = index_audio(clips_dir) if clips_dir is not None else {}
    items: dict[str, Item] = {}
    for split, path in csvs.items():
        for line, row in read_csv(path, COLUMNS, encoding):
            ytid = row["youtube_id"].strip()
            try:
                start = int(float(row["start_time"]))
            except ValueError:
                raise ManifestError(path, line, "start_time", f"not a number: {row['start_time']!r}") from None
            if not ytid:
                raise ManifestError(path, line, "youtube_id", "must not be empty")
            sid = f"{ytid}_{start}"
            item = items.get(f"audiocaps:{sid}")
            if item is None:
                audio = next((index[n] for n in _clip_names(row["audiocap_id"].strip(), ytid, start) if n in index), None)
                item = items[f"audiocaps:{sid}"] = Item(
                    id=f"audiocaps:{sid}", source="audiocaps", source_id=sid, audio=str(audio) if audio else None,
                    view_link=f"https://www.youtube.com/watch?v={ytid}&t={start}s", split=split, captions=[],
                    status="ok" if audio else "missing_clip", fail_stage="input",
                    error="" if audio else f"no clip file for {sid} in {clips_dir}",
                )
            item.captions.append(row["caption"])
    return list(items.values())

