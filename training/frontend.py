"""Waveform -> log-mel spectrogram in torch, matching PANNs/torchlibrosa (what Cnn14 and HTS-AT were trained on).

torchlibrosa computes a centred STFT (reflect padding, periodic Hann window) as |X|^2, projects it onto a
librosa Slaney mel filterbank and takes 10*log10(max(x, amin)) - 10*log10(max(amin, ref)), optionally floored at
max - top_db. The published Cnn14 and HTS-AT use ref=1.0, amin=1e-10, top_db=None. torch.stft gives the same
frames as torchlibrosa's conv1d STFT; the filterbank comes from transformers.audio_utils (librosa's formula).
Deviation: when top_db is set we floor per example; torchlibrosa floors against the maximum of the whole batch,
which makes an example's features depend on its batch-mates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers.audio_utils import mel_filter_bank

from training.config_dicts import DictConfig


@dataclass
class FrontendConfig(DictConfig):
    sample_rate: int = 44100
    window_size: int = 1024  # n_fft = win_length
    hop_size: int = 320
    mel_bins: int = 64
    fmin: float = 50.0
    fmax: float = 8000.0
    ref: float = 1.0
    amin: float = 1e-10
    top_db: float | None = None
    # The rate the mel filterbank is computed for; None: sample_rate. msclap 2023 reads 44.1 kHz audio through
    # a filterbank built for 32 kHz (its HTS-AT takes the front-end settings of HTS-AT's AudioSet config).
    mel_sample_rate: int | None = None

    def num_frames(self, num_samples: int) -> int:
        """Frames of a centred STFT over ``num_samples`` samples."""
        return num_samples // self.hop_size + 1

    def samples_for_frames(self, frames: int) -> int:
        """Fewest samples that give exactly ``frames`` frames."""
        return (frames - 1) * self.hop_size


def slaney_mel_filterbank(cfg: FrontendConfig) -> torch.Tensor:
    """[window_size // 2 + 1, mel_bins] weights, as librosa.filters.mel(htk=False, norm='slaney').T."""
    rate = cfg.mel_sample_rate or cfg.sample_rate
    if not 0 <= cfg.fmin < cfg.fmax <= rate / 2:
        raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={cfg.fmin} fmax={cfg.fmax} sr={rate}")
    weights = mel_filter_bank(
        num_frequency_bins=cfg.window_size // 2 + 1,
        num_mel_filters=cfg.mel_bins,
        min_frequency=cfg.fmin,
        max_frequency=cfg.fmax,
        sampling_rate=rate,
        norm="slaney",
        mel_scale="slaney",
    )
    return torch.from_numpy(weights).float()


class LogMel(nn.Module):
    """waveform [B, T] -> log-mel [B, frames, mel_bins] (dB), frames = T // hop + 1."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        self.cfg = cfg
        # Derived from the config, so kept out of state dicts (non-persistent).
        self.register_buffer("window", torch.hann_window(cfg.window_size, periodic=True), persistent=False)
        self.register_buffer("mel_fb", slaney_mel_filterbank(cfg), persistent=False)

    def power_spectrogram(self, waveform: torch.Tensor) -> torch.Tensor:
        """|STFT|^2 as [B, frames, window_size // 2 + 1]."""
        if waveform.dim() != 2:
            raise ValueError(f"expected a waveform batch [B, T], got shape {tuple(waveform.shape)}")
        if waveform.shape[1] <= self.cfg.window_size // 2:
            raise ValueError(
                f"waveform too short: {waveform.shape[1]} samples; reflect padding needs more than "
                f"{self.cfg.window_size // 2} (window_size // 2)"
            )
        spec = torch.stft(
            waveform.float(), n_fft=self.cfg.window_size, hop_length=self.cfg.hop_size,
            win_length=self.cfg.window_size, window=self.window, center=True, pad_mode="reflect",
            return_complex=True,
        )
        return (spec.real.square() + spec.imag.square()).transpose(1, 2)

    def power_to_db(self, power: torch.Tensor) -> torch.Tensor:
        db = 10.0 * torch.log10(power.clamp(min=self.cfg.amin))
        db = db - 10.0 * math.log10(max(self.cfg.amin, self.cfg.ref))
        if self.cfg.top_db is not None:
            if self.cfg.top_db < 0:
                raise ValueError("top_db must be non-negative")
            peak = db.amax(dim=(1, 2), keepdim=True)
            db = torch.maximum(db, peak - self.cfg.top_db)
        return db

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        # Spectra in float32 even under autocast: fp16 power spectra overflow and lose the dB floor.
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            mel = self.power_spectrogram(waveform) @ self.mel_fb
            return self.power_to_db(mel)


class SpecAugment(nn.Module):
    """torchlibrosa's SpecAugmentation: zero random stripes in time and frequency, training mode only.

    PANNs' Cnn14 and HTS-AT apply it after bn0 (time width 64 x 2 stripes, frequency width 8 x 2 stripes).
    """

    def __init__(self, time_drop_width: int = 64, time_stripes_num: int = 2,
                 freq_drop_width: int = 8, freq_stripes_num: int = 2):
        super().__init__()
        self.time = (time_drop_width, time_stripes_num)
        self.freq = (freq_drop_width, freq_stripes_num)

    @staticmethod
    def _drop(x: torch.Tensor, dim: int, width: int, stripes: int) -> torch.Tensor:
        size = x.shape[dim]
        keep = torch.ones(x.shape[0], size, dtype=torch.bool, device=x.device)
        for b in range(x.shape[0]):
            for _ in range(stripes):
                w = int(torch.randint(0, width, (1,)))
                start = int(torch.randint(0, max(size - w, 0) + 1, (1,)))
                keep[b, start:start + w] = False
        shape = [x.shape[0], 1, 1]
        shape[dim] = size
        return x * keep.view(shape).to(x.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, frames, mel_bins]."""
        if not self.training:
            return x
        x = self._drop(x, 1, *self.time)
        return self._drop(x, 2, *self.freq)
