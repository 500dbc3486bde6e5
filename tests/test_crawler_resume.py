"""Resume: a crawl killed mid-way (SIGKILL, then SIGTERM) and restarted ends with every sound once, and
no verified file downloaded twice; failed sounds are fetched again only with --retry-failed."""
from __future__ import annotations

import signal
import subprocess
import time
from urllib.parse import quote


from crawler.mirror import Faults, start_mirror
from tests.crawler_helpers import ROOT, audio_hits, crawl_command, items_by_id, run_crawl
from manifests import PUBLISHED_CSV
from manifests.crawl_record import last_records

SPIDERS = ["soundbible", "bigsoundbank"]


def audio_hits_of(mirror, sound_id: str) -> int:
    source, sid = sound_id.split(":")
    if source == "soundbible":
        marks = (f"id={sid}&", quote(mirror.state.sb_by_id[sid].basename))
    else:
        marks = (f"/{sid}.",)
    return sum(n for p, n in audio_hits(mirror).items() if any(m in p for m in marks))


def ok_ids(out) -> set[str]:
    return {r.id for s in SPIDERS for r in last_records(out / s / "items.jsonl").values() if r.status == "ok"}


def interrupted_run(out, mirror, sig: int, after_items: int) -> int:
    """Start a crawl, send `sig` once `after_items` more sounds are recorded; return its exit code."""
    start = len(ok_ids(out))
    proc = subprocess.Popen(crawl_command(out, SPIDERS, mirror, "--set", "DOWNLOAD_DELAY=0.08",
                                          "--set", "CONCURRENT_REQUESTS_PER_DOMAIN=2"),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(ok_ids(out)) < start + after_items:
            assert proc.poll() is None, "the crawl ended before it could be interrupted"
            assert time.monotonic() < deadline, "the crawl made no progress"
            time.sleep(0.05)
        proc.send_signal(sig)
        return proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_killed_crawl_resumes_without_loss_duplicates_or_downloading_twice(tmp_path):
    out = tmp_path / "out"
    with start_mirror(PUBLISHED_CSV, limit=60, max_duration=0.3) as mirror:
        all_ids = {s.id for s in mirror.state.sounds}
        assert interrupted_run(out, mirror, signal.SIGKILL, after_items=12) == -signal.SIGKILL
        done_1 = ok_ids(out)
        hits_1 = {i: audio_hits_of(mirror, i) for i in done_1}
        assert 12 <= len(done_1) < len(all_ids)

        assert interrupted_run(out, mirror, signal.SIGTERM, after_items=4) == 1  # "shutdown", not "finished"
        done_2 = ok_ids(out)
        assert done_1 < done_2 < all_ids
        hits_2 = {i: audio_hits_of(mirror, i) for i in done_2}

        run_crawl(out, SPIDERS, mirror)
        assert {i: audio_hits_of(mirror, i) for i in done_1} == hits_1  # verified files never fetched again
        assert {i: audio_hits_of(mirror, i) for i in done_2} == hits_2
    final = {**items_by_id(out, "soundbible"), **items_by_id(out, "bigsoundbank")}  # fails on duplicates
    assert set(final) == all_ids and all(r["status"] == "ok" for r in final.values())
    assert not list(out.rglob("*.part"))
    files = {p.relative_to(out / p.relative_to(out).parts[0]).as_posix()
             for p in (out).rglob("files/*/*") if p.is_file()}
    assert files == {r["file_path"] for r in final.values()}  # one file per sound, nothing stray


def test_failed_sounds_are_fetched_again_only_with_retry_failed(tmp_path, edge_csv):
    out, broken = tmp_path / "out", "soundbible:2219"
    with start_mirror(edge_csv, faults=Faults(not_found={broken})) as mirror:
        run_crawl(out, ["soundbible"], mirror)
        assert items_by_id(out, "soundbible")[broken]["status"] == "http_error"
        hits = audio_hits(mirror)

        run_crawl(out, ["soundbible"], mirror)  # nothing new, failure kept
        assert audio_hits(mirror) == hits
        assert items_by_id(out, "soundbible")[broken]["status"] == "http_error"

        mirror.state.faults.not_found.clear()
        run_crawl(out, ["soundbible"], mirror, "--retry-failed")
        refetched = {p for p, n in audio_hits(mirror).items() if n != hits.get(p)}
        assert refetched and all("2219" in p for p in refetched)
        records = items_by_id(out, "soundbible")
        assert len(records) == 17 and records[broken]["status"] == "ok"
