"""wt5k-fetch audiocaps: yt-dlp's real code (generic extractor, ffmpeg from imageio-ffmpeg) against a loopback
media server (werkzeug's send_file: Range as its maintainers implement it) serving WAVs longer than 10 s; each
clip is checked sample by sample against the source at start_time. Faults: 404, 403, 429 with Retry-After."""
from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import soundfile as sf

from crawler.fetch.audiocaps import classify, read_audiocaps_csv
from crawler.fetch.cli import main
from manifests.crawl_record import last_records

pytest.importorskip("yt_dlp")
pytest.importorskip("imageio_ffmpeg")
werkzeug = pytest.importorskip("werkzeug")

RATE = 44100


class MediaServer:
    """``/media/<youtube_id>.wav`` from a folder; ``faults[youtube_id] = (status, headers)`` answers that instead."""

    def __init__(self, folder):
        from werkzeug.serving import make_server
        from werkzeug.utils import send_file
        from werkzeug.wrappers import Request, Response

        self.folder, self.faults, self.hits = folder, {}, []

        def app(environ, start_response):
            req = Request(environ)
            ytid = req.path.rsplit("/", 1)[-1].removesuffix(".wav")
            self.hits.append(ytid)
            if ytid in self.faults:
                code, headers = self.faults[ytid]
                return Response("no", code, headers=headers)(environ, start_response)
            path = folder / f"{ytid}.wav"
            if not path.is_file():
                return Response("not found", 404)(environ, start_response)
            return send_file(str(path), environ, conditional=True)(environ, start_response)

        self.httpd = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.httpd.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def template(self) -> str:
        return self.url + "/media/{youtube_id}.wav"


@pytest.fixture
def media(tmp_path):
    folder = tmp_path / "media"
    folder.mkdir()
    s = MediaServer(folder)
    yield s
    s.httpd.shutdown()


def source_wav(folder, ytid: str, seconds: float, seed: int) -> np.ndarray:
    data = (np.random.default_rng(seed).standard_normal((int(RATE * seconds), 2)) * 0.2).clip(-1, 1)
    sf.write(folder / f"{ytid}.wav", data, RATE, subtype="PCM_16")
    return sf.read(folder / f"{ytid}.wav", dtype="float32", always_2d=True)[0]


def write_csv(path, rows):
    path.write_text("audiocap_id,youtube_id,start_time,caption\n" + "".join(f"{i},{y},{s},{c}\n" for i, (y, s, c) in enumerate(rows)))
    return path


def run(out, csv, media, *extra):
    return main(["audiocaps", "--out", str(out), "--csv", f"train={csv}", "--splits", "train", "--url-template",
                 media.template, "--delay", "0", "--quiet", *extra])


def test_exact_sections_statuses_resume_and_coverage(media, tmp_path, capsys):
    src_a = source_wav(media.folder, "AAAAAAAAAAA", 25, 1)
    src_b = source_wav(media.folder, "BBBBBBBBBBB", 14, 2)
    media.faults["CCCCCCCCCCC"] = (403, {})  # region/age: blocked
    media.faults["HHHHHHHHHHH"] = (200, {"Content-Type": "text/html"})  # a page where media was expected
    csv = write_csv(tmp_path / "train.csv", [
        ("AAAAAAAAAAA", 7, "a noise"), ("AAAAAAAAAAA", 7, "the same clip, a second caption"),
        ("BBBBBBBBBBB", "0.0", "another"), ("CCCCCCCCCCC", 3, "blocked"), ("DDDDDDDDDDD", 3, "removed"), ("HHHHHHHHHHH", 3, "a page"),
        ("", 3, "empty id"), ("x;rm -rf ~", 3, "shell characters"), ("EEEEEEEEEEE", "soon", "not a number")])
    out = tmp_path / "data"
    assert run(out, csv, media) == 1  # some clips failed: each is recorded
    table = capsys.readouterr().out
    root = out / "audiocaps" / "v1"
    for ytid, start, src in (("AAAAAAAAAAA", 7, src_a), ("BBBBBBBBBBB", 0, src_b)):
        clip, rate = sf.read(root / "clips" / f"{ytid}_{start}.flac", dtype="float32", always_2d=True)
        assert rate == RATE and clip.shape == (10 * RATE, 2), "exactly [start, start + 10 s]"
        np.testing.assert_array_equal(clip, src[start * RATE:(start + 10) * RATE])  # sample by sample
    records = last_records(root / "items.jsonl")
    assert records["audiocaps:AAAAAAAAAAA_7"].status == "ok" and records["audiocaps:AAAAAAAAAAA_7"].sha256
    assert records["audiocaps:CCCCCCCCCCC_3"].status == "blocked"
    assert records["audiocaps:DDDDDDDDDDD_3"].status == "unavailable"
    assert records["audiocaps:HHHHHHHHHHH_3"].status == "error" and records["audiocaps:HHHHHHHHHHH_3"].error
    bad = sorted(r.error for r in records.values() if r.status == "bad_row")
    assert len(bad) == 3 and any("empty youtube_id" in b for b in bad) and any("'x;rm -rf ~'" in b for b in bad)
    assert any("'soon' is not a number" in b for b in bad) and all(str(csv.name) in b for b in bad)
    assert "train" in table and "40,582" in table
    coverage = json.loads((root / "coverage.json").read_text())["train"]
    assert coverage == {"clips": 5, "captions": 6, "obtained": 2, "captions_covered": 3, "bad_rows": 3,
                        "statuses": {"ok": 2, "blocked": 1, "unavailable": 1, "error": 1}}
    assert not (root / ".incoming").exists() and not list((root / "clips").glob("*.part"))
    # resume: nothing done is fetched again; failures only with --retry-failed
    media.hits.clear()
    assert run(out, csv, media) == 1 and media.hits == []
    del media.faults["CCCCCCCCCCC"]
    source_wav(media.folder, "CCCCCCCCCCC", 12, 3)
    capsys.readouterr()
    cookies = tmp_path / "cookies.txt"  # yt-dlp saves its jar on exit: to a copy under --out, never to this file
    cookies.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tconsent\tyes\n")
    before = cookies.read_bytes()
    assert run(out, csv, media, "--retry-failed", "--cookies", str(cookies)) == 1
    assert cookies.read_bytes() == before and (root / ".cookies.txt").is_file()
    assert set(media.hits) == {"CCCCCCCCCCC", "DDDDDDDDDDD", "HHHHHHHHHHH"}
    assert last_records(root / "items.jsonl")["audiocaps:CCCCCCCCCCC_3"].status == "ok"
    # the clips are where the AudioCaps converter looks for them
    from manifests.audio_formats import is_audio_name
    assert all(is_audio_name(p.name) for p in (root / "clips").iterdir())


