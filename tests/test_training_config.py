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


PAPER = ("exp_A", "exp_B", "exp_C", "exp_D", "table4_title_description", "table4_description", "exp_B_msclap2022")


def test_paper_recipe_and_table_3_encoders():
    cfgs = {p.stem: load_config(p) for p in CONFIGS}
    encoders = {n: cfgs[n].model["audio"]["encoder"] for n in ("exp_A", "exp_B", "exp_C", "exp_D")}
    assert encoders == {"exp_A": "cnn14", "exp_B": "cnn14", "exp_C": "htsat", "exp_D": "cnn14+htsat"}
    for name in PAPER:  # section 4.1: the training, selection and test sets of every paper config
        c = cfgs[name]
        train = [(s.manifest, s.splits, tuple(s.require)) for s in c.data.train]
        assert train[:2] == [("data/audiocaps/audiocaps.csv", ("train",), ()),  # AudioCaps train
                             ("data/clotho/clotho.csv", ("train", "val"), ())]  # Clotho development + validation
        # every WavText5K sound with a title and a description, whatever its split (none in Exp A)
        assert train[2:] == ([] if name == "exp_A" else [("data/curated/wavtext5k.csv", None, ("title", "description"))])
        assert [(s.manifest, s.split, s.name) for s in c.data.val] == [("data/audiocaps/audiocaps.csv", "val", "AudioCaps")]
        assert [(s.manifest, s.split, s.name) for s in c.data.test] == [
            ("data/audiocaps/audiocaps.csv", "test", "AudioCaps"), ("data/clotho/clotho.csv", "test", "Clotho")]
        assert (c.epochs, c.batch_size, c.optim.lr, c.optim.lr_step_epochs, c.optim.lr_gamma) == (45, 128, 1e-4, 20, 0.1)
        assert (c.loss_positives, c.amp, c.sync_batchnorm) == ("pair", True, True)
        assert name == "exp_B_msclap2022" or c.model["text"] == {"name": "roberta-base", "freeze": False}
    assert cfgs["exp_C"].model["audio"]["htsat"] == {"clip_seconds": 10.0}  # the paper's 10 s HTSAT input
    modes = {n: [s.caption_mode for s in cfgs[n].data.train if "wavtext5k" in s.manifest]
             for n in ("table4_title_description", "table4_description")}
    assert modes == {"table4_title_description": ["title_description"], "table4_description": ["description"]}
    # the WavText5K test evaluation keeps its own config: WavText5K's train split only, its test split tested
    split = cfgs["exp_D_wavtext5k_split"]
    assert [(s.splits, tuple(s.require)) for s in split.data.train if "wavtext5k" in s.manifest] == \
        [(("train",), ("title", "description"))]
    assert [s.name for s in split.data.test] == ["AudioCaps", "Clotho", "WavText5K"]


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
    with pytest.raises(ValueError, match=r"DataConfig: unknown keys \['data.trian'\]"):
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
