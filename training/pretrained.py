"""Loaders for published pretrained audio encoders, from local files only.

- PANNs Cnn14 (e.g. Cnn14_mAP=0.431.pth): ``{'model': state_dict}``, keys conv_block1.conv1.weight, bn0.*, fc1.*,
  fc_audioset.*, plus spectrogram_extractor.* / logmel_extractor.* front-end buffers.
- HTS-AT AudioSet (HTSAT_AudioSet_Saved_*.ckpt): Lightning ``{'state_dict': {'sed_model.patch_embed.proj.weight',
  ...}}``.
Prefixes (module., sed_model., model.) are stripped. Every load returns a LoadReport of loaded, missing,
unexpected and deliberately skipped keys (front-end buffers: our front-end is recomputed from the config;
classifier heads the model was built without). A shape mismatch raises CheckpointMismatchError naming every
such key, unless the key matches one of `allow_shape_mismatch` (fnmatch patterns): then it keeps its initial
value and is reported. Hugging Face text models are loaded by training.encoders.text (from_pretrained
refuses size mismatches itself; its missing/unexpected keys land in the same report dict).
"""
from __future__ import annotations

import fnmatch
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

# the one checkpoint reader and its errors live with the training checkpoints; re-exported for the loaders here
from training.checkpoint import CheckpointMismatchError, read_checkpoint  # noqa: F401

log = logging.getLogger(__name__)

FRONTEND_KEYS = ("spectrogram_extractor.*", "logmel_extractor.*")
PREFIXES = ("module.", "sed_model.", "model.")


@dataclass
class LoadReport:
    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, not in the checkpoint: left at init
    unexpected: list[str] = field(default_factory=list)  # in the checkpoint, not in the model: ignored
    skipped: list[str] = field(default_factory=list)  # in the checkpoint, ignored on purpose
    shape_mismatch_allowed: list[str] = field(default_factory=list)  # "key: ckpt (shape) vs model (shape)"
    frontend_mismatch: list[str] = field(default_factory=list)  # front-end buffers of the file unlike ours
    shares: dict[str, float] = field(default_factory=dict)  # released loads: share of model / file keys mapped
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.source}: loaded {len(self.loaded)} tensors"]
        parts += [f"{k} {v:.1%}" for k, v in self.shares.items()]
        for name in ("missing", "unexpected", "skipped", "shape_mismatch_allowed", "frontend_mismatch"):
            keys = getattr(self, name)
            if keys:
                shown = ", ".join(keys[:8]) + (f", ... ({len(keys)} in all)" if len(keys) > 8 else "")
                parts.append(f"{name}: {shown}")
        return "; ".join(parts + self.notes)

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("source", "loaded", "missing", "unexpected", "skipped",
                                                "shape_mismatch_allowed", "frontend_mismatch", "shares", "notes")}


def extract_state_dict(obj: dict, prefixes: Iterable[str] = PREFIXES) -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint (under 'state_dict' or 'model' if present), known prefixes stripped."""
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise CheckpointMismatchError(f"expected a state dict, got {type(obj).__name__}")
    out = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            continue
        stripped = True
        while stripped:
            stripped = False
            for p in prefixes:
                if k.startswith(p):
                    k, stripped = k[len(p):], True
        if k in out:
            raise CheckpointMismatchError(f"two checkpoint tensors map to {k!r} after stripping prefixes {prefixes}")
        out[k] = v
    return out


def listed(keys: list[str], n: int = 12) -> str:
    return "[" + ", ".join(keys[:n]) + (f", ... ({len(keys)} in all)" if len(keys) > n else "") + "]"


def _matches(key: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def load_state_checked(module: nn.Module, state: dict[str, torch.Tensor], source: str,
                       skip: Iterable[str] = (), allow_shape_mismatch: Iterable[str] = (),
                       strict: bool = False, notes: Iterable[str] = ()) -> LoadReport:
    """Copy `state` into `module` by name; refuse silent shape mismatches and loads that match nothing;
    report everything else (`notes` join the report before it is logged)."""
    usable, report = match_state(module, state, source, skip, allow_shape_mismatch)
    report.notes = list(notes)
    if strict and (report.missing or report.unexpected):
        raise CheckpointMismatchError(f"{source}: strict load failed: missing {report.missing}, "
                                      f"unexpected {report.unexpected}")
    module.load_state_dict(usable, strict=False)
    log_report(report)
    return report


def log_report(report: LoadReport) -> None:
    """The summary (a warning when anything is missing, unexpected or mismatched), then every key at DEBUG."""
    warn = report.missing or report.unexpected or report.shape_mismatch_allowed or report.frontend_mismatch
    (log.warning if warn else log.info)(report.summary())
    log.debug("full load report: %s", json.dumps(report.to_dict()))


def match_state(module: nn.Module, state: dict[str, torch.Tensor], source: str, skip: Iterable[str] = (),
                allow_shape_mismatch: Iterable[str] = ()) -> tuple[dict[str, torch.Tensor], LoadReport]:
    """The tensors of `state` that fit `module` by name and shape, and the report (loaded, missing,
    unexpected, skipped); refuses shape mismatches not allowed and a state matching nothing."""
    skip, allow = list(skip), list(allow_shape_mismatch)
    own = module.state_dict()
    report = LoadReport(source)
    usable, bad = {}, []
    for k, v in state.items():
        if k not in own:
            (report.skipped if _matches(k, skip) else report.unexpected).append(k)
        elif own[k].shape != v.shape:
            desc = f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
            (report.shape_mismatch_allowed if _matches(k, allow) else bad).append(desc)
        else:
            usable[k] = v
    if bad:
        raise CheckpointMismatchError(f"{source}: {len(bad)} shape mismatch(es) (pass allow_shape_mismatch "
                                      f"patterns to keep these at init): " + "; ".join(bad))
    report.missing = sorted(k for k in own if k not in state)
    if not usable:
        raise CheckpointMismatchError(
            f"{source}: no tensor of the checkpoint matches the model (a file of another layout?); "
            f"missing {listed(report.missing)}; unexpected {listed(report.unexpected)}")
    report.loaded = sorted(usable)
    return usable, report


def _frontend_note(state: dict[str, torch.Tensor], mel_fb: torch.Tensor | None) -> list[str]:
    """Say whether the checkpoint's mel filterbank is ours (PANNs weights are 32 kHz, fmax 14 kHz)."""
    melw = state.get("logmel_extractor.melW")
    if melw is None or mel_fb is None:
        return []
    if melw.shape == mel_fb.shape and torch.allclose(melw.float(), mel_fb.cpu(), atol=1e-6):
        return ["checkpoint mel filterbank equals this front-end's"]
    return [f"checkpoint mel filterbank {tuple(melw.shape)} differs from this front-end's {tuple(mel_fb.shape)} "
            f"(trained at another sample rate or band; weights still load)"]