def test_repeated_429_honours_retry_after_then_stops_with_a_clear_message(media, tmp_path, capsys):
    for ytid in ("FFFFFFFFFFF", "GGGGGGGGGGG"):
        media.faults[ytid] = (429, {"Retry-After": "1"})
    csv = write_csv(tmp_path / "train.csv", [("FFFFFFFFFFF", 1, "x"), ("GGGGGGGGGGG", 1, "y")])
    out = tmp_path / "data"
    assert run(out, csv, media, "--workers", "1", "--max-429", "3") == 3
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "429 Too Many Requests 3 times in a row" in err and "run the same command again" in err
    assert len(err.splitlines()) == 1
    assert len(media.hits) == 3, "stopped after the third 429: the second clip was never asked for"
    assert captured.out.count("waiting 1 s (Retry-After)") == 2
    records = last_records(out / "audiocaps" / "v1" / "items.jsonl")
    assert records["audiocaps:FFFFFFFFFFF_1"].status == "rate_limited"


def test_bad_csvs_are_one_line_errors(tmp_path, capsys):
    png = tmp_path / "train.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    assert main(["audiocaps", "--out", str(tmp_path / "o"), "--csv", f"train={png}", "--splits", "train"]) == 2
    assert "train.csv: not UTF-8 text" in capsys.readouterr().err
    other = tmp_path / "x.csv"
    other.write_text("file_name,caption\na.wav,b\n")
    assert main(["audiocaps", "--out", str(tmp_path / "o"), "--csv", f"train={other}", "--splits", "train"]) == 2
    assert "not an AudioCaps CSV" in capsys.readouterr().err
    rows = read_audiocaps_csv(write_csv(tmp_path / "ok.csv", [("AAAAAAAAAAA", "12.0", "c")]), "train")
    assert [c.stem for c in rows.clips.values()] == ["AAAAAAAAAAA_12"]


def test_a_planted_items_log_link_is_a_one_line_error_and_its_target_untouched(tmp_path, capsys):
    outside = tmp_path / "outside.jsonl"
    folder = tmp_path / "o" / "audiocaps" / "v1"
    folder.mkdir(parents=True)
    (folder / "items.jsonl").symlink_to(outside)
    csv_path = write_csv(tmp_path / "train.csv", [("AAAAAAAAAAA", "12.0", "c")])
    assert main(["audiocaps", "--out", str(tmp_path / "o"), "--csv", f"train={csv_path}", "--splits", "train",
                 "--quiet"]) == 2
    assert "items.jsonl: it resolves to" in capsys.readouterr().err and not outside.exists()


def test_yt_dlp_messages_map_to_statuses():
    assert classify("ERROR: [youtube] abc: Video unavailable. This video has been removed by the uploader") == "unavailable"
    assert classify("ERROR: [youtube] abc: Private video. Sign in if you've been granted access") == "unavailable"
    assert classify("ERROR: [youtube] abc: Sign in to confirm your age. This video may be inappropriate") == "blocked"
    assert classify("The uploader has not made this video available in your country") == "blocked"
    assert classify("Unable to download webpage: HTTP Error 429: Too Many Requests") == "rate_limited"
    assert classify("Postprocessing: audio conversion failed") == "error"
