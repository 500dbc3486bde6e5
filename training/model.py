"""The CLAP model: audio encoder (Cnn14 | HTSAT | Cnn14+HTSAT) and text encoder, each projected to a shared space.

Audio encoders are registered in one table, ENCODERS (training/encoders/README.md, "Adding an encoder"); every
config's from_dict/to_dict follows its dataclass fields (training/config_dicts.py).

Waveforms go in at the front-end's sample rate (44.1 kHz by default); `config.audio.clip_samples` is the
fixed length the data side should crop/pad to (Cnn14: the paper's 20 s; HTSAT: 1024 frames = 7.43 s at hop
320; both: the longer, HTSAT then windows inside it). Embeddings are L2-normalised for retrieval; the
similarity scale exp(logit_scale) starts at 1/0.07 (Microsoft CLAP) and is clamped at 100.
"""
from __future__ import annotations

import logging
import math
import typing
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from training.encoders.cnn14 import Cnn14, Cnn14Config
from training.encoders.htsat import HTSAT, HTSATConfig
from training.encoders.text import TextConfig, TextEncoder
from training.config_dicts import DictConfig
from training.frontend import FrontendConfig, LogMel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioEncoderEntry:
    """One audio encoder the model can build: a row of ENCODERS (training/encoders/README.md, "Adding an encoder").

    ``config``: its config dataclass (a DictConfig with ``clip_samples(frontend)``), held by the AudioConfig field
    named like the encoder; ``module``: ``module(config, mel_bins)`` is an nn.Module with ``embedding_dim`` that
    maps log-mel [B, frames, mel_bins] to [B, embedding_dim]; ``checkpoint_field``: the AudioConfig field naming
    its pretrained file (read by training/pretrained.py), or None."""
    config: type
    module: type
    checkpoint_field: str | None = None


# The audio encoders, by the name `audio.encoder` uses; "a+b" concatenates their embeddings in that order.
ENCODERS: dict[str, AudioEncoderEntry] = {
    "cnn14": AudioEncoderEntry(Cnn14Config, Cnn14, "cnn14_checkpoint"),  # PANNs Cnn14, 2048-d
    "htsat": AudioEncoderEntry(HTSATConfig, HTSAT, "htsat_checkpoint"),  # HTS-AT (Swin-tiny), 768-d
}


@dataclass
class AudioConfig(DictConfig):
    encoder: str = "cnn14"  # a name of ENCODERS, or several joined by "+" ("cnn14+htsat": 2048 + 768 concatenated)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    cnn14: Cnn14Config = field(default_factory=Cnn14Config)
    htsat: HTSATConfig = field(default_factory=HTSATConfig)
    cnn14_checkpoint: str | None = None  # PANNs checkpoint (e.g. Cnn14_mAP=0.431.pth), read when the model is built
    htsat_checkpoint: str | None = None  # HTS-AT AudioSet Lightning checkpoint
    allow_shape_mismatch: list[str] = field(default_factory=list)  # fnmatch patterns of keys allowed to differ
    trust_checkpoints: bool = False  # unpickle checkpoints fully (only for files you trust)
    strict_checkpoints: bool = False  # missing or unexpected keys in the files above are errors, not warnings
    freeze: bool = False

    def __post_init__(self) -> None:
        parts = self.encoder.split("+") if isinstance(self.encoder, str) else []
        if not parts or any(p not in ENCODERS for p in parts) or len(set(parts)) != len(parts):
            raise ValueError(f"audio.encoder must be one of {sorted(ENCODERS)} or several of them joined by '+' "
                             f"(e.g. 'cnn14+htsat'), got {self.encoder!r}")

    @property
    def parts(self) -> list[str]:
        return self.encoder.split("+")

    def encoder_clip_samples(self) -> dict[str, int]:
        """Samples each encoder wants per example (Cnn14: its clip_seconds; HTSAT: exactly its window of frames)."""
        return {name: getattr(self, name).clip_samples(self.frontend) for name in self.parts}

    @property
    def clip_samples(self) -> int:
        """Fixed waveform length to feed the model (the longest any of its encoders wants)."""
        return max(self.encoder_clip_samples().values())

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.frontend.sample_rate


def _check_registry() -> None:
    """Every registered encoder has its sub-config field (and checkpoint field) in AudioConfig."""
    hints, names = typing.get_type_hints(AudioConfig), {f.name for f in fields(AudioConfig)}
    for name, entry in ENCODERS.items():
        if hints.get(name) is not entry.config:
            raise TypeError(f"AudioConfig needs a field {name!r} of type {entry.config.__name__} (ENCODERS[{name!r}])")
        if entry.checkpoint_field and entry.checkpoint_field not in names:
            raise TypeError(f"AudioConfig needs a field {entry.checkpoint_field!r} (ENCODERS[{name!r}])")


_check_registry()


def pretrained_checkpoints(cfg: AudioConfig) -> dict[str, str]:
    """{AudioConfig field: path} of the pretrained files the config names (each encoder's checkpoint_field)."""
    return {e.checkpoint_field: getattr(cfg, e.checkpoint_field) for e in ENCODERS.values()
            if e.checkpoint_field and getattr(cfg, e.checkpoint_field)}


PROJECTION_KINDS = ("clap", "mlp")


@dataclass
class ProjectionConfig(DictConfig):
    dim: int = 1024
    dropout: float = 0.5  # Microsoft CLAP's Projection default (kind "clap" only)
    # "clap": Microsoft CLAP's Projection; "mlp": LAION-CLAP's Linear(d_in, dim) -> ReLU -> Linear(dim, dim)
    kind: str = "clap"

    def __post_init__(self) -> None:
        if self.kind not in PROJECTION_KINDS:
            raise ValueError(f"projection.kind must be one of {PROJECTION_KINDS}, got {self.kind!r}")


