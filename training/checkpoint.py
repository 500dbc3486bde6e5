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

import copy
import hashlib
import os
import pickle
import random
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from manifests.atomic import atomic_path
from manifests.file_kind import HEAD_BYTES, looks_like


FROZEN_FILE_PREFIX = "frozen-"
# torch.save's pre-1.6 format starts with its pickled magic number (protocol 2, a 10-byte long)
_LEGACY_TORCH_START = b"\x80\x02\x8a\x0a"
TRUST_HINT = ("pass --trust-checkpoint (wt5k-eval, wt5k-search; Python: trusted=True; run configs: "
              "audio.trust_checkpoints, init_from.trusted)")


class CheckpointMismatchError(ValueError):
    """A checkpoint does not fit the model (shapes differ, or strict loading found missing/unexpected keys)."""


class CheckpointReadError(CheckpointMismatchError):
    """A file given as a checkpoint cannot be read as one; the message is one line naming the file and what it
    holds instead (empty, text, an image, a truncated archive, a pickle of something else)."""


def read_checkpoint(path: str | os.PathLike, trusted: bool = False, map_location: str | torch.device = "cpu") -> dict:
    """The one reader of every checkpoint the toolkit opens (training checkpoints, released CLAP files,
    pretrained encoders, ``init_from``): ``torch.load`` with only tensors and plain containers unless
    ``trusted`` (full unpickling: runs code the file names). Whatever the file holds, a failure is one
    CheckpointReadError line (FileNotFoundError when there is no such file); the --trust-checkpoint advice
    is given only for a readable checkpoint that holds objects."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such checkpoint: {path}")
    if path.is_dir():
        raise CheckpointReadError(f"{path}: is a folder, not a checkpoint file")
    with open(path, "rb") as f:
        head = f.read(HEAD_BYTES)
    size = path.stat().st_size
    if not head:
        raise CheckpointReadError(f"{path}: not a readable torch checkpoint: the file is empty (0 bytes)")
    is_zip, is_legacy = head.startswith(b"PK\x03\x04"), head.startswith(_LEGACY_TORCH_START)
    if not (is_zip or is_legacy):
        what = ("a Python pickle not written by torch.save" if head[:1] == b"\x80" and 2 <= head[1] <= 5
                else looks_like(head) or f"unknown bytes {head[:8].hex(' ')}")
        raise CheckpointReadError(f"{path}: not a readable torch checkpoint: the file holds {what} ({size} bytes)")
    try:
        with warnings.catch_warnings():  # torch's warnings about odd files (TorchScript, pickle protocols):
            warnings.simplefilter("ignore", UserWarning)  # the one line below says what the file is
            obj = torch.load(path, map_location=map_location, weights_only=not trusted)
    except Exception as e:  # noqa: BLE001 - whatever a hostile or broken file raises becomes one line
        raise CheckpointReadError(_load_failure(path, size, is_zip, trusted, e)) from None
    if not isinstance(obj, dict):
        raise CheckpointReadError(f"{path}: not a checkpoint: torch.save of a {type(obj).__name__}, where a dict of "
                                  f"tensors was expected")
    if not _holds_tensors(obj):
        raise CheckpointReadError(f"{path}: not a checkpoint: a dict without tensors (keys "
                                  f"{', '.join(map(str, list(obj)[:6]))})")
    return obj


def _holds_tensors(obj: Any, depth: int = 3) -> bool:
    if isinstance(obj, torch.Tensor):
        return True
    if depth and isinstance(obj, dict):
        return any(_holds_tensors(v, depth - 1) for v in obj.values())
    return False


def _load_failure(path: Path, size: int, is_zip: bool, trusted: bool, e: Exception) -> str:
    """One line saying why torch.load failed on a file that starts like a torch checkpoint."""
    damaged = f"{path}: not a readable torch checkpoint: truncated or damaged ({size} bytes"
    if is_zip:
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError):
            return f"{damaged}: its ZIP directory is missing; an interrupted copy or download?)"
        if not any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
            return f"{path}: not a readable torch checkpoint: a ZIP archive of {len(names)} file(s) without data.pkl"
    message = str(e)
    if "TorchScript" in message:
        return f"{path}: not a checkpoint of weights: a TorchScript program (torch.jit.save; {size} bytes)"
    if isinstance(e, pickle.UnpicklingError) and "Unsupported global" in message:
        line = next(line for line in message.splitlines() if "Unsupported global" in line)
        name = line.split("GLOBAL", 1)[-1].split(" was not")[0].strip()
        module, _, attr = name.rpartition(".")
        if not (module.startswith("torch") and not _torch_has(module, attr)):
            return (f"{path}: holds objects beyond tensors and plain containers, which the safe loader refuses; if "
                    f"you trust the file (unpickling runs code it names), {TRUST_HINT}. The first such object: {name}")
    # torch's weights-only message opens with advice; the line after "WeightsUnpickler error:" says what failed
    lines = [line.strip() for line in message.split("WeightsUnpickler error:")[-1].splitlines() if line.strip()]
    detail = f"{type(e).__name__}: {lines[0][:160] if lines else ''}"
    if trusted:
        return f"{path}: cannot be unpickled ({size} bytes; {detail})"
    return f"{damaged}; {detail})"


def _torch_has(module: str, attr: str) -> bool:
    """Whether torch defines module.attr (a torch name cut short by truncation is not one); imports nothing new."""
    return hasattr(sys.modules.get(module), attr)


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
    ckpt = read_checkpoint(path, map_location=map_location)
    if not isinstance(ckpt.get("model"), dict) or not isinstance(ckpt.get("config"), dict):
        raise CheckpointReadError(f"{path}: not a training checkpoint (needs 'model' and 'config'; it holds "
                                  f"{', '.join(map(str, list(ckpt)[:6]))})")
    return restore_frozen(ckpt, path, map_location)


TRAINING_STATE = ("optimizer", "scheduler", "epoch", "step")


def resume_checkpoint(run_dir: str | os.PathLike, resume: bool | str | os.PathLike = True) -> dict:
    """The checkpoint a run resumes from: ``resume`` a file (``--resume FILE``), or True for the run folder's
    latest.pt. A latest.pt that cannot be read is reported in one line naming the newest good checkpoint of
    the run folder, to pass as ``--resume FILE``."""
    run_dir = Path(run_dir)
    path = run_dir / "latest.pt" if resume is True else Path(resume)
    if not path.exists():
        raise FileNotFoundError(f"--resume: {path} does not exist")
    try:
        return training_state(path)
    except CheckpointReadError as e:
        if resume is not True:
            raise
        good = newest_good_checkpoint(run_dir, besides=path)
        hint = (f"the newest good checkpoint in {run_dir} is {good[0].name} ({good[1]}): resume from it with "
                f"--resume {good[0]}" if good else f"no other checkpoint in {run_dir} can be resumed from")
        raise CheckpointReadError(f"--resume: {e}; {hint}") from None


def check_resumed_text(run_model: dict, saved_model: dict, init_from: dict | None, source: str) -> None:
    """On resume the run config, not the checkpoint, names a text-model package to import: a saved "pkg:" name
    the run config (model.text or init_from.text_model) does not give is refused unless the toolkit's own."""
    from training.encoders.text import KNOWN_TEXT_PACKAGES

    text = run_model.get("text") or {}
    given = {text.get("name"), text.get("tokenizer"), (init_from or {}).get("text_model")}
    saved = saved_model.get("text") or {}
    for key in ("name", "tokenizer"):
        name = saved.get(key)
        if (isinstance(name, str) and name.startswith("pkg:") and name not in given
                and name[4:] not in KNOWN_TEXT_PACKAGES):
            raise ValueError(f"{source}: its config names the text model {name!r}, which the run config does "
                             f"not; a checkpoint does not choose a module to import: set model.text.{key} to "
                             f"it in the run config if you trust that package")


