"""Disguised copies of a recording, as the leakage audit must see through them (issue 16): re-encoding to MP3 and
Vorbis at 64 kbit/s, resampling to 8 and 96 kHz, channel changes, gain -12 and +6 dB with limiting, trimming,
excerpts inside a longer recording; and recordings to disguise: notes, sweeps, noise bursts. Used by
tests/test_curation_overlap.py, benchmarks/bench_overlap.py and for the audit's run on real sounds."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SR_GEN = 22050
MP3_64K = 0.889  # libsndfile's MPEG writer: compression level 0..1 maps 320..32 kbit/s CBR
VORBIS_64K = 0.9  # about 64 kbit/s at 44.1 kHz (less at lower rates)


def melody(seed: int, seconds: float, sr: int = SR_GEN) -> np.ndarray:
    """Notes of random pitch (150 Hz - 3 kHz) and length (60-250 ms) with two harmonics and a decay."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(map(len, out)) < seconds * sr:
        n = int(rng.uniform(0.06, 0.25) * sr)
        f = rng.uniform(150, 3000)
        t = np.arange(n) / sr
        tone = sum(a * np.sin(2 * np.pi * f * k * t) for k, a in ((1, 1.0), (2, 0.4), (3, 0.2)) if f * k < sr / 2)
        out.append(tone * np.exp(-t * rng.uniform(3, 12)) * rng.uniform(0.2, 0.5))
    return np.concatenate(out)[: int(seconds * sr)]


def chirps(seed: int, seconds: float, sr: int = SR_GEN) -> np.ndarray:
    """Overlapping sweeps between random frequencies (100 Hz - 3.5 kHz) at random times."""
    rng = np.random.default_rng(seed)
    x = np.zeros(int(seconds * sr))
    for _ in range(int(seconds * 5)):
        n = int(rng.uniform(0.1, 0.6) * sr)
        i = rng.integers(0, len(x) - n)
        f0, f1 = rng.uniform(100, 3500, 2)
        t = np.arange(n) / sr
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * t[-1]))
        x[i:i + n] += 0.25 * np.sin(phase) * np.hanning(n)
    return x


def noise_bursts(seed: int, seconds: float, sr: int = SR_GEN) -> np.ndarray:
    """Band-limited noise bursts (random band, timing and length) over a soft hum."""
    rng = np.random.default_rng(seed)
    x = 0.02 * np.sin(2 * np.pi * rng.uniform(80, 200) * np.arange(int(seconds * sr)) / sr)
    for _ in range(int(seconds * 4)):
        n = int(rng.uniform(0.05, 0.3) * sr)
        i = rng.integers(0, len(x) - n)
        spec = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / sr)
        lo = rng.uniform(200, 2500)
        spec[(freqs < lo) | (freqs > lo * rng.uniform(1.2, 1.8))] = 0
        burst = np.fft.irfft(spec, n)
        x[i:i + n] += 0.4 * burst / (np.abs(burst).max() + 1e-9) * np.hanning(n)
    return x


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
        # the channels changed either way: stereo to mono, mono to stereo
        y = x.mean(axis=1, keepdims=True) if x.shape[1] > 1 else np.concatenate([x, x * 0.5], axis=1)
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
