"""Released CLAP checkpoints (msclap 2022 and 2023, LAION-CLAP) as our CLAP model, and one loader for any checkpoint.

`load_released(path, format=None, text_model=None)` reads a released file, tells its format from its keys
(or takes `format`), builds our CLAP with that model's architecture and front-end and loads every weight:

| format | file layout | audio | text (pooling) | projections | front-end |
| --- | --- | --- | --- | --- | --- |
| msclap-2022 | `{'model': {audio_encoder.base.*, caption_encoder.base.*, ...}}` | Cnn14, 5 s | BERT (first token) | CLAP, 1024 | 44.1 kHz, hop 320, 50-14000 Hz |
| msclap-2023 | same, `audio_encoder.base.htsat.*` | HTS-AT, 7 s, stretch | GPT-2 (last token, pad "!") | CLAP, 1024 | 44.1 kHz, hop 320; filterbank of 32 kHz, 50-14000 Hz |
| laion-clap | `{'state_dict': {module.audio_branch.*, module.text_branch.*, ...}}` | HTS-AT (tiny/base/large), 10 s, stretch | RoBERTa (pooler) | MLP, 512 | 48 kHz, hop 480, 50-14000 Hz |
| wt5k | our training checkpoint (`model` + `config`) | as saved | | | |

Architecture sizes (channels, HTS-AT width, depths, heads, window, projection size, STFT window) are read from
the tensors' shapes. Released files hold weights only: the text side's tokenizer and architecture come from
`text_model` (a local folder or a hub name; default the published one: bert-base-uncased, gpt2, roberta-base)
and must agree with the file's shapes. Tensors that are not weights of the released model's retrieval path
are skipped on purpose, each pattern with its reason in the report (front-end buffers, AudioSet heads,
LAION's MLP transforms and second logit scale, constant buffers of older transformers).

A load must map at least `min_share` of the model's keys and of the file's non-skipped keys (default 1.0:
every encoder and projection weight, nothing left over); otherwise CheckpointMismatchError names the missing
and unexpected keys. With min_share 1.0 the file's mel filterbank must also equal the configured front-end's.
LAION-CLAP's fused models (4-channel mel input with local crops) and its PANN audio branches are refused
with that reason.
"""
from __future__ import annotations

import copy
import fnmatch
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from training.pretrained import (CheckpointMismatchError, LoadReport, extract_state_dict, listed, log_report,
                                 match_state, read_checkpoint)

log = logging.getLogger(__name__)

FORMATS = ("msclap-2022", "msclap-2023", "laion-clap", "wt5k")
FRONTEND_SKIP = ("*spectrogram_extractor.*", "*logmel_extractor.*")


@dataclass(frozen=True)
class ReleasedFormat:
    name: str
    renames: tuple[tuple[str, str], ...]  # (their key prefix, ours), first match wins
    skip: tuple[tuple[str, str], ...]  # (fnmatch pattern on their key, why it is not loaded)
    refuse: tuple[tuple[str, str], ...]  # (fnmatch pattern, why such a file cannot be loaded)
    text_model: str  # the published text model: tokenizer and architecture when none is given


_OLD_TRANSFORMERS = "constant buffer that older transformers versions saved (recomputed by the model)"
_FRONTEND = "front-end buffer (our front-end is computed from the config; the filterbank is compared instead)"
_AUDIOSET_HEAD = "AudioSet tagging head, not part of the retrieval path"

# msclap's CLAP: audio_encoder.{base, projection}, caption_encoder.{base, projection}, logit_scale
_MSCLAP_RENAMES = (("audio_encoder.projection.", "audio_projection."), ("caption_encoder.base.", "text_encoder.model."),
                   ("caption_encoder.projection.", "text_projection."), ("logit_scale", "logit_scale"))
