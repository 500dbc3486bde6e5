"""Training checkpoints: written atomically, loadable with ``torch.load(weights_only=True)``.

A checkpoint is a dict: "model" (state dict), "config" (the run config as a dict, with "model" the full
CLAPConfig dict, so a model rebuilds offline without its pretrained files), and for training state
"optimizer", "scheduler", "scaler", "epoch" (epochs completed), "batch_in_epoch", "step", "best_score",
"rng" (a list: each rank's python, numpy, torch and CUDA generator states; a dict in older files),
"world_size" (ranks that saved it). RNG states are stored as tensors and plain lists so
that the safe weights_only loader reads them; nothing in a checkpoint executes code when loaded.

Frozen encoders are not rewritten into every ``latest.pt``: ``save_checkpoint(..., separate=prefixes)`` writes
the state-dict entries under those prefixes once to a sibling ``frozen-<sha256 of the tensors>.pt``
(content-addressed: unchanged frozen weights are never written again) and the checkpoint holds
``"frozen": {"file", "sha256", "keys"}`` in their place. ``load_checkpoint`` puts them back, after checking
the names and the digest, so every reader sees a whole state dict. ``best.pt`` is saved whole: the file to
evaluate, copy or share stays self-contained.
"""
from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from manifests.atomic import atomic_path


FROZEN_FILE_PREFIX = "frozen-"


def frozen_prefixes(model_config: dict) -> tuple[str, ...]:
    """The state-dict prefixes of the encoders a model config freezes (CLAP's ``audio_encoder`` and
    ``text_encoder``; their projections always train)."""
    return tuple(prefix for prefix, key in (("audio_encoder.", "audio"), ("text_encoder.", "text"))
                 if model_config.get(key, {}).get("freeze"))


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of a state dict (independent of how it is pickled)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().data)
    return h.hexdigest()


def save_checkpoint(path: str | os.PathLike, state: dict, separate: Sequence[str] = ()) -> Path:
    """Write ``state`` to ``path`` atomically: a temporary file in the same folder, then a rename, so a
    crash never leaves a truncated checkpoint behind. ``separate``: state-dict prefixes (frozen encoders)
    whose tensors go to a content-addressed sibling file, written only when no such file exists yet."""
    path = Path(path)
    if separate:
        model = state["model"]
        frozen = {k: v for k, v in model.items() if k.startswith(tuple(separate))}
        if frozen:
            digest = tensors_digest(frozen)
            sibling = path.with_name(f"{FROZEN_FILE_PREFIX}{digest[:16]}.pt")
            if not sibling.is_file():
                with atomic_path(sibling) as tmp:
                    torch.save(frozen, tmp)
            state = {**state, "model": {k: v for k, v in model.items() if k not in frozen},
                     "frozen": {"file": sibling.name, "sha256": digest, "keys": sorted(frozen)}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint (safe loader: tensors and plain containers only), with the frozen weights of a
    ``separate`` save put back from their sibling file (checked: the same names and sha256)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    ckpt = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(ckpt, dict) or "model" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{path}: not a training checkpoint (needs 'model' and 'config')")
    return restore_frozen(ckpt, path, map_location)


def restore_frozen(ckpt: dict, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint read from ``path`` with the frozen weights of a ``separate`` save put back from their
    sibling file (checked: the same names and sha256); a whole checkpoint is returned as it is."""
    path = Path(path)
    ref = ckpt.get("frozen")
    if ref:
        sibling = path.with_name(ref["file"])
        if not sibling.is_file():
            raise FileNotFoundError(f"{path}: its frozen encoder weights are in {ref['file']}, which is not beside "
                                    f"it; copy that file too, or use best.pt (always self-contained)")
        frozen = torch.load(sibling, map_location=map_location, weights_only=True)
        if sorted(frozen) != ref["keys"] or tensors_digest(frozen) != ref["sha256"]:
            raise ValueError(f"{sibling}: does not hold the frozen weights {path.name} was saved with "
                             f"(names or sha256 differ)")
        ckpt["model"] = {**ckpt["model"], **frozen}
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


def rng_state(device: torch.device | None = None) -> dict:
    """This process's generators' states: python, numpy, torch (CPU) and, on CUDA, its one ``device``.
    A distributed run saves one such state per rank (training/train.py)."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    cuda = device is not None and device.type == "cuda"
    return {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
        "cuda": [torch.cuda.get_rng_state(device)] if cuda else [],
    }


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    """Restore a ``rng_state``; its CUDA state goes to ``device`` (older checkpoints listed every visible GPU's
    state: the first, the one their single saving rank used, is taken)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"][0], device)
