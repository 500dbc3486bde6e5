"""The paper's Table 3 / Table 4 rows as data, the paper configs that name them, and wt5k-eval printing them
beside the measured row with the difference."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from training.checkpoint import load_checkpoint, save_checkpoint
from training.cli import eval_main, train_main
from training.config import load_config
from training.model import CLAP, CLAPConfig
from training.paper import check_paper_row, paper_metrics, paper_results
from tests.training_fixtures import TINY_MODEL, make_manifest, run_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PAPER_CONFIGS = {"exp_A": "A", "exp_B": "B", "exp_C": "C", "exp_D": "D",
                 "table4_title_description": "table4_title_description", "table4_description": "table4_description"}


def test_paper_results_hold_every_value_of_tables_3_and_4():
    data = paper_results()
    assert set(data["rows"]) == set(PAPER_CONFIGS.values()) | {"benchmark"}
    assert data["metrics"] == ["mAP@10", "R@1", "R@5", "R@10", "R@50"]
    for row in data["rows"].values():
        assert set(row["percent"]) == {"AudioCaps", "Clotho"}
        for dirs in row["percent"].values():
            assert set(dirs) == {"t2a", "a2t"}
            assert all(list(v) == data["metrics"] for v in dirs.values())

    def given(row):
        return sum(v is not None for dirs in data["rows"][row]["percent"].values() for vals in dirs.values()
                   for v in vals.values())
    # Table 3: rows A-D, 10 values per test set; the benchmark prints no mAP@10 or R@50. Table 4: mAP@10, R@1
    assert [given(r) for r in ("A", "B", "C", "D", "benchmark")] == [20, 20, 20, 20, 12]
    assert [given(r) for r in ("table4_title_description", "table4_description")] == [8, 8]
    # Table 4's "title + description" row is Table 3's Exp D (the paper says so): the same numbers where printed
    d, t4 = paper_metrics("D"), paper_metrics("table4_title_description")
    assert all(v is None or v == d[ds][di][m] for ds in t4 for di in t4[ds] for m, v in t4[ds][di].items())
    ac = d["AudioCaps"]
    assert (ac["t2a"]["mAP@10"], ac["t2a"]["R@1"], ac["a2t"]["mAP@10"], ac["a2t"]["R@1"]) == \
        pytest.approx((0.4945, 0.3469, 0.3081, 0.4191))
    assert paper_metrics("C")["Clotho"]["a2t"]["R@50"] == pytest.approx(0.8115)
    assert paper_metrics("benchmark")["Clotho"]["t2a"]["R@10"] == pytest.approx(0.499)
    assert data["test_sets"]["AudioCaps"]["clips"] == 975 and data["test_sets"]["Clotho"]["captions"] == 5225


def test_rows_match_case_insensitively():
    assert check_paper_row("d") == "D" and check_paper_row("TABLE4_Description") == "table4_description"
    assert check_paper_row("Benchmark") == "benchmark"
    with pytest.raises(ValueError, match="unknown paper row 'E'"):
        check_paper_row("E")


def test_paper_configs_name_their_rows_and_table4_is_exp_d():
    cfgs = {n: load_config(CONFIGS / f"{n}.json") for n in PAPER_CONFIGS}
    assert {n: c.paper_row for n, c in cfgs.items()} == PAPER_CONFIGS
    for name in ("table4_title_description", "table4_description"):
        assert cfgs[name].model == cfgs["exp_D"].model  # Cnn14 + HTSAT with both pretrained checkpoints
        assert [s.manifest for s in cfgs[name].data.train] == [s.manifest for s in cfgs["exp_D"].data.train]
        # the Exp D model, built at tiny sizes (no pretrained files read)
        model = copy.deepcopy(cfgs[name].model)
        model["audio"] = {**TINY_MODEL["audio"], "encoder": model["audio"]["encoder"]}
        model["text"], model["projection"] = TINY_MODEL["text"], TINY_MODEL["projection"]
        clap = CLAP(CLAPConfig.from_dict(model), load_pretrained=False)
        assert clap.audio_encoder.cnn14 is not None and clap.audio_encoder.htsat is not None
        assert clap.audio_encoder.output_dim == clap.audio_encoder.cnn14.embedding_dim + \
            clap.audio_encoder.htsat.embedding_dim


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny run trained with exp_D's paper_row, its test set labelled "AudioCaps" like the paper configs'."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("paper")
    manifest = make_manifest(tmp / "data", 6)
    cfg = run_config(tmp, [{"manifest": str(manifest)}], epochs=1, batch_size=3)
    cfg["data"]["test"] = [{"manifest": str(manifest), "name": "AudioCaps"}]
    cfg["paper_row"] = load_config(CONFIGS / "exp_D.json").paper_row
    (tmp / "c.json").write_text(json.dumps(cfg))
    assert train_main(["--config", str(tmp / "c.json"), "--quiet"]) == 0
    return tmp / "t" / "best.pt"


def test_each_paper_configs_eval_carries_the_papers_row(checkpoint, tmp_path, capsys):
    # one checkpoint per paper config, its config naming the row as that config does
    ckpt = load_checkpoint(checkpoint)
    paths = []
    for name in PAPER_CONFIGS:
        ckpt["config"]["paper_row"] = load_config(CONFIGS / f"{name}.json").paper_row
        paths.append(save_checkpoint(tmp_path / f"{name}.pt", ckpt))
    args = [a for p, n in zip(paths, PAPER_CONFIGS) for a in ("--checkpoint", str(p), "--name", n)]
    capsys.readouterr()
    assert eval_main(args + ["--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = json.loads((tmp_path / "e.json").read_text())
    for name, row in PAPER_CONFIGS.items():
        assert f"paper {row}" in rows and f"{name} - paper {row}" in rows  # the JSON carries both, and the difference
        assert any(line.startswith(f"paper {row} ") for line in out)
        paper = paper_metrics(row)["AudioCaps"]
        diff = rows[f"{name} - paper {row}"]["AudioCaps"]
        for d in ("t2a", "a2t"):
            for m, v in paper[d].items():
                expected = None if v is None else rows[name]["AudioCaps"][d][m] - v
                assert diff[d][m] == (pytest.approx(expected) if expected is not None else None)
    line = next(line for line in out if line.startswith("paper D "))
    # AudioCaps T2A and A2T: mAP@10 R@1 R@5 R@10 R@50, as Table 3 prints them
    assert line.split("|")[1].split() == ["49.5", "34.7", "70.2", "82.0", "97.3"]
    assert line.split("|")[2].split() == ["30.8", "41.9", "73.2", "84.6", "97.7"]
    line = next(line for line in out if line.startswith("paper benchmark "))
    assert line.split("|")[1].split() == ["-", "33.9", "69.7", "82.6", "-"]  # under every measured row
    # the test set's size is printed, and compared with the paper's (6 clips are far from 975)
    assert "AudioCaps: 6 clips, 6 captions" in out[0]
    warnings = [line for line in out if line.startswith("warning: AudioCaps")]
    assert len(warnings) == 1 and "975 / 4,875" in warnings[0]


def test_paper_option_chooses_the_row_and_rejects_unknown_ones(checkpoint, tmp_path, capsys):
    capsys.readouterr()
    assert eval_main(["--checkpoint", str(checkpoint), "--name", "run", "--paper", "Table4_Description",
                      "--json", str(tmp_path / "e.json")]) == 0
    assert set(json.loads((tmp_path / "e.json").read_text())) == {"run", "paper table4_description",
                                                                  "run - paper table4_description",
                                                                  "paper benchmark"}
    assert eval_main(["--checkpoint", str(checkpoint), "--paper", "E"]) == 2
    assert "unknown paper row 'E'" in capsys.readouterr().err


def test_paper_values_sit_under_the_measured_sets_column_and_sizes_are_compared():
    from training.paper import compare_with_paper, size_warnings

    m = {d: {k: 0.5 for k in ("mAP@10", "R@1", "R@5", "R@10", "R@50")} for d in ("t2a", "a2t")}
    measured = {"audiocaps": {**m, "n_audios": 960, "n_captions": 4800},  # 1.5 % short of 975 / 4,875: close
                "clotho": {**m, "n_audios": 900, "n_captions": 4500}}  # 14 % short of 1,045: far
    rows = compare_with_paper("run", measured, "b")
    assert set(rows) == {"paper B", "run - paper B", "paper benchmark"}
    assert set(rows["paper B"]) == set(rows["paper benchmark"]) == {"audiocaps", "clotho"}  # one column per set
    assert rows["run - paper B"]["clotho"]["a2t"]["R@50"] == pytest.approx(0.5 - 0.8603)
    warnings = size_warnings(measured)
    assert len(warnings) == 1 and warnings[0].startswith("clotho: 900 clips / 4,500 captions") and "1,045" in warnings[0]
