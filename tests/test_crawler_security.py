"""Untrusted sites and CSVs cannot make the crawler read local files, reach internal hosts or exhaust memory
or disk (issue 21, items 2-4). Each test is the attack itself, against real wt5k-crawl processes and loopback
servers (tests/tinysite.py); the harm must not happen and the refusal must be recorded."""
from __future__ import annotations

import json
import zlib

import pytest

from crawler.guard import Targets
from manifests import PublishedRow, write_published_csv
from tests.crawler_helpers import crawl_command, items_by_id, measured_run, run_crawl
from tests.tinysite import SOUNDS, Site, html, redirect, tiny_routes, wav_bytes

SPIDER = ["--spider-module", "tests.tinysite"]


@pytest.fixture
def secret(tmp_path):
    """What an attacker wants: a local audio file and an internal service on another loopback address."""
    path = tmp_path / "secret.wav"
    path.write_bytes(wav_bytes(1.0, 440.0))
    try:
        internal = Site({"/x.wav": (200, {"Content-Type": "audio/wav"}, wav_bytes(1.0, 880.0)),
                         "/birds-s0200.html": html("<h1>internal</h1>")}, host="127.0.0.2")
    except OSError:  # a system without 127.0.0.0/8 on lo: another port of 127.0.0.1 is another service too
        internal = Site({"/x.wav": (200, {}, wav_bytes(1.0, 880.0))})
    with internal:
        yield path, internal


def test_targets_allow_only_the_sites_hosts_and_configured_internal_origins():
    t = Targets.of(["soundbible.com"], ["http://127.0.0.1:8701"])
    assert t.refusal("https://soundbible.com/grab.php?id=1&type=wav") is None
    assert t.refusal("http://www.soundbible.com/1-x.html") is None
    assert t.refusal("http://127.0.0.1:8701/mp3/x.mp3") is None          # the configured mirror
    for url, why in [("file:///etc/passwd", "scheme 'file'"), ("data:audio/wav;base64,UklGRg==", "scheme 'data'"),
                     ("ftp://soundbible.com/x.wav", "scheme 'ftp'"), ("s3://bucket/x.wav", "scheme 's3'"),
                     ("http://127.0.0.1:8702/x", "internal address"), ("http://127.0.0.2:8701/x", "internal"),
                     ("http://localhost:8701/x", "internal"), ("http://[::1]:8701/x", "internal"),
                     ("http://169.254.169.254/latest/meta-data/", "internal"), ("http://10.1.2.3/x", "internal"),
                     ("http://[::ffff:192.168.0.1]/x", "internal"), ("https://evil.example/x.wav", "not one of"),
                     ("https://soundbible.com.evil.example/x", "not one of")]:
        assert why in (t.refusal(url) or ""), url


def test_only_http_and_https_download_handlers_are_enabled():
    from crawler.cli import build_settings

    handlers = build_settings("out").getdict("DOWNLOAD_HANDLERS")
    assert {k for k, v in handlers.items() if v} == {"http", "https"}
    assert all(handlers.get(k, "") is None for k in ("file", "data", "ftp", "s3"))