MSCLAP_2022 = ReleasedFormat(
    "msclap-2022",
    renames=(("audio_encoder.base.", "audio_encoder.cnn14."), *_MSCLAP_RENAMES),
    skip=(*((p, _FRONTEND) for p in FRONTEND_SKIP), ("audio_encoder.base.fc_audioset.*", _AUDIOSET_HEAD),
          ("caption_encoder.base.pooler.*", "BERT's pooler: msclap pools the first token's hidden state"),
          ("*embeddings.position_ids", _OLD_TRANSFORMERS),
          ("*embeddings.token_type_ids", _OLD_TRANSFORMERS)),
    refuse=(), text_model="bert-base-uncased")
MSCLAP_2023 = ReleasedFormat(
    "msclap-2023",
    renames=(("audio_encoder.base.htsat.", "audio_encoder.htsat."), *_MSCLAP_RENAMES),
    skip=(*((p, _FRONTEND) for p in FRONTEND_SKIP),
          ("audio_encoder.base.htsat.tscam_conv.*", _AUDIOSET_HEAD), ("audio_encoder.base.htsat.head.*", _AUDIOSET_HEAD),
          ("caption_encoder.base.h.*.attn.bias", _OLD_TRANSFORMERS),
          ("caption_encoder.base.h.*.attn.masked_bias", _OLD_TRANSFORMERS)),
    refuse=(), text_model="gpt2")
LAION_CLAP = ReleasedFormat(
    "laion-clap",
    renames=(("audio_branch.", "audio_encoder.htsat."), ("text_branch.", "text_encoder.model."),
             ("audio_projection.", "audio_projection."), ("text_projection.", "text_projection."),
             ("logit_scale_a", "logit_scale")),
    skip=(*((p, _FRONTEND) for p in FRONTEND_SKIP),
          ("audio_branch.tscam_conv.*", _AUDIOSET_HEAD), ("audio_branch.head.*", _AUDIOSET_HEAD),
          ("audio_transform.*", "LAION's MLP feature transforms: used only by its optional MLP loss"),
          ("text_transform.*", "LAION's MLP feature transforms: used only by its optional MLP loss"),
          ("logit_scale_t", "LAION's second logit scale: used only by its optional MLP loss; retrieval "
                            "logits use logit_scale_a"),
          ("*embeddings.position_ids", _OLD_TRANSFORMERS),
          ("*embeddings.token_type_ids", _OLD_TRANSFORMERS)),
    refuse=(("*fusion_model*", "a fused LAION-CLAP model: its 4-channel mel input (global + 3 local crops) is "
                               "not produced by this toolkit's front-end; use a non-fused checkpoint"),
            ("*mel_conv*", "a fused LAION-CLAP model (mel_conv layers); use a non-fused checkpoint"),
            ("audio_branch.conv_block1.*", "a LAION-CLAP model with a PANN audio branch; only HTS-AT branches "
                                           "are supported")),
    text_model="roberta-base")
RELEASED = {f.name: f for f in (MSCLAP_2022, MSCLAP_2023, LAION_CLAP)}


def checkpoint_state(obj: dict) -> dict[str, torch.Tensor]:
    """The tensors of a released file (under 'model' or 'state_dict'), DataParallel's 'module.' removed."""
    return extract_state_dict(obj, prefixes=("module.",))


def detect_format(obj: dict) -> str:
    """One of FORMATS, from the keys of a loaded checkpoint; ValueError naming a few keys otherwise."""
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict) and isinstance(obj.get("config"), dict):
        return "wt5k"
    keys = list(checkpoint_state(obj))

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("caption_encoder.") and has("audio_encoder.base.htsat."):
        return "msclap-2023"
    if has("caption_encoder.") and has("audio_encoder.base.conv_block1."):
        return "msclap-2022"
    if has("audio_branch.") and has("text_branch."):
        return "laion-clap"
    raise CheckpointMismatchError(
        f"cannot tell the checkpoint's format from its keys (known: {', '.join(FORMATS)}; pass the format "
        f"explicitly if it is one of them). Its first keys: {listed(keys, 8)}")


