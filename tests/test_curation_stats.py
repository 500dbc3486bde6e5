"""Table 1 from the data (curation/table1.py, ``wt5k-curate stats``): the shipped published CSV gives the paper's
counts; AudioCaps- and Clotho-format caption CSVs are counted without audio, with hand-counted expectations;
Figure 1's words and the shipped stop-word list."""
import csv
import json

import pytest

from curation.cli import main
from curation.figures import STOP_WORDS, figure1_words
from manifests import PUBLISHED_CSV


def _stats(capsys, *args) -> dict:
    capsys.readouterr()
    assert main(["stats", *map(str, args), "--json"]) == 0
    return {t["source"]: t for t in json.loads(capsys.readouterr().out)}


def test_published_csv_gives_the_papers_counts(capsys, tmp_path):
    """4,525 audios, 4,520 titles, 4,348 descriptions, 2,058 rows with tags, 82 max and 12.51 average
    description words over audios (13.02 per description); no audio, so durations n/a."""
    t = _stats(capsys, PUBLISHED_CSV)
    total = t["total"]
    assert (total["n_audios"], total["n_titles"], total["n_descriptions"], total["n_with_tags"]) == \
        (4525, 4520, 4348, 2058)
    assert (total["max_description_words"], total["avg_description_words"],
            total["avg_description_words_per_description"]) == (82, 12.51, 13.02)
    assert total["duration_h"] is None and total["max_duration_s"] is None and total["avg_duration_s"] is None
    assert total["n_captions"] == 4520 and total["n_empty_captions"] == 5  # the 5 rows with no text at all
    assert (t["bigsoundbank"]["n_audios"], t["soundbible"]["n_audios"]) == (2467, 2058)
    assert t["soundbible"]["n_with_tags"] == 2058 and t["bigsoundbank"]["n_with_tags"] == 0
    # the same numbers from the imported manifest: the import keeps every row
    assert main(["import-published", "--out", str(tmp_path / "m.csv")]) == 0
    assert _stats(capsys, tmp_path / "m.csv") == t
    # the Markdown report prints them beside their definitions; no empty duration plot
    capsys.readouterr()
    assert main(["stats", str(PUBLISHED_CSV), "--out", str(tmp_path / "st")]) == 0
    out = capsys.readouterr().out
    assert "| total | English | n/a | 4,525 | 4,520 | n/a | n/a | 82 | 12.51 | descriptions (over audios) |" in out
    assert "| total | 4,520 | 4,348 | 2,058 | 13.02 |" in out
    assert "how the paper computes its 12.5" in out and "duration_hist.png not drawn" in out
    report = json.loads((tmp_path / "st" / "stats.json").read_text())
    assert sorted(report["figures"]) == ["figures/caption_length_hist.png", "figures/top_words.png"]
    assert not (tmp_path / "st" / "figures" / "duration_hist.png").exists()
    assert "duration_hist.png" in report["figures_not_drawn"] and report["definitions"]["n_titles"]


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_audiocaps_csvs_per_split_and_total(capsys, tmp_path):
    head = ("audiocap_id", "youtube_id", "start_time", "caption")
    train = _write_csv(tmp_path / "train.csv", head, [
        (1, "aaa", 30, "A dog  barks   loudly"),          # 4 words: runs of spaces are one separator
        (2, "bbb", 0, "Rain falls - then thunder !"),    # 6 words: "-" and "!" are whitespace tokens too
        (3, "ccc", 10, "   "),                            # empty caption: not a caption
    ])
    test = _write_csv(tmp_path / "test.csv", head, [
        (4, "ddd", 0, "Birds chirp"), (5, "ddd", 0, "Many birds are chirping in trees"),  # one clip, 2 captions
        (6, "aaa", 30, "A dog barks"),                    # the same clip as in train: one audio in the total
    ])
    t = _stats(capsys, f"train={train}", test)
    assert set(t) == {"audiocaps train", "audiocaps test", "total"}
    tr, te, total = t["audiocaps train"], t["audiocaps test"], t["total"]
    assert (tr["n_audios"], tr["n_captions"], tr["n_empty_captions"]) == (3, 2, 1)
    assert (tr["max_caption_words"], tr["avg_caption_words"]) == (6, 5.0)
    assert (te["n_audios"], te["n_captions"], te["max_caption_words"], te["avg_caption_words"]) == (2, 3, 6, 3.67)
    assert (total["n_audios"], total["n_captions"], total["avg_caption_words"]) == (4, 5, 4.2)  # (4 + 6 + 2 + 6 + 3) words / 5
    assert total["n_titles"] is None and total["max_description_words"] is None and total["duration_h"] is None
    capsys.readouterr()
    assert main(["stats", f"train={train}", str(test)]) == 0
    out = capsys.readouterr().out
    assert "| audiocaps train | English | n/a | 3 | 2 | n/a | n/a | 6 | 5.00 | captions |" in out