def test_file_links_and_internal_redirects_in_pages_are_refused(tmp_path, secret):
    """The made-up site's pages link a local file (file://) and an audio URL that answers 302 to an internal
    address; BigSoundBank's sitemap lists a page on another loopback address and its JSON-LD names a file://
    contentUrl. Nothing is fetched from the internal service, nothing local is copied, each sound says why."""
    secret_path, internal = secret
    out = tmp_path / "out"
    routes = tiny_routes()
    routes["/sound/7.html"] = html(f'<h1>Kettle</h1><a class="dl" href="file://{secret_path}">WAV</a>')
    routes["/media/12.wav"] = redirect(f"{internal.url}/x.wav")
    ld = json.dumps({"@type": "AudioObject", "name": "Forest", "contentUrl": f"file://{secret_path}"})
    with Site(routes) as site:
        site.routes["/sitemap_bsb.xml"] = (200, {"Content-Type": "application/xml"}, (
            '<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<url><loc>{site.url}/forest-s0100.html</loc></url>"
            f"<url><loc>{internal.url}/birds-s0200.html</loc></url></urlset>").encode())
        site.routes["/forest-s0100.html"] = html(f'<script type="application/ld+json">{ld}</script><h1>Forest</h1>'
                                                 '<a href="/UPLOAD/flac/0100.flac">flac</a>')
        site.routes["/UPLOAD/flac/0100.flac"] = redirect(f"{internal.url}/x.wav")
        proc = run_crawl(out, ["tiny-site", "bigsoundbank"], None, *SPIDER, returncode=0,
                         urls={"tiny-site": site.url, "bigsoundbank": site.url})
    assert internal.hits == []  # the internal service never saw a request
    tiny, bsb = items_by_id(out, "tiny-site"), items_by_id(out, "bigsoundbank")
    assert tiny["tinysite:31"]["status"] == "ok"  # the honest sound is crawled
    kettle = tiny["tinysite:7"]
    assert kettle["status"] == "refused_url" and "scheme 'file' is not followed" in kettle["error"]
    assert kettle["audio_urls"] == [] and kettle["file_path"] is None
    bell = tiny["tinysite:12"]
    assert bell["status"] == "refused_url" and f"refused {internal.url}/x.wav: internal address" in bell["error"]
    forest = bsb["bigsoundbank:0100"]
    assert forest["status"] == "refused_url" and f"refused {internal.url}/x.wav" in forest["error"]
    assert all(u.startswith(site.url) for u in forest["audio_urls"])  # the file:// contentUrl was dropped
    birds = bsb["bigsoundbank:0200"]
    assert birds["status"] == "refused_url" and "detail page: refused" in birds["error"]
    assert "file:" in proc.stderr  # the dropped file:// contentUrl is logged with its reason
    stored = {p.read_bytes() for p in out.rglob("files/*/*")}
    assert secret_path.read_bytes() not in stored and len(stored) == 1


def test_file_links_in_a_replayed_csv_are_refused(tmp_path, secret):
    secret_path, internal = secret
    rows = [PublishedRow(view_link="https://soundbible.com/5-Local.html", download_link=f"file://{secret_path}",
                         title="Local", description="a local file", fname="local_1.wav", tags=""),
            PublishedRow(view_link="https://soundbible.com/6-Inside.html", download_link=f"{internal.url}/x.wav",
                         title="Inside", description="an internal host", fname="inside_2.wav", tags="")]
    csv_path = write_published_csv(tmp_path / "hostile.csv", rows)
    out = tmp_path / "out"
    with Site(tiny_routes()) as site:  # stands for soundbible: none of these sounds exists there (404)
        proc = run_crawl(out, ["manifest"], None, "--replay", str(csv_path), urls={"soundbible": site.url},
                         returncode=1)
    assert internal.hits == []
    records = items_by_id(out, "manifest")
    local, inside = records["soundbible:5"], records["soundbible:6"]
    assert local["status"] == "http_error"  # its site URLs were tried (404); the file:// link never
    assert f"file://{secret_path}" not in local["audio_urls"] and "scheme 'file'" in proc.stderr
    assert inside["status"] == "http_error" and f"{internal.url}/x.wav" not in inside["audio_urls"]
    assert not list(out.rglob("files/*/*"))


def test_non_audio_bodies_are_described_never_quoted(tmp_path):
    marker = "TOP-SECRET-TOKEN-1234"
    routes = tiny_routes()
    routes["/media/7.wav"] = (200, {"Content-Type": "audio/wav"}, f"<html><body>{marker}</body></html>".encode())
    routes["/media/12.wav"] = (200, {"Content-Type": "audio/wav"}, f"password={marker}\n".encode())
    out = tmp_path / "out"
    with Site(routes) as site:
        proc = run_crawl(out, ["tiny-site"], None, *SPIDER, "--log-level", "DEBUG", urls={"tiny-site": site.url})
    records = items_by_id(out, "tiny-site")
    assert "a web page (HTML)" in records["tinysite:7"]["error"]
    assert "plain text" in records["tinysite:12"]["error"]
    assert marker not in (out / "tiny-site" / "items.jsonl").read_text()
    assert marker not in proc.stdout + proc.stderr


