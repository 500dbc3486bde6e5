"""The published WavText5K CSV through the CLI: import, export (round trip), and Table 1 statistics."""
import json

import pytest

from curation.cli import main
from curation.split import assign_split
from manifests import PUBLISHED_CSV, parse_tags, read_manifest, read_published_csv


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    d = tmp_path_factory.mktemp("pub")
    assert main(["import-published", str(PUBLISHED_CSV), "--out", str(d / "imported.csv")]) == 0
    return d, read_published_csv(PUBLISHED_CSV), read_manifest(d / "imported.csv")


def test_import_keeps_every_captionable_row_with_clean_text(imported):
    _, published, rows = imported
    captionable = [p for p in published if p.title.strip() or p.description.strip()]
    assert [r.id for r in rows] == [p.id for p in captionable]
    for p, r in zip(captionable, rows):
        assert (r.title_raw, r.description_raw) == (p.title, p.description)  # provenance kept exactly
        assert "  " not in r.caption and "\u200b" not in r.caption and "\r" not in r.caption and "<" not in r.caption
        assert r.tags == parse_tags(p.tags)
        assert r.split == assign_split(r.id)  # the split curation gives the same id


def test_round_trip_export_gives_back_the_published_rows(imported):
    d, published, _ = imported
    assert main(["export-published", str(d / "imported.csv"), "--out", str(d / "exported.csv")]) == 0
    exported = {p.id: p for p in read_published_csv(d / "exported.csv")}
    orig = {p.id: p for p in published if p.title.strip() or p.description.strip()}
    assert exported.keys() == orig.keys()
    for i, p in orig.items():
        e = exported[i]
        assert (e.view_link, e.download_link, e.title, e.description, e.fname) == \
               (p.view_link, p.download_link, p.title, p.description, p.fname)
        assert parse_tags(e.tags) == parse_tags(p.tags)


def test_stats_on_the_published_import(imported, capsys):
    d, published, _ = imported
    capsys.readouterr()
    assert main(["stats", str(d / "imported.csv"), "--out", str(d / "stats")]) == 0
    md = capsys.readouterr().out
    table = {t["source"]: t for t in json.loads((d / "stats" / "stats.json").read_text())["table1"]}
    for source in ("soundbible", "bigsoundbank"):
        expected = [p for p in published if p.source == source and (p.title.strip() or p.description.strip())]
        assert table[source]["n_audios"] == table[source]["n_captions"] == len(expected)
        assert table[source]["duration_h"] is None  # no audio fetched: durations unknown, not invented
        assert f"| {source} | English |" in md
    assert table["total"]["n_audios"] == table["soundbible"]["n_audios"] + table["bigsoundbank"]["n_audios"]
    assert table["soundbible"]["avg_words"] > table["bigsoundbank"]["avg_words"] > 3
    assert (d / "stats" / "figures" / "top_words.png").stat().st_size > 5000


def test_require_both_leaves_out_rows_lacking_one(imported, tmp_path):
    _, published, rows = imported
    assert main(["import-published", str(PUBLISHED_CSV), "--out", str(tmp_path / "both.csv"), "--require-both",
                 "--caption-mode", "description"]) == 0
    both = read_manifest(tmp_path / "both.csv")
    assert 0 < len(both) < len(rows)
    assert all(r.title and r.description and r.caption == r.description for r in both)
