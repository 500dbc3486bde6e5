"""curation.text cleaning, the exclusion-list reader, and the crawl-output reader's edge cases."""
import json

import pytest

from curation.sources import read_crawl_output, read_id_list
from curation.text import clean_tags, clean_text


@pytest.mark.parametrize("raw,clean", [
    (" Guns  bullet flybysricochets", "Guns bullet flybysricochets"),
    ("Tyrannosaurus Rex ", "Tyrannosaurus Rex"),
    ("Door\r\nknock", "Door knock"),
    ("tab\tinside", "tab inside"),
    ("Zero\u200bwidth\ufeff", "Zerowidth"),
    ("Fish &amp; chips &lt;b&gt;", "Fish & chips"),
    ("<li><a href='tags-x.html'>rain</a></li>", "rain"),
    ("Cafe\u0301 ½ 10°", "Café ½ 10°"),       # NFC composes, keeps ½ and °
    ("", ""), (None, ""),
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean


def test_nfkc_folds_compatibility_characters():
    assert clean_text("½ ﬁre", "NFKC") == "1⁄2 fire"
    with pytest.raises(ValueError):
        clean_text("x", "NFD")


def test_tags():
    assert clean_tags(["rain", " ", "rain", "<li>storm</li>", "Thunder\u200b"]) == ["rain", "storm", "Thunder"]


def test_id_list(tmp_path):
    (tmp_path / "ids.txt").write_text("# eval overlap\nsoundbible:1\n\nbigsoundbank:0007  # comment\n")
    assert read_id_list(tmp_path / "ids.txt") == {"soundbible:1", "bigsoundbank:0007"}
    (tmp_path / "ids.csv").write_text("id,caption\nclotho:a.wav,x\n")
    assert read_id_list(tmp_path / "ids.csv") == {"clotho:a.wav"}


def test_crawl_reader_takes_last_record_and_tolerates_odd_fields(tmp_path):
    d = tmp_path / "raw" / "bigsoundbank"
    d.mkdir(parents=True)
    recs = [{"id": "bigsoundbank:0100", "title": "A", "status": "ok", "file_path": "files/0100.flac"},
            {"id": "bigsoundbank:0100", "title": "B", "status": "ok", "file_path": "files/0100.flac",
             "tags": "['x', 'y']", "author": None},
            {"id": "bigsoundbank:0101", "status": "ok", "file_path": None}, {"title": "no id"}]
    (d / "items.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    items, rejects = read_crawl_output(tmp_path / "raw")
    assert [(i.id, i.title_raw, i.tags, i.author) for i in items][0] == ("bigsoundbank:0100", "B", ["x", "y"], "")
    assert items[0].source_id == "0100" and items[0].audio == str((d / "files/0100.flac").resolve())
    assert (items[1].status, items[1].error) == ("no_file", "status ok but no file_path")
    assert [(r.id, r.reason) for r in rejects] == [("bigsoundbank/items.jsonl:4", "bad_record")]
    with pytest.raises(FileNotFoundError):
        read_crawl_output(tmp_path / "nothing")
    (tmp_path / "empty_raw").mkdir()
    with pytest.raises(FileNotFoundError, match="no items.jsonl"):
        read_crawl_output(tmp_path / "empty_raw")
