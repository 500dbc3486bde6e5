"""Retrieval evaluation of CLAP models on manifests, printed in the layout of the paper's Table 3.

Embedding is deterministic: every distinct audio of a manifest is embedded once, whole, in fixed windows of
the model's input length (training/data.py window_samples; training/inference.py: a short clip repeat-padded
to one window, a long one cut into consecutive windows, the last aligned to the clip's end; the clip's
embedding is the normalised mean of its windows'); every caption row is embedded once. Similarities are dot products and the metrics are
training/metrics.py's (DCASE 2022 task 6b definitions, pessimistic ties).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from manifests.atomic import atomic_path, write_text_inside
from training.config import ManifestSpec
from training.data import read_pairs, window_samples
from training.metrics import retrieval_metrics
from training.paper import compare_with_paper

TABLE_METRICS = ("mAP@10", "R@1", "R@5", "R@10", "R@50")  # the paper's Table 3 columns, in its order


def embed_manifest(embedder, spec: ManifestSpec, caption_mode: str
                   ) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    """(audio embeddings, audio ids, caption embeddings, each caption's audio id) of one manifest."""
    pairs = read_pairs(spec, caption_mode)
    audio_path: dict[str, str] = {}
    for p in pairs:
        audio_path.setdefault(p.audio_id, p.audio_path)
    audio_ids = list(audio_path)
    audio = embedder.embed_audio_files([audio_path[a] for a in audio_ids])
    text = embedder.embed_texts([p.caption for p in pairs])
    return audio, audio_ids, text, [p.audio_id for p in pairs]


@torch.no_grad()
def evaluate_model(model, specs: Sequence[ManifestSpec], caption_mode: str, window_samples: int,
                   batch_size: int = 32, device: str | torch.device = "cpu") -> dict[str, dict]:
    """{manifest label: retrieval_metrics(...)} for each spec. Leaves the model in eval mode."""
    from training.inference import Embedder

    sr = model.config.audio.frontend.sample_rate
    embedder = Embedder(model, window_s=window_samples / sr, batch_size=batch_size, device=str(device))
    results = {}
    for spec in specs:
        audio, audio_ids, text, caption_audio_ids = embed_manifest(embedder, spec, caption_mode)
        sim = torch.from_numpy(audio) @ torch.from_numpy(text).T
        results[spec.label] = retrieval_metrics(sim, audio_ids, caption_audio_ids)
    return results


def dataset_sizes(rows: dict[str, dict[str, dict]]) -> dict[str, tuple[int, int]]:
    """{dataset label: (clips, captions)} of the measured rows (the first row measuring a dataset gives it)."""
    sizes: dict[str, tuple[int, int]] = {}
    for per_dataset in rows.values():
        for ds, m in per_dataset.items():
            if "n_audios" in m:
                sizes.setdefault(ds, (m["n_audios"], m["n_captions"]))
    return sizes


def format_table(rows: dict[str, dict[str, dict]]) -> str:
    """Table 3 layout: one row per model/experiment; per dataset T2A mAP@10 R@1 R@5 R@10 R@50 then A2T the
    same, in percent; each dataset's header gives its clip and caption counts. ``rows``: {row name: {dataset
    label: retrieval_metrics(...)}}."""
    datasets: list[str] = []
    for per_dataset in rows.values():
        datasets += [k for k in per_dataset if k not in datasets]
    sizes = dataset_sizes(rows)
    titles = {ds: f"{ds}: {sizes[ds][0]:,} clips, {sizes[ds][1]:,} captions" if ds in sizes else ds
              for ds in datasets}
    name_w = max([len("Model"), len("(chance)")] + [len(r) for r in rows])
    cell = 7
    group_w = 2 * len(TABLE_METRICS) * cell + 3
    line1 = " " * name_w + "".join(f" | {titles[ds]:^{group_w}}" for ds in datasets)
    line2 = " " * name_w + "".join(f" | {'T2A':^{len(TABLE_METRICS) * cell}} | {'A2T':^{len(TABLE_METRICS) * cell}}"
                                   for _ in datasets)
    metric_cells = "".join(f"{m:>{cell}}" for m in TABLE_METRICS)
    line3 = f"{'Model':<{name_w}}" + "".join(f" | {metric_cells} | {metric_cells}" for _ in datasets)
    out = [line1, line2, line3, "-" * len(line3)]

    def row_line(name: str, per_dataset: dict) -> str:
        cells = []
        for ds in datasets:
            r = per_dataset.get(ds)
            for direction in ("t2a", "a2t"):
                vals = ([_cell(r[direction].get(m), cell) for m in TABLE_METRICS] if r
                        else [f"{'-':>{cell}}"] * len(TABLE_METRICS))
                cells.append("".join(vals))
        return f"{name:<{name_w}}" + "".join(f" | {cells[2 * i]} | {cells[2 * i + 1]}" for i in range(len(datasets)))

    out += [row_line(name, per_dataset) for name, per_dataset in rows.items()]
    # what a random ranking scores on each dataset (retrieval_metrics' "chance"), read the rows against it
    chance = {ds: m["chance"] for per_dataset in reversed(rows.values()) for ds, m in per_dataset.items()
              if "chance" in m}
    if chance:
        out.append(row_line("(chance)", chance))
    return "\n".join(out)


def _cell(value: float | None, width: int) -> str:
    """A fraction as a percentage; None (a value the paper row lacks) as "-"."""
    return f"{'-':>{width}}" if value is None else f"{100 * value:>{width}.1f}"


def evaluate_checkpoints(checkpoints: Sequence[str | os.PathLike], specs: Sequence[ManifestSpec] | None = None,
                         split: str = "test", caption_mode: str | None = None, batch_size: int = 32,
                         device: str = "cpu", names: Sequence[str] | None = None, paper: str | None = None,
                         format: str | None = None, text_model: str | None = None, min_share: float = 1.0,
                         trusted: bool = False) -> dict[str, dict[str, dict]]:
    """Evaluate each checkpoint on ``specs`` (default: its own config's ``split`` manifests, "test" or
    "val"); returns {row name: {dataset label: metrics}} (row name: run name/checkpoint file stem). After a
    checkpoint's row come the paper's row and the difference (training/paper.py) when ``paper`` names a row
    of the paper's tables, or else when the checkpoint's config names one (``paper_row``). Released
    checkpoints (msclap, LAION-CLAP) are accepted too (``format``, ``text_model``, ``min_share``: see
    training/released.py); they carry no manifests, so ``specs`` must be given. ``trusted``: read the files
    with full unpickling (files holding objects beyond tensors; only files you trust)."""
    from training.released import load_any_checkpoint

    if names is not None and len(names) != len(checkpoints):
        raise ValueError("give one name per checkpoint")
    rows = {}
    for i, path in enumerate(checkpoints):
        model, config = load_any_checkpoint(path, format, text_model, min_share, map_location=device,
                                            trusted=trusted)
        data = config.get("data", {})
        use = list(specs) if specs else [ManifestSpec(**s) for s in data.get(split, [])]
        if not use:
            raise ValueError(f"{path}: no manifests to evaluate (pass --manifest; its config has no {split!r} list)")
        window = window_samples(model.config, data.get("crop_s"))
        mode = caption_mode or data.get("caption_mode", "title_description")
        name = names[i] if names else f"{config.get('name', Path(path).parent.name)}/{Path(path).stem}"
        rows[name] = evaluate_model(model, use, mode, window, batch_size, device)
        row = paper or config.get("paper_row")
        if row:
            rows.update(compare_with_paper(name, rows[name], row))
    return rows


def write_json(path: str | os.PathLike, rows: dict[str, dict[str, dict]], root: str | os.PathLike | None = None
               ) -> Path:
    """The metrics as JSON, atomically; with ``root`` (the default eval_*.json beside a checkpoint) the file
    must resolve inside that folder: a link planted there does not carry the write elsewhere."""
    path = Path(path)
    if root is not None:
        return write_text_inside(root, path.relative_to(root), json.dumps(rows, indent=2))
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(rows, indent=2))
    return path
