"""Checkpoints that keep frozen encoders in one content-addressed sibling file, and read back whole."""
from __future__ import annotations

import pytest
import torch

from training.checkpoint import frozen_prefixes, load_checkpoint, save_checkpoint, tensors_digest


def state(seed: int = 0, text_scale: float = 1.0) -> dict:
    g = torch.Generator().manual_seed(seed)
    model = {"audio_encoder.w": torch.randn(64, 64, generator=g), "audio_encoder.bn.num_batches_tracked": torch.tensor(3),
             "text_encoder.model.emb": torch.randn(500, 64, generator=g) * text_scale,
             "text_encoder.model.half": torch.randn(8, generator=g).to(torch.bfloat16),
             "audio_projection.w": torch.randn(16, 64, generator=g)}
    return {"model": model, "config": {"model": {"audio": {"freeze": False}, "text": {"freeze": True}}}, "epoch": 1}


def test_frozen_weights_written_once_and_read_back_whole(tmp_path):
    s = state()
    prefixes = frozen_prefixes(s["config"]["model"])
    assert prefixes == ("text_encoder.",)
    save_checkpoint(tmp_path / "latest.pt", s, separate=prefixes)
    siblings = list(tmp_path.glob("frozen-*.pt"))
    assert len(siblings) == 1
    first = siblings[0].stat()
    whole = save_checkpoint(tmp_path / "best.pt", s)
    assert (tmp_path / "latest.pt").stat().st_size < whole.stat().st_size / 4, "the frozen text table is elsewhere"
    # the next epoch: trained parts changed, frozen ones not -> the sibling is neither rewritten nor duplicated
    s2 = state()
    s2["model"]["audio_projection.w"] += 1
    s2["epoch"] = 2
    save_checkpoint(tmp_path / "latest.pt", s2, separate=prefixes)
    assert list(tmp_path.glob("frozen-*.pt")) == siblings
    assert siblings[0].stat().st_mtime_ns == first.st_mtime_ns and siblings[0].stat().st_ino == first.st_ino
    raw = torch.load(tmp_path / "latest.pt", weights_only=True)
    assert not any(k.startswith("text_encoder.") for k in raw["model"]) and raw["frozen"]["file"] == siblings[0].name
    back = load_checkpoint(tmp_path / "latest.pt")
    assert back["epoch"] == 2 and set(back["model"]) == set(s2["model"])
    for k, v in s2["model"].items():
        assert torch.equal(back["model"][k], v) and back["model"][k].dtype == v.dtype
    assert "frozen" not in torch.load(tmp_path / "best.pt", weights_only=True), "best.pt is self-contained"


def test_missing_or_foreign_sibling_is_an_error(tmp_path):
    save_checkpoint(tmp_path / "latest.pt", state(), separate=("text_encoder.",))
    sibling = next(tmp_path.glob("frozen-*.pt"))
    other = state(seed=1)
    torch.save({k: v for k, v in other["model"].items() if k.startswith("text_encoder.")}, sibling)
    with pytest.raises(ValueError, match="sha256"):
        load_checkpoint(tmp_path / "latest.pt")
    sibling.unlink()
    with pytest.raises(FileNotFoundError, match="best.pt"):
        load_checkpoint(tmp_path / "latest.pt")


def test_changed_frozen_weights_get_their_own_file_and_the_digest_sees_every_byte(tmp_path):
    save_checkpoint(tmp_path / "a.pt", state(), separate=("text_encoder.",))
    save_checkpoint(tmp_path / "b.pt", state(text_scale=2.0), separate=("text_encoder.",))
    assert len(list(tmp_path.glob("frozen-*.pt"))) == 2
    m = state()["model"]
    d = tensors_digest(m)
    m2 = dict(m, **{"text_encoder.model.half": m["text_encoder.model.half"].clone()})
    m2["text_encoder.model.half"][0] += 1
    assert tensors_digest(m2) != d
    assert tensors_digest({"x": torch.zeros(2, dtype=torch.float32)}) != tensors_digest({"x": torch.zeros(2, dtype=torch.int32)})
    assert tensors_digest(dict(reversed(list(m.items())))) == d, "independent of key order"
