"""HTS-AT (Chen et al. 2022): a Swin Transformer over a log-mel "image", with HTS-AT's module names.

The spectrogram [frames=spec_size*freq_ratio, mel_bins=spec_size/freq_ratio] (1024 x 64 for the published
Swin-tiny) is folded into a spec_size x spec_size image: the time axis is cut into freq_ratio chunks stacked
along frequency. At hop 320 and 44.1 kHz 1024 frames are 7.43 s (HTS-AT itself ran at 32 kHz: 10 s).
`input_fit` chooses how other lengths are fitted to that window:
- "repeat" (ours, the default): longer inputs take a random 1024-frame window in training and the mean
  embedding of evenly spaced windows covering the clip in eval (deterministic); shorter inputs are
  repeat-padded in frames.
- "stretch" (the published HTS-AT, msclap 2023 and LAION-CLAP code): shorter inputs are stretched to the
  window with bicubic interpolation (align_corners=True; this changes the tempo of the features); longer
  ones take a random window in training and, in eval, the mean embedding of 689-frame crops every 344 frames
  (HTS-AT's hard-coded values), each stretched to the window. Needed to reproduce the released models, which
  see 1001 frames (LAION, 10 s at 48 kHz / hop 480) or 965 (msclap 2023, 7 s at 44.1 kHz / hop 320).
The embedding is HTS-AT's `latent_output`: the mean over tokens after the final `norm` (768-d for Swin-tiny).
Module and buffer names follow HTS-AT so its AudioSet checkpoint maps by name; the trunk is written here
(no timm). The token-semantic head (tscam_conv, head) is built only when classes_num > 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.config_dicts import DictConfig
from training.frontend import SpecAugment

INPUT_FITS = ("repeat", "stretch")
# HTS-AT's eval crops of inputs longer than the window ("Change: Hard code here" in its code), input_fit "stretch"
STRETCH_CROP_FRAMES, STRETCH_CROP_HOP = 689, 344


@dataclass
class HTSATConfig(DictConfig):
    spec_size: int = 256
    patch_size: int = 4
    patch_stride: int = 4
    embed_dim: int = 96
    depths: tuple[int, ...] = (2, 2, 6, 2)
    num_heads: tuple[int, ...] = (4, 8, 16, 32)
    window_size: int = 8
    mlp_ratio: float = 4.0
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.1
    classes_num: int = 0  # 527 builds HTS-AT's token-semantic AudioSet head (unused by CLAP)
    spec_augment: bool = False
    input_fit: str = "repeat"  # "repeat" | "stretch" (published): how inputs of other lengths fit the window
    clip_seconds: float | None = None  # training/eval clip length; None: exactly the window of frames

    def __post_init__(self) -> None:
        if self.input_fit not in INPUT_FITS:
            raise ValueError(f"htsat.input_fit must be one of {INPUT_FITS}, got {self.input_fit!r}")

    def clip_samples(self, frontend) -> int:
        """Samples per training example: clip_seconds, else exactly the window of frames."""
        if self.clip_seconds:
            return int(round(self.clip_seconds * frontend.sample_rate))
        return frontend.samples_for_frames(self.frames(frontend.mel_bins))

    def freq_ratio(self, mel_bins: int) -> int:
        if self.spec_size % mel_bins:
            raise ValueError(f"spec_size {self.spec_size} must be a multiple of mel_bins {mel_bins}")
        return self.spec_size // mel_bins

    def frames(self, mel_bins: int) -> int:
        """Frames per window: the time extent folded into one spec_size x spec_size image."""
        return self.spec_size * self.freq_ratio(mel_bins)

    @property
    def num_features(self) -> int:
        return int(self.embed_dim * 2 ** (len(self.depths) - 1))


def window_partition(x: torch.Tensor, ws: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * nW, ws, ws, C]."""
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, C)


