"""Audio the mirror serves: generated deterministically per sound, or read from a provided folder.

Encoded bytes are cached (LRU) because a crawl asks for each file once or twice in a row.
"""
from __future__ import annotations

import io
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import soundfile as sf

from manifests.atomic import OutsideFolderError, inside

from .catalog import Sound, id_hash

log = logging.getLogger(__name__)

FORMATS = {  # format -> (libsndfile format, subtype for 16/24 bits or None for lossy)
    "wav": ("WAV", {16: "PCM_16", 24: "PCM_24"}),
    "flac": ("FLAC", {16: "PCM_16", 24: "PCM_24"}),
    "ogg": ("OGG", None),
    "mp3": ("MP3", None),
}
LOSSY_MAX_RATE = 48000  # MP3 cannot go higher; Vorbis is kept to the same for simplicity


class AudioProvider:
    """`encode(sound, fmt) -> bytes`; generated audio is `min_duration..max_duration` seconds long."""

    def __init__(self, audio_dir: str | Path | None = None, max_duration: float = 1.0,
                 min_duration: float = 0.2, cache_size: int = 64):
        self.audio_dir = Path(audio_dir) if audio_dir else None
        self.max_duration, self.min_duration = max_duration, min_duration
        self._cache: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def provided_file(self, sound: Sound) -> Path | None:
        if self.audio_dir is None or not sound.fname:
            return None
        try:
            path = inside(self.audio_dir, sound.fname)  # a CSV's fname never serves a file from elsewhere
        except OutsideFolderError as e:
            log.warning("not served: %s", e)
            return None
        return path if path.is_file() else None

    def file_as_is(self, sound: Sound, fmt: str) -> Path | None:
        """The provided file itself when `encode` would give the same kind of file (same container; for
        WAV/FLAC the declared bit depth, for lossy formats a rate they allow): it is then served from disk
        as it is, so a large file is neither decoded nor held in memory."""
        path = self.provided_file(sound)
        if path is None:
            return None
        info = sf.info(str(path))
        container, subtypes = FORMATS[fmt]
        if info.format != container:
            return None
        same = info.subtype == subtypes[sound.bit_depth] if subtypes else info.samplerate <= LOSSY_MAX_RATE
        return path if same else None

    def describe(self, sound: Sound) -> None:
        """Fill the sound's declared technical data (rate, bits, channels, duration) from its audio."""
        path = self.provided_file(sound)
        if path is not None:
            info = sf.info(str(path))
            sound.sample_rate, sound.channels = info.samplerate, info.channels
            sound.bit_depth = 24 if "24" in info.subtype else 16
            sound.duration_s = round(info.frames / info.samplerate, 3)
        else:
            frac = (id_hash(sound.id) >> 40) % 1000 / 1000
            sound.duration_s = round(self.min_duration + frac * (self.max_duration - self.min_duration), 3)

    def samples(self, sound: Sound, rate: int) -> np.ndarray:
        """float32 [frames, channels] at `rate`."""
        path = self.provided_file(sound)
        if path is not None:
            data, sr = sf.read(str(path), dtype="float32", always_2d=True)
            if sr != rate:
                import soxr
                data = soxr.resample(data, sr, rate)
            return data.astype(np.float32)
        rng = np.random.default_rng(id_hash(sound.id))
        n = max(1, int(round(sound.duration_s * rate)))
        t = np.arange(n) / rate
        freqs = rng.uniform(80, min(6000, rate / 2.5), size=3)
        tone = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3)) / (k + 1) for k, f in enumerate(freqs))
        noise = rng.standard_normal(n) * rng.uniform(0.05, 0.6)
        env = np.exp(-t * rng.uniform(0.5, 6.0))
        mono = (0.3 * (tone + noise) * env).astype(np.float32)
        chans = [mono * (1.0 - 0.3 * c) for c in range(sound.channels)]
        return np.clip(np.stack(chans, axis=1), -1, 1)

    def encode(self, sound: Sound, fmt: str) -> bytes:
        key = (sound.id, fmt)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        container, subtypes = FORMATS[fmt]
        rate = sound.sample_rate if subtypes else min(sound.sample_rate, LOSSY_MAX_RATE)
        subtype = subtypes[sound.bit_depth] if subtypes else None
        buf = io.BytesIO()
        sf.write(buf, self.samples(sound, rate), rate, format=container, subtype=subtype)
        data = buf.getvalue()
        with self._lock:
            self._cache[key] = data
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return data
