"""Parse tests on pages built from the real edge cases (tests/fixtures/site_edge_cases.json), and the
pure helpers of the crawler: format sniffing, safe paths, Retry-After, resume state."""
from __future__ import annotations

import json

import pytest
from scrapy.http import HtmlResponse

from crawler.mirror import pages
from crawler.mirror.audio import AudioProvider
from crawler.mirror.catalog import load_catalog
from crawler.middlewares import retry_after_seconds
from crawler.pipelines import audio_relpath, sniff_audio_format, write_atomically
from crawler.spiders import bigsoundbank, soundbible
from crawler.spiders.base import audio_format_of
from crawler.spiders.manifest import candidate_urls
from crawler.state import CrawlState
from crawler.statuses import DownloadFailed
from manifests import parse_tags

from tests.crawler_helpers import edge_cases

SB_BASE, BSB_BASE = "https://soundbible.com", "https://bigsoundbank.com"


@pytest.fixture(scope="module")
def catalog(edge_csv):
    sounds = load_catalog(edge_csv)
    audio = AudioProvider()
    for s in sounds:
        audio.describe(s)
    return {s.id: s for s in sounds}


def html(url: str, text: str) -> HtmlResponse:
    return HtmlResponse(url=url, body=text.encode("utf-8"), encoding="utf-8")


@pytest.mark.parametrize("case", edge_cases()["soundbible"], ids=lambda c: str(c["id"]))
def test_soundbible_detail_keeps_raw_texts(case, catalog):
    sound = catalog[f"soundbible:{case['id']}"]
    page = pages.sb_detail(sound)
    item = soundbible.parse_detail(html(f"{SB_BASE}/{case['href']}", page), position=7)
    assert item["id"] == f"soundbible:{case['id']}" and item["source_id"] == str(case["id"])
    assert item["title"] == case["title"]  # trailing/double spaces kept (the page's h3)
    assert item["description"] == case["description"]  # leading space, stripped-punctuation double spaces
    assert item["tags"] == parse_tags(case["tags"])
    assert item["author"] == sound.author and item["license"] == sound.license
    assert item["listing_position"] == 7 and item["duration_s"] is None
    wav, mp3, player = item["audio_urls"]
    assert wav == f"{SB_BASE}/grab.php?id={case['id']}&type=wav" and mp3.endswith("type=mp3")
    assert player.startswith(f"{SB_BASE}/mp3/") and " " not in player


def test_soundbible_listing_title_wins_and_inline_link_text_is_kept(catalog):
    sound = catalog["soundbible:2124"]
    page = pages.sb_detail(sound)
    assert ">here</a>" in page  # the mirror renders the real inline link
    item = soundbible.parse_detail(html(f"{SB_BASE}/{sound.slug}", page), listing_title="From the listing ")
    assert item["title"] == "From the listing "
    assert "YouTube click here." in item["description"]


def test_soundbible_page_without_metadata_records_nothing_invented():
    page = "<html><body><section id='course-details'><div class='col-lg-8'><h3>X</h3></div></section></body></html>"
    item = soundbible.parse_detail(html(f"{SB_BASE}/5-X.html", page))
    assert item["id"] == "soundbible:5" and item["title"] == "X"
    assert item["description"] is None and item["author"] is None and item["license"] is None
    assert item["tags"] == [] and item["audio_urls"] == []


def test_soundbible_author_and_licence_come_from_the_information_block_only(catalog):
    """A description that says "Recorded by ..." or "Public Domain" names neither the author nor the licence."""
    import dataclasses
    sound = dataclasses.replace(catalog["soundbible:2219"], author="Daniel Simion", license="Attribution 3.0",
                                description=" Recorded by my uncle in 1990, now Public Domain. A plane lands.")
    item = soundbible.parse_detail(html(f"{SB_BASE}/{sound.slug}", pages.sb_detail(sound)))
    assert item["description"] == sound.description  # the text is kept in the description
    assert (item["author"], item["license"]) == ("Daniel Simion", "Attribution 3.0")
    # without an information block nothing is taken from the free text
    page = ("<html><body><section id='course-details'><div class='col-lg-8'><h3>X</h3>"
            "<p>Recorded by Someone Else. Public Domain.</p></div></section>"
            "<footer><p>Recorded by the footer</p></footer></body></html>")
    item = soundbible.parse_detail(html(f"{SB_BASE}/5-X.html", page))
    assert item["author"] is None and item["license"] is None


