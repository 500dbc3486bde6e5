"""The CLAP model: audio encoder (Cnn14 | HTSAT | Cnn14+HTSAT) and text encoder, each projected to a shared space.

Waveforms go in at the front-end's sample rate (44.1 kHz by default); `config.audio.clip_samples` is the
fixed length the data side should crop/pad to (Cnn14: the paper's 20 s; HTSAT: 1024 frames = 7.43 s at hop
320; both: the longer, HTSAT then windows inside it). Embeddings are L2-normalised for retrieval; the
similarity scale exp(logit_scale) starts at 1/0.07 (Microsoft CLAP) and is clamped at 100.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from training.encoders.cnn14 import Cnn14, Cnn14Config
from training.encoders.htsat import HTSAT, HTSATConfig
from training.encoders.text import TextConfig, TextEncoder
from training.frontend import FrontendConfig, LogMel, checked_keys

log = logging.getLogger(__name__)

AUDIO_ENCODERS = ("cnn14", "htsat", "cnn14+htsat")


@dataclass
class AudioConfig:
    encoder: str = "cnn14"  # "cnn14" | "htsat" | "cnn14+htsat" (embeddings concatenated: 2048 + 768)
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
        if self.encoder not in AUDIO_ENCODERS:
            raise ValueError(f"audio.encoder must be one of {AUDIO_ENCODERS}, got {self.encoder!r}")

    @property
    def parts(self) -> list[str]:
        return self.encoder.split("+")

    def encoder_clip_samples(self) -> dict[str, int]:
        """Samples each encoder wants per example: Cnn14 its clip_seconds, HTSAT exactly its window of frames."""
        fe = self.frontend
        out = {}
        if "cnn14" in self.parts:
            out["cnn14"] = int(round(self.cnn14.clip_seconds * fe.sample_rate))
        if "htsat" in self.parts:
            out["htsat"] = (int(round(self.htsat.clip_seconds * fe.sample_rate)) if self.htsat.clip_seconds
                            else fe.samples_for_frames(self.htsat.frames(fe.mel_bins)))
        return out

    @property
    def clip_samples(self) -> int:
        """Fixed waveform length to feed the model (the longest any of its encoders wants)."""
        return max(self.encoder_clip_samples().values())

    @property
    def clip_seconds(self) -> float:
        return self.clip_samples / self.frontend.sample_rate

    @classmethod
    def from_dict(cls, d: dict) -> "AudioConfig":
        d = checked_keys(cls, d)
        d["frontend"] = FrontendConfig.from_dict(d.get("frontend", {}))
        d["cnn14"] = Cnn14Config.from_dict(d.get("cnn14", {}))
        d["htsat"] = HTSATConfig.from_dict(d.get("htsat", {}))
        return cls(**d)

    def to_dict(self) -> dict:
        return {
            "encoder": self.encoder, "frontend": self.frontend.to_dict(), "cnn14": self.cnn14.to_dict(),
            "htsat": self.htsat.to_dict(), "cnn14_checkpoint": self.cnn14_checkpoint,
            "htsat_checkpoint": self.htsat_checkpoint, "allow_shape_mismatch": list(self.allow_shape_mismatch),
            "trust_checkpoints": self.trust_checkpoints, "strict_checkpoints": self.strict_checkpoints,
            "freeze": self.freeze,
        }


PROJECTION_KINDS = ("clap", "mlp")


@dataclass
class ProjectionConfig:
    dim: int = 1024
    dropout: float = 0.5  # Microsoft CLAP's Projection default (kind "clap" only)
    # "clap": Microsoft CLAP's Projection; "mlp": LAION-CLAP's Linear(d_in, dim) -> ReLU -> Linear(dim, dim)
    kind: str = "clap"

    def __post_init__(self) -> None:
        if self.kind not in PROJECTION_KINDS:
            raise ValueError(f"projection.kind must be one of {PROJECTION_KINDS}, got {self.kind!r}")

    @classmethod
    def from_dict(cls, d: dict) -> "ProjectionConfig":
        return cls(**checked_keys(cls, d))

    def to_dict(self) -> dict:
        return {"dim": self.dim, "dropout": self.dropout, "kind": self.kind}


@dataclass
class CLAPConfig:
    audio: AudioConfig = field(default_factory=AudioConfig)
    text: TextConfig = field(default_factory=TextConfig)
    projection: ProjectionConfig = field(default_factory=ProjectionConfig)
    logit_scale_init: float = math.log(1 / 0.07)
    logit_scale_max: float = 100.0  # clamp on exp(logit_scale)

    @classmethod
    def from_dict(cls, d: dict) -> "CLAPConfig":
        d = checked_keys(cls, d)
        d["audio"] = AudioConfig.from_dict(d.get("audio", {}))
        d["text"] = TextConfig.from_dict(d.get("text", {}))
        d["projection"] = ProjectionConfig.from_dict(d.get("projection", {}))
        return cls(**d)

    def to_dict(self) -> dict:
        return {
            "audio": self.audio.to_dict(), "text": self.text.to_dict(), "projection": self.projection.to_dict(),
            "logit_scale_init": self.logit_scale_init, "logit_scale_max": self.logit_scale_max,
        }


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
    """log-mel -> concatenated embeddings of the configured encoders (Cnn14 first)."""

    def __init__(self, cfg: AudioConfig):
        super().__init__()
        mel = cfg.frontend.mel_bins
        self.cnn14 = Cnn14(cfg.cnn14, mel) if "cnn14" in cfg.parts else None
        self.htsat = HTSAT(cfg.htsat, mel) if "htsat" in cfg.parts else None
        self.output_dim = sum(m.embedding_dim for m in (self.cnn14, self.htsat) if m is not None)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(logmel) for m in (self.cnn14, self.htsat) if m is not None], dim=-1)


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
