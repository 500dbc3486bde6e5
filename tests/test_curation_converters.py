"""AudioCaps and Clotho converters on small CSVs in the datasets' own formats, with incomplete audio folders."""
import csv
import json

import pytest

from curation.cli import main
from curation.sources import read_rejects
from tests.synth import sine, write
from manifests import ManifestError, make_caption, validate_manifest

AUDIOCAPS_TRAIN = """audiocap_id,youtube_id,start_time,caption
91139,r1nicOVtvkQ,130,A woman talks nearby as water pours
58146,UDGBjjwyaqE,20,Multiple clanging and clanking sounds
11542,7fmOlUlwoNg,20,"An engine revs, then idles"
"""
AUDIOCAPS_VAL = """audiocap_id,youtube_id,start_time,caption
97151,vfY_TJq7n_U,130,Rustling occurs and a man speaks
97152,vfY_TJq7n_U,130,A man speaking as birds chirp
97153,vfY_TJq7n_U,130,Wind blows while a man talks
97154,vfY_TJq7n_U,130,A man talks with rustling in the background
97155,vfY_TJq7n_U,130,Birds chirp and a man speaks
"""


@pytest.fixture()
def audiocaps(tmp_path):
    (tmp_path / "train.csv").write_text(AUDIOCAPS_TRAIN)
    (tmp_path / "val.csv").write_text(AUDIOCAPS_VAL)
    clips = tmp_path / "clips"
    # the downloaded folder is incomplete: UDGBjjwyaqE is missing; names follow two download tools' patterns
    write(clips / "r1nicOVtvkQ_130.wav", sine(16000, 1.0, 500, 0.3), 16000, "PCM_16")
    write(clips / "sub/Y7fmOlUlwoNg.flac", sine(48000, 1.0, 700, 0.3, channels=2), 48000, "PCM_16")
    write(clips / "vfY_TJq7n_U_130.wav", sine(32000, 1.0, 900, 0.3), 32000, "PCM_16")
    return tmp_path


def test_audiocaps(audiocaps, tmp_path):
    out = tmp_path / "ac"
    assert main(["audiocaps", "--csv", f"train={audiocaps / 'train.csv'}", "--csv", f"val={audiocaps / 'val.csv'}",
                 "--clips", str(audiocaps / "clips"), "--out", str(out), "--workers", "1", "--no-progress"]) == 0
    rows = validate_manifest(out / "audiocaps.csv", check_audio=True)
    ids = sorted({r.id for r in rows})
    assert ids == ["audiocaps:7fmOlUlwoNg_20", "audiocaps:r1nicOVtvkQ_130", "audiocaps:vfY_TJq7n_U_130"]
    val = [r for r in rows if r.id == "audiocaps:vfY_TJq7n_U_130"]
    assert len(val) == 5 and {r.split for r in val} == {"val"}
    assert [r.caption for r in val] == [line.split(",", 3)[3] for line in AUDIOCAPS_VAL.splitlines()[1:]]
    engine = [r for r in rows if r.id == "audiocaps:7fmOlUlwoNg_20"]
    assert len(engine) == 1 and engine[0].caption == "An engine revs, then idles" and engine[0].split == "train"
    for r in rows:
        assert r.title == "" and r.description == r.caption
        assert make_caption(r.title, r.description, "title_description") == r.caption
        assert make_caption(r.title, r.description, "description") == r.caption
        assert r.sample_rate == 44100 and r.source == "audiocaps"
    rejects = read_rejects(out / "rejects.csv")
    assert [(r.id, r.stage, r.reason) for r in rejects] == [("audiocaps:UDGBjjwyaqE_20", "input", "missing_clip")]
    table = {t["source"]: t for t in json.loads((out / "stats.json").read_text())["table1"]}
    assert (table["audiocaps"]["n_audios"], table["audiocaps"]["n_captions"]) == (3, 7)
    assert table["audiocaps"]["max_duration_s"] == pytest.approx(1.0, abs=0.01)