def load_cnn14(encoder: nn.Module, path: str | Path, allow_shape_mismatch: Iterable[str] = (),
               strict: bool = False, trusted: bool = False, mel_fb: torch.Tensor | None = None) -> LoadReport:
    """Load a PANNs Cnn14 checkpoint into a training.encoders.cnn14.Cnn14."""
    state = extract_state_dict(read_checkpoint(path, trusted))
    skip = list(FRONTEND_KEYS) + ([] if getattr(encoder, "fc_audioset", None) is not None else ["fc_audioset.*"])
    return load_state_checked(encoder, state, f"Cnn14 {path}", skip, allow_shape_mismatch, strict,
                              notes=_frontend_note(state, mel_fb))


def load_htsat(encoder: nn.Module, path: str | Path, allow_shape_mismatch: Iterable[str] = (),
               strict: bool = False, trusted: bool = False, mel_fb: torch.Tensor | None = None) -> LoadReport:
    """Load an HTS-AT checkpoint (Lightning, sed_model.* keys) into a training.encoders.htsat.HTSAT."""
    state = extract_state_dict(read_checkpoint(path, trusted))
    has_head = hasattr(encoder, "head")
    skip = list(FRONTEND_KEYS) + ([] if has_head else ["tscam_conv.*", "head.*"])
    return load_state_checked(encoder, state, f"HTSAT {path}", skip, allow_shape_mismatch, strict,
                              notes=_frontend_note(state, mel_fb))


def load_audio_checkpoints(model: nn.Module) -> dict[str, dict]:
    """Load what model.config.audio names into a training.model.CLAP; reports by encoder (and the text one)."""
    cfg = model.config.audio
    trusted, strict = cfg.trust_checkpoints, cfg.strict_checkpoints
    mel_fb = model.frontend.mel_fb
    reports: dict[str, dict] = {}
    enc = model.audio_encoder
    if cfg.cnn14_checkpoint:
        if enc.cnn14 is None:
            raise ValueError(f"audio.cnn14_checkpoint is set but audio.encoder is {cfg.encoder!r}")
        reports["cnn14"] = load_cnn14(enc.cnn14, cfg.cnn14_checkpoint, cfg.allow_shape_mismatch,
                                      strict=strict, trusted=trusted, mel_fb=mel_fb).to_dict()
    if cfg.htsat_checkpoint:
        if enc.htsat is None:
            raise ValueError(f"audio.htsat_checkpoint is set but audio.encoder is {cfg.encoder!r}")
        reports["htsat"] = load_htsat(enc.htsat, cfg.htsat_checkpoint, cfg.allow_shape_mismatch,
                                      strict=strict, trusted=trusted, mel_fb=mel_fb).to_dict()
    if model.text_encoder.loading_info is not None:
        reports["text"] = {"source": model.config.text.name, **model.text_encoder.loading_info}
    return reports
