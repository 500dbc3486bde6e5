"""Landmark audio fingerprints for the leakage audit (``wt5k-curate overlap``), in the manner of Wang's 2003
Shazam paper and Dan Ellis's audfprint.

Every file is decoded in blocks, downmixed to mono and resampled (streaming soxr) to one analysis rate, so that
the rate, channels and container of a copy do not matter. A magnitude spectrogram (512-point FFT, hop 256 at
11,025 Hz: 23.2 ms frames, 21.5 Hz bins; 43 Hz to 3.7 kHz, what an 8 kHz copy still holds) is scanned for local
maxima ("landmarks") of +-5 frames and +-9 bins; the 20 strongest per second are kept, so that a gain change
keeps the same peaks and a codec's lost detail only some. Each peak is paired with the next 5 peaks within
1.46 s and +-31 bins; a pair's (f1, f2 - f1, dt) is a 20-bit hash that does not depend on where the file starts.
Two files share a recording when many of their hashes agree at one consistent time offset (curation/overlap.py
matches them). A test-side (query) file is also analysed from 1/4, 1/2 and 3/4 of a hop on, as audfprint's
query shifts, so that a trimmed copy's frames, which fall anywhere between the original's, still meet them.
Memory is bounded: the spectrogram is processed in blocks of 10 s; only the peaks are kept for a file.

A fingerprint also records the sha256 of the decoded samples (with the rate and channel count): two files with
equal decoded audio (a WAV and its FLAC) are ``exact`` duplicates without any matching.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from manifests.atomic import atomic_path
from manifests.audio_formats import sample_rate_problem
from manifests.hashing import sha256_file

from manifests.decoder_messages import StderrCapture, repeat_on_stderr

from .samples import downmix, peak

SR = 11025  # analysis rate: one for every file, whatever its own
N_FFT = 512
HOP = 256
FRAME_S = HOP / SR  # 23.2 ms
F_LO, F_HI = 2, 172  # bins kept: 43 Hz to 3.7 kHz, what an 8 kHz copy still holds (DC carries no landmarks)
NB_T, NB_F = 5, 9  # a peak is the largest value within +-5 frames and +-9 bins
WIN = 43  # frames per density window (1 s)
DENSITY = 20  # peaks kept per window, the strongest
FLOOR_DB = -80.0  # below this (re a full-scale sine) nothing is a peak: dither and silence carry no landmarks
FAN_OUT = 5  # pairs per anchor peak
DT_MAX = 63  # frames (1.46 s): the pair's dt fits 6 bits
DF_MAX = 31  # bins: the pair's df fits 6 bits
HASH_SPACE = 1 << 20  # f1 (8 bits), df (6), dt (6)
QUERY_SHIFTS = 4  # a query (test) file is also analysed from 1/4, 1/2 and 3/4 of a hop on
BLOCK_FRAMES = 10 * WIN  # spectrogram frames decided per step (a multiple of WIN)
READ_FRAMES = 1 << 16  # decoded frames per read
MIN_DURATION_S = 0.5  # shorter files are too short to fingerprint: compared as exact duplicates only
SILENCE_DBFS = -90.0  # a file whose peak is at or below this is silent
# Everything above shapes the hashes: a cached fingerprint is valid only for the same version.
VERSION = "lm1-" + hashlib.sha256(json.dumps(
    [SR, N_FFT, HOP, F_LO, F_HI, NB_T, NB_F, WIN, DENSITY, FLOOR_DB, FAN_OUT, DT_MAX, DF_MAX, QUERY_SHIFTS,
     BLOCK_FRAMES, MIN_DURATION_S, SILENCE_DBFS, "rate-bounds"]).encode()).hexdigest()[:10]


EXACT_ONLY = ("short", "no_landmarks", "non_finite")  # problems that leave a file to exact matching only


@dataclass
class Fingerprint:
    """What the audit knows of one audio file. ``problem`` names why it cannot take part in matching (``empty``,
    ``undecodable``, ``silent``) or why it takes part in exact matching only (EXACT_ONLY); ``detail`` says more."""
    sha256: str  # of the file's bytes: the cache key
    pcm_sha256: str = ""  # of the decoded samples, rate and channel count: equal for equal decoded audio
    duration_s: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    problem: str = ""
    detail: str = ""
    hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32), repr=False)
    times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32), repr=False)  # anchor frame
    query_shifts: int = 0  # > 0: q_hashes/q_times hold the other analysis shifts' hashes (a query's)
    q_hashes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32), repr=False)
    q_times: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint32), repr=False)

    @property
    def matchable(self) -> bool:
        return not self.problem and len(self.hashes) > 0

    def meta(self) -> dict:
        m = asdict(self)
        del m["hashes"], m["times"], m["q_hashes"], m["q_times"]
        return m


def fingerprint_file(path: str | os.PathLike, sha256: str | None = None, query: bool = False) -> Fingerprint:
    """The fingerprint of one audio file; a file that cannot be read gives a Fingerprint with ``problem`` set
    (never an exception for bad audio). ``query``: also the hashes of the analysis started QUERY_SHIFTS - 1
    other fractions of a hop later (``q_hashes``), as audfprint's query shifts: a trimmed copy's frames fall
    anywhere between the original's, and its peaks move with them."""
    path = Path(path)
    fp = Fingerprint(sha256=sha256 or sha256_file(path), query_shifts=QUERY_SHIFTS if query else 0)
    if path.stat().st_size == 0:
        fp.problem, fp.detail = "empty", "0 bytes"
        return fp
    # libmpg123 prints its notes on damaged frames to fd 2, unnamed: repeat them under the file's name
    with StderrCapture() as said:
        try:
            peaks = _analyse(path, fp)
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError, EOFError) as e:
            fp.problem, fp.detail = "undecodable", f"{type(e).__name__}: {e}".strip()
    repeat_on_stderr(path, said.lines)
    if fp.problem == "undecodable" and said.lines:
        fp.detail += f"; the decoder said: {' | '.join(said.lines[:3])}"
    if fp.problem:
        return fp
    fp.hashes, fp.times = pair_hashes(peaks[0])
    if not len(fp.hashes):
        fp.problem, fp.detail = "no_landmarks", "no spectral peaks to pair (a steady tone, a click): exact copies only"
    if query:
        hs = [pair_hashes(p) for p in peaks[1:]]
        fp.q_hashes = np.concatenate([h for h, _ in hs]) if hs else np.zeros(0, np.uint32)
        fp.q_times = np.concatenate([t for _, t in hs]) if hs else np.zeros(0, np.uint32)
    return fp


