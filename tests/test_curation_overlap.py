"""The leakage audit (wt5k-curate overlap, issue 16) on generated recordings with every disguise made here:
each copy found with its kind and offsets, no pair between distinct recordings (two of the same kind
included), captions, bad input listed with reasons, the fingerprint cache, --drop, the command line.
The same audit on real sounds from Debian packages: test_real_sounds (skipped unless WT5K_REAL_SOUNDS names
a folder of them)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from curation import overlap as ov
from curation.cli import main
from curation.fingerprint import HOP, Landmarks, fingerprint_file
from curation.overlap_text import caption_pairs, normalise
from manifests import ManifestRow, read_manifest, resolve_audio, write_manifest
from tests.synth import pcm_wav_bytes
from tests.overlap_disguises import (chirps, disguises, embed, excerpt, has_mp3_writer, melody, noise_bursts,
                                     write_disguise)

SR = 22050


# name -> (generator, seed, seconds); two of each kind: different recordings of the same kind of sound
RECORDINGS = {
    "melody_a": (melody, 1, 6.0), "melody_b": (melody, 2, 6.0),
    "chirps_a": (chirps, 3, 5.0), "chirps_b": (chirps, 4, 5.0),
    "bursts_a": (noise_bursts, 5, 5.0), "bursts_b": (noise_bursts, 6, 5.0),
    "mix_short": (lambda s, d: melody(s, d) + chirps(s + 100, d), 7, 2.5),
}
LONG = "long_take"  # a 30 s training recording; the test holds a 6 s excerpt of it
CAPTIONS = {"melody_a": "A music box plays a short tune", "melody_b": "Wind chimes ring in a light breeze",
            "chirps_a": "Birds chirping at dawn in a forest", "chirps_b": "Laser sweeps in an arcade game",
            "bursts_a": "Steam hisses from a broken pipe", "bursts_b": "Waves crash on a pebble beach",
            "mix_short": "A toy robot beeps and whirs", LONG: "A long field recording of a busy market"}
EXCERPT_AT, EXCERPT_S = 11.3, 6.0
MONTAGE_AT = 4.2  # the test's montage holds the training recording bursts_a at this time


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """train/ (originals, WAV, and a manifest with captions), test/ (every disguise of every original, the
    excerpt, the montage) and the expected (train id, test id, kind) pairs."""
    root = tmp_path_factory.mktemp("overlap")
    train, test = root / "train", root / "test"
    signals = {name: gen(seed, secs) for name, (gen, seed, secs) in RECORDINGS.items()}
    signals[LONG] = np.concatenate([melody(9, 10), chirps(10, 10), noise_bursts(11, 10)])
    rows, expected = [], set()
    train.mkdir()
    for name, x in signals.items():
        sf.write(train / f"{name}.wav", x, SR, subtype="PCM_16")
        rows.append(ManifestRow(id=f"t:{name}", source="t", audio_path=f"{name}.wav", caption=CAPTIONS[name],
                                split="train"))
        if name == LONG:
            continue
        for d in disguises():
            p = write_disguise(x, SR, d, test / f"{name}--{d}")
            expected.add((f"{name}.wav", p.name, "audio"))
    sf.write(test / f"{LONG}--excerpt.flac", excerpt(signals[LONG], SR, EXCERPT_AT, EXCERPT_S), SR)
    expected.add((f"{LONG}.wav", f"{LONG}--excerpt.flac", "contained"))
    montage = embed(signals["bursts_a"], SR, melody(12, 20), MONTAGE_AT)
    write_disguise(montage, SR, "vorbis64k", test / "montage")
    expected.add(("bursts_a.wav", "montage.ogg", "contained"))
    pcm, _ = sf.read(train / "melody_a.wav", dtype="int16")
    sf.write(test / "melody_a--copy.flac", pcm, SR, subtype="PCM_16")  # the WAV's samples in another container
    expected.add(("melody_a.wav", "melody_a--copy.flac", "exact"))
    write_manifest(train / "train.csv", rows)
    return {"root": root, "train": train, "test": test, "expected": expected}


@pytest.fixture(scope="module")
def audited(corpus):
    rep = ov.audit([str(corpus["train"])], [str(corpus["test"])], corpus["root"] / "out", progress=False)
    return rep


def test_every_disguise_is_found_and_no_distinct_recordings_pair(corpus, audited):
    found = {(p.train.id, p.test.id, p.kind) for p in audited.pairs}
    missing = corpus["expected"] - found
    assert not missing, f"missed: {sorted(missing)}"
    assert found - corpus["expected"] == set(), "pairs between distinct recordings"
    disguised = {t for _, t, _ in corpus["expected"]}
    assert len(disguised) == len(corpus["expected"])
    names = {t.split("--")[1].split(".")[0] for t in disguised if "--" in t}
    assert {"vorbis64k", "resample8k", "resample96k_stereo", "gain-12", "gain+6_limited", "trim"} <= names
    assert ("mp3_64k" in names) == has_mp3_writer()


def test_offsets_of_an_excerpt_and_a_montage(audited):
    by_test = {p.test.id: p for p in audited.pairs}
    ex = by_test[f"{LONG}--excerpt.flac"]
    assert ex.kind == "contained"
    assert abs(ex.train_start_s - EXCERPT_AT) < 0.1 and abs(ex.test_start_s) < 0.1
    assert abs(ex.overlap_s - EXCERPT_S) < 0.3
    mo = by_test["montage.ogg"]  # the training recording inside a longer test recording
    assert abs(mo.test_start_s - MONTAGE_AT) < 0.1 and abs(mo.train_start_s) < 0.1
    assert abs(mo.overlap_s - RECORDINGS["bursts_a"][2]) < 0.3
    trim = by_test["melody_b--trim.wav"]  # a fifth (1.2 s) off the start: the copy's 0 is the original's 1.2 s
    assert abs(trim.train_start_s - trim.test_start_s - 6.0 / 5) < 0.05


def test_outputs_and_the_cache(corpus, audited, monkeypatch):
    out = corpus["root"] / "out"
    with open(out / "overlap.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:7] == ["train_id", "test_id", "kind", "score", "train_start_s", "test_start_s", "overlap_s"]
    assert len(rows) == len(audited.pairs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs_by_sets"]["train -> test"]["audio"]["pairs"] == sum(1 for p in audited.pairs
                                                                             if p.kind == "audio")
    assert summary["fingerprints"]["computed"] == summary["fingerprints"]["files"] > 0
    assert "| train -> test |" in (out / "summary.md").read_text()
    again = ov.audit([str(corpus["train"])], [str(corpus["test"])], out, progress=False)
    assert again.summary["fingerprints"]["computed"] == 0
    assert again.summary["fingerprints"]["cached"] == summary["fingerprints"]["files"]
    assert [p.row() for p in again.pairs] == [p.row() for p in audited.pairs]
    monkeypatch.setattr(ov, "SHARD_HASHES", 3000)  # the index in shards of a few files: the same pairs
    sharded = ov.audit([str(corpus["train"])], [str(corpus["test"])], out, progress=False)
    assert [p.row() for p in sharded.pairs] == [p.row() for p in audited.pairs]


def test_landmarks_do_not_depend_on_how_the_stream_is_cut():
    x = (melody(21, 25.0, 11025) + noise_bursts(22, 25.0, 11025)).astype(np.float32)  # over two decision blocks
    whole = Landmarks()
    whole.feed(x)
    cut = Landmarks()
    for i in range(0, len(x), 777):
        cut.feed(x[i:i + 777])
    a, b = whole.close(), cut.close()
    assert len(a) > 300 and np.array_equal(a, b)
    later = Landmarks(HOP)  # a query shift of one hop: the same peaks one frame earlier
    later.feed(x)
    c = later.close()
    assert len(set(map(tuple, a - [1, 0])) & set(map(tuple, c))) > 0.9 * len(c)


def test_bad_input_is_listed_and_the_audit_goes_on(tmp_path, monkeypatch):
    d = tmp_path / "train"
    d.mkdir()
    sf.write(d / "good.wav", melody(30, 3.0), SR)
    (d / "empty.wav").write_bytes(b"")
    (d / "page.mp3").write_bytes(b"<!DOCTYPE html><html>not audio</html>" * 20)
    sf.write(d / "silent.wav", np.zeros(SR * 2), SR)
    sf.write(d / "short.wav", melody(31, 0.3), SR)
    sf.write(d / "shortish.wav", melody(32, 0.7), SR)
    sf.write(d / "nan.wav", np.full(SR * 2, np.nan), SR, subtype="FLOAT")
    sf.write(d / "hum.wav", np.full(SR * 2, 0.25), SR)  # DC: not silent, no landmarks
    (d / "one_hz.wav").write_bytes(pcm_wav_bytes(1, 8000))  # 8 KB claiming 8,000 s: refused, not analysed
    (d / "notes.txt").write_text("not audio")
    empty_dir = tmp_path / "nothing"
    empty_dir.mkdir()
    (empty_dir / "readme.txt").write_text("x")
    man = tmp_path / "test.csv"
    sf.write(tmp_path / "copy.wav", melody(30, 3.0) * 0.5, SR)
    write_manifest(man, [ManifestRow(id="a", source="s", audio_path="gone.wav", caption="x", split="test"),
                         ManifestRow(id="b", source="s", audio_path="copy.wav", caption="y", split="test")])
    monkeypatch.setattr(ov, "LONG_S", 2.5)  # "long" from 2.5 s here: good.wav is listed, and still matched
    rep = ov.audit([str(d), str(empty_dir)], [f"{man}:test"], tmp_path / "out", progress=False, workers=2)
    reasons = {(p["id"], p["reason"]) for p in rep.problems}
    assert {("empty.wav", "empty"), ("page.mp3", "undecodable"), ("silent.wav", "silent"),
            ("short.wav", "short"), ("shortish.wav", "short"), ("", "no_audio"), ("a", "missing_audio"),
            ("good.wav", "long"), ("b", "long"), ("nan.wav", "non_finite"), ("hum.wav", "no_landmarks"),
            ("one_hz.wav", "bad_sample_rate")} == reasons
    assert [(p.train.id, p.test.id, p.kind) for p in rep.pairs] == [("good.wav", "b", "audio")]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "page.mp3" in md and "no_audio" in md and "missing_audio" in md
    assert rep.summary["inputs"][0]["ignored_files"] == 1


def test_long_file_in_bounded_blocks(tmp_path):
    """A 5-minute file: fingerprinted block by block (the decoded audio is never held whole)."""
    p = tmp_path / "long.flac"
    x = np.tile(chirps(40, 20.0, 8000), 15)
    sf.write(p, x, 8000)
    import tracemalloc
    tracemalloc.start()
    fp = fingerprint_file(p, query=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert fp.problem == "" and abs(fp.duration_s - 300) < 0.01
    assert peak < x.nbytes / 2, f"peak {peak / 1e6:.1f} MB for {x.nbytes / 1e6:.1f} MB of samples"


def test_captions_exact_and_near_duplicates():
    assert normalise("  A Dog, barking!!  ") == "a dog barking"
    pairs = caption_pairs({"t1": ["A dog barks loudly in the distance."], "t2": ["Rain on a tin roof"],
                           "t3": ["Door slams shut"]},
                          {"s1": ["a dog barks loudly in the distance"], "s2": ["Rain falling on a tin roof"],
                           "s3": ["A door creaks open slowly"]}, 0.6)
    assert pairs[("t1", "s1")] == 1.0
    assert 0.6 <= pairs[("t2", "s2")] < 1.0
    assert set(pairs) == {("t1", "s1"), ("t2", "s2")}


def test_drop_and_the_command_line(tmp_path, corpus, capsys):
    te = tmp_path / "test.csv"

    def row(id_: str, copy: str, caption: str) -> ManifestRow:
        return ManifestRow(id=id_, source="s", audio_path=os.path.relpath(corpus["test"] / copy, tmp_path),
                           caption=caption, split="test")

    rows = [row("x1", "chirps_a--trim.wav", "Something else"),
            row("x2", "melody_a--gain-12.wav", "wind chimes ring in a light breeze!")]
    write_manifest(te, rows)
    out, drop = tmp_path / "audit", tmp_path / "kept"
    code = main(["overlap", "--train", str(corpus["train"] / "train.csv"), "--test", f"{te}:test", "--out", str(out),
                 "--drop", str(drop), "--drop-kinds", "audio,text", "--cache", str(corpus["root"] / "out" /
                                                                                      "fingerprints"), "--quiet"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    with open(out / "overlap.csv", newline="") as f:
        got = {(r["train_id"], r["test_id"], r["kind"]) for r in csv.DictReader(f)}
    assert got == {("t:chirps_a", "x1", "audio"), ("t:melody_a", "x2", "audio"), ("t:melody_b", "x2", "text")}
    kept = read_manifest(drop / "train.csv")
    assert {r.id for r in kept} == {f"t:{n}" for n in [*RECORDINGS, LONG]} - {"t:chirps_a", "t:melody_a", "t:melody_b"}
    assert all(resolve_audio(drop / "train.csv", r).is_file() for r in kept)
    assert "3 rows (3 audios) dropped" in printed.out and f"{len(kept)} rows left" in printed.out
    assert "fingerprint" not in printed.err  # --quiet: no bar
    assert main(["overlap", "--train", str(tmp_path / "nope.csv"), "--test", str(te), "--out", str(out)]) == 2
    assert "no such manifest" in capsys.readouterr().err
    assert main(["overlap", "--train", str(corpus["train"] / "train.csv"), "--test", str(te), "--out", str(out),
                 "--drop", str(corpus["train"])]) == 2
    assert "would overwrite" in capsys.readouterr().err


REAL = os.environ.get("WT5K_REAL_SOUNDS")


@pytest.mark.skipif(not REAL, reason="WT5K_REAL_SOUNDS is not set: no folder of real sounds (e.g. `apt-get download "
                                     "sound-theme-freedesktop alienblaster-data` and `dpkg -x` them into one folder)")
def test_real_sounds(tmp_path):
    """Disguised copies of every real sound of 2 s or more: each copy of 1.5 s or more found; no pair between
    different originals."""
    src = Path(REAL)
    origs = [p for p in sorted(src.rglob("*")) if p.suffix.lower() in (".wav", ".oga", ".ogg", ".flac")]
    test, expected = tmp_path / "test", set()
    for i, p in enumerate(origs):
        x, sr = sf.read(p, always_2d=True)
        if len(x) < 2 * sr:
            continue
        for d in disguises():
            copy = write_disguise(x, sr, d, test / f"{i}--{d}")
            if sf.info(copy).duration >= 1.5:  # shorter copies hold too few landmarks (curation/README.md)
                expected.add((p.relative_to(src).as_posix(), copy.name))
    assert expected, f"no sound of 2 s or more under {src}"
    rep = ov.audit([str(src)], [str(test)], tmp_path / "out", progress=False)
    found = {(p.train.id, p.test.id) for p in rep.pairs if p.kind in ("audio", "contained")}
    assert expected <= found, f"missed {sorted(expected - found)}"
    self_rep = ov.audit([str(src)], [str(src)], tmp_path / "self", progress=False)
    assert not [p for p in self_rep.pairs if p.train.id != p.test.id and p.kind != "exact"]


@pytest.mark.parametrize("extra, says", [(["--text-threshold", "1.5"], "text threshold"),
                                         (["--text-threshold", "0"], "--text-threshold"),
                                         (["--drop-kinds", "audio,bogus"], "unknown kind"),
                                         (["--workers", "0"], "--workers")])
def test_usage_errors(tmp_path, capsys, extra, says):
    (tmp_path / "a").mkdir()
    try:
        code = main(["overlap", "--train", str(tmp_path / "a"), "--test", str(tmp_path / "a"), "--out",
                     str(tmp_path / "out"), *extra])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_decoder_notes_while_fingerprinting_carry_the_file_name(tmp_path, capfd):
    """libmpg123's notes on a damaged MP3 reach stderr during an audit prefixed with the file's name, never bare."""
    from tests.synth import damaged_mp3
    src = damaged_mp3(tmp_path)
    fingerprint_file(src)
    err = capfd.readouterr().err
    assert "Note:" in err or "Warning:" in err, err
    assert all(line.startswith(f"{src}: ") for line in err.splitlines()), err
