"""Embed audio and text with a trained CLAP checkpoint: files or arrays at any sample rate, in batches.

Audio is read with soundfile, mixed down to mono and resampled to the model's rate with soxr (files through
training.data.read_audio, the training code's reader). A clip is cut into
fixed windows of the model's input length (a short clip is repeat-padded to one window, a long one split into
consecutive windows, the last aligned to the end); the clip's embedding is the normalised mean of its windows'
embeddings. There is no randomness anywhere: the same audio always gives the same embedding.
"""
from __future__ import annotations

import os
from typing import Callable, Sequence

import numpy as np
import torch

from training.data import read_audio, to_model_rate, window_samples


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as float32; an all-zero row is an error, not a silent NaN."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("cannot normalise embeddings: a row is all zeros or not finite")
    return x / norms


def windows(x: np.ndarray, length: int) -> np.ndarray:
    """[n_windows, length]: repeat-padded single window for short audio; consecutive windows, the last one
    aligned to the end, for long audio."""
    if len(x) <= length:
        return np.resize(x, length)[None, :]  # np.resize repeats the signal
    starts = list(range(0, len(x) - length + 1, length))
    if starts[-1] + length < len(x):
        starts.append(len(x) - length)
    return np.stack([x[s:s + length] for s in starts])


class Embedder:
    """A CLAP model wrapped for inference: ``embed_audio_files``, ``embed_audio``, ``embed_texts`` -> float32 numpy
    arrays of L2-normalised rows."""

    def __init__(self, model: torch.nn.Module, window_s: float | None = None, batch_size: int = 16,
                 device: str = "cpu"):
        if (window_s is not None and window_s <= 0) or batch_size < 1:
            raise ValueError(f"need window_s > 0 and batch_size >= 1, got {window_s}, {batch_size}")
        self.model = model.to(device).eval()
        self.sample_rate = int(model.config.audio.frontend.sample_rate)
        self.window = window_samples(model.config, window_s)
        self.batch_size = batch_size
        self.device = device

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, window_s: float | None = None, batch_size: int = 16,
                        device: str = "cpu", format: str | None = None, text_model: str | None = None,
                        min_share: float = 1.0, trusted: bool = False) -> "Embedder":
        """The model of our training checkpoint or of a released one (msclap, LAION-CLAP; read once, see
        training/released.py: `format`, `text_model`, `min_share`; `trusted`: full unpickling, for files you
        trust that hold objects beyond tensors); the window is ``window_s``, else the run's data.crop_s, else the
        model's own clip length."""
        from training.released import load_any_checkpoint

        model, config = load_any_checkpoint(path, format, text_model, min_share, trusted=trusted)
        return cls(model, window_s or (config.get("data") or {}).get("crop_s"), batch_size, device)

    @property
    def logit_scale(self) -> float:
        """The model's learned similarity scale (clamped as in training), the zero-shot softmax temperature."""
        with torch.no_grad():
            return float(self.model.scale())

    @torch.no_grad()
    def embed_audio(self, waveforms: Sequence[np.ndarray], sample_rate: int | Sequence[int]) -> np.ndarray:
        """Embeddings of waveforms (mono or (samples, channels)) given at ``sample_rate`` (one for all, or one each)."""
        rates = [sample_rate] * len(waveforms) if isinstance(sample_rate, (int, np.integer)) else list(sample_rate)
        if len(rates) != len(waveforms):
            raise ValueError(f"{len(waveforms)} waveforms but {len(rates)} sample rates")
        return self._embed_mono([to_model_rate(x, sr, self.sample_rate) for x, sr in zip(waveforms, rates)])

    def embed_audio_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
        """Embeddings of audio files, read and resampled in groups to keep memory bounded."""
        out = []
        group = max(self.batch_size, 1)
        for i in range(0, len(paths), group):
            out.append(self._embed_mono([read_audio(str(p), self.sample_rate) for p in paths[i:i + group]]))
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    @torch.no_grad()
    def _embed_mono(self, clips: list[np.ndarray]) -> np.ndarray:
        wins = [windows(x, self.window) for x in clips]
        owner = np.concatenate([np.full(len(w), i) for i, w in enumerate(wins)])
        flat = np.concatenate(wins)
        emb = []
        for i in range(0, len(flat), self.batch_size):
            batch = torch.from_numpy(flat[i:i + self.batch_size]).to(self.device)
            emb.append(self.model.encode_audio(batch).float().cpu().numpy())
        emb = np.concatenate(emb)
        pooled = np.stack([emb[owner == i].mean(axis=0) for i in range(len(clips))])
        return normalize(pooled)

    @torch.no_grad()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise ValueError("texts to embed must be non-empty strings")
        out = [self.model.encode_text(texts[i:i + self.batch_size]).float().cpu().numpy()
               for i in range(0, len(texts), self.batch_size)]
        return normalize(np.concatenate(out)) if out else np.zeros((0, 0), dtype=np.float32)


def embed_readable_files(embedder, paths: Sequence[str], group: int = 32, check: Callable[[str], None] | None = None
                         ) -> tuple[np.ndarray, list[int], list[tuple[int, str]]]:
    """(embeddings of the files that could be read, their positions in ``paths``, [(position, reason)] of the
    others): files are embedded ``group`` at a time with ``embedder.embed_audio_files``, and a group that fails
    one file at a time, so one damaged file in a user's library does not stop the others. ``check(path)`` runs
    before a file is read and raises ValueError for one not to read."""
    def embed(chunk: Sequence[str]) -> np.ndarray:
        if check:
            for p in chunk:
                check(p)
        return embedder.embed_audio_files(chunk)

    parts, kept, failed = [], [], []
    for i in range(0, len(paths), group):
        chunk = list(range(i, min(i + group, len(paths))))
        try:
            parts.append(embed([paths[j] for j in chunk]))
            kept += chunk
            continue
        except (ValueError, MemoryError):
            pass  # some file of this group is unreadable: the group one file at a time
        for j in chunk:
            try:
                parts.append(embed([paths[j]]))
                kept.append(j)
            except MemoryError:
                failed.append((j, f"audio {paths[j]}: too large to decode in memory"))
            except ValueError as e:
                failed.append((j, str(e) or type(e).__name__))
    return (np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)), kept, failed