# --- architecture from the tensors ---------------------------------------------------------------------------
def _htsat_config(state: dict[str, torch.Tensor], p: str) -> dict:
    embed_dim, _, patch, _ = state[f"{p}patch_embed.proj.weight"].shape
    stages = 1 + max(int(m.group(1)) for k in state if (m := re.match(re.escape(p) + r"layers\.(\d+)\.", k)))
    depths, heads = [], []
    for i in range(stages):
        blocks = {int(m.group(1)) for k in state if (m := re.match(re.escape(p) + rf"layers\.{i}\.blocks\.(\d+)\.", k))}
        depths.append(max(blocks) + 1)
        heads.append(int(state[f"{p}layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1]))
    table = state[f"{p}layers.0.blocks.0.attn.relative_position_bias_table"].shape[0]
    window = (math.isqrt(table) + 1) // 2
    mask = state.get(f"{p}layers.0.blocks.1.attn_mask")  # [windows, w*w, w*w] over the first stage's grid
    spec_size = math.isqrt(mask.shape[0]) * window * patch if mask is not None else 256
    hidden = state[f"{p}layers.0.blocks.0.mlp.fc1.weight"].shape[0]
    return {"spec_size": int(spec_size), "patch_size": int(patch), "patch_stride": int(patch),
            "embed_dim": int(embed_dim), "depths": depths, "num_heads": heads, "window_size": int(window),
            "mlp_ratio": hidden / embed_dim, "input_fit": "stretch"}


def _frontend(state: dict[str, torch.Tensor], p: str, **published) -> dict:
    """The published front-end, with the STFT window and mel bins the file's buffers show."""
    fe = dict(published)
    real = state.get(f"{p}spectrogram_extractor.stft.conv_real.weight")
    if real is not None:
        fe["window_size"] = int(real.shape[-1])
    melw = state.get(f"{p}logmel_extractor.melW")
    fe["mel_bins"] = int(melw.shape[1]) if melw is not None else int(state[f"{p}bn0.weight"].shape[0])
    return fe


def released_config(fmt: str, state: dict[str, torch.Tensor], text_model: str | None = None) -> dict:
    """Our CLAPConfig (as a dict) for a released file of format `fmt` (its tensors in `state`)."""
    spec = RELEASED[fmt]
    text = {"name": text_model or spec.text_model, "pretrained": False}
    if fmt == "msclap-2022":
        p = "audio_encoder.base."
        channels = [int(state[f"{p}conv_block{i}.conv1.weight"].shape[0]) for i in range(1, 7)]
        return {
            "audio": {"encoder": "cnn14", "cnn14": {"channels": channels, "clip_seconds": 5.0},
                      "frontend": _frontend(state, p, sample_rate=44100, hop_size=320, fmin=50.0, fmax=14000.0)},
            "text": {**text, "max_length": 100, "pooling": "first"},
            "projection": {"dim": int(state["audio_encoder.projection.linear1.weight"].shape[0]), "kind": "clap"},
        }
    if fmt == "msclap-2023":
        p = "audio_encoder.base.htsat."
        return {
            # msclap's HTS-AT builds its front-end from HTS-AT's AudioSet config (32 kHz, fmax 14 kHz), not
            # from msclap's own (44.1 kHz, fmax 8 kHz), while reading audio at 44.1 kHz
            "audio": {"encoder": "htsat", "htsat": {**_htsat_config(state, p), "clip_seconds": 7.0},
                      "frontend": _frontend(state, p, sample_rate=44100, hop_size=320, fmin=50.0, fmax=14000.0,
                                            mel_sample_rate=32000)},
            "text": {**text, "max_length": 77, "pooling": "last", "pad_token": "!"},
            "projection": {"dim": int(state["audio_encoder.projection.linear1.weight"].shape[0]), "kind": "clap"},
        }
    p = "audio_branch."
    return {
        "audio": {"encoder": "htsat", "htsat": {**_htsat_config(state, p), "clip_seconds": 10.0},
                  "frontend": _frontend(state, p, sample_rate=48000, hop_size=480, fmin=50.0, fmax=14000.0)},
        "text": {**text, "max_length": 77, "pooling": "pooler"},
        "projection": {"dim": int(state["audio_projection.0.weight"].shape[0]), "kind": "mlp"},
    }


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _rename(spec: ReleasedFormat, state: dict[str, torch.Tensor]
            ) -> tuple[dict, dict[str, str], dict[str, list[str]], list[str]]:
    """(our key -> tensor, our key -> theirs, {reason: their keys skipped}, their keys no rule covers)."""
    mapped, origin, skipped, unmapped = {}, {}, {}, []
    for k, v in state.items():
        why = next((w for pat, w in spec.skip if fnmatch.fnmatchcase(k, pat)), None)
        if why is not None:
            skipped.setdefault(why, []).append(k)
            continue
        ours = next((new + k[len(old):] for old, new in spec.renames if k.startswith(old)), None)
        if ours is None:
            unmapped.append(k)
        else:
            mapped[ours], origin[ours] = v, k
    return mapped, origin, skipped, unmapped


def _frontend_check(model, state: dict[str, torch.Tensor], prefix: str) -> tuple[list[str], list[str]]:
    """(mismatches, notes) of the file's mel filterbank against the model's."""
    melw = state.get(f"{prefix}logmel_extractor.melW")
    if melw is None:
        return [], ["the file holds no mel filterbank: the front-end is the published one, unchecked"]
    ours = model.frontend.mel_fb
    if melw.shape == ours.shape and torch.allclose(melw.float(), ours, atol=1e-6, rtol=1e-4):
        return [], ["the file's mel filterbank equals this front-end's"]
    diff = (f"max difference {(melw.float() - ours).abs().max():.3g}" if melw.shape == ours.shape
            else f"shape {tuple(melw.shape)} vs {tuple(ours.shape)}")
    return [f"logmel_extractor.melW differs from the configured front-end's ({diff})"], []


def load_released(source: str | os.PathLike | dict, format: str | None = None, text_model: str | None = None,
                  min_share: float = 1.0, overrides: dict | None = None, trusted: bool = False,
                  name: str | None = None):
    """(our CLAP in eval mode, LoadReport) from a released checkpoint file (or its already-loaded dict).

    `overrides`: CLAPConfig keys set on top of the released model's (e.g. {"audio": {"freeze": True}});
    `min_share`: the share of model and file keys that must map (see the module docstring).
    """
    from training.model import CLAP, CLAPConfig  # pulls in transformers: imported when needed

    name = name or ("checkpoint" if isinstance(source, dict) else str(source))
    obj = source if isinstance(source, dict) else read_checkpoint(source, trusted)
    fmt = format or detect_format(obj)
    if fmt == "wt5k" or fmt not in RELEASED:
        raise ValueError(f"load_released: format must be one of {sorted(RELEASED)}, got {fmt!r}")
    if not 0.0 < min_share <= 1.0:
        raise ValueError(f"min_share must be in (0, 1], got {min_share}")
    spec = RELEASED[fmt]
    state = checkpoint_state(obj)
    for pattern, why in spec.refuse:
        hits = [k for k in state if fnmatch.fnmatchcase(k, pattern)]
        if hits:
            raise CheckpointMismatchError(f"{name}: cannot load {why} (keys such as {listed(hits, 4)})")
    try:
        config_dict = _merge(released_config(fmt, state, text_model), overrides or {})
    except (KeyError, ValueError) as e:  # a tensor the architecture is read from is absent
        raise CheckpointMismatchError(f"{name}: not a {fmt} checkpoint: no tensor {e}; its first keys: "
                                      f"{listed(list(state), 8)}") from None
    try:
        model = CLAP(CLAPConfig.from_dict(config_dict), load_pretrained=False)
    except OSError as e:  # transformers cannot find the tokenizer / config (offline, not cached, a typo)
        raise ValueError(f"{name}: the text model {config_dict['text']['name']!r} cannot be read; released files "
                         f"hold no tokenizer: pass --text-model (init_from.text_model) a local folder or a hub name "
                         f"in the Hugging Face cache. Detail: {e}") from None
    mapped, origin, skipped, unmapped = _rename(spec, state)
    usable, report = match_state(model, mapped, f"{fmt} {name}")
    # missing: our key names; unexpected and skipped: the file's
    report.unexpected = sorted(unmapped + [origin[k] for k in report.unexpected])
    report.skipped = sorted(k for keys in skipped.values() for k in keys)
    report.notes = [f"skipped {len(keys)} key(s) such as {keys[0]}: {why}" for why, keys in skipped.items()]
    n_model = len(model.state_dict())
    n_file = len(usable) + len(report.unexpected)
    report.shares = {"model keys loaded": len(usable) / n_model, "file keys mapped": len(usable) / max(n_file, 1)}
    prefix = "audio_encoder.base." if fmt == "msclap-2022" else (
        "audio_encoder.base.htsat." if fmt == "msclap-2023" else "audio_branch.")
    report.frontend_mismatch, notes = _frontend_check(model, state, prefix)
    report.notes += notes
    share = min(report.shares.values())
    if share < min_share or (min_share >= 1.0 and report.frontend_mismatch):
        raise CheckpointMismatchError(
            f"{name} ({fmt}): mapped {share:.1%} of the keys, {min_share:.0%} required (a partial load needs "
            f"min_share < 1); missing {listed(report.missing)}; unexpected {listed(report.unexpected)}"
            + (f"; front-end: {report.frontend_mismatch}" if report.frontend_mismatch else ""))
    model.load_state_dict(usable, strict=False)
    scale = math.exp(float(model.logit_scale.detach()))
    if scale > model.config.logit_scale_max:  # keep the released similarity scale rather than clamp it
        report.notes.append(f"logit_scale_max raised from {model.config.logit_scale_max} to the released {scale:.4g}")
        model.config.logit_scale_max = scale
    report.notes.append(f"format {fmt}; text tokenizer and architecture from {config_dict['text']['name']!r}")
    log_report(report)
    model.load_reports = {"released": report.to_dict()}
    return model.eval(), report


def load_any_checkpoint(path: str | os.PathLike, format: str | None = None, text_model: str | None = None,
                        min_share: float = 1.0, map_location: str = "cpu", trusted: bool = False):
    """(CLAP in eval mode, the run config dict or {}) from our training checkpoint or a released one; the
    file is read once. `format`: one of FORMATS (default: told from the keys)."""
    from training.checkpoint import model_from_checkpoint, restore_frozen

    path = Path(path)
    obj = read_checkpoint(path, trusted)
    fmt = format or detect_format(obj)
    if fmt not in FORMATS:
        raise ValueError(f"checkpoint format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "wt5k":
        obj = restore_frozen(obj, path, map_location)  # a latest.pt keeps frozen encoders in a sibling file
        return model_from_checkpoint(obj, map_location, text_model, str(path)), obj.get("config") or {}
    model, _ = load_released(obj, fmt, text_model, min_share, trusted=trusted, name=str(path))
    return model.to(map_location), {"name": fmt}


class ReleasedStart:
    """A run config's `init_from` (training/config.py): the released file is read once, its model config
    is known before the model is built (the data side needs its sample rate and clip length)."""

    def __init__(self, init_from: dict, overrides: dict):
        self.path = str(init_from["checkpoint"])
        self.text_model = init_from.get("text_model")
        self.min_share = float(init_from.get("min_share", 1.0))
        self.overrides = overrides
        self.obj = read_checkpoint(self.path, bool(init_from.get("trusted", False)))
        self.format = init_from.get("format") or detect_format(self.obj)
        if self.format not in RELEASED:
            raise ValueError(f"init_from: {self.path} is a {self.format!r} checkpoint; init_from takes released "
                             f"ones ({', '.join(RELEASED)}); continue our own runs with --resume")

    def config(self):
        from training.model import CLAPConfig

        state = checkpoint_state(self.obj)
        return CLAPConfig.from_dict(_merge(released_config(self.format, state, self.text_model), self.overrides))

    def build(self):
        """The loaded model, in training mode."""
        model, _ = load_released(self.obj, self.format, self.text_model, self.min_share, self.overrides,
                                 name=self.path)
        del self.obj  # the file's tensors now live in the model
        return model.train()