def gzip_bomb(unpacked: int) -> bytes:
    """A gzip body of `unpacked` bytes of XML whitespace (about 1/1000 of that packed)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1 << 20)
    return b"".join([z.compress(chunk) for _ in range(unpacked >> 20)] + [z.flush()])


def test_a_gzip_bomb_page_is_cut_at_the_page_cap(tmp_path):
    """A 256 MiB sitemap packed into 250 kB: decompressed only up to the page cap (8 MiB), recorded, and the
    crawl's peak memory stays far below what holding it would take."""
    bomb = gzip_bomb(256 << 20)
    assert len(bomb) < 400_000
    out = tmp_path / "out"
    with Site({"/sitemap_bsb.xml": (200, {"Content-Type": "application/xml", "Content-Encoding": "gzip"}, bomb)}) \
            as site:
        peak, proc = measured_run(crawl_command(out, ["bigsoundbank"], None, "--log-level", "INFO",
                                                urls={"bigsoundbank": site.url}), returncode=1)
    print(f"gzip bomb page: crawl peak RSS {peak / 1e6:.0f} MB")
    assert "exceeded DOWNLOAD_MAXSIZE (8388608 B) during decompression" in proc.stderr
    assert "(too_large)" in proc.stderr  # the listing failure says why
    assert "no sound was downloaded and 0 failed ({}), 1 listing pages failed" in proc.stderr
    assert peak < 200e6, peak  # the page unpacked would be 268 MB on top of the crawler


def test_max_bytes_stops_the_crawl_and_the_next_run_goes_on(tmp_path):
    out = tmp_path / "out"
    size = len(wav_bytes(1.5, 660.0))
    with Site(tiny_routes()) as site:
        proc = run_crawl(out, ["tiny-site"], None, *SPIDER, "--max-bytes", str(size + size // 2),
                         "--set", "CONCURRENT_REQUESTS_PER_DOMAIN=1", urls={"tiny-site": site.url}, returncode=1)
        assert "tiny-site: max_bytes" in proc.stdout and "disk budget reached" in proc.stderr
        records = items_by_id(out, "tiny-site")
        ok = [r for r in records.values() if r["status"] == "ok"]
        assert len(ok) == 1 and sum(p.stat().st_size for p in out.rglob("files/*/*")) <= size + size // 2
        assert all(r["status"] == "cancelled" and "--max-bytes" in r["error"] for r in records.values()
                   if r["status"] != "ok")
        run_crawl(out, ["tiny-site"], None, *SPIDER, urls={"tiny-site": site.url})
    assert {r["status"] for r in items_by_id(out, "tiny-site").values()} == {"ok"}
    assert len(items_by_id(out, "tiny-site")) == len(SOUNDS)


def test_a_file_over_the_cap_under_a_budget_is_too_large_not_the_budget(tmp_path):
    """With WT5K_AUDIO_MAXSIZE 0 audio gets DOWNLOAD_MAXSIZE; a file over that cap is too_large even when a
    --max-bytes budget is set and far from spent (it used to be called the budget and stop the crawl)."""
    out = tmp_path / "out"
    size = len(wav_bytes(1.5, 660.0))
    with Site(tiny_routes()) as site:
        proc = run_crawl(out, ["tiny-site"], None, *SPIDER, "--max-bytes", str(100 * size),
                         "--set", "WT5K_AUDIO_MAXSIZE=0", "--set", f"DOWNLOAD_MAXSIZE={size // 2}",
                         urls={"tiny-site": site.url}, returncode=1)
    assert "tiny-site: finished" in proc.stdout and "disk budget reached" not in proc.stderr
    records = items_by_id(out, "tiny-site")
    assert len(records) == len(SOUNDS) and {r["status"] for r in records.values()} == {"too_large"}


def test_a_site_name_resolving_to_an_internal_address_is_found(monkeypatch):
    """A site's own host name whose DNS points inside (rebinding): the guard looks each name up once and
    refuses it (RequestGuardMiddleware); names that do not resolve are left to fail on their own."""
    import socket

    from crawler import guard

    answers = {"soundbible.com": [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", 0))],
               "bigsoundbank.com": [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("2606:4700::1", 0, 0, 0)),
                                    (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0))],
               "example.org": [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 0))]}

    def fake_getaddrinfo(host, *args, **kwargs):
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    monkeypatch.setattr(guard.socket, "getaddrinfo", fake_getaddrinfo)
    assert guard.internal_resolution("soundbible.com") == "10.0.0.7"
    assert guard.internal_resolution("bigsoundbank.com") == "::1"
    assert guard.internal_resolution("example.org") is None
    assert guard.internal_resolution("sounds.invalid") is None
