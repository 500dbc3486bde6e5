"""The published WavText5K CSV through the CLI: import, export (byte-for-byte round trip), the text filter."""
import csv

import pytest

from curation.cli import main
from curation.split import assign_split
from manifests import PUBLISHED_CSV, parse_tags, read_manifest, read_published_csv


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    d = tmp_path_factory.mktemp("pub")
    assert main(["import-published", str(PUBLISHED_CSV), "--out", str(d / "imported.csv")]) == 0
    return d, read_published_csv(PUBLISHED_CSV), read_manifest(d / "imported.csv")


def test_import_keeps_every_row_with_clean_text(imported):
    _, published, rows = imported
    assert [r.id for r in rows] == [p.id for p in published]  # the 5 rows without any text included
    for p, r in zip(published, rows):
        assert (r.title_raw, r.description_raw, r.tags_raw) == (p.title, p.description, p.tags)  # provenance
        assert "  " not in r.caption and "\u200b" not in r.caption and "\r" not in r.caption and "<" not in r.caption
        assert r.tags == parse_tags(p.tags)
        passes = bool(r.title or r.description)  # the paper's filter
        assert r.split == (assign_split(r.id) if passes else "")  # the split curation gives the same id
    assert sum(not r.split for r in rows) == 5
    assert sum(r.split != "" and not r.description for r in rows) == 172  # title-only sounds kept, by title
    assert all(r.caption == r.title for r in rows if r.split and not r.description)


def test_round_trip_export_gives_back_the_published_file_byte_for_byte(imported):
    d, published, _ = imported
    assert main(["export-published", str(d / "imported.csv"), "--out", str(d / "exported.csv")]) == 0
    assert (d / "exported.csv").read_bytes() == PUBLISHED_CSV.read_bytes()
    repeated = [p for p in published if len(parse_tags(p.tags)) < len(p.tags.split("', '"))]
    assert repeated  # published tags with repeats (or leaked HTML) come back exactly, not cleaned


def test_require_both_gives_no_split_to_rows_lacking_one(imported, tmp_path):
    _, published, rows = imported
    assert main(["import-published", str(PUBLISHED_CSV), "--out", str(tmp_path / "both.csv"), "--require-both",
                 "--caption-mode", "description"]) == 0
    both = read_manifest(tmp_path / "both.csv")
    assert len(both) == len(rows)
    with_split = [r for r in both if r.split]
    assert len(with_split) == 4348 and all(r.title and r.description and r.caption == r.description
                                           for r in with_split)


def _published_folder(tmp_path):
    """A published-format CSV and its audio: title-only, description-only, neither, both, broken audio."""
    from tests.synth import sine, write
    audio = tmp_path / "audio"
    cases = {  # fname: (title, description, audio)
        "1.wav": ("Bell", "", "good"), "2.wav": ("", "A dog barks twice.", "good"),
        "3.wav": ("", "  ", "good"), "4.wav": ("Rain", "Rain on a tin roof.", "good"),
        "5.wav": ("Wind", "Strong wind.", "broken"),
    }
    with open(tmp_path / "meta.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["view_link", "download_link", "title", "description", "fname", "tags"])
        for i, (fname, (title, desc, kind)) in enumerate(cases.items(), 1):
            if kind == "good":
                write(audio / fname, sine(44100, 0.4, 300 + 200 * i, 0.3), 44100, "PCM_16")
            else:
                (audio / fname).parent.mkdir(parents=True, exist_ok=True)
                (audio / fname).write_bytes(b"RIFF\x00\x00")
            w.writerow([f"https://soundbible.com/{i}-x.html", "", title, desc, fname, ""])
    return tmp_path / "meta.csv", audio


@pytest.mark.parametrize("require_both", [False, True])
def test_run_and_import_published_apply_the_same_filter(tmp_path, require_both):
    from curation.sources import read_rejects
    meta, audio = _published_folder(tmp_path)
    flag = ["--require-both"] if require_both else []
    assert main(["run", "--published", str(meta), str(audio), "--out", str(tmp_path / "cur"), "--workers", "1",
                 "--no-progress", "--no-figures", *flag]) == 0
    assert main(["import-published", str(meta), "--out", str(tmp_path / "imp.csv"), *flag]) == 0
    curated = {r.id: r for r in read_manifest(tmp_path / "cur" / "wavtext5k.csv")}
    rejects = {r.id: r for r in read_rejects(tmp_path / "cur" / "rejects.csv")}
    imported = {r.id: r for r in read_manifest(tmp_path / "imp.csv")}
    passes = {i for i, r in imported.items() if r.split}
    text_rejects = {i for i, r in rejects.items() if r.stage == "text"}
    assert rejects["soundbible:5"].stage == "audio"  # broken audio: only curation can know
    assert passes == set(curated) | {"soundbible:5"}  # the same text filter in both entry points
    assert text_rejects == set(imported) - passes
    expected = {"soundbible:4"} if require_both else {"soundbible:1", "soundbible:2", "soundbible:4"}
    assert set(curated) == expected
    if not require_both:
        assert curated["soundbible:1"].caption == "Bell" and curated["soundbible:2"].caption == "A dog barks twice."
