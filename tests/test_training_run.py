"""Whole training runs on generated audio: overfitting, exact resume, non-finite loss, deterministic eval."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import training.train as train_module
from training.checkpoint import load_checkpoint
from training.cli import eval_main, train_main
from training.config import ManifestSpec, RunConfig
from training.evaluate import embed_manifest, evaluate_checkpoints
from training.train import NonFiniteLossError, train
from tests.training_fixtures import make_manifest, run_config


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory):
    return make_manifest(tmp_path_factory.mktemp("data"), 8)


def test_tiny_model_overfits_generated_pairs(tmp_path, manifest):
    cfg = RunConfig.from_dict(run_config(tmp_path, [{"manifest": str(manifest)}], epochs=60, batch_size=8,
                                         log_every=10, optim={"lr": 3e-3, "lr_step_epochs": 1000}))
    summary = train(cfg, show_progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()
              if '"train"' in line]
    assert losses[-1] < losses[0] / 3
    result = evaluate_checkpoints([summary["latest"]], [ManifestSpec(str(manifest), name="gen")])["t/latest"]["gen"]
    assert result["t2a"]["R@1"] == 1.0 and result["a2t"]["R@1"] == 1.0


def _resume_config(out_dir, manifest) -> RunConfig:
    # projection dropout on: the resumed run must also restore the torch RNG to draw the same masks
    cfg = run_config(out_dir, [{"manifest": str(manifest)}], [{"manifest": str(manifest), "name": "gen"}],
                     epochs=3, batch_size=4, save_every_steps=1, optim={"lr": 1e-3, "lr_step_epochs": 2})
    cfg["model"] = {**cfg["model"], "projection": {"dim": 16, "dropout": 0.2}}
    return RunConfig.from_dict(cfg)


def test_resume_continues_exactly(tmp_path, manifest, monkeypatch):
    train(_resume_config(tmp_path / "a", manifest), show_progress=False)

    real_step, calls = train_module.train_step, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # mid-way through epoch 2 (2 steps per epoch), after step 3 was saved
            raise KeyboardInterrupt
        return real_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_resume_config(tmp_path / "b", manifest), show_progress=False)
    partial = load_checkpoint(tmp_path / "b" / "t" / "latest.pt")
    assert (partial["epoch"], partial["batch_in_epoch"], partial["step"]) == (1, 1, 3)
    monkeypatch.setattr(train_module, "train_step", real_step)
    with pytest.raises(FileExistsError):  # an existing run is never overwritten silently
        train(_resume_config(tmp_path / "b", manifest), show_progress=False)
    train(_resume_config(tmp_path / "b", manifest), resume=True, show_progress=False)

    a, b = (load_checkpoint(tmp_path / x / "t" / "latest.pt") for x in ("a", "b"))
    assert (b["epoch"], b["step"], b["best_score"]) == (a["epoch"], a["step"], a["best_score"]) == (3, 6, a["best_score"])
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert a["scheduler"] == b["scheduler"] and torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    log_a, log_b = ((tmp_path / x / "t" / "metrics.jsonl").read_text().splitlines() for x in ("a", "b"))
    strip = lambda lines: [{k: v for k, v in json.loads(s).items() if k not in ("samples_per_s", "time_s")}
                           for s in lines]
    assert strip(log_a) == strip(log_b)  # no repeated or missing records, same losses


def test_non_finite_loss_stops_without_saving(tmp_path, manifest, monkeypatch, capsys):
    real_loss, calls = train_module.contrastive_loss, []

    def nan_at_step_3(*args):
        calls.append(1)
        loss = real_loss(*args)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(train_module, "contrastive_loss", nan_at_step_3)
    cfg = RunConfig.from_dict(run_config(tmp_path, [{"manifest": str(manifest)}], epochs=3, batch_size=4,
                                         save_every_steps=1))
    with pytest.raises(NonFiniteLossError, match="non-finite loss"):
        train(cfg, show_progress=False)
    ckpt = load_checkpoint(tmp_path / "t" / "latest.pt")
    assert (ckpt["epoch"], ckpt["step"]) == (1, 2)  # the last good state; nothing from the failing step on
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())

    # the command line reports it and exits non-zero
    monkeypatch.setattr(train_module, "contrastive_loss", lambda *a: real_loss(*a) * float("nan"))
    (tmp_path / "c.json").write_text(json.dumps(run_config(tmp_path / "cli", [{"manifest": str(manifest)}])))
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet"]) == 3
    assert "non-finite loss" in capsys.readouterr().err
    assert not (tmp_path / "cli" / "t" / "latest.pt").exists()


def test_eval_is_deterministic_and_prints_table_3(tmp_path, manifest, capsys):
    cfg = run_config(tmp_path, [{"manifest": str(manifest)}], epochs=1, batch_size=4)
    cfg["data"]["test"] = [{"manifest": str(manifest), "name": "Generated"}]
    (tmp_path / "c.json").write_text(json.dumps(cfg))
    assert train_main(["--config", str(tmp_path / "c.json"), "--quiet"]) == 0
    assert "done: 1 epochs, 2 steps" in capsys.readouterr().out
    ckpt = tmp_path / "t" / "best.pt"

    from training.checkpoint import model_from_checkpoint
    from training.inference import Embedder

    embedder = Embedder(model_from_checkpoint(ckpt), window_s=0.5, batch_size=3)
    first = embed_manifest(embedder, ManifestSpec(str(manifest)), "title_description")
    second = embed_manifest(embedder, ManifestSpec(str(manifest)), "title_description")
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[2], second[2])
    assert first[1] == [f"test:{i}" for i in range(8)]

    assert eval_main(["--checkpoint", str(ckpt), "--checkpoint", str(ckpt), "--name", "A", "--name", "B",
                      "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    header, metrics_line = out.splitlines()[0], out.splitlines()[2]
    assert "Generated" in header and "T2A" in out.splitlines()[1] and "A2T" in out.splitlines()[1]
    metrics = ["mAP@10", "R@1", "R@5", "R@10", "R@50"]
    assert metrics_line.split() == ["Model", "|"] + metrics + ["|"] + metrics
    rows = json.loads((tmp_path / "e.json").read_text())
    assert rows["A"] == rows["B"]  # the same checkpoint evaluated twice gives the same numbers
    a_line = next(line for line in out.splitlines() if line.startswith("A "))
    assert f"{100 * rows['A']['Generated']['t2a']['R@1']:.1f}" in a_line


def test_validation_schedule_and_best_checkpoint(tmp_path, manifest):
    cfg = RunConfig.from_dict(run_config(tmp_path, [{"manifest": str(manifest)}],
                                         [{"manifest": str(manifest), "name": "gen"}], epochs=3, batch_size=4,
                                         val_every=2))
    summary = train(cfg, show_progress=False)
    records = [json.loads(line) for line in (tmp_path / "t" / "metrics.jsonl").read_text().splitlines()]
    val = {r["epoch"]: r["score"] for r in records if r["event"] == "val"}
    assert sorted(val) == [2, 3]  # every 2nd epoch and after the last
    best = load_checkpoint(tmp_path / "t" / "best.pt")
    assert best["best_score"] == summary["best_score"] == max(val.values())
    assert val[best["epoch"]] == max(val.values())
    assert set(best["config"]["data"]) >= {"crop_s"} and best["config"]["data"]["crop_s"] == pytest.approx(40640 / 44100)


def test_table_3_layout_with_several_datasets():
    from training.evaluate import format_table

    m = {"t2a": {"R@1": 0.1234, "R@5": 0.5, "R@10": 0.75, "R@50": 0.9, "mAP@10": 0.25},
         "a2t": {"R@1": 0.2, "R@5": 0.4, "R@10": 0.6, "R@50": 0.95, "mAP@10": 0.3}, "n_audios": 975, "n_captions": 4875}
    table = format_table({"A: Cnn14": {"AudioCaps": m, "Clotho": m}, "B: Cnn14 +WavText5K": {"Clotho": m}})
    lines = table.splitlines()
    assert lines[0].index("AudioCaps") < lines[0].index("Clotho")
    assert lines[1].count("T2A") == 2 and lines[1].count("A2T") == 2
    assert "AudioCaps: 975 clips, 4,875 captions" in lines[0]  # each test set's size beside its name
    assert lines[2].split("|")[1].split() == ["mAP@10", "R@1", "R@5", "R@10", "R@50"]  # the paper's columns
    assert lines[4].split("|")[1].split() == ["25.0", "12.3", "50.0", "75.0", "90.0"]
    assert lines[5].split("|")[1].split() == ["-"] * 5  # B has no AudioCaps result
    assert lines[5].split("|")[4].split() == ["30.0", "20.0", "40.0", "60.0", "95.0"]


def test_table_ends_with_the_chance_row_of_each_dataset():
    from training.evaluate import format_table
    from training.metrics import retrieval_metrics

    sim = torch.eye(4)
    small = retrieval_metrics(sim, list("abcd"), list("abcd"))  # chance t2a R@1 = 1/4
    large = retrieval_metrics(torch.eye(20), [str(i) for i in range(20)], [str(i) for i in range(20)])
    lines = format_table({"model": {"small": small, "large": large}}).splitlines()
    assert lines[-2].startswith("model") and lines[-1].startswith("(chance)")
    cells = lines[-1].split("|")
    assert cells[1].split() == [f"{100 * small['chance']['t2a'][k]:.1f}" for k in ("mAP@10", "R@1", "R@5", "R@10", "R@50")]
    assert cells[1].split()[1] == "25.0" and cells[3].split()[1] == "5.0"  # 1/4 and 1/20
