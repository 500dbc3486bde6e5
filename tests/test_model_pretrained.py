"""Pretrained loaders on state dicts laid out like the published PANNs Cnn14 and HTS-AT checkpoints."""
from __future__ import annotations

import pytest
import torch

from training.encoders.cnn14 import Cnn14, Cnn14Config
from training.encoders.htsat import HTSAT, HTSATConfig
from training.frontend import FrontendConfig, slaney_mel_filterbank
from training.model import CLAP
from training.pretrained import CheckpointMismatchError, extract_state_dict, load_cnn14, load_htsat

from tests.model_helpers import TINY_CNN14, TINY_HTSAT, tiny_config

# Key names as they appear in the published checkpoints (Cnn14_mAP=0.431.pth; HTSAT_AudioSet_Saved_1.ckpt)
PANNS_KEYS = ["bn0.weight", "bn0.running_var", "conv_block1.conv1.weight", "conv_block1.bn1.running_mean",
              "conv_block1.bn2.num_batches_tracked", "conv_block6.conv2.weight", "fc1.weight", "fc1.bias",
              "fc_audioset.weight", "fc_audioset.bias"]
HTSAT_KEYS = ["bn0.weight", "patch_embed.proj.weight", "patch_embed.norm.bias",
              "layers.0.blocks.0.norm1.weight", "layers.0.blocks.0.attn.relative_position_bias_table",
              "layers.0.blocks.0.attn.relative_position_index", "layers.0.blocks.0.attn.qkv.weight",
              "layers.0.blocks.0.attn.proj.bias", "layers.0.blocks.0.mlp.fc1.weight", "layers.0.blocks.1.attn_mask",
              "layers.0.downsample.reduction.weight", "layers.0.downsample.norm.weight",
              "layers.1.blocks.1.mlp.fc2.bias", "norm.weight", "tscam_conv.weight", "head.bias"]


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return module


def panns_file(tmp_path, enc: Cnn14) -> str:
    state = dict(enc.state_dict())
    fe = FrontendConfig(sample_rate=32000, fmax=14000)  # what the published weights were trained with
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    state["spectrogram_extractor.stft.conv_imag.weight"] = torch.zeros(513, 1, 1024)
    state["logmel_extractor.melW"] = slaney_mel_filterbank(fe)
    path = tmp_path / "Cnn14.pth"
    torch.save({"model": state}, path)
    return str(path)


def htsat_file(tmp_path, enc: HTSAT) -> str:
    state = {f"sed_model.{k}": v for k, v in enc.state_dict().items()}
    state["sed_model.logmel_extractor.melW"] = torch.zeros(513, 64)
    path = tmp_path / "HTSAT.ckpt"
    torch.save({"epoch": 3, "global_step": 100, "pytorch-lightning_version": "1.5.9", "state_dict": state}, path)
    return str(path)


def test_module_names_follow_the_published_checkpoints():
    with torch.device("meta"):
        cnn = Cnn14(Cnn14Config(classes_num=527), mel_bins=64).state_dict()
        hts = HTSAT(HTSATConfig(classes_num=527), mel_bins=64).state_dict()
    assert set(PANNS_KEYS) <= set(cnn)
    assert set(HTSAT_KEYS) <= set(hts)
    assert tuple(hts["layers.0.blocks.0.attn.relative_position_bias_table"].shape) == (225, 4)
    assert tuple(hts["tscam_conv.weight"].shape) == (527, 768, 2, 3)


def test_cnn14_roundtrip_with_published_layout(tmp_path):
    src = randomised(Cnn14(Cnn14Config.from_dict({**TINY_CNN14, "classes_num": 5}), 64), seed=1)
    path = panns_file(tmp_path, src)
    dst = Cnn14(Cnn14Config.from_dict({**TINY_CNN14, "classes_num": 5}), 64)
    report = load_cnn14(dst, path, mel_fb=slaney_mel_filterbank(FrontendConfig()))
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    assert report.missing == [] and report.unexpected == []
    assert sorted(report.skipped) == ["logmel_extractor.melW", "spectrogram_extractor.stft.conv_imag.weight",
                                      "spectrogram_extractor.stft.conv_real.weight"]
    assert "differs" in report.notes[0]
    # a CLAP Cnn14 has no AudioSet head: that head is skipped, not an error
    headless = Cnn14(Cnn14Config.from_dict(TINY_CNN14), 64)
    report = load_cnn14(headless, path)
    assert {"fc_audioset.weight", "fc_audioset.bias"} <= set(report.skipped) and report.unexpected == []
    assert torch.equal(headless.fc1.weight, src.fc1.weight)