def training_state(path: str | os.PathLike) -> dict:
    """A training checkpoint that holds a run's whole state (model, optimiser, progress) to resume from."""
    ckpt = load_checkpoint(path)
    missing = [k for k in TRAINING_STATE if k not in ckpt]
    if missing:
        raise CheckpointReadError(f"{path}: a model checkpoint without training state ({', '.join(missing)}): "
                                  f"it cannot be resumed from; use it as init_from or to evaluate")
    return ckpt


def newest_good_checkpoint(run_dir: Path, besides: Path | None = None) -> tuple[Path, str] | None:
    """(the newest checkpoint of ``run_dir`` a run can resume from, "epoch E, step S"), or None."""
    found = [p for p in run_dir.glob("*.pt") if not p.name.startswith(FROZEN_FILE_PREFIX) and p.is_file()
             and (besides is None or p.resolve() != besides.resolve())]
    for candidate in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True):
        try:
            ckpt = training_state(candidate)
        except (CheckpointReadError, OSError):
            continue
        return candidate, f"epoch {ckpt['epoch']}, step {ckpt['step']}"
    return None


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
        frozen = read_checkpoint(sibling, map_location=map_location)
        if sorted(frozen) != ref["keys"] or tensors_digest(frozen) != ref["sha256"]:
            raise ValueError(f"{sibling}: does not hold the frozen weights {path.name} was saved with "
                             f"(names or sha256 differ)")
        ckpt["model"] = {**ckpt["model"], **frozen}
    return ckpt


