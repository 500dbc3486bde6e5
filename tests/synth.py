"""Generated audio for the tests and the benchmark: valid files in many formats, and broken files for every
rejection reason of curation.audio."""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import soundfile as sf


def sine(sr: int, seconds: float, freq: float = 1000.0, amp: float = 0.5, channels: int = 1,
         noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """(frames, channels) float64; channel c has frequency freq * (1 + c/4) so channels are told apart."""
    t = np.arange(int(round(sr * seconds))) / sr
    x = np.stack([amp * np.sin(2 * np.pi * freq * (1 + c / 4) * t) for c in range(channels)], axis=1)
    if noise:
        x += noise * np.random.default_rng(seed).standard_normal(x.shape)
    return x


def write(path: str | os.PathLike, data: np.ndarray, sr: int, subtype: str | None = None,
          fmt: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, sr, subtype=subtype, format=fmt)
    return path


def damaged_mp3(folder: Path) -> Path:
    """A 2 s MP3 with 600 zero bytes in its middle: libmpg123 prints notes (resync) on fd 2 while decoding it."""
    data = bytearray(write(folder / "f.mp3", sine(44100, 2.0, 500, 0.3, noise=0.01), 44100, "MPEG_LAYER_III",
                           "MP3").read_bytes())
    data[len(data) // 2: len(data) // 2 + 600] = b"\x00" * 600
    src = folder / "damaged.mp3"
    src.write_bytes(bytes(data))
    return src


def make_broken_files(folder: str | os.PathLike) -> dict[str, str]:
    """One file per rejection reason: {file name: expected reason}."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    good = sine(44100, 1.0)
    expected = {}

    (d / "empty.wav").write_bytes(b"")
    expected["empty.wav"] = "empty"
    wav = write(d / "_full.wav", good, 44100, "PCM_16").read_bytes()
    (d / "_full.wav").unlink()
    (d / "header_only.wav").write_bytes(wav[:44])
    expected["header_only.wav"] = "header_only"
    (d / "truncated.wav").write_bytes(wav[: len(wav) // 2])
    expected["truncated.wav"] = "truncated"
    flac = write(d / "_full.flac", sine(44100, 3.0, noise=0.05), 44100, "PCM_16").read_bytes()
    (d / "_full.flac").unlink()
    (d / "truncated.flac").write_bytes(flac[: len(flac) // 2])
    expected["truncated.flac"] = "truncated"
    mp3 = write(d / "_full.mp3", sine(44100, 3.0, noise=0.05), 44100, "MPEG_LAYER_III", "MP3").read_bytes()
    (d / "_full.mp3").unlink()
    (d / "truncated.mp3").write_bytes(mp3[: len(mp3) // 2])  # libsndfile writes a Xing tag with the frame count
    expected["truncated.mp3"] = "truncated"
    garbage = np.random.default_rng(1).integers(0, 256, 20000, dtype=np.uint8).tobytes()
    for ext in ("wav", "mp3", "flac", "ogg"):
        (d / f"garbage.{ext}").write_bytes(garbage)
        expected[f"garbage.{ext}"] = "unreadable"
    (d / "html_page.mp3").write_bytes(b"<!DOCTYPE html><html><body>Please enable JavaScript</body></html>" * 20)
    expected["html_page.mp3"] = "unreadable"
    write(d / "zeros.wav", np.zeros((44100, 2)), 44100, "PCM_16")
    expected["zeros.wav"] = "silent"
    write(d / "zeros.flac", np.zeros(44100), 44100, "PCM_24")
    expected["zeros.flac"] = "silent"
    x = good.astype(np.float32).copy()
    x[1000] = np.nan
    write(d / "nan.wav", x, 44100, "FLOAT")
    expected["nan.wav"] = "non_finite"
    x = good.copy()
    x[20000] = np.inf
    write(d / "inf.wav", x, 44100, "DOUBLE")
    expected["inf.wav"] = "non_finite"
    write(d / "short.wav", sine(44100, 0.02), 44100, "PCM_16")
    expected["short.wav"] = "too_short"
    (d / "one_hz.wav").write_bytes(pcm_wav_bytes(1, 200))  # 444 bytes that would become 200 s at 44.1 kHz
    expected["one_hz.wav"] = "bad_sample_rate"
    return expected


def pcm_wav_bytes(rate: int, frames: int) -> bytes:
    """A 16-bit mono PCM WAV declaring ``rate`` Hz, written by hand (libsndfile will not write 1 Hz)."""
    data = (np.sin(np.arange(frames) / 3) * 12000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", len(data)) + data)


# The benchmark's mix: (sample rate, subtype, channels, container)
MIX = [
    (48000, "PCM_16", 2, "WAV"), (96000, "PCM_24", 2, "WAV"), (22050, "PCM_16", 1, "WAV"),
    (48000, "PCM_24", 1, "FLAC"), (96000, "PCM_24", 2, "FLAC"), (22050, "PCM_16", 2, "FLAC"),
    (48000, "MPEG_LAYER_III", 2, "MP3"), (44100, "MPEG_LAYER_III", 1, "MP3"), (22050, "MPEG_LAYER_III", 2, "MP3"),
]


def make_mixed_folder(folder: str | os.PathLike, n_files: int, seconds: float, seed: int = 0) -> list[Path]:
    """``n_files`` files of ``seconds`` each cycling through MIX: tones with noise, like real recordings."""
    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_files):
        sr, subtype, ch, fmt = MIX[i % len(MIX)]
        x = sine(sr, seconds, freq=220.0 * (1 + i % 7), amp=0.3, channels=ch, noise=0.02, seed=seed + i)
        paths.append(write(d / f"mix_{i:03d}.{fmt.lower()}", x, sr, subtype, fmt))
    return paths


def write_long_file(path: str | os.PathLike, seconds: float, sr: int = 48000, channels: int = 2,
                    subtype: str = "PCM_16", block_s: float = 30.0) -> Path:
    """A long recording written block by block (never whole in memory), e.g. the 45-minute rainstorm."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    n = int(seconds * sr)
    step = int(block_s * sr)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels, subtype=subtype) as f:
        for start in range(0, n, step):
            m = min(step, n - start)
            t = (start + np.arange(m)) / sr
            x = 0.2 * np.sin(2 * np.pi * 440 * t)[:, None] + 0.05 * rng.standard_normal((m, channels))
            f.write(x)
    return path
