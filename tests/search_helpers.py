"""For the search server tests: a tiny model whose embeddings are known (the frequency band of a tone, or of the
number of Hz a text names), a folder of real tone files in several formats, and a real uvicorn server on a free
loopback port."""
from __future__ import annotations

import re
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf

from tests.ports import free_port

BANDS = np.geomspace(100, 12800, 15)  # band edges: tones of 200, 400, ... 6400 Hz fall in different bands
TONES = {"tone200.wav": 200, "tone400.flac": 400, "sub/tone800.ogg": 800, "tone1600.wav": 1600,
         "tone3200.aiff": 3200, "tone6400.flac": 6400}
RATE = 22050


def band_vector(freq: float) -> np.ndarray:
    v = np.full(len(BANDS) + 1, 0.01, dtype=np.float32)  # never an all-zero row
    v[int(np.searchsorted(BANDS, freq))] = 1.0
    return v / np.linalg.norm(v)


class ToneModel:
    """Audio -> the band of its strongest frequency; text -> the band of the first number of Hz it names."""
    sample_rate = RATE
    logit_scale = 10.0

    def __init__(self):
        self.text_calls = 0

    def embed_audio(self, waveforms, sample_rate):
        out = []
        for x in waveforms:
            x = np.asarray(x, dtype=np.float32)
            spec = np.abs(np.fft.rfft(x))
            out.append(band_vector(np.fft.rfftfreq(len(x), 1 / sample_rate)[int(spec.argmax())]))
        return np.stack(out)

    def embed_audio_files(self, paths):
        from training.data import read_audio  # the real Embedder's reader (a ValueError for what it cannot read)

        return self.embed_audio([read_audio(str(p), RATE) for p in paths], RATE)

    def embed_texts(self, texts):
        self.text_calls += 1
        out = []
        for t in texts:
            m = re.search(r"(\d+)", t)
            out.append(band_vector(float(m.group(1)) if m else 50.0))
        return np.stack(out)


def make_tone_folder(folder: Path, seconds: float = 1.0) -> Path:
    t = np.arange(int(RATE * seconds)) / RATE
    for name, f in TONES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), (0.4 * np.sin(2 * np.pi * f * t)).astype(np.float32), RATE)
    return folder


def tone_index(tmp: Path):
    """(tone folder, index folder, loaded AudioIndex): the tones indexed and saved as `wt5k-search index` does."""
    from search.index import AudioIndex, items_from_folder

    folder = make_tone_folder(tmp / "tones")
    AudioIndex.build(ToneModel(), items_from_folder(folder), {"source": str(folder)}).save(tmp / "ix")
    return folder, tmp / "ix", AudioIndex.load(tmp / "ix")


@contextmanager
def running_server(app) -> Iterator[str]:
    """A real uvicorn server of ``app`` on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
