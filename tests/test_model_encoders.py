"""Audio encoders: tiny Cnn14/HTSAT forward+backward, HTS-AT's folding and windows, real-size layouts."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from training.encoders.cnn14 import Cnn14, Cnn14Config
from training.encoders.htsat import HTSAT, HTSATConfig
from training.model import AudioConfig, AudioEncoder, count_parameters

from tests.model_helpers import TINY_CNN14, TINY_HTSAT


def tiny_cnn14(**kw) -> Cnn14:
    return Cnn14(Cnn14Config.from_dict({**TINY_CNN14, **kw}), mel_bins=32)


def tiny_htsat(**kw) -> HTSAT:
    return HTSAT(HTSATConfig.from_dict({**TINY_HTSAT, **kw}), mel_bins=32)


def test_tiny_cnn14_forward_backward():
    torch.manual_seed(0)
    enc = tiny_cnn14()
    x = torch.randn(3, 100, 32, requires_grad=True)
    out = enc(x)
    assert out.shape == (3, 32)
    out.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in enc.parameters())
    with pytest.raises(ValueError, match="32 frames"):
        enc(torch.randn(1, 20, 32))
    with pytest.raises(ValueError, match="mel_bins >= 32"):
        Cnn14(Cnn14Config(), mel_bins=16)


def test_tiny_htsat_forward_backward_and_shapes():
    torch.manual_seed(0)
    enc = tiny_htsat()
    assert enc.target_frames == 128 and enc.freq_ratio == 2 and enc.embedding_dim == 16
    x = torch.randn(2, 128, 32, requires_grad=True)
    out = enc(x)
    assert out.shape == (2, 16)
    out.square().sum().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in enc.named_parameters()), "every parameter takes part"
    # Swin's rules: odd blocks shift (mask per window), a map no larger than the window is one unshifted window
    b0, b1 = enc.layers[0].blocks[0], enc.layers[1].blocks[1]
    assert enc.layers[0].blocks[0].attn_mask is None
    assert b0.window_size == 4 and enc.layers[1].blocks[0].window_size == 4  # 16x16 then 8x8 tokens
    assert b1.shift_size == 2 and b1.attn_mask.shape == (4, 16, 16)


def test_htsat_fold_is_hts_at_reshape_wav2img():
    enc = tiny_htsat()
    T, F, r = 128, 32, 2
    x = torch.arange(T * F, dtype=torch.float32).view(1, 1, T, F)
    img = enc.fold(x)
    assert img.shape == (1, 1, 64, 64)
    # HTS-AT: time cut into r chunks of T/r frames, chunk k occupying mel rows [k*F, (k+1)*F)
    for k in range(r):
        for f in (0, 7, 31):
            for t in (0, 5, 63):
                assert img[0, 0, k * F + f, t] == x[0, 0, k * (T // r) + t, f]


def test_htsat_long_and_short_inputs():
    torch.manual_seed(0)
    enc = tiny_htsat().eval()
    long = torch.randn(1, 300, 32)
    with torch.no_grad():
        a, b = enc(long), enc(long)
        assert torch.equal(a, b), "evaluation windows are deterministic"
        # three windows (ceil(300/128)) at evenly spaced starts 0, 86, 172 (the last ends at frame 300)
        bn = enc.bn0(long.unsqueeze(1).transpose(1, 3)).transpose(1, 3)
        wins = [enc.forward_features(enc.fold(bn[:, :, s:s + 128])) for s in (0, 86, 172)]
        torch.testing.assert_close(a, torch.stack(wins).mean(0))
        short = torch.randn(1, 50, 32)
        tiled = torch.cat([short, short, short], dim=1)[:, :128]
        torch.testing.assert_close(enc(short), enc(tiled))
    enc.train()
    torch.manual_seed(1)
    first = enc(long)
    assert first.shape == (1, 16)


def test_audio_encoder_combination_concatenates():
    torch.manual_seed(0)
    cfg = AudioConfig.from_dict({"encoder": "cnn14+htsat", "frontend": {"mel_bins": 32},
                                 "cnn14": TINY_CNN14, "htsat": TINY_HTSAT})
    enc = AudioEncoder(cfg).eval()
    x = torch.randn(2, 128, 32)
    with torch.no_grad():
        both = enc(x)
        assert both.shape == (2, 32 + 16)
        torch.testing.assert_close(both[:, :32], enc.cnn14(x))
        torch.testing.assert_close(both[:, 32:], enc.htsat(x))


def test_clip_samples_in_frames():
    cfg = AudioConfig(encoder="cnn14+htsat")
    per = cfg.encoder_clip_samples()
    assert per["cnn14"] == 20 * 44100
    assert cfg.frontend.num_frames(per["htsat"]) == 1024  # 1023 hops: 7.43 s at 44.1 kHz
    assert abs(per["htsat"] / 44100 - 7.42) < 0.01
    assert cfg.clip_samples == 20 * 44100
    assert AudioConfig(encoder="htsat").clip_samples == per["htsat"]
    with pytest.raises(ValueError, match="audio.encoder"):
        AudioConfig(encoder="resnet")


def test_real_size_layouts_and_parameter_counts():
    cnn = Cnn14(Cnn14Config(classes_num=527), mel_bins=64)
    # PANNs reports 80.8M parameters for Cnn14 (with its AudioSet head)
    assert count_parameters(cnn) == 80_753_615
    with torch.device("meta"):  # counting only: skip allocating and initialising
        assert count_parameters(Cnn14(Cnn14Config(), mel_bins=64)) == 80_753_615 - (2048 * 527 + 527)
        htsat = HTSAT(HTSATConfig(classes_num=527), mel_bins=64)
        trunk = HTSAT(HTSATConfig(), mel_bins=64)
    assert 30e6 < count_parameters(htsat) < 31e6
    assert 27e6 < count_parameters(trunk) < 28e6  # Swin-tiny
    assert trunk.target_frames == 1024 and trunk.embedding_dim == 768
    cnn.eval()
    with torch.no_grad():
        out = cnn(torch.randn(2, 139, 64))  # 1 s at 44.1 kHz, hop 320
    assert out.shape == (2, 2048)


def test_window_attention_matches_swin_formula_with_shift_mask():
    """softmax(q k^T * scale + relative bias + shift mask) v, as HTS-AT/Swin write it, for a batch of 2."""
    torch.manual_seed(0)
    enc = tiny_htsat()
    blk = enc.layers[1].blocks[1]  # shifted block: 8x8 tokens, 4x4 windows -> 4 windows per example
    attn = blk.attn.eval()
    nn.init.normal_(attn.relative_position_bias_table, std=1.0)
    B, nW, N, C, h = 2, 4, 16, 16, 2
    x = torch.randn(B * nW, N, C)
    mask = blk.attn_mask
    q, k, v = attn.qkv(x).reshape(B * nW, N, 3, h, C // h).permute(2, 0, 3, 1, 4)
    logits = (q * (C // h) ** -0.5) @ k.transpose(-2, -1)
    bias = attn.relative_position_bias_table[attn.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
    logits = (logits + bias).view(B, nW, h, N, N) + mask.unsqueeze(1).unsqueeze(0)
    ref = (logits.view(-1, h, N, N).softmax(-1) @ v).transpose(1, 2).reshape(B * nW, N, C)
    with torch.no_grad():
        torch.testing.assert_close(attn(x, mask), attn.proj(ref))


def test_cnn14_dropout_rates_are_configurable():
    torch.manual_seed(0)
    x = torch.randn(4, 64, 32)
    noisy = tiny_cnn14().train()
    assert not torch.equal(noisy(x), noisy(x))  # PANNs' default dropout
    quiet = tiny_cnn14(conv_dropout=0.0, embedding_dropout=0.0).train()
    assert torch.equal(quiet(x), quiet(x))


def _field_names(cfg) -> set[str]:
    """Every field of a config dataclass, nested ones as dotted paths."""
    from dataclasses import fields, is_dataclass

    out = set()
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        out.add(f.name)
        if is_dataclass(value):
            out |= {f"{f.name}.{n}" for n in _field_names(value)}
    return out


def _dict_keys(d: dict) -> set[str]:
    return {k for k in d} | {f"{k}.{n}" for k, v in d.items() if isinstance(v, dict) and k != "model_config"
                             for n in _dict_keys(v)}


def test_config_dicts_follow_the_dataclass_fields():
    """to_dict writes every field of every nested config (none silently dropped) and from_dict reads it back."""
    from tests.model_helpers import tiny_config
    from training.model import CLAPConfig

    cfg = tiny_config("cnn14+htsat", htsat_checkpoint="h.ckpt", allow_shape_mismatch=["fc1.*"])
    d = cfg.to_dict()
    assert _dict_keys(d) == _field_names(cfg)
    assert CLAPConfig.from_dict(d) == cfg
    assert d["audio"]["htsat"]["depths"] == [1, 2] and cfg.audio.htsat.depths == (1, 2)  # JSON lists, tuples
    with pytest.raises(ValueError, match=r"HTSATConfig: unknown keys \['dpeths'\]"):
        CLAPConfig.from_dict({"audio": {"htsat": {"dpeths": [2]}}})


def test_an_encoder_registered_in_the_table_builds_and_round_trips(monkeypatch):
    """A made-up encoder: its config dataclass, its module, one ENCODERS row and an AudioConfig field; nothing
    else in the model changes (training/encoders/README.md, "Adding an encoder")."""
    from dataclasses import field, make_dataclass

    from training.config_dicts import DictConfig
    from training.model import ENCODERS, AudioEncoderEntry, pretrained_checkpoints

    ToyConfig = make_dataclass("ToyConfig", [("width", int, 3), ("scales", tuple[float, ...], (1.0,))],
                               bases=(DictConfig,),
                               namespace={"clip_samples": lambda self, fe: fe.sample_rate // 2})

    class Toy(nn.Module):
        def __init__(self, cfg, mel_bins: int):
            super().__init__()
            self.embedding_dim = cfg.width
            self.proj = nn.Linear(mel_bins, cfg.width)

        def forward(self, logmel: torch.Tensor) -> torch.Tensor:
            return self.proj(logmel).mean(dim=1)

    ToyAudio = make_dataclass("ToyAudioConfig", [("toy", ToyConfig, field(default_factory=ToyConfig)),
                                                  ("toy_checkpoint", "str | None", None)], bases=(AudioConfig,))
    monkeypatch.setitem(ENCODERS, "toy", AudioEncoderEntry(ToyConfig, Toy, "toy_checkpoint"))
    cfg = ToyAudio.from_dict({"encoder": "cnn14+toy", "frontend": {"mel_bins": 32}, "cnn14": TINY_CNN14,
                              "toy": {"width": 5, "scales": [2.0, 3.0]}, "toy_checkpoint": "toy.pt"})
    assert cfg.toy.scales == (2.0, 3.0) and cfg.clip_samples == 44100  # the longer: Cnn14's 1 s, Toy's 0.5 s
    d = cfg.to_dict()
    assert d["toy"] == {"width": 5, "scales": [2.0, 3.0]}  # a sub-config the old to_dict did not know is kept
    assert ToyAudio.from_dict(d) == cfg
    assert pretrained_checkpoints(cfg) == {"toy_checkpoint": "toy.pt"}
    enc = AudioEncoder(cfg).eval()
    assert enc.htsat is None and enc.output_dim == 32 + 5
    x = torch.randn(2, 50, 32)
    with torch.no_grad():
        torch.testing.assert_close(enc(x)[:, 32:], enc.toy(x))
    with pytest.raises(ValueError, match="audio.encoder must be one of"):
        AudioConfig(encoder="cnn14+cnn14")
