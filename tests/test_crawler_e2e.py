"""End-to-end crawls of the mirror, one subprocess for the three spiders (the reactor cannot restart)."""
from __future__ import annotations

import hashlib
import io

import pytest
import soundfile as sf

from crawler.mirror import start_mirror
from tests.crawler_helpers import audio_hits, edge_cases, items_by_id, run_crawl
from manifests import PUBLISHED_CSV, PublishedRow, parse_tags, read_published_csv, write_published_csv


@pytest.fixture(scope="module")
def crawl(tmp_path_factory, edge_csv):
    tmp = tmp_path_factory.mktemp("e2e")
    csv_path = edge_csv
    with start_mirror(csv_path) as mirror:
        # One sound only on the category pages, one listed under its 2022 URL: both must be found.
        mirror.state.bsb[0].in_sitemap = False
        mirror.state.bsb[1].in_sitemap, mirror.state.bsb[1].sitemap_era = True, "2022"
        run_crawl(tmp / "out", ["soundbible", "bigsoundbank", "manifest"], mirror, "--replay", str(csv_path))
        yield {"tmp": tmp, "out": tmp / "out", "mirror": mirror, "csv": csv_path,
               "hits": audio_hits(mirror)}


def check_files(folder, records):
    for r in records:
        assert r["status"] == "ok", r
        path = folder / r["file_path"]
        data = path.read_bytes()
        assert len(data) == r["file_size"] and hashlib.sha256(data).hexdigest() == r["sha256"]
        assert path.suffix == f".{r['audio_format']}"
        info = sf.info(io.BytesIO(data))
        assert info.frames > 0


def test_soundbible_spider(crawl):
    records = items_by_id(crawl["out"], "soundbible")
    cases = {f"soundbible:{c['id']}": c for c in edge_cases()["soundbible"]}
    assert set(records) == set(cases)
    check_files(crawl["out"] / "soundbible", records.values())
    newest_first = sorted(cases, key=lambda i: -int(i.split(":")[1]))
    for position, sound_id in enumerate(newest_first):  # listing followed to the end across pages
        r, c = records[sound_id], cases[sound_id]
        assert r["listing_position"] == position
        assert (r["title"], r["description"], r["tags"]) == (c["title"], c["description"], parse_tags(c["tags"]))
        assert r["author"] and r["license"] and r["spider"] == "soundbible" and r["crawl_time"].endswith("+00:00")
        assert r["audio_format"] == "wav" and r["download_link"].endswith("type=wav")
        assert r["view_link"] == f"{crawl['mirror'].soundbible_url}/{c['href']}"


def test_bigsoundbank_spider(crawl):
    mirror = crawl["mirror"]
    records = items_by_id(crawl["out"], "bigsoundbank")
    assert set(records) == {s.id for s in mirror.state.bsb}
    check_files(crawl["out"] / "bigsoundbank", records.values())
    for s in mirror.state.bsb:
        r = records[s.id]
        assert r["audio_format"] == "flac" and r["file_path"] == f"files/bigsoundbank/{s.source_id}.flac"
        info = sf.info(str(crawl["out"] / "bigsoundbank" / r["file_path"]))
        assert (info.samplerate, info.channels) == (r["sample_rate"], r["channels"]) == (s.sample_rate, s.channels)
        assert r["duration_s"] == pytest.approx(info.frames / info.samplerate, abs=0.01)
    assert records[mirror.state.bsb[1].id]["view_link"].endswith(f"detail-{mirror.state.bsb[1].source_id}-"
                                                                 f"{mirror.state.bsb[1].slug}.html")


def test_manifest_replay(crawl):
    records = items_by_id(crawl["out"], "manifest")
    rows = read_published_csv(crawl["csv"])
    assert set(records) == {r.id for r in rows}
    check_files(crawl["out"] / "manifest", records.values())
    for row in rows:
        r = records[row.id]
        assert (r["title"], r["description"], r["tags"]) == (row.title, row.description, parse_tags(row.tags))
        assert r["download_link"].split("/", 3)[3] == row.download_link.split("/", 3)[3]  # same path, mirror host
        assert r["source"] == row.source and r["spider"] == "manifest"
    assert records["soundbible:2219"]["listing_position"] == 0  # from the published fname "..._0.wav"


def test_second_run_over_a_finished_crawl_downloads_nothing(crawl):
    before = dict(crawl["mirror"].hits)
    records = {s: items_by_id(crawl["out"], s) for s in ("soundbible", "bigsoundbank")}
    run_crawl(crawl["out"], ["soundbible", "bigsoundbank"], crawl["mirror"])
    assert audio_hits(crawl["mirror"]) == crawl["hits"]  # no audio fetched again
    new_pages = [p for p in crawl["mirror"].hits if p not in before]
    assert not any(p.endswith(".html") and "free-sound-effects" not in p and "categor" not in p for p in new_pages)
    for spider, old in records.items():
        assert items_by_id(crawl["out"], spider) == old  # nothing lost, nothing duplicated


def test_new_sounds_only_are_fetched_on_a_later_run(crawl):
    tmp = crawl["tmp"]
    extra = [r for r in read_published_csv(PUBLISHED_CSV) if r.source == "soundbible"][1:4]  # 2218, 2217, 2215
    rows = read_published_csv(crawl["csv"]) + extra
    bigger = write_published_csv(tmp / "bigger.csv", [PublishedRow(**vars(r)) for r in rows])
    with start_mirror(bigger) as mirror:
        run_crawl(crawl["out"], ["soundbible"], mirror)
        fetched = {p.split("id=")[1].split("&")[0] for p in audio_hits(mirror) if p.startswith("/grab.php")}
    records = items_by_id(crawl["out"], "soundbible")
    assert fetched == {r.source_id for r in extra}
    assert len(records) == 17 + 3 and all(r["status"] == "ok" for r in records.values())
