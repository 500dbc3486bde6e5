"""The manifest contract and the published WavText5K CSV format."""
from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import pytest

from manifests import (COLUMNS, PUBLISHED_CSV, ManifestError, ManifestRow, make_caption, manifest_to_published,
                       parse_tags, published_to_manifest, read_manifest, read_published_csv, source_id_of,
                       validate_manifest, write_manifest, write_published_csv)


def _row(**kw) -> ManifestRow:
    base = dict(id="soundbible:1", source="soundbible", audio_path="audio/soundbible/1.flac",
                caption="Bell. A bell rings.", duration_s=1.5, sample_rate=44100, channels=1,
                sha256="a" * 64, title="Bell", description="A bell rings.", tags=["bell", "ring, loud"],
                split="train")
    base.update(kw)
    return ManifestRow(**base)


def test_write_then_read_gives_the_same_rows(tmp_path: Path) -> None:
    rows = [_row(), _row(id="clotho:x.wav", source="clotho", caption="second, \"quoted\"\ncaption", tags=[]),
            _row(id="bigsoundbank:0100", duration_s=None, sample_rate=None, channels=None, sha256="")]
    path = write_manifest(tmp_path / "m.csv", rows)
    assert read_manifest(path) == rows
    with open(path, newline="", encoding="utf-8") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS  # optional columns only when used


def test_optional_columns_are_written_when_used(tmp_path: Path) -> None:
    rows = [_row(title_raw=" Bell  ", orig_sample_rate=48000)]
    path = write_manifest(tmp_path / "m.csv", rows)
    header = next(csv.reader(open(path, encoding="utf-8")))
    assert "title_raw" in header and "orig_sample_rate" in header and "duplicate_of" not in header
    assert read_manifest(path)[0].orig_sample_rate == 48000