def test_clotho_csv_counts_every_filled_caption_cell(capsys, tmp_path):
    head = ("file_name",) + tuple(f"caption_{i}" for i in range(1, 6))
    dev = _write_csv(tmp_path / "clotho_captions_development.csv", head, [
        ("a.wav", "one two three", "one,two", "x  y z w", "", "end ."),      # 3, 1, 4, (empty), 2 words
        ("b.wav", "a b c d e f g h", "- - -", "q", "r s", "t u v"),           # 8, 3, 1, 2, 3
    ])
    t = _stats(capsys, f"train={dev}")
    row = t["clotho train"]
    assert (row["n_audios"], row["n_captions"], row["n_empty_captions"]) == (2, 9, 1)
    assert (row["max_caption_words"], row["avg_caption_words"]) == (8, 3.0)  # 27 words / 9 captions


def test_unknown_csv_is_a_clear_error(capsys, tmp_path):
    bad = _write_csv(tmp_path / "x.csv", ("a", "b"), [(1, 2)])
    assert main(["stats", str(bad)]) == 2
    assert "its columns: a, b" in capsys.readouterr().err


def test_figure1_words_drop_punctuation_stop_words_and_numbers():
    assert figure1_words("The dog's (loud) bark -- and a 2nd, 3 ... barks; DOG!") == \
        ["dog's", "loud", "bark", "2nd", "barks", "dog"]


def test_shipped_stop_words_are_scikit_learns_list():
    sklearn_text = pytest.importorskip("sklearn.feature_extraction.text")
    assert STOP_WORDS == frozenset(sklearn_text.ENGLISH_STOP_WORDS)


def test_real_audiocaps_v1_rows_counted_as_pandas_counts_them(capsys):
    """The first 30 rows of AudioCaps v1 val.csv (github.com/cdjkim/audiocaps, dataset/val.csv, MIT licence;
    quoted captions with commas, clips captioned twice), checked against pandas' own CSV parser."""
    import pandas as pd
    from pathlib import Path
    path = Path(__file__).parent / "fixtures" / "audiocaps_v1_val_head.csv"
    df = pd.read_csv(path)
    words = df["caption"].str.split().str.len()
    row = _stats(capsys, f"val={path}")["audiocaps val"]
    clips = df["youtube_id"] + "_" + df["start_time"].astype(str)
    assert (row["n_audios"], row["n_captions"]) == (clips.nunique(), len(df)) == (29, 30)
    assert (row["max_caption_words"], row["avg_caption_words"]) == (int(words.max()), round(words.mean(), 2))


def test_hostile_inputs_get_clear_errors(capsys, tmp_path):
    (tmp_path / "binary.csv").write_bytes(bytes(range(256)))
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header_only.csv").write_text("\ufeffaudiocap_id,youtube_id,start_time,caption\n")
    for name, message in (("binary.csv", "not UTF-8 text"), ("empty.csv", "its columns: none"),
                          ("missing.csv", "no such file")):
        assert main(["stats", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert name in err and message in err
    assert main(["stats", str(tmp_path / "header_only.csv")]) == 0
    assert "No audio in the input" in capsys.readouterr().out


def test_a_bad_byte_is_reported_on_its_row_and_a_png_is_called_a_png(capsys, tmp_path):
    """Issue 17: a bad byte on row 2 was reported as "row 1" (the header) with an offset into a read buffer; a
    PNG given as a CSV was told to pass --encoding."""
    path = tmp_path / "val.csv"
    path.write_bytes(b"audiocap_id,youtube_id,start_time,caption\n1,abc,10,Caf\xe9 noise\n2,abd,20,ok\n")
    assert main(["stats", str(path)]) == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "row 1" not in err and "at byte 13 of the line" in err and "--encoding" in err, err
    png = tmp_path / "captions.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    for argv in (["stats", str(png)], ["audiocaps", "--csv", f"train={png}", "--clips", str(tmp_path),
                                       "--out", str(tmp_path / "o")],
                 ["import-published", str(png), "--out", str(tmp_path / "m.csv")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "PNG image" in err and "--encoding" not in err, err
