"""Training data: (audio, caption) pairs from one or more manifests, mixed in chosen proportions.

* Captions: ``caption_mode`` as manifests/captions.py defines it ("title_description", "description",
  "manifest").
* Audio: read with soundfile, mixed to mono, resampled to 44.1 kHz with soxr when the file differs.
  Training takes a random crop of ``crop_samples`` (only that part of a long file is read); shorter clips
  are repeat-padded (the clip tiled, as Microsoft's CLAP "repeatpad"). Evaluation does not use this module's
  crops: training/evaluate.py embeds whole clips in fixed windows (training/inference.py).
* Randomness: every sample's crop comes from a generator seeded by (seed, epoch, position in the epoch), not
  from worker state, so a run is reproducible whatever the number of workers and resumes exactly.
* Mixing and sharding: MixingBatchSampler draws each epoch's sample list (per manifest, without replacement
  within a pass over it) and gives rank r the r-th slice of every GLOBAL batch, so N ranks together see
  exactly the batches one process would.
"""
from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import soundfile as sf
import soxr
import torch
from torch.utils.data import Dataset

from manifests import caption_for, read_manifest, resolve_audio
from manifests.audio_formats import sample_rate_problem
from manifests.decoder_messages import StderrCapture, repeat_on_stderr
from training.config import ManifestSpec

SAMPLE_RATE = 44100


@dataclass(frozen=True)
class Pair:
    audio_path: str
    audio_id: str
    caption: str


def select_rows(spec: ManifestSpec, rows: list) -> list:
    """The manifest rows a spec keeps: those of its split(s), with every ``require``d column non-empty."""
    splits = spec.splits
    return [r for r in rows if (splits is None or r.split in splits)
            and all(getattr(r, c).strip() for c in spec.require)]


def describe_selection(spec: ManifestSpec) -> str:
    """How messages name what a spec keeps, e.g. " in splits 'train', 'val' with title and description"."""
    splits = spec.splits or ()
    out = f" in split{'s' if len(splits) > 1 else ''} {', '.join(map(repr, splits))}" if splits else ""
    return out + (f" with {' and '.join(spec.require)}" if spec.require else "")


def read_pairs(spec: ManifestSpec, default_mode: str) -> list[Pair]:
    """The (audio, caption) pairs of one manifest (the rows ``spec`` selects: select_rows)."""
    mode = spec.caption_mode or default_mode
    rows = select_rows(spec, read_manifest(spec.manifest))
    if not rows:
        raise ValueError(f"{spec.manifest}: no rows{describe_selection(spec)}")
    pairs = []
    for r in rows:
        caption = caption_for(r, mode)
        if not caption.strip():
            raise ValueError(f"{spec.manifest}: row of id {r.id!r} has an empty caption under mode {mode!r}")
        pairs.append(Pair(str(resolve_audio(spec.manifest, r)), r.id, caption))
    missing = sorted({p.audio_path for p in pairs if not Path(p.audio_path).is_file()})
    if missing:  # fail at start-up, not hours into a run
        raise ValueError(f"{spec.manifest}: {len(missing)} audio file(s) not found, e.g. {missing[:3]}")
    return pairs


def window_samples(model_config, crop_s: float | None = None) -> int:
    """A model's input window in samples, the one length training crops to and evaluation and search cut long
    clips into: ``crop_s`` (a run's data.crop_s) when set, else the model's own clip length (Cnn14: its
    clip_seconds; HTSAT: exactly its frame window). ``model_config``: a CLAPConfig."""
    if crop_s:
        return int(round(crop_s * model_config.audio.frontend.sample_rate))
    return int(model_config.audio.clip_samples)


def caption_key_text(caption: str) -> str:
    """Captions that differ only in case or whitespace are the same caption for the loss's targets."""
    return re.sub(r"\s+", " ", caption).strip().casefold()


def read_audio(path: str, sample_rate: int = SAMPLE_RATE, length: int | None = None,
               rng: np.random.Generator | None = None) -> np.ndarray:
    """Mono float32 audio at ``sample_rate``. With ``length`` and ``rng``, only a random stretch of about
    ``length`` output samples is read (plus a little margin for the resampler). Only the frames that decode are
    held (never the count a header claims), and a rate outside 4-768 kHz is refused before resampling
    (``to_model_rate``): a tiny file cannot turn into gigabytes of samples."""
    with StderrCapture() as decoder:  # libmpg123's notes on damaged frames: repeated under the file's name
        try:
            info = sf.info(path)
            start, frames = 0, -1
            if length is not None and rng is not None and info.frames > 0:
                need = math.ceil(length * info.samplerate / sample_rate) + 16
                if info.frames > need:
                    start = int(rng.integers(0, info.frames - need + 1))
                    frames = need
            x, sr = _read_frames(path, start, frames), info.samplerate
        except (sf.LibsndfileError, RuntimeError) as e:
            x, said = None, str(e)
    repeat_on_stderr(path, decoder.lines)
    if x is None:
        if "does not exist" in said and Path(path).is_file():  # libsndfile's words for "no format I know"
            said = f"libsndfile cannot decode it (not an audio format it reads, or damaged): {said}"
        raise ValueError(f"cannot read audio {path}: {said}") from None
    try:
        return to_model_rate(x, sr, sample_rate)
    except ValueError as e:
        raise ValueError(f"audio {path}: {e}") from None


