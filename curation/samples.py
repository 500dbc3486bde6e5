"""Arithmetic on decoded sample blocks: the mono downmix, the peak, the one headroom gain of a file and the
quantisation to the integers a PCM file stores. Samples are quantised here, not by libsndfile, because numpy's
vectorised rounding is several times faster than libsndfile's per-sample float conversion, and because the
content hash (curation.audio) is taken over exactly these integers."""
from __future__ import annotations

import numpy as np

# Integer sample width per output subtype. PCM_24 is written as the top 24 bits of an int32.
PCM = {"PCM_16": (np.int16, 16), "PCM_24": (np.int32, 24)}


def downmix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) mean of the channels. Channel by channel: many times faster than
    mean(axis=1), and as fast as a BLAS matrix product without waking BLAS threads in a worker."""
    if block.shape[1] == 1:
        return block[:, 0]
    with np.errstate(invalid="ignore"):  # inf - inf gives NaN: the caller reports it
        x = np.add(block[:, 0], block[:, 1])
        for c in range(2, block.shape[1]):
            x += block[:, c]
        x *= np.float32(1.0 / block.shape[1])
    return x


def peak(x: np.ndarray) -> float:
    """Largest absolute sample; NaN or inf when there is one (max and min propagate NaN)."""
    hi, lo = float(x.max()), float(x.min())
    if not (np.isfinite(hi) and np.isfinite(lo)):
        return float("nan") if np.isnan(hi) or np.isnan(lo) else float("inf")
    return max(hi, -lo)


def headroom_gain(peak: float, subtype: str) -> float:
    """The one gain for a whole file whose resampled ``peak`` would clip when quantised to ``subtype`` (1.0 when
    it would not): the largest gain that brings the peak to the top integer step, so no sample is clipped."""
    scale = float(1 << (PCM[subtype][1] - 1))
    if peak * scale < scale - 0.5:  # rounds to at most the top step: nothing clips
        return 1.0
    return (scale - 1) / (peak * scale)


def _factor(subtype: str, gain: float) -> np.float32:
    """``gain`` times the quantiser's scale as a float32 no larger than the exact product, so that a sample at
    the measured peak lands on the top step, never above it (float32 rounds to nearest, which is monotonic)."""
    exact = gain * float(1 << (PCM[subtype][1] - 1))
    f = np.float32(exact)
    return np.nextafter(f, np.float32(0)) if float(f) > exact else f


def quantise(y: np.ndarray, subtype: str, gain: float = 1.0, clipped: list[int] | None = None) -> np.ndarray:
    """Float samples in [-1, 1) -> the integers a ``subtype`` file stores (times ``gain``, scaled by
    2**(bits-1), rounded to nearest, clipped rather than wrapped). libsndfile reads them back as exactly
    ``q / 2**(bits-1)``. When ``clipped`` is given, the number of samples clipped is added to its first item."""
    dtype, bits = PCM[subtype]
    scale = float(1 << (bits - 1))
    q = np.multiply(y, _factor(subtype, gain), dtype=np.float32)
    np.rint(q, out=q)
    if clipped is not None and len(q) and (q.max() > scale - 1 or q.min() < -scale):
        clipped[0] += int(np.count_nonzero(q > scale - 1) + np.count_nonzero(q < -scale))
    np.clip(q, -scale, scale - 1, out=q)
    q = q.astype(dtype)
    if bits == 24:
        q <<= 8  # libsndfile takes the top 24 bits of an int32
    return q
