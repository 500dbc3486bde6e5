"""Training checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict: "model" (state dict), "config" (the run config as a dict, with "model" the full
CLAPConfig dict, so a model rebuilds offline without its pretrained files), and for training state
"optimizer", "scheduler", "scaler", "epoch" (epochs completed), "batch_in_epoch", "step", "best_score",
"rng" (python, numpy, torch and CUDA generator states). RNG states are stored as tensors and plain lists so
that the safe weights_only loader reads them; nothing in a checkpoint executes code when loaded.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from manifests.atomic import atomic_path


def save_checkpoint(path: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a rename, so a
    crash never leaves a truncated checkpoint behind."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint (safe loader: tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint (needs 'model' and 'config')")
    return ckpt


def model_from_checkpoint(checkpoint: dict | str | os.PathLike, map_location: str | torch.device = "cpu"):
    """The CLAP model of a checkpoint (a file, or one already read with load_checkpoint: a paper-size
    checkpoint with optimiser state is GBs, so commands read it once), in eval mode. Pretrained files are not
    read: the architecture comes from the saved config and every weight from the checkpoint (strict: missing
    or extra keys are errors)."""
    from training.model import CLAP, CLAPConfig  # the model pulls in transformers: imported when needed

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location)
    model = CLAP(CLAPConfig.from_dict(ckpt["config"]["model"]), load_pretrained=False)
    model.load_state_dict(ckpt["model"], strict=True)
    return model.to(map_location).eval()


def rng_state() -> dict:
    """The global generators' states (python, numpy, torch, and CUDA when present)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
