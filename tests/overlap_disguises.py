"""Disguised copies of a recording, as the leakage audit must see through them (issue 16): re-encoding to MP3 and
Vorbis at 64 kbit/s, resampling to 8 and 96 kHz, channel changes, gain -12 and +6 dB with limiting, trimming,
excerpts inside a longer recording. Used by tests/test_curation_overlap.py and for the audit's run on real sounds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

MP3_64K = 0.889  # libsndfile's MPEG writer: compression level 0..1 maps 320..32 kbit/s CBR
VORBIS_64K = 0.9  # about 64 kbit/s at 44.1 kHz (less at lower rates)


def has_mp3_writer() -> bool:
    return "MP3" in sf.available_formats()


def _named(stem: Path, ext: str) -> Path:
    return stem.parent / (stem.name + ext)


def _write(path: Path, y: np.ndarray, sr: int, **kw) -> None:
    """sf.write in blocks: libsndfile 1.2's Vorbis encoder crashes on one long write (50 s at 44.1 kHz)."""
    with sf.SoundFile(path, "w", sr, y.shape[1], **kw) as f:
        for i in range(0, len(y), 1 << 14):
            f.write(y[i:i + (1 << 14)])


def _resample(x: np.ndarray, sr: int, to: int) -> np.ndarray:
    return x if sr == to else soxr.resample(x, sr, to, quality="HQ")


def _limit(x: np.ndarray) -> np.ndarray:
    """A soft limiter: unity below 0.5, tanh above, never past full scale."""
    a = np.abs(x)
    over = a > 0.5
    y = x.copy()
    y[over] = np.sign(x[over]) * (0.5 + 0.5 * np.tanh((a[over] - 0.5) / 0.5))
    return y


def _trim(x: np.ndarray, sr: int) -> np.ndarray:
    """A few seconds off each end: 2 s and 1.5 s of a long file, a fifth and a sixth of a short one."""
    dur = len(x) / sr
    head, tail = min(2.0, dur / 5), min(1.5, dur / 6)
    return x[int(head * sr): len(x) - int(tail * sr)]


def disguises(mp3: bool | None = None) -> tuple[str, ...]:
    names = ["vorbis64k", "resample8k", "resample96k_stereo", "mono", "gain-12", "gain+6_limited", "trim",
             "vorbis_8k_gain_trim"]
    if has_mp3_writer() if mp3 is None else mp3:
        names += ["mp3_64k", "mp3_64k_22k_trim"]
    return tuple(names)


def write_disguise(x: np.ndarray, sr: int, name: str, out_stem: Path) -> Path:
    """Write ``x`` ((frames, channels) float, at ``sr``) disguised by ``name`` as ``out_stem`` + an extension."""
    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    if name == "mp3_64k":
        p = _named(out_stem, ".mp3")
        _write(p, _resample(x, sr, 44100), 44100, format="MP3", compression_level=MP3_64K, bitrate_mode="CONSTANT")
    elif name == "mp3_64k_22k_trim":
        p = _named(out_stem, ".mp3")
        y = _resample(_trim(x, sr), sr, 22050) * 10 ** (-6 / 20)
        _write(p, y, 22050, format="MP3", compression_level=MP3_64K, bitrate_mode="CONSTANT")
    elif name == "vorbis64k":
        p = _named(out_stem, ".ogg")
        _write(p, _resample(x, sr, 44100), 44100, format="OGG", subtype="VORBIS", compression_level=VORBIS_64K)
    elif name == "vorbis_8k_gain_trim":
        p = _named(out_stem, ".oga")
        y = _resample(_trim(x, sr).mean(axis=1, keepdims=True), sr, 8000) * 10 ** (-12 / 20)
        _write(p, y, 8000, format="OGG", subtype="VORBIS", compression_level=0.5)
    elif name == "resample8k":
        p = _named(out_stem, ".wav")
        _write(p, _resample(x, sr, 8000), 8000, subtype="PCM_16")
    elif name == "resample96k_stereo":
        p = _named(out_stem, ".flac")
        y = _resample(x, sr, 96000)
        y = np.repeat(y, 2, axis=1) if y.shape[1] == 1 else y
        _write(p, y * 0.9, 96000, subtype="PCM_24")
    elif name == "mono":
        p = _named(out_stem, ".wav")
        y = x.mean(axis=1, keepdims=True) if x.shape[1] > 1 else np.concatenate([x, x * 0.5], axis=1)  # channels changed either way
        _write(p, y, sr, subtype="PCM_16")
    elif name == "gain-12":
        p = _named(out_stem, ".wav")
        _write(p, x * 10 ** (-12 / 20), sr, subtype="PCM_16")
    elif name == "gain+6_limited":
        p = _named(out_stem, ".flac")
        _write(p, _limit(x * 10 ** (6 / 20)), sr, subtype="PCM_16")
    elif name == "trim":
        p = _named(out_stem, ".wav")
        _write(p, _trim(x, sr), sr, subtype="PCM_16")
    else:
        raise ValueError(f"unknown disguise {name!r}")
    return p


def excerpt(x: np.ndarray, sr: int, start_s: float, seconds: float) -> np.ndarray:
    return x[int(start_s * sr): int((start_s + seconds) * sr)]


def embed(clip: np.ndarray, sr: int, filler: np.ndarray, at_s: float) -> np.ndarray:
    """``clip`` placed at ``at_s`` inside ``filler`` (other material around it): a longer recording holding it."""
    clip = clip[:, None] if clip.ndim == 1 else clip
    filler = filler[:, None] if filler.ndim == 1 else filler
    ch = max(clip.shape[1], filler.shape[1])
    clip, filler = (np.repeat(a, ch // a.shape[1], axis=1) for a in (clip, filler))
    i = int(at_s * sr)
    return np.concatenate([filler[:i], clip, filler[i:]])
