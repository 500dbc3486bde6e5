"""Checkpoints that keep frozen encoders in one content-addressed sibling file, and read back whole."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training.checkpoint import frozen_prefixes, load_checkpoint, save_checkpoint, tensors_digest


def state(seed: int = 0, text_scale: float = 1.0) -> dict:
    g = torch.Generator().manual_seed(seed)
    model = {"audio_encoder.w": torch.randn(64, 64, generator=g),
             "audio_encoder.bn.num_batches_tracked": torch.tensor(3),
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
    zeros = {dtype: tensors_digest({"x": torch.zeros(2, dtype=dtype)}) for dtype in (torch.float32, torch.int32)}
    assert zeros[torch.float32] != zeros[torch.int32]
    assert tensors_digest(dict(reversed(list(m.items())))) == d, "independent of key order"


def test_training_with_a_frozen_text_encoder(tmp_path, monkeypatch, capfd, restore_progress_bars):
    """latest.pt leaves the frozen encoder to a sibling written once per run, best.pt is whole, --resume and
    wt5k-eval read latest.pt whole; --quiet shows no bar."""
    import json

    import training.checkpoint as checkpoint_module
    from training.cli import eval_main, train_main
    from tests.training_fixtures import make_manifest, run_config

    torch.set_num_threads(1)
    manifest = make_manifest(tmp_path / "data", 6)
    cfg = run_config(tmp_path / "runs", [{"manifest": str(manifest)}], [{"manifest": str(manifest), "name": "gen"}],
                     epochs=2, val_every=1)
    cfg["model"] = {**cfg["model"], "text": {**cfg["model"]["text"], "freeze": True}}
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    written, real_atomic = [], checkpoint_module.atomic_path

    def spy(path, *a, **k):
        written.append(Path(path).name)
        return real_atomic(path, *a, **k)

    monkeypatch.setattr(checkpoint_module, "atomic_path", spy)
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet"]) == 0
    assert "%|" not in capfd.readouterr().err
    run = tmp_path / "runs" / "t"
    frozen = [n for n in written if n.startswith("frozen-")]
    assert len(frozen) == 1 and written.count("latest.pt") == 2, written
    latest_raw = torch.load(run / "latest.pt", weights_only=True)
    best_raw = torch.load(run / "best.pt", weights_only=True)
    text_keys = {k for k in best_raw["model"] if k.startswith("text_encoder.")}
    assert text_keys and not text_keys & set(latest_raw["model"]) and "frozen" not in best_raw
    assert (run / "latest.pt").stat().st_size < (run / "best.pt").stat().st_size
    whole = load_checkpoint(run / "latest.pt")["model"]
    assert set(whole) == set(best_raw["model"])
    assert all(torch.equal(whole[k], best_raw["model"][k]) for k in text_keys)
    assert eval_main(["--checkpoint", str(run / "latest.pt"), "--manifest", str(manifest),
                      "--json", str(tmp_path / "e.json"), "--quiet"]) == 0
    cfg["epochs"] = 3
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet", "--resume"]) == 0
    assert len(list(run.glob("frozen-*.pt"))) == 1 and load_checkpoint(run / "latest.pt")["epoch"] == 3