@pytest.mark.parametrize("era", ["today", "2022"])
@pytest.mark.parametrize("case", edge_cases()["bigsoundbank"], ids=lambda c: c["fname"])
def test_bigsoundbank_detail_both_eras(case, era, catalog):
    sid = case["fname"].split(".")[0]
    sound = catalog[f"bigsoundbank:{sid}"]
    if era == "today":
        url, page = BSB_BASE + pages.bsb_today_url(sound), pages.bsb_detail_today(sound, BSB_BASE)
    else:
        url, page = case["view_link"], pages.bsb_detail_2022(sound)
    item = bigsoundbank.parse_detail(html(url, page))
    assert item["id"] == f"bigsoundbank:{sid}" and len(item["source_id"]) == 4
    # "\r\n" inside, empty titles, "A#" kept; HTML text itself normalises "\r\n" to "\n" (JSON-LD does not)
    assert item["title"] == (case["title"] if era == "today" else case["title"].replace("\r\n", "\n"))
    assert item["description"] == case["description"]  # U+200B and quotes kept
    assert item["duration_s"] == pytest.approx(sound.duration_s, abs=0.01)
    assert (item["sample_rate"], item["bit_depth"], item["channels"]) == (
        sound.sample_rate, sound.bit_depth, sound.channels)
    assert item["recorder"] == sound.recorder and item["author"] == "Joseph SARDIN"
    formats = [audio_format_of(u) for u in item["audio_urls"]]
    assert formats[0] == "flac" and formats[-1] == "mp3" and formats.index("wav") < formats.index("ogg")
    if era == "today":
        assert item["license"] == "CC0 1.0" and item["tags"] == sound.tags
    else:
        assert item["license"] == "free of charge and royalty free"


def test_bigsoundbank_page_by_sound_number_when_url_has_no_id():
    page = "<html><body><h1>Door</h1><ul><li>Sound number: 2,715</li></ul></body></html>"
    item = bigsoundbank.parse_detail(html(f"{BSB_BASE}/some-page.html", page))
    assert item["id"] == "bigsoundbank:2715" and item["title"] == "Door"
    assert item["duration_s"] is None and item["sample_rate"] is None and item["audio_urls"] == []


@pytest.mark.parametrize("url,sid", [
    ("https://bigsoundbank.com/detail-0100-forest.html", "0100"),
    ("https://bigsoundbank.com/sound-0457-electrocardiogramme.html", "0457"),
    ("https://bigsoundbank.com/forest-s0100.html", "0100"),
    ("https://bigsoundbank.com/s2715.html", "2715"),
    ("https://bigsoundbank.com/categories.html", None),
])
def test_bigsoundbank_ids_from_every_url_era(url, sid):
    assert bigsoundbank.detail_id(url) == sid


def test_iso_durations():
    assert bigsoundbank.iso_duration_s("PT1M20S") == 80
    assert bigsoundbank.iso_duration_s("PT0.706S") == pytest.approx(0.706)
    assert bigsoundbank.iso_duration_s("PT1H") == 3600
    assert bigsoundbank.iso_duration_s("soon") is None and bigsoundbank.iso_duration_s(None) is None


@pytest.mark.parametrize("head,fmt", [
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "wav"), (b"fLaC\x00\x00\x00\x22", "flac"), (b"OggS\x00\x02", "ogg"),
    (b"ID3\x04\x00", "mp3"), (b"\xff\xfb\x90\x64", "mp3"), (b"FORM\x00\x00\x00\x10AIFF", "aiff"),
    (b"<!DOCTYPE html><html>", None), (b"", None), (b"RIFF\x00\x00\x00\x00AVI ", None),
])
def test_sniff_audio_format(head, fmt):
    assert sniff_audio_format(head) == fmt


