"""A search index over audio: embeddings computed once, saved to disk, queried by text, audio or labels.

On disk (one folder):
- ``audio.npy``: float32 [N, D], L2-normalised audio embeddings, row i = items[i];
- ``items.json``: ``[{"id", "path", "captions": [...]}, ...]`` (path absolute; captions may be empty);
- ``captions.npy``: float32 [M, D] text embeddings of every caption (row j = caption_refs[j]), when any;
- ``index.json``: metadata: checkpoint, dimension, counts, caption_refs ``[[item_index, caption_index], ...]``.

Scores are cosine similarities (dot products of normalised vectors). Exact search: a matrix-vector product and
a partial sort, which answers 100,000 items in milliseconds on a CPU (benchmarks/bench_search.py).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from manifests.audio_formats import AUDIO_EXTENSIONS
from manifests.schema import read_manifest, resolve_audio
from training.inference import normalize

DEFAULT_TEMPLATE = "This is a sound of {}."


class Embedder(Protocol):
    """What the index needs from a model (training.inference.Embedder implements it)."""

    def embed_audio_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass
class Hit:
    rank: int
    score: float
    id: str
    path: str
    text: str  # the matched caption (text results) or the item's first caption (audio results)


def format_hits(hits: list[Hit], show_text: bool = True) -> str:
    lines = [f"{'rank':>4}  {'score':>7}  {'id':<24} path" + ("  | caption" if show_text else "")]
    for h in hits:
        text = f"  | {h.text}" if show_text and h.text else ""
        lines.append(f"{h.rank:>4}  {h.score:>7.4f}  {h.id:<24} {h.path}{text}")
    return "\n".join(lines)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores, best first (ties broken by the lower index, for determinism)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k < len(scores):
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(len(scores))
    return part[np.lexsort((part, -scores[part]))]


class AudioIndex:
    def __init__(self, audio: np.ndarray, items: list[dict], captions: np.ndarray | None = None,
                 caption_refs: list[tuple[int, int]] | None = None, meta: dict | None = None):
        if len(audio) != len(items):
            raise ValueError(f"{len(audio)} audio embeddings for {len(items)} items")
        refs = [tuple(r) for r in (caption_refs or [])]
        if (captions is None) != (not refs) or (captions is not None and len(captions) != len(refs)):
            raise ValueError("caption embeddings and caption_refs must match one to one")
        self.audio = audio
        self.items = items
        self.captions = captions
        self.caption_refs = refs
        self.meta = dict(meta or {})
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return int(self.audio.shape[1])

    # --- building -------------------------------------------------------------------------------------------
    @classmethod
    def from_embeddings(cls, audio: np.ndarray, items: list[dict], captions: np.ndarray | None = None,
                        meta: dict | None = None) -> "AudioIndex":
        """An index from precomputed embeddings; ``captions`` embeds every caption of every item, in order."""
        refs = [(i, j) for i, it in enumerate(items) for j in range(len(it.get("captions", [])))]
        if captions is None or len(refs) == 0:
            captions, refs = None, []
        return cls(normalize(audio), items, None if captions is None else normalize(captions), refs, meta)

    @classmethod
    def build(cls, embedder: Embedder, items: list[dict], meta: dict | None = None,
              group: int = 64) -> "AudioIndex":
        """Embed every item's audio (and captions, if any) with the model. A file that cannot be read (damaged,
        not audio, empty) is left out and listed in ``meta["skipped"]`` with the reason: one bad file in a
        user's library does not stop the index of the others."""
        if not items:
            raise ValueError("nothing to index: no audio items")
        kept, parts, skipped = [], [], []
        for i in range(0, len(items), group):
            chunk = items[i:i + group]
            try:
                parts.append(embedder.embed_audio_files([it["path"] for it in chunk]))
                kept += chunk
                continue
            except ValueError:
                pass  # some file of this group is unreadable: embed the group one file at a time
            for it in chunk:
                try:
                    parts.append(embedder.embed_audio_files([it["path"]]))
                    kept.append(it)
                except ValueError as e:
                    skipped.append({"id": it["id"], "path": it["path"], "reason": str(e)})
        if not kept:
            raise ValueError(f"none of the {len(items)} audio files could be read, e.g. {skipped[0]['reason']}")
        texts = [c for it in kept for c in it.get("captions", [])]
        captions = embedder.embed_texts(texts) if texts else None
        return cls.from_embeddings(np.concatenate(parts), kept, captions, {**(meta or {}), "skipped": skipped})

    # --- persistence ----------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "audio.npy", self.audio.astype(np.float32, copy=False))
        if self.captions is not None:
            np.save(folder / "captions.npy", self.captions.astype(np.float32, copy=False))
        (folder / "items.json").write_text(json.dumps(self.items, ensure_ascii=False))
        meta = {**self.meta, "dim": self.dim, "n_items": len(self), "n_captions": len(self.caption_refs),
                "caption_refs": self.caption_refs}
        # index.json last: its presence marks a complete index.
        (folder / "index.json").write_text(json.dumps(meta))
        return folder

    @classmethod
    def load(cls, folder: str | os.PathLike, mmap: bool = False) -> "AudioIndex":
        folder = Path(folder)
        if not (folder / "index.json").is_file():
            raise FileNotFoundError(f"{folder} is not a search index (no index.json); build one with "
                                    f"`wt5k-search index`")
        meta = json.loads((folder / "index.json").read_text())
        mode = "r" if mmap else None
        audio = np.load(folder / "audio.npy", mmap_mode=mode)
        items = json.loads((folder / "items.json").read_text())
        refs = [tuple(r) for r in meta.pop("caption_refs", [])]
        captions = np.load(folder / "captions.npy", mmap_mode=mode) if refs else None
        return cls(audio, items, captions, refs, meta)

    # --- queries --------------------------------------------------------------------------------------------
    def _audio_hits(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[Hit]:
        scores = self.audio @ normalize(query)[0]
        if exclude is not None:
            scores[exclude] = -np.inf
            k = min(k, len(scores) - 1)
        hits = []
        for r, i in enumerate(top_k(scores, k), 1):
            it = self.items[i]
            hits.append(Hit(r, float(scores[i]), it["id"], it["path"], (it.get("captions") or [""])[0]))
        return hits

    def search_audio(self, text_embedding: np.ndarray, k: int = 10) -> list[Hit]:
        """Text -> audio: the k indexed sounds closest to a text embedding."""
        return self._audio_hits(text_embedding, k)

    def similar_audio(self, audio_embedding: np.ndarray, k: int = 10, exclude_id: str | None = None) -> list[Hit]:
        """Audio -> audio: the k indexed sounds closest to an audio embedding (optionally leaving one id out)."""
        exclude = self.position(exclude_id) if exclude_id is not None else None
        return self._audio_hits(audio_embedding, k, exclude)

    def search_captions(self, audio_embedding: np.ndarray, k: int = 10) -> list[Hit]:
        """Audio -> text: the k indexed captions closest to an audio embedding."""
        if self.captions is None:
            raise ValueError("this index holds no captions (it was built from a folder of audio); "
                             "index a manifest to search captions")
        scores = self.captions @ normalize(audio_embedding)[0]
        hits = []
        for r, j in enumerate(top_k(scores, k), 1):
            i, c = self.caption_refs[j]
            it = self.items[i]
            hits.append(Hit(r, float(scores[j]), it["id"], it["path"], it["captions"][c]))
        return hits

    def position(self, item_id: str) -> int:
        if self._positions is None:
            self._positions = {it["id"]: i for i, it in enumerate(self.items)}
        if item_id not in self._positions:
            raise KeyError(f"no item with id {item_id!r} in the index")
        return self._positions[item_id]

    def embedding_of(self, item_id: str) -> np.ndarray:
        return np.asarray(self.audio[self.position(item_id)])


def classify(audio_embeddings: np.ndarray, label_embeddings: np.ndarray, logit_scale: float = 1.0) -> np.ndarray:
    """Zero-shot classification: softmax over labels of the scaled cosine similarities, [N audio, L labels]."""
    logits = normalize(audio_embeddings) @ normalize(label_embeddings).T * logit_scale
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def label_prompts(labels: Sequence[str], template: str = DEFAULT_TEMPLATE) -> list[str]:
    """The texts embedded for zero-shot labels: the template with '{}' replaced by each label."""
    if "{}" not in template:
        raise ValueError(f"the prompt template must contain '{{}}' where the label goes, got {template!r}")
    labels = [label.strip() for label in labels]
    if not labels or not all(labels):
        raise ValueError("zero-shot classification needs a list of non-empty labels")
    return [template.replace("{}", label) for label in labels]


# --- what to index ----------------------------------------------------------------------------------------
def items_from_manifest(manifest: str | os.PathLike, split: str | None = None) -> list[dict]:
    """One item per audio id of a manifest (of its rows of ``split`` when given), with all of its captions
    (rows sharing an id), in file order."""
    by_id: dict[str, dict] = {}
    rows = read_manifest(manifest)
    if split is not None:
        rows = [row for row in rows if row.split == split]
        if not rows:
            raise ValueError(f"{manifest}: no rows of split {split!r}")
    for row in rows:
        it = by_id.setdefault(row.id, {"id": row.id, "path": str(resolve_audio(manifest, row)), "captions": []})
        if row.caption not in it["captions"]:
            it["captions"].append(row.caption)
    return list(by_id.values())


def items_from_folder(folder: str | os.PathLike, ignored: Counter | None = None) -> list[dict]:
    """One item per audio file under a folder (recursively, sorted), id = the path relative to the folder.
    ``ignored``, when given, counts the other files by extension (so that callers can say what was not read)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NotADirectoryError(f"no such folder: {folder}")
    files = [p for p in folder.rglob("*") if p.is_file()]
    paths = sorted(p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS)
    if ignored is not None:
        ignored.update(p.suffix.lower() or "(none)" for p in files if p.suffix.lower() not in AUDIO_EXTENSIONS)
    if not paths:
        raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) under {folder}")
    return [{"id": p.relative_to(folder).as_posix(), "path": str(p.resolve()), "captions": []} for p in paths]