@dataclass
class CLAPConfig(DictConfig):
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = 100.0  # clamp on exp(logit_scale)


class Projection(nn.Module):
    """Microsoft CLAP's projection head: LayerNorm(h + Dropout(W2 GELU(h))), h = W1 x (same names)."""

    def __init__(self, d_in: int, d_out: int, p: float = 0.5):
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out, bias=False)
        self.linear2 = nn.Linear(d_out, d_out, bias=False)
        self.layer_norm = nn.LayerNorm(d_out)
        self.drop = nn.Dropout(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        return self.layer_norm(h + self.drop(self.linear2(F.gelu(h))))


def make_projection(cfg: ProjectionConfig, d_in: int) -> nn.Module:
    if cfg.kind == "mlp":  # LAION-CLAP's audio_projection / text_projection (same module indices: 0, 2)
        return nn.Sequential(nn.Linear(d_in, cfg.dim), nn.ReLU(), nn.Linear(cfg.dim, cfg.dim))
    return Projection(d_in, cfg.dim, cfg.dropout)


class AudioEncoder(nn.Module):
    """log-mel -> concatenated embeddings of the configured encoders, in the order `audio.encoder` names them.
    Each encoder is the submodule named like it (``audio_encoder.cnn14``: checkpoints map by these names); a
    registered encoder the config does not use is None."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        mel = cfg.frontend.mel_bins
        self.parts = tuple(cfg.parts)
        for name, entry in ENCODERS.items():
            setattr(self, name, entry.module(getattr(cfg, name), mel) if name in self.parts else None)
        self.output_dim = sum(getattr(self, name).embedding_dim for name in self.parts)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, name)(logmel) for name in self.parts], dim=-1)


class CLAP(nn.Module):
    """Contrastive audio-text model.

    `load_pretrained=False` builds the same architecture without reading any pretrained weights (what a
    checkpoint loader wants); the text encoder then needs `config.text.model_config` (filled in when a model
    is built with pretrained text weights, so saved configs rebuild offline) or a locally readable `text.name`.
    """

    def __init__(self, config: CLAPConfig, load_pretrained: bool = True):
        super().__init__()
        self.config = config
        self.frontend = LogMel(config.audio.frontend)
        self.audio_encoder = AudioEncoder(config.audio)
        self.text_encoder = TextEncoder(config.text, load_pretrained=load_pretrained)
        if config.text.model_config is None:
            config.text.model_config = self.text_encoder.architecture_config()
        self.audio_projection = make_projection(config.projection, self.audio_encoder.output_dim)
        self.text_projection = make_projection(config.projection, self.text_encoder.output_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init)))
        self.load_reports: dict = {}
        if load_pretrained:
            from training.pretrained import load_audio_checkpoints

            self.load_reports = load_audio_checkpoints(self)
        self.set_frozen(audio=config.audio.freeze, text=config.text.freeze)

    @property
    def embedding_dim(self) -> int:
        return self.config.projection.dim

    # --- freezing -------------------------------------------------------------------------------------------
    def set_frozen(self, audio: bool, text: bool) -> None:
        """Freeze encoders (not their projections): no gradients, and kept in eval mode (BatchNorm, dropout)."""
        self.config.audio.freeze, self.config.text.freeze = audio, text
        self.audio_encoder.requires_grad_(not audio)
        self.text_encoder.requires_grad_(not text)
        self.train(self.training)

    def train(self, mode: bool = True) -> "CLAP":
        super().train(mode)
        if self.config.audio.freeze:
            self.audio_encoder.eval()
        if self.config.text.freeze:
            self.text_encoder.eval()
        return self

    # --- encoding -------------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Tokenise on the CPU (e.g. in DataLoader workers); the result can be passed wherever texts are."""
        return self.text_encoder.tokenize(texts)

    def project_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        """waveform [B, T] -> projected, unnormalised embeddings [B, D]."""
        if waveform.dim() != 2:
            raise ValueError(f"expected waveform [B, T], got shape {tuple(waveform.shape)}")
        return self.audio_projection(self.audio_encoder(self.frontend(waveform)))

    def project_text(self, texts: list[str] | dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text_projection(self.text_encoder(texts))

    def encode_audio(self, waveform: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.project_audio(waveform), dim=-1)

    def encode_text(self, texts: list[str] | dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.project_text(texts), dim=-1)

    def scale(self) -> torch.Tensor:
        """exp(logit_scale) clamped at logit_scale_max (no gradient beyond the clamp)."""
        return self.logit_scale.clamp(max=math.log(self.config.logit_scale_max)).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Clamp the parameter itself (call after optimiser steps, as CLIP does) so it cannot drift above."""
        self.logit_scale.clamp_(max=math.log(self.config.logit_scale_max))

    def forward(self, waveform: torch.Tensor, texts: list[str] | dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Everything the contrastive loss needs, in one call (the entry point DDP wraps).

        audio_raw/text_raw: projected, unnormalised [B, D]; audio/text: L2-normalised; logit_scale: clamped
        exp(logit_scale), a scalar.
        """
        audio_raw = self.project_audio(waveform)
        text_raw = self.project_text(texts)
        return {
            "audio_raw": audio_raw, "text_raw": text_raw,
            "audio": F.normalize(audio_raw, dim=-1), "text": F.normalize(text_raw, dim=-1),
            "logit_scale": self.scale(),
        }


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