def test_sniff_matches_every_generated_format(catalog):
    audio = AudioProvider()
    sound = catalog["soundbible:2219"]
    for fmt in ("wav", "flac", "ogg", "mp3"):
        assert sniff_audio_format(audio.encode(sound, fmt)[:16]) == fmt


@pytest.mark.parametrize("source,sid", [("soundbible", "../../../etc/passwd"), ("..", ".."),
                                        ("bigsoundbank", "/abs/x y"), ("soundbible", "")])
def test_hostile_ids_cannot_leave_the_output_folder(tmp_path, source, sid):
    rel = audio_relpath(source, sid, "wav")
    assert rel.startswith("files/") and ".." not in rel.split("/") and rel.count("/") == 2
    target = write_atomically(tmp_path / "out", rel, b"RIFF")
    assert target.resolve().is_relative_to((tmp_path / "out").resolve())
    with pytest.raises(DownloadFailed) as e:
        write_atomically(tmp_path / "out", "../escape.wav", b"x")
    assert e.value.status == "unsafe_path" and not (tmp_path / "escape.wav").exists()


def test_retry_after_values():
    assert retry_after_seconds(b"7") == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470) == pytest.approx(10)
    assert retry_after_seconds(None) is None and retry_after_seconds(b"soon") is None


def test_manifest_candidates_lossless_first():
    urls = candidate_urls("bigsoundbank", "0100", "https://bigsoundbank.com/UPLOAD/wav/0100.wav")
    assert urls[0].endswith("/UPLOAD/wav/0100.wav") and urls[1].endswith("/UPLOAD/flac/0100.flac")
    assert urls[-1].endswith(".mp3") and len(urls) == len(set(urls))
    sb = candidate_urls("soundbible", "2219", "https://soundbible.com/grab.php?id=2219&type=wav")
    assert sb == ["https://soundbible.com/grab.php?id=2219&type=wav", "https://soundbible.com/grab.php?id=2219&type=mp3"]


