"""Run configs: every shipped config is valid; overrides; clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.config import RunConfig, apply_overrides, load_config
from training.model import CLAPConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.name == path.stem
    CLAPConfig.from_dict(cfg.model)  # the model section is a valid CLAPConfig (nothing is built)
    assert cfg.data.train and all(s.manifest.startswith("data/") for s in cfg.data.train + cfg.data.val)


def test_paper_recipe_and_table_3_encoders():
    cfgs = {p.stem: load_config(p) for p in CONFIGS}
    encoders = {n: cfgs[n].model["audio"]["encoder"] for n in ("exp_A", "exp_B", "exp_C", "exp_D")}
    assert encoders == {"exp_A": "cnn14", "exp_B": "cnn14", "exp_C": "htsat", "exp_D": "cnn14+htsat"}
    a, b = cfgs["exp_A"], cfgs["exp_B"]
    assert not any("wavtext5k" in s.manifest for s in a.data.train)
    assert [s.manifest for s in b.data.train][:2] == [s.manifest for s in a.data.train]
    assert any("wavtext5k" in s.manifest for s in b.data.train)
    assert (b.epochs, b.batch_size, b.optim.lr, b.optim.lr_step_epochs, b.optim.lr_gamma) == (45, 128, 1e-4, 20, 0.1)
    modes = {n: [s.caption_mode for s in cfgs[n].data.train if "wavtext5k" in s.manifest]
             for n in ("table4_title_description", "table4_description")}
    assert modes == {"table4_title_description": ["title_description"], "table4_description": ["description"]}


def test_overrides(tmp_path):
    d = json.loads(CONFIGS[0].read_text())
    out = apply_overrides(d, ["epochs=2", "optim.lr=3e-4", "model.text.name=pkg:x", "data.crop_s=null"])
    assert (out["epochs"], out["optim"]["lr"], out["model"]["text"]["name"], out["data"]["crop_s"]) == (2, 3e-4, "pkg:x", None)
    assert d["epochs"] != 2  # the input is not modified
    with pytest.raises(ValueError, match="key=value"):
        apply_overrides(d, ["epochs"])


def test_errors_name_the_problem(tmp_path):
    base = {"name": "x", "model": {}, "data": {"train": ["m.csv"]}}
    assert RunConfig.from_dict(base).data.train[0].manifest == "m.csv"
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['data.trian'\]"):
        RunConfig.from_dict({**base, "data": {"trian": []}})
    with pytest.raises(ValueError, match="at least one manifest"):
        RunConfig.from_dict({**base, "data": {"train": []}})
    with pytest.raises(ValueError, match="caption_mode"):
        RunConfig.from_dict({**base, "data": {"train": ["m.csv"], "caption_mode": "titles"}})
    with pytest.raises(ValueError, match="every training manifest or to none"):
        RunConfig.from_dict({**base, "data": {"train": [{"manifest": "a", "weight": 1}, "b"]}})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no such config"):
        load_config(tmp_path / "missing.json")


def test_manifest_argument_path_and_split():
    """PATH[:SPLIT] as wt5k-eval --manifest and wt5k-search index --manifest take it."""
    from training.config import ManifestSpec

    assert ManifestSpec.from_arg("data/m.csv:test") == ManifestSpec("data/m.csv", split="test")
    assert ManifestSpec.from_arg("data/m.csv") == ManifestSpec("data/m.csv")
    assert ManifestSpec.from_arg("C:/x/a:b.csv") == ManifestSpec("C:/x/a:b.csv")  # not a split: part of the path
    assert ManifestSpec.from_arg("a:b.csv:val") == ManifestSpec("a:b.csv", split="val")
    assert ManifestSpec.from_arg("m.csv:dev") == ManifestSpec("m.csv:dev")
