"""`wt5k-curate folder`: a user's own sounds with captions from a CSV, from subfolder names or from sidecar text
files, through the same pipeline as every other input (44.1 kHz, headroom, duplicates, rejects, safe paths,
resume). Sounds are generated here; the real-sound run (Debian packages) is reported in the closing note."""
import csv
import os

import numpy as np
import pytest
import soundfile as sf

from curation.cli import main
from curation.folder import label_of, split_tags
from curation.sources import read_rejects
from manifests import validate_manifest
from tests.synth import sine, write

QUIET = ["--workers", "1", "--no-progress", "--no-figures"]


def _sounds(root):
    """A small library in subfolders: rates, channels and formats differ; one full-scale square wave needs
    headroom at 44.1 kHz; one file is another's exact copy; one is not audio; one is too short."""
    write(root / "dog_bark/bark1.wav", sine(48000, 0.5, 600, 0.4, channels=2), 48000, "PCM_24")
    write(root / "dog_bark/bark2.flac", sine(22050, 0.6, 900, 0.3), 22050, "PCM_16")
    square = np.sign(sine(22050, 0.5, 441, 1.0))
    write(root / "door-knock/knock.wav", square, 22050, "PCM_16")
    write(root / "door-knock/sub/knock_copy.wav", square, 22050, "PCM_16")
    (root / "rain").mkdir()
    (root / "rain/rain.wav").write_bytes(b"<!DOCTYPE html><html>not found</html>")
    write(root / "rain/drip.wav", sine(44100, 0.02, 300, 0.3), 44100, "PCM_16")
    write(root / "top.ogg", sine(44100, 0.5, 300, 0.3), 44100, "VORBIS", "OGG")
    (root / "notes.md").write_text("not a sound")


def _rejects(out):
    return {r.id: (r.stage, r.reason, r.detail) for r in read_rejects(out / "rejects.csv")}


def _run(*args):
    return main(["folder", *map(str, args), *QUIET])


