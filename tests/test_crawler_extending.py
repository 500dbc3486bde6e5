"""Adding a source (issue 19): a third spider defined only in tests/tinysite.py, for a made-up site served on
loopback, is found by wt5k-crawl's spider loader (--spider-module), gets its base URL with --url like any
spider (its name has a hyphen), crawls through the shared listing -> detail pattern, and its output is curated
by wt5k-curate run with no other file changed."""
from __future__ import annotations

import subprocess
import sys

import pytest
import soundfile as sf

from manifests import read_manifest
from tests.crawler_helpers import ROOT, items_by_id, run_crawl
from tests.tinysite import SOUNDS, Site, tiny_routes

SPIDER = ["--spider-module", "tests.tinysite"]


def test_a_spider_defined_in_a_test_is_crawled_and_curated(tmp_path):
    raw, curated = tmp_path / "raw", tmp_path / "curated"
    with Site(tiny_routes()) as site:
        proc = run_crawl(raw, ["tiny-site"], None, *SPIDER, urls={"tiny-site": site.url})
        assert "tiny-site: finished" in proc.stdout
        listing_hits = [p for p in site.paths() if p.startswith("/list-")]
    records = items_by_id(raw, "tiny-site")
    assert set(records) == {f"tinysite:{i}" for i in SOUNDS}
    for sid, (title, description, tags, _) in SOUNDS.items():
        r = records[f"tinysite:{sid}"]
        assert r["status"] == "ok" and r["audio_format"] == "wav", r
        assert (r["title"], r["description"], r["tags"]) == (title, description, tags)
        assert r["download_link"] == f"{site.url}/media/{sid}.wav"
    positions = sorted((r["listing_position"], i) for i, r in records.items())
    assert positions == [(0, "tinysite:7"), (1, "tinysite:12"), (2, "tinysite:31")]
    assert sorted(listing_hits) == ["/list-1.html", "/list-2.html", "/list-3.html"]  # followed to the empty page

    cmd = [sys.executable, "-m", "curation.cli", "run", "--raw", str(raw), "--out", str(curated), "--no-figures",
           "--quiet"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    manifest = next(curated.glob("*.csv")) if not (curated / "wavtext5k.csv").exists() else curated / "wavtext5k.csv"
    rows = read_manifest(manifest)
    assert {r.id for r in rows} == set(records) and {r.source for r in rows} == {"tinysite"}
    for r in rows:
        title, description, _, _ = SOUNDS[r.id.split(":")[1]]
        assert title in r.caption and description.rstrip(".") in r.caption
        info = sf.info(curated / r.audio_path)
        assert info.samplerate == 44100 and abs(info.duration - 1.5) < 0.01


def test_spiders_come_from_the_spider_loader(capsys):
    """An unknown spider is a usage error naming the ones there are, the test's spider among them once its
    module is given; --url takes http(s) URLs only."""
    from crawler.cli import main

    def usage_error(argv: list[str]) -> str:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        return capsys.readouterr().err

    err = usage_error(["tiny-site"])
    assert "unknown spider 'tiny-site': choose from bigsoundbank, manifest, soundbible" in err
    assert "tiny-site" in usage_error([*SPIDER, "nope"])
    assert "cannot import" in usage_error(["--spider-module", "tests.no_such_module", "soundbible"])
    assert "--url: expects SPIDER=URL with an http(s) URL" in usage_error(["--url", "soundbible=file:///etc",
                                                                           "soundbible"])
    assert "--soundbible-url: expects an http(s) URL" in usage_error(["--soundbible-url", "ftp://x", "soundbible"])
