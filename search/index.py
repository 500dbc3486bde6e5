"""A search index over audio: embeddings computed once, saved to disk, queried by text, audio or labels.

On disk (one folder, written atomically: search/storage.py):
- ``audio.npy``: float32 [N, D], L2-normalised audio embeddings, row i = item i (memory-mapped on load);
- ``items.sqlite``: one row per item: position, ``id``, ``path`` (absolute), ``captions`` (JSON list, may be
  empty), read row by row (a query reads its k hits, never the whole table);
- ``captions.npy``: float32 [M, D] text embeddings of every caption, and ``caption_refs.npy`` int64 [M, 2]
  (item row, caption number), when the items have captions; read only by audio -> text queries;
- ``index.json``: metadata: format, checkpoint and its sha256, dimension, counts, files skipped.
Format 1 folders (``items.json``, caption_refs inside ``index.json``) still load.

Scores are cosine similarities (dot products of normalised vectors). Exact search: a matrix-vector product and
a partial sort, which answers 100,000 items in milliseconds on a CPU (benchmarks/bench_search.py).
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import soundfile as sf

from manifests.audio_formats import AUDIO_EXTENSIONS
from manifests.schema import read_manifest, resolve_audio
from search.storage import REBUILD, IndexFileError, ItemStore, load_array, write_index_folder
from training.inference import embed_readable_files, normalize
from training.zeroshot import DEFAULT_TEMPLATE, prompts_for as label_prompts  # noqa: F401 (re-exported)

FORMAT = 2  # index folder layout: 1 = items.json + caption_refs in index.json; 2 = items.sqlite + .npy


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
    """Audio embeddings [N, D] with their items (``id``, ``path``, ``captions``) and, when the items have
    captions, the captions' embeddings [M, D] with ``caption_refs`` [M, 2] (item row, caption number).

    A loaded index reads what a query needs: ``audio.npy`` memory-mapped, ``captions.npy`` and
    ``caption_refs.npy`` only when captions are searched, items row by row from ``items.sqlite``."""

    def __init__(self, audio: np.ndarray, items: Sequence[dict], captions: np.ndarray | None = None,
                 caption_refs: Sequence[tuple[int, int]] | np.ndarray | None = None, meta: dict | None = None,
                 lazy_captions: Callable[[], tuple[np.ndarray, np.ndarray]] | None = None):
        if len(audio) != len(items):
            raise ValueError(f"{len(audio)} audio embeddings for {len(items)} items")
        self.audio = audio
        self.items = items
        self.meta = dict(meta or {})
        self._lazy_captions = lazy_captions
        if lazy_captions is None:
            refs = np.asarray(caption_refs if caption_refs is not None and len(caption_refs) else
                              np.zeros((0, 2)), dtype=np.int64).reshape(-1, 2)
            if (captions is None) != (len(refs) == 0) or (captions is not None and len(captions) != len(refs)):
                raise ValueError("caption embeddings and caption_refs must match one to one")
            self._captions, self._refs = captions, refs
        self._positions: dict[str, int] | None = None

    def __len__(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return int(self.audio.shape[1])

    def _load_captions(self) -> None:
        if self._lazy_captions is not None:
            self._captions, self._refs = self._lazy_captions()
            self._lazy_captions = None

    @property
    def captions(self) -> np.ndarray | None:
        self._load_captions()
        return self._captions

    @property
    def caption_refs(self) -> np.ndarray:
        """[M, 2] int array: row j = (item row, caption number) of caption embedding j."""
        self._load_captions()
        return self._refs

    @property
    def n_captions(self) -> int:
        return int(self.meta["n_captions"]) if self._lazy_captions is not None else len(self._refs)

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
        not audio, empty, a header claiming far more audio than the file can hold) is left out and listed in
        ``meta["skipped"]`` with the reason: one bad file in a user's library does not stop the index of the
        others."""
        if not items:
            raise ValueError("nothing to index: no audio items")
        audio, positions, failed = embed_readable_files(embedder, [it["path"] for it in items], group,
                                                        check=check_claimed_length)
        kept = [items[i] for i in positions]
        skipped = [{"id": items[i]["id"], "path": items[i]["path"], "reason": reason} for i, reason in failed]
        if not kept:
            raise ValueError(f"none of the {len(items)} audio files could be read, e.g. {skipped[0]['reason']}")
        texts = [c for it in kept for c in it.get("captions", [])]
        captions = embedder.embed_texts(texts) if texts else None
        return cls.from_embeddings(audio, kept, captions, {**(meta or {}), "skipped": skipped})

    # --- persistence ----------------------------------------------------------------------------------------
    def save(self, folder: str | os.PathLike) -> Path:
        """Write the index to ``folder`` atomically: the whole folder is new or untouched (search/storage.py)."""
        meta = {**self.meta, "format": FORMAT, "dim": self.dim, "n_items": len(self),
                "n_captions": len(self.caption_refs)}
        meta.pop("caption_refs", None)

        def write(tmp: Path) -> None:
            np.save(tmp / "audio.npy", np.asarray(self.audio, dtype=np.float32))
            if self.captions is not None:
                np.save(tmp / "captions.npy", np.asarray(self.captions, dtype=np.float32))
                np.save(tmp / "caption_refs.npy", np.asarray(self.caption_refs, dtype=np.int64))
            ItemStore.write(tmp / ItemStore.FILE, self.items)
            (tmp / "index.json").write_text(json.dumps(meta, ensure_ascii=False))

        return write_index_folder(folder, write)

    @classmethod
    def load(cls, folder: str | os.PathLike, mmap: bool = True) -> "AudioIndex":
        """Open an index folder: the arrays memory-mapped (``mmap=False``: read into memory), the items and the
        captions read when a query needs them. Folders of the first format (``items.json``) still load."""
        folder = Path(folder)
        if not (folder / "index.json").is_file():
            raise FileNotFoundError(f"{folder} is not a search index (no index.json); build one with "
                                    f"`wt5k-search index`")
        try:
            meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise IndexFileError(folder / "index.json", f"is not valid JSON ({e})") from None
        version = meta.get("format", 1)
        if version not in (1, FORMAT):
            raise ValueError(f"{folder} is an index of format {version}, newer than this toolkit reads ({FORMAT}): "
                             "update the toolkit, or " + REBUILD)
        n, dim = meta.get("n_items"), meta.get("dim")
        audio = load_array(folder / "audio.npy", mmap, n, dim)
        if version == 1:  # items.json and caption_refs in index.json: parsed whole (small old indexes)
            items_file = folder / "items.json"
            if not items_file.is_file():
                raise IndexFileError(items_file, "is missing")
            try:
                items = json.loads(items_file.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                raise IndexFileError(items_file, f"is not valid JSON ({e})") from None
            refs = meta.pop("caption_refs", [])
            captions = load_array(folder / "captions.npy", mmap, len(refs), audio.shape[1]) if refs else None
            index = cls(audio, items, captions, refs, meta)
        else:
            items = ItemStore(folder / ItemStore.FILE)
            n_captions = int(meta.get("n_captions") or 0)

            def lazy_captions() -> tuple[np.ndarray | None, np.ndarray]:
                if not n_captions:
                    return None, np.zeros((0, 2), dtype=np.int64)
                refs = load_array(folder / "caption_refs.npy", mmap, n_captions, 2)
                return load_array(folder / "captions.npy", mmap, n_captions, audio.shape[1]), refs

            index = cls(audio, items, meta=meta, lazy_captions=lazy_captions)
        if len(index.items) != len(audio):
            raise IndexFileError(folder, f"holds {len(audio)} embeddings for {len(index.items)} items")
        return index

    # --- queries --------------------------------------------------------------------------------------------
    def _audio_hits(self, query: np.ndarray, k: int, exclude: int | None = None) -> list[Hit]:
        scores = np.asarray(self.audio) @ normalize(query)[0]
        if exclude is not None:
            scores[exclude] = -np.inf
            k = min(k, len(scores) - 1)
        hits = []
        for r, i in enumerate(top_k(scores, k), 1):
            it = self.items[int(i)]
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
        scores = np.asarray(self.captions) @ normalize(audio_embedding)[0]
        hits = []
        for r, j in enumerate(top_k(scores, k), 1):
            i, c = (int(x) for x in self.caption_refs[j])
            it = self.items[i]
            hits.append(Hit(r, float(scores[j]), it["id"], it["path"], it["captions"][c]))
        return hits

    def position(self, item_id: str) -> int:
        """The row of an item id (KeyError when the index has none)."""
        if isinstance(self.items, ItemStore):
            pos = self.items.position(item_id)
        else:
            if self._positions is None:
                self._positions = {it["id"]: i for i, it in enumerate(self.items)}
            pos = self._positions.get(item_id)
        if pos is None:
            raise KeyError(f"no item with id {item_id!r} in the index")
        return pos

    def embedding_of(self, item_id: str) -> np.ndarray:
        return np.array(self.audio[self.position(item_id)])


# A file's header may claim more audio than its bytes can hold (a 9 KB FLAC claiming 2^36 frames asks for
# 256 GiB). Real codecs stay far below this many frames per byte (FLAC's best case, digital silence in
# 65,535-sample blocks, is about 4,400).
MAX_FRAMES_PER_BYTE = 16_384


def check_claimed_length(path: str | os.PathLike) -> None:
    """Refuse a file whose header claims more frames than its size can hold (ValueError naming it)."""
    try:
        info = sf.info(str(path))
        size = os.path.getsize(path)
    except (sf.LibsndfileError, RuntimeError, OSError):
        return  # unreadable: the reader says why
    if info.frames > MAX_FRAMES_PER_BYTE * max(size, 1):
        raise ValueError(f"audio {path}: its header claims {info.frames:,} frames in a {size:,}-byte file "
                         "(damaged or crafted); not read")


def classify(audio_embeddings: np.ndarray, label_embeddings: np.ndarray, logit_scale: float = 1.0) -> np.ndarray:
    """Zero-shot classification: softmax over labels of the scaled cosine similarities, [N audio, L labels]."""
    logits = normalize(audio_embeddings) @ normalize(label_embeddings).T * logit_scale
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


# --- what to index ----------------------------------------------------------------------------------------
def items_from_manifest(manifest: str | os.PathLike, split: str | Sequence[str] | None = None,
                        allow_outside: Sequence[str | os.PathLike] = ()) -> list[dict]:
    """One item per audio id of a manifest (of its rows of ``split`` when given), with all of its captions
    (rows sharing an id), in file order. An ``audio_path`` that leads out of the manifest's folder (``..``,
    an absolute path, a symbolic link elsewhere) is refused unless it lies under one of ``allow_outside``."""
    by_id: dict[str, dict] = {}
    rows = read_manifest(manifest)
    if split is not None:
        splits = (split,) if isinstance(split, str) else tuple(split)  # "train+val" arrives as a list
        rows = [row for row in rows if row.split in splits]
        if not rows:
            raise ValueError(f"{manifest}: no rows of split {split!r}")
    roots = [Path(os.path.realpath(r)) for r in (Path(manifest).parent, *allow_outside)]
    outside = []
    for row in rows:
        path = resolve_audio(manifest, row)
        if not any(path == r or path.is_relative_to(r) for r in roots):
            outside.append(row)
            continue
        it = by_id.setdefault(row.id, {"id": row.id, "path": str(path), "captions": []})
        if row.caption not in it["captions"]:
            it["captions"].append(row.caption)
    if outside:
        r = outside[0]
        raise ValueError(f"{manifest}: {len(outside)} row(s) name audio outside the manifest's folder "
                         f"{roots[0]}, e.g. id {r.id!r}: {r.audio_path!r}; pass --allow-outside ROOT to index "
                         "audio under ROOT")
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
