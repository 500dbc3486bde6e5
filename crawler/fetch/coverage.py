"""What the paper's data came to: clips and captions per dataset and split in the curated manifests, next to the
paper's section 4.1 figures (`make data` prints it; `wt5k-fetch coverage --data DIR`).

Manifests (the paths the paper configs read): ``DIR/audiocaps/audiocaps.csv`` (splits train/val/test),
``DIR/clotho/clotho.csv`` (train = development, val = validation, test = evaluation) and
``DIR/curated/wavtext5k.csv`` (the paper trains on every sound with both a title and a description).
"""
from __future__ import annotations

import os
from pathlib import Path

from manifests.schema import ManifestError, iter_manifest

MANIFESTS = {"AudioCaps": "audiocaps/audiocaps.csv", "Clotho": "clotho/clotho.csv",
             "WavText5K": "curated/wavtext5k.csv"}
# The paper's figures (arXiv 2209.14275v1, section 4.1 and Table 1): (clips, captions); None = not stated.
# AudioCaps val is not used by the paper: the figures are the v1 CSV's (495 clips, 5 captions each).
PAPER = {
    ("AudioCaps", "train"): (40_582, 40_582, "the clips the paper could download"),
    ("AudioCaps", "val"): (495, 2_475, "AudioCaps v1 val CSV (the paper does not use it)"),
    ("AudioCaps", "test"): (975, 4_875, "test set"),
    ("Clotho", "train"): (3_839, 19_195, "development (trained on)"),
    ("Clotho", "val"): (1_045, 5_225, "validation (trained on: development + validation = 4,884 / 24,420)"),
    ("Clotho", "test"): (1_045, 5_225, "evaluation (test set)"),
    ("WavText5K", "title+description"): (4_348, 4_348, "sounds with a title and a description, all trained on"),
    ("WavText5K", "all"): (4_525, None, "the published list"),
}


def count_manifest(path: Path) -> dict[str, tuple[int, int]]:
    """(clips, rows) per split of a manifest; WavText5K also under "title+description" and "all"."""
    clips: dict[str, set[str]] = {}
    rows: dict[str, int] = {}

    def add(split: str, row_id: str) -> None:
        clips.setdefault(split, set()).add(row_id)
        rows[split] = rows.get(split, 0) + 1

    wavtext5k = path.name == "wavtext5k.csv"
    for row in iter_manifest(path):
        if wavtext5k:
            add("all", row.id)
            if row.title.strip() and row.description.strip():
                add("title+description", row.id)
        else:
            add(row.split or "(none)", row.id)
    return {s: (len(ids), rows[s]) for s, ids in clips.items()}


def coverage_report(data: str | os.PathLike) -> tuple[str, bool]:
    """The table, and whether every manifest was there and readable."""
    data = Path(data)
    lines = [f"{'dataset':<10} {'split':<18} {'clips':>8} {'paper':>8} {'%':>6} {'captions':>9} {'paper':>8}  "
             f"manifest / paper's figure"]
    complete = True
    for name, rel in MANIFESTS.items():
        path = data / rel
        try:
            counts = count_manifest(path)
        except FileNotFoundError:
            lines.append(f"{name:<10} {'-':<18} {'-':>8}  (no manifest at {path})")
            complete = False
            continue
        except (ManifestError, OSError, ValueError) as e:
            lines.append(f"{name:<10} {'-':<18} {'-':>8}  ({' '.join(str(e).split())})")
            complete = False
            continue
        splits = [s for (n, s) in PAPER if n == name] + sorted(set(counts) - {s for (n, s) in PAPER if n == name})
        for split in splits:
            clips, caps = counts.get(split, (0, 0))
            paper_clips, paper_caps, note = PAPER.get((name, split), (None, None, ""))
            pct = f"{100 * clips / paper_clips:5.1f}%" if paper_clips else "     -"
            paper_caps_text = f"{paper_caps:,}" if paper_caps is not None else "-"
            lines.append(f"{name:<10} {split:<18} {clips:>8,} {paper_clips or 0:>8,} {pct:>6} {caps:>9,} "
                         f"{paper_caps_text:>8}  {note or path}")
    return "\n".join(lines), complete