def _analyse(path: Path, fp: Fingerprint) -> list[np.ndarray]:
    """Decode, hash the samples and find the peaks (frame, bin) of one file, in bounded memory: one peak array
    per analysis shift."""
    pcm = hashlib.sha256()
    top = 0.0
    n = 0
    shifts = [Landmarks(i * HOP // QUERY_SHIFTS) for i in range(max(fp.query_shifts, 1))]
    with sf.SoundFile(str(path)) as f:
        fp.sample_rate, fp.channels = f.samplerate, f.channels
        bad_rate = sample_rate_problem(f.samplerate)
        if bad_rate:  # a tiny file claiming 1 Hz would otherwise be analysed as hours of audio
            fp.problem, fp.detail = "bad_sample_rate", bad_rate
            return []
        pcm.update(f"{f.samplerate}:{f.channels}:".encode())
        rs = soxr.ResampleStream(f.samplerate, SR, 1, dtype="float32", quality="HQ")
        while True:
            block = f.read(READ_FRAMES, dtype="float32", always_2d=True)
            last = len(block) < READ_FRAMES
            if len(block):
                pcm.update(np.ascontiguousarray(block).tobytes())
                m = peak(block)
                top = max(top, m) if m == m else float("nan")  # NaN stays: a non-finite file
                n += len(block)
            y = rs.resample_chunk(downmix(block), last=last)
            for lm in shifts:
                lm.feed(y)
            if last:
                break
    fp.pcm_sha256 = pcm.hexdigest()
    fp.duration_s = n / fp.sample_rate if fp.sample_rate else 0.0
    if n == 0:
        fp.problem, fp.detail = "empty", "no audio frames"
    elif not np.isfinite(top):
        fp.problem, fp.detail = "non_finite", "NaN or infinite samples: exact copies only"
    elif top <= 10 ** (SILENCE_DBFS / 20):
        fp.problem, fp.detail = "silent", f"peak {20 * np.log10(max(top, 1e-30)):.1f} dBFS"
    elif fp.duration_s < MIN_DURATION_S:
        fp.problem, fp.detail = "short", f"{fp.duration_s:.2f} s < {MIN_DURATION_S:g} s: compared as exact only"
    return [lm.close() for lm in shifts]


class Landmarks:
    """The landmarks (frame, bin) of a stream of mono SR samples, analysed from sample ``skip`` on: samples are fed
    in chunks of any size; the spectrogram is decided BLOCK_FRAMES at a time with NB_T frames of context, so
    memory does not grow with the stream. Peaks: local maxima above the floor, the DENSITY strongest per WIN
    frames; frame numbers count from sample 0 (a skip of a quarter hop is a quarter frame, rounded)."""

    def __init__(self, skip: int = 0):
        self.skip = skip
        self.window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self.scale = 2.0 / self.window.sum()  # a full-scale sine peaks at 0 dB
        self.buf = np.zeros(0, np.float32)
        self.fresh = False  # buf holds samples no frame has covered yet
        self.spec = np.zeros((0, F_HI - F_LO), np.float32)
        self.s0 = 0  # frame of spec[0]
        self.done = 0  # frames decided so far
        self.peaks: list[np.ndarray] = []

    def feed(self, chunk: np.ndarray) -> None:
        if self.skip:
            cut = min(self.skip, len(chunk))
            chunk, self.skip = chunk[cut:], self.skip - cut
        if not len(chunk):
            return
        self.buf = np.concatenate([self.buf, chunk.astype(np.float32, copy=False)])
        self.fresh = True
        if len(self.buf) < N_FFT:
            return
        k = 1 + (len(self.buf) - N_FFT) // HOP
        self._frames(self.buf, k)
        self.buf = self.buf[k * HOP:]
        self.fresh = len(self.buf) > N_FFT - HOP
        while self.s0 + len(self.spec) - self.done >= BLOCK_FRAMES + NB_T:
            self._decide(self.done + BLOCK_FRAMES)

    def close(self) -> np.ndarray:
        """All the peaks, (n, 2) int64 (frame, bin) in time order."""
        if self.fresh and len(self.buf):  # the tail: one last zero-padded frame
            self._frames(np.pad(self.buf, (0, N_FFT - len(self.buf))), 1)
        if self.s0 + len(self.spec) > self.done:
            self._decide(self.s0 + len(self.spec))
        return np.concatenate(self.peaks) if self.peaks else np.zeros((0, 2), np.int64)

    def _frames(self, buf: np.ndarray, k: int) -> None:
        frames = np.lib.stride_tricks.sliding_window_view(buf, N_FFT)[::HOP][:k]
        mag = np.abs(np.fft.rfft(frames * self.window, axis=1))[:, F_LO:F_HI] * self.scale
        self.spec = np.concatenate([self.spec, (20 * np.log10(np.maximum(mag, 1e-10))).astype(np.float32)])

    def _decide(self, end: int) -> None:
        lo = self.done - self.s0 - NB_T
        ctx = self.spec[max(lo, 0): end - self.s0 + NB_T]
        pad_after = (end - self.s0 + NB_T) - (max(lo, 0) + len(ctx))
        ctx = np.pad(ctx, ((max(-lo, 0), pad_after), (0, 0)), constant_values=-np.inf)
        self.peaks.append(_block_peaks(ctx, self.done, end - self.done))
        self.done = end
        keep = max(self.done - NB_T - self.s0, 0)
        self.spec, self.s0 = self.spec[keep:], self.s0 + keep


def _block_peaks(ctx: np.ndarray, start: int, n: int) -> np.ndarray:
    """Peaks of frames start..start+n, ``ctx`` holding NB_T frames of context on each side (-inf at the edges)."""
    sw = np.lib.stride_tricks.sliding_window_view
    tmax = sw(ctx, 2 * NB_T + 1, axis=0).max(axis=-1)  # (n, bins)
    padded = np.pad(tmax, ((0, 0), (NB_F, NB_F)), constant_values=-np.inf)
    local = sw(padded, 2 * NB_F + 1, axis=1).max(axis=-1)
    core = ctx[NB_T:NB_T + n]
    t, f = np.nonzero((core == local) & (core > FLOOR_DB))
    if not len(t):
        return np.zeros((0, 2), np.int64)
    t = t + start
    v = core[t - start, f]
    # the DENSITY strongest per window of WIN frames (windows aligned to frame 0: the same whatever the blocks)
    order = np.lexsort((-v, t // WIN))
    t, f, w = t[order], f[order], (t // WIN)[order]
    first = np.r_[0, np.flatnonzero(np.diff(w)) + 1]
    rank = np.arange(len(w)) - np.repeat(first, np.diff(np.r_[first, len(w)]))
    keep = rank < DENSITY
    peaks = np.stack([t[keep], f[keep]], axis=1)
    return peaks[np.lexsort((peaks[:, 1], peaks[:, 0]))]


def pair_hashes(peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, anchor frames), both uint32, from time-sorted (frame, bin) peaks: each peak paired with the next
    FAN_OUT peaks within DT_MAX frames (dt >= 1) and DF_MAX bins. hash = f1 << 12 | (df + 32) << 6 | dt."""
    if len(peaks) < 2:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    t, f = peaks[:, 0].astype(np.int64), peaks[:, 1].astype(np.int64)
    n = len(t)
    hs, ts = [], []
    taken = np.zeros(n, np.int64)
    k = 1
    while k < n:
        a = np.arange(n - k)
        dt = t[k:] - t[:n - k]
        if dt.min() > DT_MAX:
            break
        df = f[k:] - f[:n - k]
        ok = (dt >= 1) & (dt <= DT_MAX) & (np.abs(df) <= DF_MAX) & (taken[:n - k] < FAN_OUT)
        a = a[ok]
        taken[a] += 1
        hs.append((f[a] << 12) | ((df[ok] + 32) << 6) | dt[ok])
        ts.append(t[a])
        k += 1
    h, tt = np.concatenate(hs), np.concatenate(ts)
    order = np.argsort(tt, kind="stable")
    return h[order].astype(np.uint32), tt[order].astype(np.uint32)


class FingerprintCache:
    """Fingerprints on disk, one ``.npz`` per audio sha256 under ``folder/VERSION/``: an audit run again (or
    over more files) decodes only what it has not seen."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder) / VERSION

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npz"

    def get(self, sha256: str, query: bool = False) -> Fingerprint | None:
        """The cached fingerprint, or None (also when ``query`` asks for the query shifts it lacks)."""
        p = self._path(sha256)
        if not p.is_file():
            return None
        try:
            with np.load(p) as z:
                meta = json.loads(bytes(z["meta"]).decode())
                fp = Fingerprint(**meta, hashes=z["hashes"], times=z["times"], q_hashes=z["q_hashes"],
                                 q_times=z["q_times"])
            return None if query and not fp.query_shifts else fp
        except (OSError, ValueError, KeyError, TypeError):  # torn or foreign file: compute again
            return None

    def put(self, fp: Fingerprint) -> None:
        buf = io.BytesIO()
        np.savez(buf, hashes=fp.hashes, times=fp.times, q_hashes=fp.q_hashes, q_times=fp.q_times,
                 meta=np.frombuffer(json.dumps(fp.meta()).encode(), np.uint8))
        with atomic_path(self._path(fp.sha256)) as tmp:
            tmp.write_bytes(buf.getvalue())