def model_from_checkpoint(checkpoint: dict | str | os.PathLike, map_location: str | torch.device = "cpu",
                          text_model: str | None = None, source: str | None = None):
    """The CLAP model of a checkpoint (a file, or one already read with load_checkpoint: a paper-size
    checkpoint with optimiser state is GBs, so commands read it once), in eval mode. Pretrained files are not
    read: the architecture comes from the saved config and every weight from the checkpoint (strict: missing
    or extra keys are errors). The config chooses no code or download (its text names are checked, see
    training.encoders.text.names_from_checkpoint; ``text_model``: the command line's --text-model) and its
    sizes must match the state dict's shapes, checked before anything is allocated."""
    from training.encoders.text import names_from_checkpoint
    from training.model import CLAP, CLAPConfig  # the model pulls in transformers: imported when needed

    ckpt = checkpoint if isinstance(checkpoint, dict) else load_checkpoint(checkpoint, map_location)
    source = source or (str(checkpoint) if not isinstance(checkpoint, dict) else "checkpoint")
    saved = ckpt["config"].get("model")
    if not isinstance(saved, dict) or not isinstance(saved.get("text", {}), dict):
        raise CheckpointReadError(f"{source}: its config holds no model config")
    saved = {**saved, "text": names_from_checkpoint(saved.get("text", {}), source, text_model)}
    try:
        config = CLAPConfig.from_dict(copy.deepcopy(saved))
    except (TypeError, KeyError, ValueError, AttributeError) as e:
        raise CheckpointReadError(f"{source}: its model config cannot be read: {type(e).__name__}: {e}") from None
    check_shapes(config, ckpt["model"], source)
    model = CLAP(config, load_pretrained=False)
    model.load_state_dict(ckpt["model"], strict=True)
    return model.to(map_location).eval()


def check_shapes(config, state: dict, source: str) -> None:
    """Refuse a model config whose sizes disagree with the state dict's before building it for real: the model
    is built on the meta device (no memory), so a 1.5 KB file asking for a million-word vocabulary costs
    nothing."""
    from training.model import CLAP

    with torch.device("meta"):
        shapes = {k: tuple(v.shape) for k, v in CLAP(copy.deepcopy(config), load_pretrained=False).state_dict().items()}
    bad = [f"{k}: config {shapes[k]} vs weights {tuple(v.shape)}" for k, v in state.items()
           if k in shapes and isinstance(v, torch.Tensor) and tuple(v.shape) != shapes[k]]
    missing, unexpected = sorted(set(shapes) - set(state)), sorted(set(state) - set(shapes))
    if bad or missing or unexpected:
        detail = "; ".join(bad[:4]) or f"missing {missing[:4]}, unexpected {unexpected[:4]}"
        raise CheckpointMismatchError(f"{source}: its model config does not match its weights "
                                      f"({len(bad)} shape(s) differ, {len(missing)} missing, {len(unexpected)} "
                                      f"unexpected): {detail}")


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
