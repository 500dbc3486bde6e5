"""Audio downloads stream to disk (crawler.streaming): an 80 MB WAV crawled in a subprocess lands complete
while the crawler's peak memory stays far below the file's size; size caps, failures and pages leave no
temporary file behind."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import soundfile as sf

from crawler.mirror import Faults, start_mirror
from crawler.state import PART_SUFFIX
from manifests.hashing import sha256_file
from crawler.streaming import StreamingDownloadHandler, check_private_api
from tests.crawler_helpers import crawl_command, edge_cases, items_by_id, measured_run
from manifests import PublishedRow, write_published_csv

BIG_ID = "soundbible:2124"       # "45min april rainstorm"; an even id: grab.php answers 302 to the static WAV
BIG_SECONDS = 480                # 44.1 kHz 16-bit stereo: about 85 MB
SCRAPY_HANDLER = "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"


def write_wav(path, seconds: int, rate: int = 44100) -> None:
    block = (np.random.default_rng(0).standard_normal((rate, 2)) * 0.2).astype(np.float32)
    with sf.SoundFile(path, "w", rate, 2, subtype="PCM_16") as f:
        for k in range(seconds):
            f.write(np.roll(block, k, axis=0))


def measured_crawl(out, mirror, *extra: str, returncode: int = 0) -> int:
    """Run a soundbible crawl in a subprocess; return its peak resident memory in bytes."""
    return measured_run(crawl_command(out, ["soundbible"], mirror, *extra), returncode)[0]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("streaming")
    case = next(c for c in edge_cases()["soundbible"] if f"soundbible:{c['id']}" == BIG_ID)
    csv_path = write_published_csv(tmp / "one.csv", [PublishedRow(**{
        k: case[k] for k in ("view_link", "download_link", "title", "description", "fname", "tags")})])
    audio = tmp / "audio"
    audio.mkdir()
    write_wav(audio / case["fname"], BIG_SECONDS)
    path = audio / case["fname"]
    return {"tmp": tmp, "csv": csv_path, "audio": audio, "fname": case["fname"], "size": path.stat().st_size,
            "sha256": sha256_file(path)}


def test_a_large_file_streams_to_disk_in_little_memory(big):
    tmp, size = big["tmp"], big["size"]
    assert size > 80e6
    with start_mirror(big["csv"]) as mirror:  # the same sound as generated short audio: the baseline
        baseline = measured_crawl(tmp / "small", mirror)
        assert items_by_id(tmp / "small", "soundbible")[BIG_ID]["file_size"] < 1e6
    with start_mirror(big["csv"], audio_dir=big["audio"]) as mirror:
        peak = measured_crawl(tmp / "big", mirror)
        # The same crawl through Scrapy's own handler holds the body in memory: the measure can tell.
        buffered = measured_crawl(tmp / "buffered", mirror, "--set",
                                  "DOWNLOAD_HANDLERS=" + json.dumps({"http": SCRAPY_HANDLER}))
        hops = [p for p in mirror.hits if "2124" in p or "rainstorm" in p.lower()]
    print(f"peak RSS: baseline {baseline / 1e6:.0f} MB, {size / 1e6:.0f} MB file streamed {peak / 1e6:.0f} MB, "
          f"buffered by Scrapy {buffered / 1e6:.0f} MB")
    for out in (tmp / "big", tmp / "buffered"):
        r = items_by_id(out, "soundbible")[BIG_ID]
        assert r["status"] == "ok" and r["audio_format"] == "wav", r
        assert (r["file_size"], r["sha256"]) == (size, big["sha256"])
        assert sha256_file(out / "soundbible" / r["file_path"]) == big["sha256"]
        assert not list(out.rglob(f"*{PART_SUFFIX}"))
    assert any(p.startswith("/grab.php") for p in hops) and any(p.startswith("/wav/") for p in hops)  # a 302
    assert peak - baseline < 0.4 * size
    assert buffered - baseline > 0.6 * size


def test_size_cap_while_streaming_is_too_large_and_leaves_no_file(big):
    """Without a Content-Length the cap can only be enforced while the body arrives: the temporary file
    that was being written is deleted and the sound recorded as too_large (every format tried)."""
    tmp = big["tmp"]
    small_audio = tmp / "small_audio"
    small_audio.mkdir()
    write_wav(small_audio / big["fname"], 20)  # 3.5 MB, and its MP3 (made by the mirror) over 200 kB
    with start_mirror(big["csv"], audio_dir=small_audio, faults=Faults(unsized={BIG_ID})) as mirror:
        measured_crawl(tmp / "capped", mirror, "--set", "WT5K_AUDIO_MAXSIZE=200000", returncode=1)  # none ok
    r = items_by_id(tmp / "capped", "soundbible")[BIG_ID]
    attempts = r["error"].split(" | ")
    assert r["status"] == "too_large" and len(attempts) == 3, r
    assert all("too_large: Received" in a and "max size (200000)" in a for a in attempts)
    assert r["file_path"] is None and not list((tmp / "capped").rglob(f"*{PART_SUFFIX}"))
    assert not (tmp / "capped" / "soundbible" / "files").exists()


def test_a_body_that_stalls_midway_times_out_and_leaves_no_file(big):
    tmp = big["tmp"]
    with start_mirror(big["csv"], faults=Faults(stalled={BIG_ID}, slow_s=2.0)) as mirror:
        measured_crawl(tmp / "stalled", mirror, "--set", "DOWNLOAD_TIMEOUT=1", "--set", "RETRY_TIMES=0",
                       returncode=1)
    r = items_by_id(tmp / "stalled", "soundbible")[BIG_ID]
    assert r["status"] == "timeout" and r["error"].count("took longer than 1") == 3, r
    assert not list((tmp / "stalled").rglob(f"*{PART_SUFFIX}"))


def test_a_body_without_content_length_is_streamed_whole(big):
    tmp = big["tmp"]
    with start_mirror(big["csv"], faults=Faults(unsized={BIG_ID})) as mirror:
        measured_crawl(tmp / "unsized", mirror)
        data = mirror.state.audio.encode(mirror.state.sb_by_id["2124"], "wav")
    r = items_by_id(tmp / "unsized", "soundbible")[BIG_ID]
    assert r["status"] == "ok" and r["file_size"] == len(data)
    assert r["sha256"] == hashlib.sha256(data).hexdigest()
    assert (tmp / "unsized" / "soundbible" / r["file_path"]).read_bytes() == data


def test_the_private_scrapy_api_is_checked(monkeypatch):
    check_private_api()  # the installed Scrapy has what the handler needs
    from scrapy.core.downloader.handlers import http11

    monkeypatch.delattr(http11, "_ResponseReader")
    with pytest.raises(RuntimeError, match="does not support Scrapy .*_ResponseReader"):
        StreamingDownloadHandler(crawler=None)
