"""A crawl stops when told and gives up on a dead host (issue 17): SIGTERM on a real wt5k-crawl process with
downloads hanging and retries waiting ends it within seconds, sends nothing new, leaves consistent records, and
the same command resumes; a second signal ends it at once; a host that does not resolve or refuses connections
is marked down instead of being tried on every URL of every sound."""
from __future__ import annotations

import os
import signal
import subprocess
import time

from crawler.mirror import start_mirror
from manifests import PUBLISHED_CSV
from manifests.crawl_record import last_records
from tests.crawler_helpers import ROOT, crawl_command, items_by_id, run_crawl
from tests.ports import free_port
from tests.tinysite import Site, tiny_routes

SPIDERS = ["soundbible", "bigsoundbank"]
BACKOFF = ("--set", "RETRY_BACKOFF_BASE=30")  # seconds before a retry of a 500 (--no-polite has none)


def test_dead_hosts_are_marked_down_and_the_run_fails_fast(tmp_path, edge_csv):
    """No network: one site's name does not resolve, the other's port refuses connections. Each host is given
    up after a few failures in a row, every sound is recorded host_down naming host and error, and the run exits
    non-zero after its summary, in seconds (issue 17 saw minutes, every fallback URL retried 4 times)."""
    out = tmp_path / "out"
    urls = {"soundbible": "http://sounds.invalid", "bigsoundbank": f"http://127.0.0.1:{free_port()}"}
    t0 = time.monotonic()
    proc = run_crawl(out, ["manifest"], None, "--replay", str(edge_csv), urls=urls, returncode=1, timeout=60)
    took = time.monotonic() - t0
    records = items_by_id(out, "manifest")
    assert len(records) == 29
    for r in records.values():
        host = "sounds.invalid" if r["source"] == "soundbible" else urls["bigsoundbank"].removeprefix("http://")
        assert r["status"] == "host_down", r
        assert f"host {host} is down" in r["error"] and ("Refused" in r["error"] or "DNS" in r["error"]
                                                          or "resolve" in r["error"].lower()), r["error"]
    assert "manifest: finished" in proc.stdout and "this run: {'host_down': 29}" in proc.stdout
    assert "no sound was downloaded and 29 failed" in proc.stderr
    assert took < 45, took  # generous: minutes before; a few seconds now


def _ok(out) -> set[str]:
    return {r.id for s in SPIDERS for r in last_records(out / s / "items.jsonl").values() if r.status == "ok"}


def _signal_mid_crawl(out, mirror, stalled: set[str], signals: list[int]) -> tuple[int, float, int]:
    """Crawl until some sounds are done and every stalled sound's download is hanging, send the signals
    (0.3 s apart); return (exit code, seconds from the first signal to the exit, requests sent later)."""
    cmd = crawl_command(out, SPIDERS, mirror, "--log-level", "INFO", *BACKOFF)
    with open(out.parent / f"log-{len(signals)}.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            deadline = time.monotonic() + 60
            hanging = {f"/{sid.split(':')[1]}." for sid in stalled}
            while not (len(_ok(out)) >= 3 and all(any(m in p for p in mirror.hits) for m in hanging)):
                assert proc.poll() is None, (out.parent / f"log-{len(signals)}.txt").read_text()[-3000:]
                assert time.monotonic() < deadline, "the crawl made no progress"
                time.sleep(0.05)
            sent = time.monotonic()
            for i, sig in enumerate(signals):
                if i:
                    time.sleep(0.3)
                proc.send_signal(sig)
            code = proc.wait(timeout=60)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    later = sum(1 for times in mirror.hits.values() for t in times if t > sent + 0.5)
    return code, took, later


def test_sigterm_stops_within_seconds_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "out"
    # BigSoundBank sounds whose every audio URL sends half its body and then hangs for 120 s, and SoundBible
    # sounds answering 500 with a 30 s back-off before each retry: a plain graceful stop would wait for them.
    with start_mirror(PUBLISHED_CSV, limit=20, max_duration=0.3) as mirror:
        all_ids = [s.id for s in mirror.state.sounds]
        stalled = {s.id for s in mirror.state.bsb[1:3]}  # early in the sitemap
        mirror.state.faults.stalled.update(stalled)
        mirror.state.faults.slow_s = 120
        mirror.state.faults.server_error.update(s.id for s in mirror.state.sb[1:3])  # early in the listing
        code, took, later = _signal_mid_crawl(out, mirror, stalled, [signal.SIGTERM])
        print(f"SIGTERM to exit: {took:.1f} s")
        assert code == 1 and took < 12, (code, took)  # WT5K_STOP_GRACE 5 s, then in-flight downloads cancelled
        assert later == 0  # nothing new requested after the signal (fallback URLs included)
        first = {**items_by_id(out, "soundbible"), **items_by_id(out, "bigsoundbank")}  # consistent, no duplicates
        assert all(first[s]["status"] == "cancelled" for s in stalled if s in first)
        assert not list(out.rglob("*.part"))

        code, took, later = _signal_mid_crawl(out, mirror, stalled, [signal.SIGINT, signal.SIGINT])
        print(f"Ctrl-C twice to exit: {took:.1f} s")
        assert took < 3 and later == 0, (code, took, later)

        mirror.state.faults.stalled.clear()
        mirror.state.faults.server_error.clear()
        run_crawl(out, SPIDERS, mirror, *BACKOFF)  # the same command: resumes and completes
    final = {**items_by_id(out, "soundbible"), **items_by_id(out, "bigsoundbank")}
    assert set(final) == set(all_ids) and all(r["status"] == "ok" for r in final.values())
    assert not list(out.rglob("*.part"))


def test_requests_waiting_for_their_download_delay_are_dropped_at_a_stop(tmp_path):
    """With a delay between two requests to a site, Scrapy keeps a stopped crawl's requests in its per-site
    queue and sends each after its delay (about a second each, here); they are dropped at once instead."""
    sounds = {str(i): (f"Sound {i}", f"Description {i}.", [], 300.0 + 10 * i) for i in range(1, 21)}
    out = tmp_path / "out"
    with Site(tiny_routes(sounds, per_page=10)) as site:
        cmd = crawl_command(out, ["tiny-site"], None, "--spider-module", "tests.tinysite", "--set", "DOWNLOAD_DELAY=1",
                            "--log-level", "INFO", urls={"tiny-site": site.url})
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 30
            while not any(p.startswith("/sound/") for p in site.paths()):
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        later = [p for p, t in site.hits if t > sent + 0.5]
    print(f"SIGTERM to exit with a 1 s DOWNLOAD_DELAY: {took:.1f} s")
    assert proc.returncode == 1, err
    assert "queued requests dropped" in err
    assert took < 4 and later == [], (took, later)  # without the drop: about 1 s per queued request (22 s)
    records = items_by_id(out, "tiny-site")
    assert records and all(r["status"] in ("ok", "cancelled") for r in records.values())