_READ_BLOCK = 1 << 18  # frames per read: soundfile allocates what it is asked for, before decoding


def _read_frames(path: str, start: int, frames: int) -> np.ndarray:
    """(frames, channels) float32 from ``start``, ``frames`` of them (-1: to the end), read in blocks so that
    memory follows the frames that decode, not the count the header declares."""
    blocks = []
    with sf.SoundFile(path) as f:
        if start:
            f.seek(start)
        left, done = frames, 0
        while left != 0:
            try:
                block = f.read(_READ_BLOCK if left < 0 else min(_READ_BLOCK, left), dtype="float32", always_2d=True)
            except RuntimeError as e:  # LibsndfileError: the data ends or breaks before the header's count
                raise ValueError(f"audio {path}: damaged or truncated: its header declares {f.frames:,} frames, "
                                 f"decoding failed after {done:,} ({str(e).strip()})") from None
            done += len(block)
            if not len(block):
                break
            blocks.append(block)
            left = left - len(block) if left > 0 else left
        channels = f.channels
    if not blocks:
        return np.zeros((0, channels), np.float32)
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def to_model_rate(x: np.ndarray, sr: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 waveform resampled from ``sr`` to ``sample_rate``; rejects empty or non-finite audio and
    rates outside 4-768 kHz (a file declaring 1 Hz would grow 44,100-fold)."""
    problem = sample_rate_problem(sr)
    if problem:
        raise ValueError(f"the sample rate {problem}")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:  # (samples, channels), as soundfile gives it
        x = x.mean(axis=1)
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"expected a non-empty mono or (samples, channels) waveform, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError("audio holds NaN or infinite samples")
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="HQ").astype(np.float32)
    return x


def crop_or_pad(x: np.ndarray, length: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """Exactly ``length`` samples: a crop (random with ``rng``, else the first ``length``) of a long clip,
    or a short clip repeated until it fills ``length``."""
    if len(x) >= length:
        start = int(rng.integers(0, len(x) - length + 1)) if rng is not None else 0
        return x[start:start + length]
    return np.resize(x, length)  # np.resize tiles the clip


class _ByteLRU:
    """A least-recently-used cache of decoded clips bounded in bytes."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.size, self.items = max_bytes, 0, OrderedDict()

    def get(self, key: str) -> np.ndarray | None:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        return None

    def put(self, key: str, x: np.ndarray) -> None:
        if x.nbytes > self.max_bytes:
            return
        self.items[key] = x
        self.size += x.nbytes
        while self.size > self.max_bytes:
            _, old = self.items.popitem(last=False)
            self.size -= old.nbytes


class PairDataset(Dataset):
    """Training pairs of several manifests. Indexed by (row, seed) tuples from MixingBatchSampler; gives
    the cropped waveform, caption, audio id and the integer keys the loss uses for its positives.

    ``positives`` (a run's ``loss_positives``): "pair" gives every pair its own keys, so that the loss's only
    positive for a pair is itself (the paper's one-hot cross-entropy; the same row drawn twice into one batch
    is still one positive pair); "audio_or_caption" gives pairs of the same audio one audio key and pairs of
    the same caption text (caption_key_text) one caption key."""

    def __init__(self, specs: Sequence[ManifestSpec], caption_mode: str, crop_samples: int, cache_mb: int = 0,
                 sample_rate: int = SAMPLE_RATE, positives: str = "pair"):
        if crop_samples < 1:
            raise ValueError(f"crop_samples must be >= 1, got {crop_samples}")
        self.pairs: list[Pair] = []
        self.group_sizes: list[int] = []
        for spec in specs:
            pairs = read_pairs(spec, caption_mode)
            self.pairs += pairs
            self.group_sizes.append(len(pairs))
        if positives == "pair":
            self.audio_keys = self.caption_keys = np.arange(len(self.pairs))
        elif positives == "audio_or_caption":
            audio_keys: dict[str, int] = {}
            caption_keys: dict[str, int] = {}
            self.audio_keys = np.array([audio_keys.setdefault(p.audio_id, len(audio_keys)) for p in self.pairs])
            self.caption_keys = np.array([caption_keys.setdefault(caption_key_text(p.caption), len(caption_keys))
                                          for p in self.pairs])
        else:
            raise ValueError(f"positives must be 'pair' or 'audio_or_caption', got {positives!r}")
        self.crop_samples, self.sample_rate = crop_samples, sample_rate
        self.cache = _ByteLRU(cache_mb << 20) if cache_mb > 0 else None

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, item: tuple[int, tuple[int, ...]]) -> dict:
        index, seed = item
        pair = self.pairs[index]
        rng = np.random.default_rng(seed)
        if self.cache is not None:
            x = self.cache.get(pair.audio_path)
            if x is None:
                x = read_audio(pair.audio_path, self.sample_rate)
                self.cache.put(pair.audio_path, x)
        else:
            x = read_audio(pair.audio_path, self.sample_rate, length=self.crop_samples, rng=rng)
        return {"waveform": crop_or_pad(x, self.crop_samples, rng), "text": pair.caption,
                "audio_id": pair.audio_id, "audio_key": int(self.audio_keys[index]),
                "caption_key": int(self.caption_keys[index])}