def test_htsat_roundtrip_with_lightning_layout(tmp_path):
    cfg = HTSATConfig.from_dict({**TINY_HTSAT, "classes_num": 4})
    src = randomised(HTSAT(cfg, 32), seed=2)
    path = htsat_file(tmp_path, src)
    dst = HTSAT(HTSATConfig.from_dict(TINY_HTSAT), 32)  # built without the AudioSet head
    report = load_htsat(dst, path)
    for k, v in dst.state_dict().items():
        assert torch.equal(v, src.state_dict()[k]), k
    assert report.missing == [] and report.unexpected == []
    assert {"tscam_conv.weight", "head.weight", "logmel_extractor.melW"} <= set(report.skipped)
    assert "layers.0.blocks.0.attn.relative_position_bias_table" in report.loaded


def test_shape_mismatch_is_refused_unless_allowed(tmp_path):
    src = randomised(Cnn14(Cnn14Config.from_dict(TINY_CNN14), 64), seed=3)
    path = panns_file(tmp_path, src)
    other = Cnn14(Cnn14Config.from_dict(TINY_CNN14), 32)  # bn0 over 32 mel bins, checkpoint has 64
    before = other.bn0.weight.clone()
    with pytest.raises(CheckpointMismatchError) as err:
        load_cnn14(other, path)
    msg = str(err.value)
    assert "bn0.weight: checkpoint (64,) vs model (32,)" in msg and "bn0.running_mean" in msg
    assert torch.equal(other.bn0.weight, before), "nothing is loaded when refusing"
    report = load_cnn14(other, path, allow_shape_mismatch=["bn0.*"])
    assert len(report.shape_mismatch_allowed) == 4  # weight, bias, running_mean, running_var
    assert torch.equal(other.bn0.weight, before)
    assert torch.equal(other.conv_block1.conv1.weight, src.conv_block1.conv1.weight)


def test_missing_and_unexpected_are_reported_and_strict_refuses(tmp_path):
    src = randomised(Cnn14(Cnn14Config.from_dict(TINY_CNN14), 64), seed=4)
    state = {k: v for k, v in src.state_dict().items() if not k.startswith("fc1.")}
    state["module.extra.weight"] = torch.zeros(3)
    path = tmp_path / "partial.pth"
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, path)  # DataParallel prefix
    dst = Cnn14(Cnn14Config.from_dict(TINY_CNN14), 64)
    report = load_cnn14(dst, path)
    assert report.missing == ["fc1.bias", "fc1.weight"]
    assert report.unexpected == ["extra.weight"]
    assert "missing: fc1.bias, fc1.weight" in report.summary()
    with pytest.raises(CheckpointMismatchError, match="strict"):
        load_cnn14(dst, path, strict=True)


class Hparams:  # stands for the arbitrary objects Lightning may pickle into a checkpoint
    lr = 1e-3


def test_untrusted_pickles_are_refused(tmp_path):
    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {"sed_model.norm.weight": torch.full((16,), 3.0)}, "hparams": Hparams()}, path)
    enc = HTSAT(HTSATConfig.from_dict(TINY_HTSAT), 32)
    with pytest.raises(CheckpointMismatchError, match="trusted"):
        load_htsat(enc, path)
    report = load_htsat(enc, path, trusted=True)
    assert report.loaded == ["norm.weight"] and torch.all(enc.norm.weight == 3.0)
    assert "patch_embed.proj.weight" in report.missing
    with pytest.raises(FileNotFoundError):
        load_cnn14(Cnn14(Cnn14Config.from_dict(TINY_CNN14), 64), tmp_path / "nope.pth")
    with pytest.raises(CheckpointMismatchError, match="two checkpoint tensors"):
        extract_state_dict({"module.a": torch.ones(1), "a": torch.ones(1)})


def test_clap_loads_configured_checkpoints(tmp_path):
    cfg = tiny_config("cnn14+htsat")
    cnn = randomised(Cnn14(cfg.audio.cnn14, 32), seed=5)
    hts = randomised(HTSAT(cfg.audio.htsat, 32), seed=6)
    cfg.audio.cnn14_checkpoint = panns_file(tmp_path, cnn)
    cfg.audio.htsat_checkpoint = htsat_file(tmp_path, hts)
    model = CLAP(cfg)
    assert torch.equal(model.audio_encoder.cnn14.conv_block3.conv2.weight, cnn.conv_block3.conv2.weight)
    assert torch.equal(model.audio_encoder.htsat.layers[1].blocks[0].attn.qkv.weight,
                       hts.layers[1].blocks[0].attn.qkv.weight)
    assert set(model.load_reports) == {"cnn14", "htsat"}
    assert model.load_reports["cnn14"]["missing"] == []
    # a checkpoint rebuild (load_pretrained=False) reads no file
    cfg.audio.cnn14_checkpoint = str(tmp_path / "gone.pth")
    assert CLAP(cfg, load_pretrained=False).load_reports == {}
