"""Building a search index: a checkpoint's embedder over a manifest's or a folder's audio, saved to a folder."""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from manifests.hashing import sha256_file
from search.index import AudioIndex, items_from_folder, items_from_manifest
from training.inference import Embedder


def embedder_for(checkpoint: str | os.PathLike | None, index: AudioIndex | None = None, batch_size: int = 16,
                 window_s: float | None = None, checkpoint_format: str | None = None,
                 text_model: str | None = None, min_share: float = 1.0, trusted: bool = False) -> Embedder:
    """The embedder of ``checkpoint``, else of the checkpoint ``index`` was built with (and its window, format,
    text model and share). ``checkpoint_format``, ``text_model``, ``min_share``: how a released checkpoint
    (msclap, LAION-CLAP) is read, see training/released.py; ``trusted``: full unpickling (files holding objects
    beyond tensors; only files you trust). Trust comes only from the caller (``--trust-checkpoint`` on the
    command that loads), never from the index folder: its ``index.json`` is a file anyone could have written.
    The index's own checkpoint must still have the sha256 recorded when the index was built."""
    meta = index.meta if index else {}
    ckpt = checkpoint or meta.get("checkpoint")
    if not ckpt:
        raise ValueError("no checkpoint: pass --checkpoint (or an --index built with one)")
    if not Path(ckpt).is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt}")
    window_s = window_s or meta.get("window_s")
    if not checkpoint:  # the index's own checkpoint: read it as it was read when indexing
        checkpoint_format = checkpoint_format or meta.get("checkpoint_format")
        text_model = text_model or meta.get("text_model")
        min_share = min(min_share, meta.get("min_share", 1.0))
        check_checkpoint_digest(Path(ckpt), meta.get("checkpoint_sha256"))
    return Embedder.from_checkpoint(ckpt, window_s=window_s, batch_size=batch_size, format=checkpoint_format,
                                    text_model=text_model, min_share=min_share, trusted=trusted)


def check_checkpoint_digest(path: Path, recorded: str | None) -> None:
    """Refuse an index's checkpoint whose bytes are not the ones the index was built with (or unrecorded)."""
    if not recorded:
        raise ValueError(f"the index records no sha256 of its checkpoint {path}: rebuild the index "
                         "(wt5k-search index), or pass --checkpoint to choose the checkpoint yourself")
    actual = sha256_file(path)
    if actual != recorded:
        raise ValueError(f"checkpoint {path} has changed since the index was built (sha256 {actual[:12]}..., "
                         f"index.json records {str(recorded)[:12]}...): rebuild the index, or pass --checkpoint")


def build_index(checkpoint: str | os.PathLike, out: str | os.PathLike, manifest: str | None = None,
                folder: str | None = None, batch_size: int = 16, window_s: float | None = None,
                split: str | list[str] | None = None, checkpoint_format: str | None = None, text_model: str | None = None,
                min_share: float = 1.0, trusted: bool = False, embedder: Embedder | None = None,
                allow_outside: Sequence[str | os.PathLike] = ()) -> AudioIndex:
    """Embed a manifest's (its ``split`` rows when given) or a folder's audio (and captions) and save the index
    to ``out``. Its meta lists the files that could not be read (``skipped``, with reasons) and counts a folder's
    files that are not audio by extension (``ignored_files``). ``embedder``: one already loaded from
    ``checkpoint`` (a caller that queries afterwards need not read the checkpoint twice); ``allow_outside``:
    folders a manifest's audio may lie in besides its own."""
    if (manifest is None) == (folder is None):
        raise ValueError("index either a manifest or a folder of audio")
    if split is not None and manifest is None:
        raise ValueError("a split selects rows of a manifest; a folder has none")
    ignored: Counter = Counter()
    items = items_from_manifest(manifest, split, allow_outside) if manifest else items_from_folder(folder, ignored)
    emb = embedder or embedder_for(checkpoint, batch_size=batch_size, window_s=window_s,
                                   checkpoint_format=checkpoint_format, text_model=text_model, min_share=min_share,
                                   trusted=trusted)
    meta = {"checkpoint": str(Path(checkpoint).resolve()), "checkpoint_sha256": sha256_file(checkpoint),
            "source": str(Path(manifest or folder).resolve()),
            "split": split, "window_s": emb.window / emb.sample_rate, "sample_rate": emb.sample_rate,
            "logit_scale": emb.logit_scale, "checkpoint_format": checkpoint_format, "text_model": text_model,
            "min_share": min_share,
            "ignored_files": dict(ignored.most_common())}  # a folder's files without an audio extension
    index = AudioIndex.build(emb, items, meta)
    index.save(out)
    return index