def test_headroom_columns_round_trip_and_are_checked(tmp_path: Path) -> None:
    rows = [_row(gain_db=-3.25, peak_dbfs=3.26, clipped_samples=0), _row(id="soundbible:2", gain_db=0.0,
                                                                       peak_dbfs=-6.0, clipped_samples=12)]
    path = write_manifest(tmp_path / "m.csv", rows)
    assert read_manifest(path) == rows
    for column, value, message in (("gain_db", "0.5", "at most 0"), ("gain_db", "inf", "finite"),
                                   ("peak_dbfs", "x", "not a number"), ("clipped_samples", "-1", "zero or more")):
        text = path.read_text(encoding="utf-8").splitlines()
        header = text[0].split(",")
        cells = next(csv.reader([text[2]]))
        cells[header.index(column)] = value
        bad = tmp_path / "bad.csv"
        with open(bad, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([header, next(csv.reader([text[1]])), cells])
        with pytest.raises(ManifestError, match=message) as e:
            read_manifest(bad)
        assert (e.value.line, e.value.column) == (3, column)


@pytest.mark.parametrize("column,value,message", [
    ("duration_s", "abc", "not a number"),
    ("duration_s", "-1", "non-negative"),
    ("sample_rate", "44.1k", "not an integer"),
    ("channels", "0", "positive"),
    ("sha256", "XYZ", "sha256"),
    ("split", "training", "train, val, test"),
    ("tags", "['a']", "JSON list"),
    ("audio_path", "/abs/a.flac", "relative"),
    ("caption", "  ", "must not be empty"),
    ("id", "", "must not be empty"),
])
def test_malformed_value_names_row_and_column(tmp_path: Path, column: str, value: str, message: str) -> None:
    path = write_manifest(tmp_path / "m.csv", [_row(), _row(id="soundbible:2")])
    lines = list(csv.DictReader(open(path, encoding="utf-8")))
    lines[1][column] = value
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    with pytest.raises(ManifestError) as e:
        read_manifest(path)
    assert e.value.line == 3 and e.value.column == column
    assert message in str(e.value) and "row 3" in str(e.value) and column in str(e.value)


def test_missing_column_and_unknown_column_are_errors(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("id,source\nx,y\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="missing column"):
        read_manifest(p)
    path = write_manifest(tmp_path / "ok.csv", [_row()])
    text = path.read_text(encoding="utf-8").splitlines()
    path.write_text(text[0] + ",extra\n" + text[1] + ",1\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="unknown column"):
        read_manifest(path)


def test_validate_checks_ids_agree_and_audio_exists(tmp_path: Path) -> None:
    path = write_manifest(tmp_path / "m.csv", [_row(), _row(caption="another caption")])
    assert len(validate_manifest(path)) == 2
    with pytest.raises(ManifestError, match="audio file not found"):
        validate_manifest(path, check_audio=True)
    (tmp_path / "audio/soundbible").mkdir(parents=True)
    (tmp_path / "audio/soundbible/1.flac").write_bytes(b"x")
    validate_manifest(path, check_audio=True)
    write_manifest(path, [_row(), _row(audio_path="audio/other.flac")])
    with pytest.raises(ManifestError, match="different audio_path") as e:
        validate_manifest(path)
    assert e.value.line == 3


def test_published_csv_reads_all_rows_with_ids() -> None:
    rows = read_published_csv(PUBLISHED_CSV)
    assert len(rows) == 4525
    ids = [r.id for r in rows]
    assert len(set(ids)) == 4525
    assert sum(r.source == "bigsoundbank" for r in rows) == 2467
    assert sum(r.source == "soundbible" for r in rows) == 2058
    assert "bigsoundbank:0100" in ids and "soundbible:2219" in ids


def test_published_csv_round_trips_byte_for_byte(tmp_path: Path) -> None:
    out = write_published_csv(tmp_path / "p.csv", read_published_csv(PUBLISHED_CSV))
    assert out.read_bytes() == PUBLISHED_CSV.read_bytes()


def test_published_to_manifest_and_back_keeps_every_field(tmp_path: Path) -> None:
    rows = read_published_csv(PUBLISHED_CSV)
    manifest = published_to_manifest(rows)
    assert [m.id for m in manifest] == [r.id for r in rows]  # nothing left out, even rows without text
    uncaptionable = [m for m in manifest if not m.caption]
    assert len(uncaptionable) == 5 and all(not m.title and not m.description and not m.split for m in uncaptionable)
    path = write_manifest(tmp_path / "m.csv", manifest)
    back = manifest_to_published(read_manifest(path))
    assert back == rows  # every field, raw tags with their repeats included
    assert write_published_csv(tmp_path / "p.csv", back).read_bytes() == PUBLISHED_CSV.read_bytes()


def test_only_text_less_rows_without_split_may_lack_a_caption(tmp_path: Path) -> None:
    base = ManifestRow(id="soundbible:1", source="soundbible", audio_path="a.wav", caption="")
    write_manifest(tmp_path / "ok.csv", [base])
    assert read_manifest(tmp_path / "ok.csv")[0].caption == ""
    for bad in (dict(split="train"), dict(title="Dog")):
        write_manifest(tmp_path / "bad.csv", [ManifestRow(**{**base.__dict__, **bad})])
        with pytest.raises(ManifestError, match="caption"):
            read_manifest(tmp_path / "bad.csv")


def test_parse_tags_repairs_leaked_html() -> None:
    broken = ("['hiccup', 'drunk', <li><i class=\"icofont-sound-wave icofont-1x\"></i> "
              "<a href=\"tags-alcohol-bashed.html\">alcohol bashed</a></li>, 'alcohol bashed', 'groggy',")
    assert parse_tags(broken) == ["hiccup", "drunk", "alcohol bashed", "groggy"]
    assert parse_tags("['a', ' ', 'b', 'a']") == ["a", "b"]
    assert parse_tags("") == []
    published = [r for r in read_published_csv(PUBLISHED_CSV) if "<li>" in r.tags]
    assert len(published) == 3
    assert all("<" not in t for r in published for t in parse_tags(r.tags))


def test_captions_follow_the_paper() -> None:
    assert make_caption("Forest", "Birds singing.") == "Forest. Birds singing."
    assert make_caption("Forest.", "Birds singing.") == "Forest. Birds singing."
    assert make_caption("Forest", "Birds singing.", "description") == "Birds singing."
    assert make_caption("Forest", "") == "Forest"
    assert make_caption("Wind", "wind.") == "wind."  # a description repeating the title is not doubled
    with pytest.raises(ValueError, match="caption mode"):
        make_caption("a", "b", "title")


@pytest.mark.parametrize("view,download,expected", [
    ("https://soundbible.com/1782-Tyrannosaurus-Rex-.html", "", "1782"),
    ("", "https://soundbible.com/grab.php?id=2219&type=wav", "2219"),
    ("https://bigsoundbank.com/detail-0007-door.html", "", "0007"),
    ("https://bigsoundbank.com/sound-0100-foret.html", "", "0100"),
    ("https://bigsoundbank.com/forest-s0100.html", "", "0100"),
    ("", "https://bigsoundbank.com/UPLOAD/flac/2715.flac", "2715"),
])
def test_source_ids_from_every_url_era(view: str, download: str, expected: str) -> None:
    assert source_id_of(view, download) == expected


def test_unknown_url_is_an_error() -> None:
    with pytest.raises(ValueError, match="cannot find a sound id"):
        source_id_of("https://example.org/x", "")


def test_atomic_path_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    from manifests.atomic import atomic_path
    target = tmp_path / "sub" / "m.csv"
    with atomic_path(target) as tmp:
        tmp.write_text("old")
    assert target.read_text() == "old"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old"
    assert [p.name for p in target.parent.iterdir()] == ["m.csv"]  # no temporary file left behind


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_atomic_path_gives_the_permissions_a_plain_open_would(tmp_path: Path, umask: int) -> None:
    from manifests.atomic import atomic_path
    old = os.umask(umask)
    try:
        with open(tmp_path / "plain.csv", "w") as f:
            f.write("x")
        with atomic_path(tmp_path / "new.csv") as tmp:
            tmp.write_text("x")
        existing = tmp_path / "existing.csv"
        existing.write_text("old")
        existing.chmod(0o640)
        with atomic_path(existing) as tmp:
            tmp.write_text("new")
    finally:
        os.umask(old)
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(tmp_path / "new.csv") == mode(tmp_path / "plain.csv") == 0o666 & ~umask
    assert mode(existing) == 0o640 and existing.read_text() == "new"


def test_crawl_record_reader_reports_every_bad_line_and_keeps_going(tmp_path):
    from manifests.crawl_record import FIELDS, CrawlRecord, last_records, read_crawl_records, record_line

    good = CrawlRecord(id="soundbible:1", source="soundbible", source_id="1", title="Dog", status="ok")
    lines = [
        b"\xef\xbb\xbf" + record_line(good).encode(),            # 1: a BOM before the first record
        b"\n",                                                    # 2: blank: skipped
        b'{"id": "x:2", "title": "caf\xe9"}\n',                  # 3: latin-1 byte
        b'{"id": "x:3", "title": \n',                            # 4: torn / bad JSON
        b'["not", "an", "object"]\n',                             # 5
        b'{"title": "no id"}\n',                                  # 6
        b'{"id": 7}\n',                                           # 7: id not a string
        b'{"id": "x:8", "file_path": "a\\u0000b", "extra": 1}\n',  # 8: NUL escaped in JSON, an unknown key
        record_line(CrawlRecord(id="soundbible:1", status="http_error")).encode(),  # 9: newer record of id 1
    ]
    path = tmp_path / "items.jsonl"
    path.write_bytes(b"".join(lines))
    got = list(read_crawl_records(path))
    assert [g.line for g in got] == [1, 3, 4, 5, 6, 7, 8, 9]
    assert got[0].record == good and got[0].error is None
    errors = {g.line: g.error for g in got if g.record is None}
    assert set(errors) == {3, 4, 5, 6, 7}
    assert errors[3].startswith("not UTF-8") and errors[4].startswith("not JSON")
    assert "object" in errors[5] and errors[6] == "no id" and "7" in errors[7]
    assert got[6].record.file_path == "a\x00b"  # a record: what its NUL means is for curation to judge
    assert got[2].where == f"{path}:4"
    last = last_records(path)
    assert list(last) == ["x:8", "soundbible:1"] and last["soundbible:1"].status == "http_error"
    assert list(CrawlRecord(id="a").to_dict()) == list(FIELDS)


def test_crawl_records_round_trip(tmp_path):
    from manifests.crawl_record import CrawlRecord, last_records, write_crawl_records

    records = [CrawlRecord(id=f"s:{i}", tags=["a", "b"], duration_s=1.5, title="Ünïcode ✓") for i in range(3)]
    path = write_crawl_records(tmp_path / "items.jsonl", records)
    assert list(last_records(path).values()) == records
    assert "✓" in path.read_text(encoding="utf-8")  # written as UTF-8, not \u escapes
