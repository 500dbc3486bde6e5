"""PANNs Cnn14 (Kong et al. 2020) with the published checkpoint's module names.

Input is the log-mel from training.frontend (the checkpoint's spectrogram_extractor/logmel_extractor buffers are
not modules here; the loader skips them). Output is the 2048-d fc1 embedding that Microsoft's CLAP projects.
`channels` shrinks the network for tests; the default is the published layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.config_dicts import DictConfig
from training.frontend import SpecAugment

PUBLISHED_CHANNELS = (64, 128, 256, 512, 1024, 2048)


@dataclass
class Cnn14Config(DictConfig):
    channels: tuple[int, ...] = PUBLISHED_CHANNELS
    classes_num: int = 0  # 527 builds fc_audioset (AudioSet tagging head); unused by CLAP
    spec_augment: bool = False  # PANNs trains with it; off by default so tiny runs can overfit
    clip_seconds: float = 20.0  # the paper's Cnn14 training crop; the model itself takes any length
    # PANNs' dropout rates; lower them for tiny models, which are too noisy to fit at these rates
    conv_dropout: float = 0.2
    embedding_dropout: float = 0.5

    def clip_samples(self, frontend) -> int:
        """Samples per training example (the model itself takes any length): clip_seconds at the front-end's rate."""
        return int(round(self.clip_seconds * frontend.sample_rate))


def _init_layer(layer: nn.Module) -> None:
    nn.init.xavier_uniform_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def _init_bn(bn: nn.BatchNorm2d) -> None:
    nn.init.zeros_(bn.bias)
    nn.init.ones_(bn.weight)


class ConvBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        for m in (self.conv1, self.conv2):
            _init_layer(m)
        for m in (self.bn1, self.bn2):
            _init_bn(m)

    def forward(self, x: torch.Tensor, pool_size: tuple[int, int] = (2, 2)) -> torch.Tensor:
        x = F.relu_(self.bn1(self.conv1(x)))
        x = F.relu_(self.bn2(self.conv2(x)))
        return F.avg_pool2d(x, kernel_size=pool_size)


class Cnn14(nn.Module):
    """log-mel [B, frames, mel_bins] -> embedding [B, channels[-1]]."""

    def __init__(self, cfg: Cnn14Config, mel_bins: int):
        super().__init__()
        if len(cfg.channels) != 6:
            raise ValueError(f"Cnn14 has 6 conv blocks; got channels={cfg.channels}")
        if mel_bins < 32:
            raise ValueError(f"Cnn14 pools the mel axis 5 times by 2: needs mel_bins >= 32, got {mel_bins}")
        self.cfg = cfg
        self.embedding_dim = cfg.channels[-1]
        self.spec_augmenter = SpecAugment() if cfg.spec_augment else None
        self.bn0 = nn.BatchNorm2d(mel_bins)
        ins = (1,) + tuple(cfg.channels[:-1])
        for i, (cin, cout) in enumerate(zip(ins, cfg.channels), start=1):
            self.add_module(f"conv_block{i}", ConvBlock(cin, cout))
        self.fc1 = nn.Linear(self.embedding_dim, self.embedding_dim)
        self.fc_audioset = nn.Linear(self.embedding_dim, cfg.classes_num) if cfg.classes_num else None
        _init_bn(self.bn0)
        _init_layer(self.fc1)
        if self.fc_audioset is not None:
            _init_layer(self.fc_audioset)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        if logmel.shape[1] < 32:
            raise ValueError(f"Cnn14 needs at least 32 frames (5 poolings by 2), got {logmel.shape[1]}")
        x = logmel.unsqueeze(1)  # [B, 1, T, M]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise each mel bin
        if self.spec_augmenter is not None and self.training:
            x = self.spec_augmenter(x.squeeze(1)).unsqueeze(1)
        for i in range(1, 7):
            x = getattr(self, f"conv_block{i}")(x, pool_size=(2, 2) if i < 6 else (1, 1))
            x = F.dropout(x, p=self.cfg.conv_dropout, training=self.training)
        x = x.mean(dim=3)
        x = x.amax(dim=2) + x.mean(dim=2)
        x = F.dropout(x, p=self.cfg.embedding_dropout, training=self.training)
        x = F.relu_(self.fc1(x))
        return F.dropout(x, p=self.cfg.embedding_dropout, training=self.training)  # PANNs' "embedding" output, as CLAP uses it

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """AudioSet clip-wise probabilities from fc_audioset (needs classes_num > 0)."""
        if self.fc_audioset is None:
            raise RuntimeError("this Cnn14 was built without fc_audioset (classes_num=0)")
        return torch.sigmoid(self.fc_audioset(embedding))