def window_reverse(windows: torch.Tensor, ws: int, H: int, W: int) -> torch.Tensor:
    B = windows.shape[0] // (H * W // ws // ws)
    x = windows.view(B, H // ws, W // ws, ws, ws, -1)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


class DropPath(nn.Module):
    """Stochastic depth per sample."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1 - self.p)
        return x * keep / (1 - self.p)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int, attn_drop: float, proj_drop: float):
        super().__init__()
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size), indexing="ij"))
        coords = coords.flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += window_size - 1
        rel[:, :, 1] += window_size - 1
        rel[:, :, 0] *= 2 * window_size - 1
        # Persistent, as in HTS-AT/Swin, so their checkpoints map key for key.
        self.register_buffer("relative_position_index", rel.sum(-1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(N, N, -1)
        bias = bias.permute(2, 0, 1).unsqueeze(0)  # [1, heads, N, N]
        if mask is not None:
            nW = mask.shape[0]
            bias = (bias.unsqueeze(1) + mask.unsqueeze(1).unsqueeze(0)).expand(B_ // nW, -1, -1, -1, -1)
            bias = bias.reshape(B_, self.num_heads, N, N)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype),
                                             dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(B_, N, C)))


class SwinTransformerBlock(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], num_heads: int, window_size: int,
                 shift_size: int, mlp_ratio: float, drop: float, attn_drop: float, drop_path: float):
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= window_size:  # Swin's rule: one window covers the map, no shift
            shift_size, window_size = 0, min(input_resolution)
        self.window_size, self.shift_size = window_size, shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, attn_drop, drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.register_buffer("attn_mask", self._shift_mask() if shift_size > 0 else None)

    def _shift_mask(self) -> torch.Tensor:
        H, W = self.input_resolution
        ws, s = self.window_size, self.shift_size
        img = torch.zeros(1, H, W, 1)
        cnt = 0
        for h in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for w in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                img[:, h, w, :] = cnt
                cnt += 1
        win = window_partition(img, ws).view(-1, ws * ws)
        mask = win.unsqueeze(1) - win.unsqueeze(2)
        return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = self.input_resolution
        B, L, C = x.shape
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        if self.shift_size:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        win = window_partition(x, self.window_size).view(-1, self.window_size ** 2, C)
        win = self.attn(win, self.attn_mask).view(-1, self.window_size, self.window_size, C)
        x = window_reverse(win, self.window_size, H, W)
        if self.shift_size:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = shortcut + self.drop_path(x.reshape(B, H * W, C))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    def __init__(self, input_resolution: tuple[int, int], dim: int):
        super().__init__()
        self.input_resolution = input_resolution
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = self.input_resolution
        B, L, C = x.shape
        x = x.view(B, H, W, C)
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class BasicLayer(nn.Module):
    def __init__(self, dim: int, input_resolution: tuple[int, int], depth: int, num_heads: int, window_size: int,
                 mlp_ratio: float, drop: float, attn_drop: float, drop_path: list[float], downsample: bool):
        super().__init__()
        self.blocks = nn.ModuleList([
            SwinTransformerBlock(dim, input_resolution, num_heads, window_size,
                                 0 if i % 2 == 0 else window_size // 2, mlp_ratio, drop, attn_drop, drop_path[i])
            for i in range(depth)
        ])
        self.downsample = PatchMerging(input_resolution, dim) if downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class PatchEmbed(nn.Module):
    def __init__(self, img_size: int, patch_size: int, patch_stride: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.grid_size = (img_size // patch_stride, img_size // patch_stride)
        pad = (patch_size - patch_stride) // 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_stride, padding=pad)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class HTSAT(nn.Module):
    """log-mel [B, frames, mel_bins] -> embedding [B, embed_dim * 2**(stages-1)]."""

    def __init__(self, cfg: HTSATConfig, mel_bins: int):
        super().__init__()
        if len(cfg.depths) != len(cfg.num_heads):
            raise ValueError("depths and num_heads need one entry per stage")
        self.cfg = cfg
        self.freq_ratio = cfg.freq_ratio(mel_bins)
        self.target_frames = cfg.frames(mel_bins)
        self.embedding_dim = cfg.num_features
        self.spec_augmenter = SpecAugment() if cfg.spec_augment else None
        self.bn0 = nn.BatchNorm2d(mel_bins)
        self.patch_embed = PatchEmbed(cfg.spec_size, cfg.patch_size, cfg.patch_stride, 1, cfg.embed_dim)
        res = self.patch_embed.grid_size
        n_stages = len(cfg.depths)
        if res[0] % 2 ** (n_stages - 1):
            raise ValueError(f"patch grid {res} cannot be halved {n_stages - 1} times")
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        n_blocks = sum(cfg.depths)  # stochastic depth rising linearly from 0 to drop_path_rate
        dpr = [cfg.drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        self.layers = nn.ModuleList()
        for i in range(n_stages):
            r = (res[0] // 2 ** i, res[1] // 2 ** i)
            self.layers.append(BasicLayer(
                int(cfg.embed_dim * 2 ** i), r, cfg.depths[i], cfg.num_heads[i], cfg.window_size, cfg.mlp_ratio,
                cfg.drop_rate, cfg.attn_drop_rate, dpr[sum(cfg.depths[:i]):sum(cfg.depths[:i + 1])],
                downsample=i < n_stages - 1,
            ))
        self.norm = nn.LayerNorm(self.embedding_dim)
        if cfg.classes_num:
            sf = cfg.spec_size // 2 ** (n_stages - 1) // cfg.patch_stride // self.freq_ratio
            self.tscam_conv = nn.Conv2d(self.embedding_dim, cfg.classes_num, kernel_size=(sf, 3), padding=(0, 1))
            self.head = nn.Linear(cfg.classes_num, cfg.classes_num)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.zeros_(m.bias)
            nn.init.ones_(m.weight)

    def fold(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, frames, mel] -> [B, 1, spec_size, spec_size]: HTS-AT's reshape_wav2img."""
        B, C, T, Fq = x.shape
        r = self.freq_ratio
        x = x.permute(0, 1, 3, 2).reshape(B, C, Fq, r, T // r)
        return x.permute(0, 1, 3, 2, 4).reshape(B, C, r * Fq, T // r)

    def forward_features(self, img: torch.Tensor) -> torch.Tensor:
        x = self.pos_drop(self.patch_embed(img))
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).mean(dim=1)  # HTS-AT's latent_output

    def stretch(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 1, T <= window, mel] -> [B, 1, window, mel] by bicubic interpolation, as HTS-AT's reshape_wav2img."""
        if x.shape[2] == self.target_frames:
            return x
        return F.interpolate(x, (self.target_frames, x.shape[3]), mode="bicubic", align_corners=True)

    def _forward_stretch(self, x: torch.Tensor) -> torch.Tensor:
        T, n = x.shape[2], self.target_frames
        if T <= n:
            return self.forward_features(self.fold(self.stretch(x)))
        if self.training:
            start = int(torch.randint(0, T - n, (1,)))
            return self.forward_features(self.fold(x[:, :, start:start + n]))
        crop = min(STRETCH_CROP_FRAMES, n)
        starts = list(range(0, T - crop - 1, STRETCH_CROP_HOP)) or [0]
        return torch.stack([self.forward_features(self.fold(self.stretch(x[:, :, s:s + crop])))
                            for s in starts]).mean(0)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = logmel.unsqueeze(1)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        if self.spec_augmenter is not None and self.training:
            x = self.spec_augmenter(x.squeeze(1)).unsqueeze(1)
        if self.cfg.input_fit == "stretch":
            return self._forward_stretch(x)
        T, n = x.shape[2], self.target_frames
        if T < n:
            x = x.repeat(1, 1, -(-n // T), 1)[:, :, :n]
        if x.shape[2] == n:
            return self.forward_features(self.fold(x))
        if self.training:
            start = int(torch.randint(0, T - n + 1, (1,)))
            return self.forward_features(self.fold(x[:, :, start:start + n]))
        count = -(-T // n)  # evenly spaced windows that together cover every frame
        starts = torch.linspace(0, T - n, count).round().long().tolist()
        return torch.stack([self.forward_features(self.fold(x[:, :, s:s + n])) for s in starts]).mean(0)