def test_audiocaps_bad_csv_names_row_and_column(audiocaps, tmp_path):
    (tmp_path / "bad.csv").write_text("audiocap_id,youtube_id,start_time,caption\n1,abc,ten,x\n")
    with pytest.raises(ManifestError, match=r"row 2.*start_time"):
        from curation.audiocaps import audiocaps_items
        audiocaps_items({"train": tmp_path / "bad.csv"}, audiocaps / "clips")
    (tmp_path / "nocap.csv").write_text("audiocap_id,youtube_id,start_time\n1,abc,10\n")
    assert main(["audiocaps", "--csv", f"test={tmp_path / 'nocap.csv'}", "--clips", str(audiocaps / "clips"),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2


def _clotho_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
        w.writerows(rows)


def test_clotho(tmp_path):
    dev, ev = tmp_path / "development", tmp_path / "evaluation"
    write(dev / "Santa Motor.wav", sine(44100, 1.2, 400, 0.3), 44100, "PCM_16")
    write(dev / "river_01.wav", sine(44100, 1.5, 600, 0.3), 44100, "PCM_16")
    write(ev / "birds.wav", sine(44100, 1.0, 2000, 0.3), 44100, "PCM_16")
    _clotho_csv(tmp_path / "clotho_captions_development.csv",
                [["Santa Motor.wav"] + [f"A motor, running number {i}." for i in range(5)],
                 ["river_01.wav"] + [f'Water "flows" {i}' for i in range(5)], ["missing.wav"] + ["x"] * 5])
    _clotho_csv(tmp_path / "clotho_captions_evaluation.csv", [["birds.wav"] + [f"Birds  chirp {i}" for i in range(5)]])
    out = tmp_path / "clotho"
    assert main(["clotho", "--split", "train", str(tmp_path / "clotho_captions_development.csv"), str(dev),
                 "--split", "test", str(tmp_path / "clotho_captions_evaluation.csv"), str(ev),
                 "--out", str(out), "--workers", "1", "--no-progress", "--no-figures"]) == 0
    rows = validate_manifest(out / "clotho.csv", check_audio=True)
    assert len(rows) == 15 and len({r.id for r in rows}) == 3
    motor = [r for r in rows if r.id == "clotho:Santa Motor.wav"]
    assert [r.caption for r in motor] == [f"A motor, running number {i}." for i in range(5)]
    assert {r.split for r in motor} == {"train"}
    birds = [r for r in rows if r.id == "clotho:birds.wav"]
    assert birds[0].caption == "Birds chirp 0" and birds[0].description_raw == "Birds  chirp 0"
    assert {r.split for r in birds} == {"test"}
    assert '"flows"' in [r for r in rows if r.id == "clotho:river_01.wav"][0].caption
    assert [(r.id, r.reason) for r in read_rejects(out / "rejects.csv")] == [("clotho:missing.wav", "missing_audio")]


def test_clotho_csv_in_cp949_names_file_row_and_encoding_then_reads_with_encoding(tmp_path, capsys):
    """Copies of Clotho's CSVs circulate in cp949 (Korean Windows); UTF-8 cannot read them."""
    dev = tmp_path / "development"
    write(dev / "a.wav", sine(44100, 1.0, 400, 0.3), 44100, "PCM_16")
    write(dev / "b.wav", sine(44100, 1.0, 700, 0.3), 44100, "PCM_16")
    header = ",".join(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
    text = f"{header}\na.wav,{','.join(['A bell rings'] * 5)}\nb.wav,{','.join(['새가 운다, 멀리'.replace(',', '') ] * 5)}\n"
    path = tmp_path / "captions.csv"
    path.write_bytes(text.encode("cp949"))
    args = ["clotho", "--split", "train", str(path), str(dev), "--out", str(tmp_path / "o"), "--workers", "1",
            "--no-progress", "--no-figures"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "row 3" in err and "not UTF-8 text" in err and "--encoding" in err, err
    assert main(args + ["--encoding", "cp949"]) == 0
    rows = validate_manifest(tmp_path / "o" / "clotho.csv")
    assert [r.caption for r in rows if r.id == "clotho:b.wav"][0] == "새가 운다 멀리"


@pytest.mark.parametrize("args,message", [
    (["--sample-rate", "0"], "--sample-rate: '0' is not a sample rate"),
    (["--sample-rate", "44.1k"], "is not a sample rate"),
    (["--min-duration", "-1"], "--min-duration"),
    (["--workers", "-2"], "--workers"),
    (["--encoding", "klingon"], "unknown encoding"),
    (["--csv", "training=x.csv"], "SPLIT=PATH"),
])
def test_usage_errors_exit_2_with_a_message_about_the_option(audiocaps, tmp_path, capsys, args, message):
    base = ["audiocaps", "--csv", f"train={audiocaps / 'train.csv'}", "--clips", str(audiocaps / "clips"),
            "--out", str(tmp_path / "o"), "--no-progress"]
    try:
        rc = main(base + args)
    except SystemExit as e:  # argparse's own errors
        rc = e.code
    assert rc == 2
    err = capsys.readouterr().err
    assert message in err and "target_sr" not in err, err


def test_stats_of_a_cp949_clotho_csv_needs_and_takes_encoding(tmp_path, capsys):
    header = ",".join(["file_name"] + [f"caption_{i}" for i in range(1, 6)])
    path = tmp_path / "clotho_captions_evaluation.csv"
    rows = [f"a.wav,{','.join(['A bell rings'] * 5)}", f"b.wav,{','.join(['새가 운다'] * 5)}"]
    path.write_bytes(("\n".join([header] + rows) + "\n").encode("cp949"))
    assert main(["stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not UTF-8 text" in err and "--encoding" in err, err
    assert main(["stats", str(path), "--encoding", "cp949"]) == 0
    assert "clotho" in capsys.readouterr().out


def test_clotho_finds_files_in_subfolders_and_says_what_it_looked_for(tmp_path):
    """Issue 17: "no file 'class/name.wav'" for a file that exists in a subfolder."""
    audio = tmp_path / "audio"
    write(audio / "birds/dawn.wav", sine(44100, 1.0, 2000, 0.3), 44100, "PCM_16")
    write(audio / "deep/er/river.wav", sine(44100, 1.0, 500, 0.3), 44100, "PCM_16")
    _clotho_csv(tmp_path / "captions.csv", [["birds/dawn.wav"] + ["Birds sing at dawn"] * 5,  # with a subfolder
                                            ["river.wav"] + ["A river flows"] * 5,  # a name found in a subfolder
                                            ["birds/dusk.wav"] + ["x"] * 5])
    out = tmp_path / "o"
    assert main(["clotho", "--split", "val", str(tmp_path / "captions.csv"), str(audio), "--out", str(out),
                 "--workers", "1", "--no-progress", "--no-figures"]) == 0
    assert {r.id for r in validate_manifest(out / "clotho.csv", check_audio=True)} == \
        {"clotho:birds/dawn.wav", "clotho:river.wav"}
    [rej] = read_rejects(out / "rejects.csv")
    assert (rej.id, rej.reason) == ("clotho:birds/dusk.wav", "missing_audio")
    assert "'birds/dusk.wav' relative to it" in rej.detail and "named 'dusk.wav' in any of its subfolders" in rej.detail
    assert "(2 audio files there)" in rej.detail


def test_nothing_out_is_an_error(audiocaps, tmp_path, capsys):
    """Issue 17: a header-only CSV gave a 0-row manifest and exit 0."""
    (tmp_path / "empty_train.csv").write_text("audiocap_id,youtube_id,start_time,caption\n")
    assert main(["audiocaps", "--csv", f"train={tmp_path / 'empty_train.csv'}", "--clips", str(audiocaps / "clips"),
                 "--out", str(tmp_path / "o"), "--no-progress", "--no-figures"]) == 1
    assert "no rows came out" in capsys.readouterr().err
    (tmp_path / "gone.csv").write_text("audiocap_id,youtube_id,start_time,caption\n1,UDGBjjwyaqE,20,A clang\n")
    assert main(["audiocaps", "--csv", f"train={tmp_path / 'gone.csv'}", "--clips", str(audiocaps / "clips"),
                 "--out", str(tmp_path / "o2"), "--no-progress", "--no-figures"]) == 1
    assert "all 1 inputs were rejected" in capsys.readouterr().err
    published = tmp_path / "published.csv"
    published.write_text("fname,title,description,tags,view_link,download_link\n")
    assert main(["import-published", str(published), "--out", str(tmp_path / "m.csv")]) == 1
    assert "no rows came out" in capsys.readouterr().err and not (tmp_path / "m.csv").exists()
    assert main(["run", "--published", str(published), str(tmp_path), "--out", str(tmp_path / "o3"),
                 "--no-progress", "--no-figures"]) == 1