def test_captions_csv_with_subfolders_every_file_accounted_and_resumable(tmp_path, capsys):
    lib = tmp_path / "lib"
    _sounds(lib)
    rows = [
        {"file": "dog_bark/bark1.wav", "caption": "A dog barks twice", "tags": "dog, bark", "author": "me",
         "license": "CC0", "split": "test"},
        {"file": "dog_bark/bark1.wav", "caption": "Barking outside"},            # a second caption
        {"file": "dog_bark\\bark2.flac", "caption": "A small dog yaps", "tags": "['dog']"},
        {"file": "door-knock/knock.wav", "caption": "Knocking on a wooden door"},
        {"file": "door-knock/sub/knock_copy.wav", "caption": "Knock knock"},
        {"file": "rain/rain.wav", "caption": "Rain on a roof"},
        {"file": "rain/drip.wav", "caption": "One drip"},
        {"file": "knock.wav", "caption": "wrong folder"},                       # relative to DIR: not there
        {"file": "../outside.wav", "caption": "outside"},
        {"file": "", "caption": "no file"},
    ]
    write(tmp_path / "outside.wav", sine(44100, 0.5), 44100, "PCM_16")
    with open(tmp_path / "captions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["file", "caption", "tags", "author", "license", "split"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "out"
    assert _run(lib, "--captions", tmp_path / "captions.csv", "--name", "my_sfx", "--out", out) == 0
    said = capsys.readouterr().out
    assert "7 audio files; other files (not audio by extension): .md: 1" in said
    assert not (out / "wavtext5k.csv").exists()
    manifest = validate_manifest(out / "my_sfx.csv", check_audio=True)
    by_id = {}
    for r in manifest:
        by_id.setdefault(r.id, []).append(r)
    assert sorted(by_id) == ["my_sfx:dog_bark/bark1.wav", "my_sfx:dog_bark/bark2.flac", "my_sfx:door-knock/knock.wav"]
    bark1 = by_id["my_sfx:dog_bark/bark1.wav"]
    assert [r.caption for r in bark1] == ["A dog barks twice", "Barking outside"]
    assert bark1[0].tags == ["dog", "bark"] and bark1[0].author == "me" and bark1[0].license == "CC0"
    assert {r.split for r in bark1} == {"test"} and bark1[0].source == "my_sfx"
    assert by_id["my_sfx:dog_bark/bark2.flac"][0].tags == ["dog"]
    for r in manifest:
        assert r.sample_rate == 44100 and r.channels == 1
        assert sf.info(str(out / r.audio_path)).samplerate == 44100
        assert (out / r.audio_path).resolve().is_relative_to(out.resolve())
    assert by_id["my_sfx:door-knock/knock.wav"][0].gain_db < 0  # attenuated, not clipped
    assert by_id["my_sfx:door-knock/knock.wav"][0].clipped_samples == 0
    rej = _rejects(out)
    assert rej["my_sfx:door-knock/sub/knock_copy.wav"][:2] == ("dedupe", "duplicate")
    assert rej["my_sfx:rain/rain.wav"][:2] == ("audio", "unreadable") and "web page" in rej["my_sfx:rain/rain.wav"][2]
    assert rej["my_sfx:rain/drip.wav"][:2] == ("audio", "too_short")
    assert rej["my_sfx:top.ogg"] == ("text", "no_caption", "not listed in captions.csv")
    assert rej["my_sfx:knock.wav"][:2] == ("input", "missing_audio")
    assert "found 'door-knock/knock.wav'" in rej["my_sfx:knock.wav"][2]
    assert rej["my_sfx:../outside.wav"][:2] == ("input", "unsafe_path")
    assert rej["captions.csv:11"] == ("input", "bad_record", "the file column is empty")
    # every audio file under the folder is a manifest row or a reject
    audio = [p for p in lib.rglob("*") if p.suffix in (".wav", ".flac", ".ogg")]
    assert {f"my_sfx:{p.relative_to(lib).as_posix()}" for p in audio} <= set(by_id) | set(rej)
    # resumable: a second run decodes nothing
    assert _run(lib, "--captions", tmp_path / "captions.csv", "--name", "my_sfx", "--out", out) == 0
    assert "audio: 0 processed, 6 reused" in capsys.readouterr().out


def test_title_description_csv_goes_through_the_filter(tmp_path):
    lib = tmp_path / "lib"
    write(lib / "a.wav", sine(44100, 0.5, 300, 0.3), 44100, "PCM_16")
    write(lib / "b.wav", sine(44100, 0.5, 500, 0.3), 44100, "PCM_16")
    write(lib / "c.wav", sine(44100, 0.5, 700, 0.3), 44100, "PCM_16")
    (tmp_path / "meta.csv").write_text("file,title,description\na.wav,Bell,A bell rings &amp; fades\n"
                                       "b.wav,,\nc.wav,Horn,\nc.wav,Horn again,\n")
    out = tmp_path / "out"
    assert _run(lib, "--captions", tmp_path / "meta.csv", "--out", out) == 0
    rows = {r.id: r for r in validate_manifest(out / "lib.csv")}
    assert rows["lib:a.wav"].caption == "Bell. A bell rings & fades" and rows["lib:c.wav"].caption == "Horn"
    rej = _rejects(out)
    assert rej["lib:b.wav"] == ("text", "empty_metadata", "no title and no description")
    assert rej["meta.csv:5"][:2] == ("input", "bad_record") and "first on row 4" in rej["meta.csv:5"][2]


def test_labels_from_subfolders(tmp_path):
    lib = tmp_path / "My Sounds"
    write(lib / "dog_bark/x.wav", sine(16000, 0.5, 300, 0.3), 16000, "PCM_16")
    write(lib / "animals/cat-meow/y.flac", sine(96000, 0.5, 500, 0.3), 96000, "PCM_24")
    write(lib / "loose.wav", sine(44100, 0.5, 700, 0.3), 44100, "PCM_16")
    out = lib / "curated"  # inside the folder: never read back as input
    for _ in range(2):
        assert _run(lib, "--labels-from-subfolders", "--out", out) == 0
    rows = {r.id: r for r in validate_manifest(out / "My_Sounds.csv", check_audio=True)}
    assert set(rows) == {"My_Sounds:dog_bark/x.wav", "My_Sounds:animals/cat-meow/y.flac"}
    assert rows["My_Sounds:dog_bark/x.wav"].caption == "dog bark"
    assert rows["My_Sounds:animals/cat-meow/y.flac"].caption == "cat meow"
    assert rows["My_Sounds:animals/cat-meow/y.flac"].tags == ["animals", "cat meow"]
    assert _rejects(out) == {"My_Sounds:loose.wav": ("text", "no_caption",
                                                     "at the top of the folder: no subfolder name to label it")}
    # Table 1 says where the text comes from and counts the labels' words (there is no description)
    assert ("| My_Sounds | unknown | 0.00 | 2 | 2 | 0.50 | 0.50 | 2 | 2.00 | captions "
            "| folder labels (subfolder names) |") in (out / "stats.md").read_text(encoding="utf-8")
    assert label_of("dog_bark") == label_of("dog-bark") == "dog bark"
    assert split_tags("a, b;c") == ["a", "b", "c"] and split_tags("['a', 'b']") == ["a", "b"]


def test_sidecar_text(tmp_path):
    lib = tmp_path / "lib"
    for name in ("a", "b", "c", "d", "e"):
        write(lib / f"s/{name}.wav", sine(44100, 0.5, 200 + 100 * ord(name), 0.3), 44100, "PCM_16")
    (lib / "s/a.txt").write_text("Footsteps on gravel,\nslowly.\n", encoding="utf-8")
    (lib / "s/b.wav.txt").write_text("A door slams", encoding="utf-8")
    (lib / "s/c.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    (lib / "s/d.txt").write_bytes("Caf\xe9 ambience".encode("latin-1"))
    write(tmp_path / "elsewhere.wav", sine(44100, 0.5, 900, 0.3), 44100, "PCM_16")
    os.symlink(tmp_path / "elsewhere.wav", lib / "s/link.wav")
    (lib / "s/link.txt").write_text("a link")
    out = tmp_path / "out"
    assert _run(lib, "--sidecar-text", "--name", "walks", "--out", out) == 0
    rows = {r.id: r for r in validate_manifest(out / "walks.csv")}
    assert rows["walks:s/a.wav"].caption == "Footsteps on gravel, slowly."
    assert rows["walks:s/b.wav"].caption == "A door slams"
    rej = _rejects(out)
    assert rej["walks:s/c.wav"] == ("input", "bad_record", "sidecar s/c.txt is a PNG image, not text")
    assert rej["walks:s/d.wav"][:2] == ("input", "bad_record") and "not UTF-8 text" in rej["walks:s/d.wav"][2]
    assert rej["walks:s/e.wav"] == ("text", "no_caption", "no e.txt beside it")
    assert rej["walks:s/link.wav"][:2] == ("input", "unsafe_path")
    assert _run(lib, "--sidecar-text", "--name", "walks", "--out", out, "--encoding", "latin-1") == 0
    assert {r.id: r for r in validate_manifest(out / "walks.csv")}["walks:s/d.wav"].caption == "Café ambience"


def test_folder_usage_and_empty_results(tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["folder", str(lib), "--out", str(tmp_path / "o")])  # no caption source
    assert e.value.code == 2
    assert main(["folder", str(lib), "--sidecar-text", "--name", "../x", "--out", str(tmp_path / "o")]) == 2
    assert "dataset name" in capsys.readouterr().err
    assert _run(lib, "--sidecar-text", "--out", tmp_path / "o") == 1  # nothing to curate
    assert "no rows came out" in capsys.readouterr().err
    assert main(["folder", str(tmp_path / "nope"), "--sidecar-text", "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "c.csv").write_text("file,author\nx.wav,me\n")
    assert _run(lib, "--captions", tmp_path / "c.csv", "--out", tmp_path / "o") == 2
    assert "caption or title or description" in capsys.readouterr().err
