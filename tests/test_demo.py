"""The offline demo end to end (shortened: `--quick`), and its chance levels."""
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from manifests.schema import read_manifest
from demo.run import main
from training.metrics import chance_levels

REPO = Path(__file__).resolve().parents[1]


def test_chance_levels_by_hand():
    c = chance_levels([1] * 10)  # the chance levels the demo prints are retrieval_metrics' own
    assert c["t2a"]["R@1"] == pytest.approx(0.1) and c["t2a"]["R@10"] == 1.0
    assert c["t2a"]["mAP@10"] == pytest.approx(sum(1 / r for r in range(1, 11)) / 10)
    c = chance_levels([5] * 4)  # 5 captions per audio: a hit when any of the 5 is ranked in the top k
    assert c["a2t"]["R@1"] == pytest.approx(5 / 20)
    assert c["a2t"]["R@10"] == pytest.approx(1 - math.comb(15, 10) / math.comb(20, 10))


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path, capsys):
    (tmp_path / "precious.txt").write_text("keep me")
    assert main(["--out", str(tmp_path), "--quick"]) == 2  # a usage error
    assert "not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_quick_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run([sys.executable, "-m", "demo", "--out", str(out), "--quick"], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    n = summary["n_sounds"]

    # the real spiders fetched every generated sound from the mirror, half from each site
    assert summary["crawl"] == {"bigsoundbank": {"ok": n // 2}, "soundbible": {"ok": n // 2}}
    rows = read_manifest(out / "curated" / "wavtext5k.csv")
    assert len(rows) == n and {r.split for r in rows} == {"train", "val", "test"}
    assert all(r.sample_rate == 44100 and r.channels == 1 for r in rows)
    assert (out / "curated" / "rejects.csv").read_text().strip() == "id,stage,reason,detail"

    # trained, evaluated, and far above chance on the held-out test sounds
    assert (out / "runs" / "demo" / "best.pt").is_file()
    test = summary["metrics"]["wavtext5k:test"]
    assert test["n_audios"] == sum(r.split == "test" for r in rows)
    model, chance = test["model"]["t2a"], test["chance"]["t2a"]
    assert model["R@1"] > 3 * chance["R@1"] and model["mAP@10"] > 2 * chance["mAP@10"]
    assert summary["metrics"]["test_varied"]["n_captions"] == 5 * test["n_audios"]

    # indexed and searched; every artefact it names exists
    assert json.loads((out / "index" / "index.json").read_text())["n_items"] == n
    kinds = {s["kind"] for s in summary["searches"]}
    assert kinds == {"text", "audio", "similar", "classify"}
    assert all(len(s["hits"]) == 3 for s in summary["searches"] if "hits" in s)
    for what, path in summary["artefacts"].items():
        assert Path(path).exists(), what
    assert "where everything went" in proc.stdout and "T2A" in proc.stdout
    assert proc.stdout.rstrip().endswith(f"wt5k-search serve --index {out / 'index'}")  # the page on its index