def test_state_survives_a_torn_line_and_verifies_files(tmp_path):
    folder = tmp_path / "soundbible"
    good = write_atomically(folder, "files/soundbible/1.wav", b"RIFFdataWAVE")
    import hashlib
    ok = {"id": "soundbible:1", "status": "ok", "file_path": "files/soundbible/1.wav", "file_size": 12,
          "sha256": hashlib.sha256(good.read_bytes()).hexdigest()}
    changed = {"id": "soundbible:2", "status": "ok", "file_path": "files/soundbible/1.wav", "file_size": 12,
               "sha256": "0" * 64}
    failed = {"id": "soundbible:3", "status": "http_error", "file_path": None}
    lines = [json.dumps(r) for r in (failed, ok, changed, {**failed, "error": "again"})]
    (folder / "items.jsonl").write_text("\n".join(lines) + '\n{"id": "soundbible:4", "sta')
    (folder / "files" / "soundbible" / ".9.wav.xyz.part").write_bytes(b"half")
    state = CrawlState(folder).open()
    assert not state.should_fetch("soundbible:1")       # ok and verified
    assert state.should_fetch("soundbible:2")           # ok but the file does not match
    assert not state.should_fetch("soundbible:3")       # failed: only with retry_failed
    assert CrawlState(folder, retry_failed=True).open().should_fetch("soundbible:3")
    assert state.should_fetch("soundbible:4")           # torn line: never finished
    assert not list(folder.rglob("*.part"))
    state.close()
    records = [json.loads(x) for x in (folder / "items.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["soundbible:3", "soundbible:1", "soundbible:2"]
    assert records[0]["error"] == "again"  # the last record of an id wins


def test_polite_defaults_and_the_no_polite_switch():
    from crawler.cli import build_settings

    polite = build_settings("out")
    soundbible.SoundBibleSpider.update_settings(polite)
    assert polite.getbool("ROBOTSTXT_OBEY") and polite.getbool("AUTOTHROTTLE_ENABLED")
    assert polite.getint("CONCURRENT_REQUESTS_PER_DOMAIN") == 1 and polite.getfloat("DOWNLOAD_DELAY") >= 1
    assert "WavText5K" in polite["USER_AGENT"] and "+http" in polite["USER_AGENT"]
    assert polite.getint("WT5K_AUDIO_MAXSIZE") >= 800 * 1024 * 1024  # a 45-minute 48 kHz/24-bit stereo WAV
    assert polite.getint("DOWNLOAD_MAXSIZE") <= 16 * 1024 * 1024  # pages: held in memory
    assert 429 in polite.getlist("RETRY_HTTP_CODES") or "429" in polite.getlist("RETRY_HTTP_CODES")
    assert polite["FILES_STORE"] == "out/soundbible"
    fast = build_settings("out", polite=False, overrides={"DOWNLOAD_DELAY": "0.5"})
    soundbible.SoundBibleSpider.update_settings(fast)
    assert not fast.getbool("AUTOTHROTTLE_ENABLED") and fast.getint("CONCURRENT_REQUESTS_PER_DOMAIN") > 1
    assert fast.getbool("ROBOTSTXT_OBEY")  # robots.txt is obeyed even then
    assert fast.getfloat("DOWNLOAD_DELAY") == 0.5  # an explicit --set still wins


def test_a_file_shared_by_two_sounds_is_stored_under_each_id(tmp_path):
    from crawler.pipelines import AudioDownloadPipeline
    from crawler.items import SoundItem

    pipe = AudioDownloadPipeline.__new__(AudioDownloadPipeline)  # only item_completed and the store are used
    pipe.store = type("Store", (), {"basedir": str(tmp_path)})()
    write_atomically(tmp_path, "files/soundbible/1.mp3", b"ID3data")
    cached = {"path": "files/soundbible/1.mp3", "size": 7, "checksum": "c", "format": "mp3"}
    item = pipe.item_completed([(True, cached)], SoundItem.new(source="soundbible", source_id="2"), None)
    assert item["file_path"] == "files/soundbible/2.mp3" and (tmp_path / item["file_path"]).read_bytes() == b"ID3data"


def test_a_full_disk_never_tears_items_jsonl(tmp_path, monkeypatch):
    """A write of items.jsonl that fails half-way (ENOSPC) is cut back to the last whole line, and later
    appends fail at once: the log stays readable, the sounds not recorded are fetched by the next run."""
    import errno
    import os

    from crawler import state as state_module
    from manifests.crawl_record import CrawlRecord, read_crawl_records

    st = CrawlState(tmp_path).open()
    st.append(CrawlRecord(id="soundbible:1", status="http_error", error="x"))
    real_write = os.write

    def half_then_full(fd, data):
        if fd == st._fd:
            real_write(fd, data[: len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(state_module.os, "write", half_then_full)
    for sid in ("2", "3"):
        with pytest.raises(OSError, match="No space left on device"):
            st.append(CrawlRecord(id=f"soundbible:{sid}", status="http_error", error="y"))
    monkeypatch.setattr(state_module.os, "write", real_write)
    lines = list(read_crawl_records(tmp_path / "items.jsonl"))
    assert [line.record.id for line in lines] == ["soundbible:1"] and lines[0].error is None
    st.close()
    reopened = CrawlState(tmp_path).open()
    assert reopened.should_fetch("soundbible:2") and not reopened.should_fetch("soundbible:1")
    reopened.close()


def test_a_download_that_cannot_be_written_is_aborted_and_leaves_no_file(tmp_path):
    from crawler.streaming import _BodyFile

    aborted = []
    body = _BodyFile(tmp_path, on_error=lambda: aborted.append(True))
    body.write(b"RIFF")

    def full(data):
        raise OSError(28, "No space left on device")

    body._file.write = full
    body.write(b"more")
    body.write(b"and more")
    assert aborted == [True] and body.error.errno == 28 and body.size == 4
    body.discard()
    assert list(tmp_path.iterdir()) == []