def collate_pairs(items: list[dict]) -> dict:
    """waveform [B, T] float32, texts, audio_ids, audio_keys [B] and caption_keys [B] (int64)."""
    return {
        "waveform": torch.from_numpy(np.stack([i["waveform"] for i in items])),
        "texts": [i["text"] for i in items],
        "audio_ids": [i["audio_id"] for i in items],
        "audio_keys": torch.tensor([i["audio_key"] for i in items], dtype=torch.long),
        "caption_keys": torch.tensor([i["caption_key"] for i in items], dtype=torch.long),
    }


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integer counts proportional to ``weights`` (largest remainder)."""
    w = np.asarray(weights, dtype=np.float64)
    exact = total * w / w.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


class MixingBatchSampler:
    """Batches of (row index, sample seed) for one rank; a DataLoader ``batch_sampler``.

    Each epoch draws ``samples_per_epoch`` samples (default: every row once): manifest g contributes a share
    proportional to its weight (or its size when no weights are given), taken from successive random
    permutations of its rows, so rows repeat only when a manifest's share exceeds its size. The samples are
    shuffled together and cut into global batches of ``batch_size`` (the last partial one is dropped: every
    rank must take the same number of steps); rank r takes the r-th of world_size equal slices of each.
    """

    def __init__(self, group_sizes: Sequence[int], batch_size: int, weights: Sequence[float] | None = None,
                 samples_per_epoch: int | None = None, seed: int = 0, rank: int = 0, world_size: int = 1):
        if batch_size % world_size:
            raise ValueError(f"global batch size {batch_size} is not divisible by world size {world_size}")
        if weights is not None and len(weights) != len(group_sizes):
            raise ValueError("one weight per manifest is required")
        self.group_sizes, self.weights = list(group_sizes), weights
        self.samples = samples_per_epoch or sum(group_sizes)
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.per_rank = batch_size // world_size
        self.epoch, self.start_batch = 0, 0
        if self.batches_per_epoch == 0:
            raise ValueError(f"an epoch of {self.samples} samples holds no full global batch of {batch_size}")

    @property
    def batches_per_epoch(self) -> int:
        return self.samples // self.batch_size

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch's sample list and skip its first ``start_batch`` batches (resuming)."""
        self.epoch, self.start_batch = epoch, start_batch

    def epoch_indices(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        counts = (self.group_sizes if self.weights is None and self.samples == sum(self.group_sizes)
                  else allocate(self.samples, self.weights or self.group_sizes))
        offset, parts = 0, []
        for size, count in zip(self.group_sizes, counts):
            passes = [rng.permutation(size) for _ in range(math.ceil(count / size))]
            parts.append(offset + np.concatenate(passes)[:count])
            offset += size
        return rng.permutation(np.concatenate(parts))

    def __len__(self) -> int:
        return self.batches_per_epoch - self.start_batch

    def __iter__(self) -> Iterator[list[tuple[int, tuple[int, int, int]]]]:
        idx = self.epoch_indices(self.epoch)
        for b in range(self.start_batch, self.batches_per_epoch):
            first = b * self.batch_size + self.rank * self.per_rank
            yield [(int(idx[p]), (self.seed, self.epoch, p)) for p in range(first, first + self.per_rank)]
