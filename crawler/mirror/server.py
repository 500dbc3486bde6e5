"""The offline mirror: SoundBible and BigSoundBank served on loopback from a published-format CSV.

    mirror = start_mirror(csv_path, limit=20, faults=Faults(empty={"soundbible:2219"}))
    mirror.soundbible_url, mirror.bigsoundbank_url   # http://127.0.0.1:<port>
    mirror.stop()

`wt5k-mirror` runs it from the command line (see crawler/mirror/README.md).
"""
from __future__ import annotations

import argparse
import ipaddress
import math
import re
import shutil
import signal
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from manifests import PUBLISHED_CSV
from manifests import cli_args

from . import pages
from .audio import AudioProvider
from .catalog import Sound, load_catalog
from .faults import Faults

CONTENT_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "mp3": "audio/mpeg"}
BROWSER_MARK = "Mozilla/"  # what the real sites are said to look for before serving audio


@dataclass
class MirrorState:
    sounds: list[Sound]
    audio: AudioProvider
    faults: Faults
    per_page: int = 9
    hits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests_by_site: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for s in self.sounds:
            self.audio.describe(s)
        self.sb = sorted((s for s in self.sounds if s.source == "soundbible"), key=lambda s: -int(s.source_id))
        self.bsb = sorted((s for s in self.sounds if s.source == "bigsoundbank"), key=lambda s: s.source_id)
        self.sb_by_href = {s.slug: s for s in self.sb}
        self.sb_by_id = {s.source_id: s for s in self.sb}
        self.sb_by_basename = {s.basename: s for s in self.sb}
        self.bsb_by_id = {s.source_id: s for s in self.bsb}

    def hit(self, path: str, site: str | None = None) -> int:
        """Record a request for `path`; return how many times it was asked for, this one included."""
        with self.lock:
            if site:
                self.requests_by_site[site] += 1
            self.hits[path].append(time.monotonic())
            return len(self.hits[path])

    def robots(self) -> str:
        lines = ["User-agent: *", "Disallow: /admin/"] + [f"Disallow: {p}" for p in self.faults.robots_disallow]
        return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: crawlers reuse connections
    server_version = "wt5k-mirror/0.1"
    state: MirrorState
    site: str

    def log_message(self, format: str, *args) -> None:  # quiet: tests and benchmarks read their own logs
        pass

    # -- plumbing
    @property
    def base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def send(self, status: int, body: bytes | str, ctype: str = "text/html; charset=utf-8",
             headers: dict[str, str] | None = None) -> None:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_audio(self, body: Path | bytes, ctype: str, headers: dict[str, str], sized: bool = True) -> None:
        """200 with audio: bytes, or a file copied from disk in chunks. Unsized: no Content-Length, the body
        ends when the connection closes (HTTP/1.0 style)."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if sized:
            self.send_header("Content-Length", str(body.stat().st_size if isinstance(body, Path) else len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        if isinstance(body, Path):
            with open(body, "rb") as f:
                shutil.copyfileobj(f, self.wfile, 1 << 20)
        else:
            self.wfile.write(body)

    def redirect(self, location: str, status: int = 302) -> None:
        self.send(status, pages.html_message("Moved", location), headers={"Location": location})

    def not_found(self) -> None:
        self.send(404, pages.html_message("404 Not Found", self.path))

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.state.hit(self.path, self.site)
        try:
            if path == "/robots.txt":
                return self.send(200, self.state.robots(), "text/plain; charset=utf-8")
            if path == "/removed.html":
                return self.send(200, pages.html_message("Sound not available", "This file was removed."))
            (self.route_soundbible if self.site == "soundbible" else self.route_bigsoundbank)(path, query)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # -- audio with faults
    def serve_audio(self, sound: Sound, fmt: str, filename: str | None = None) -> None:
        f = self.state.faults
        if f.html_for_bots and BROWSER_MARK not in (self.headers.get("User-Agent") or ""):
            return self.send(200, pages.html_message("Please download with a browser", "Robots not welcome."))
        if sound.id in f.dead_links:
            return self.redirect("/removed.html")
        if sound.id in f.not_found:
            return self.not_found()
        if sound.id in f.server_error:
            return self.send(500, pages.html_message("500 Internal Server Error", "oops"))
        if sound.id in f.rate_limited and self.state.hit("429:" + self.path) <= f.rate_limited[sound.id]:
            return self.send(429, pages.html_message("429 Too Many Requests", "slow down"),
                             headers={"Retry-After": f"{f.retry_after_s:g}"})
        if sound.id in f.empty:
            return self.send(200, b"", CONTENT_TYPES[fmt])
        if sound.id in f.slow:
            time.sleep(f.slow_s)
        if filename and f.hostile_names:
            filename = f"../../../../../tmp/{filename}"
        headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else {}
        sized, cut = sound.id not in f.unsized, sound.id in f.truncated or sound.id in f.stalled
        if not cut and (path := self.state.audio.file_as_is(sound, fmt)) is not None:
            return self.send_audio(path, CONTENT_TYPES[fmt], headers, sized)
        data = self.state.audio.encode(sound, fmt)
        if cut:  # half the body, then: the connection closes (truncated) or a pause (stalled)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPES[fmt])
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if sound.id in f.truncated:
                self.close_connection = True
                return
            time.sleep(f.slow_s)
            self.wfile.write(data[len(data) // 2:])
            return
        self.send_audio(data, CONTENT_TYPES[fmt], headers, sized)

    # -- SoundBible
    def route_soundbible(self, path: str, query: dict[str, list[str]]) -> None:
        st = self.state
        m = re.fullmatch(r"/free-sound-effects-(\d+)\.html", path)
        if path in ("/", "/free-sounds.php") or m:
            page = int(m.group(1)) if m else 1
            pages_n = max(1, math.ceil(len(st.sb) / st.per_page))
            if page < 1 or page > pages_n:
                return self.not_found()
            chunk = st.sb[(page - 1) * st.per_page: page * st.per_page]
            return self.send(200, pages.sb_listing(chunk, page, pages_n))
        m = re.fullmatch(r"/royalty-free-sounds-(\d+)\.html", path)
        if m:
            pd = [s for s in st.sb if s.license == "Public Domain"]
            page = int(m.group(1))
            chunk = pd[(page - 1) * st.per_page: page * st.per_page]
            return self.send(200, pages.sb_listing(chunk, page, max(1, math.ceil(len(pd) / st.per_page))))
        m = re.fullmatch(r"/tags-(.+)\.html", path)
        if m or path == "/search.php":
            needle = (m.group(1).replace("-", " ") if m else (query.get("q") or [""])[0]).lower()
            found = [s for s in st.sb if needle in s.title.lower() or needle in (t.lower() for t in s.tags)]
            return self.send(200, pages.sb_listing(found, 1, 1))
        if path == "/grab.php":
            sound = st.sb_by_id.get((query.get("id") or [""])[0])
            fmt = (query.get("type") or [""])[0]
            if sound is None or fmt not in ("wav", "mp3"):
                return self.not_found()
            # Some answers redirect to the static file, others stream it with Content-Disposition.
            if int(sound.source_id) % 2 == 0:
                return self.redirect(f"/{fmt}/{quote(sound.basename)}.{fmt}")
            return self.serve_audio(sound, fmt, filename=f"{sound.basename}.{fmt}")
        m = re.fullmatch(r"/(mp3|wav)/(.+)\.(mp3|wav)", path)
        if m and m.group(1) == m.group(3) and m.group(2) in st.sb_by_basename:
            return self.serve_audio(st.sb_by_basename[m.group(2)], m.group(1))
        sound = st.sb_by_href.get(path.lstrip("/"))
        if sound is not None:
            return self.send(200, pages.sb_detail(sound))
        return self.not_found()

    # -- BigSoundBank
    def route_bigsoundbank(self, path: str, query: dict[str, list[str]]) -> None:
        st = self.state
        if path == "/sitemap_bsb.xml":
            return self.send(200, pages.bsb_sitemap(st.bsb, self.base), "application/xml; charset=utf-8")
        if path == "/categories.html":
            return self.send(200, pages.bsb_categories(sorted({s.category for s in st.bsb})))
        m = re.fullmatch(r"/category-([a-z]+)\.html", path)
        if m:
            found = [s for s in st.bsb if s.category == m.group(1)]
            return self.send(200, pages.bsb_results(m.group(1).title(), found)) if found else self.not_found()
        if path == "/search":
            q = (query.get("q") or [""])[0].lower()
            return self.send(200, pages.bsb_results(f"Search: {q}", [s for s in st.bsb if q in s.title.lower()]))
        m = re.fullmatch(r"/UPLOAD/(wav|mp3|ogg|flac|bwf-en)/(\d{4,})\.(wav|mp3|ogg|flac)", path)
        if m:
            folder, sid, ext = m.groups()
            sound = st.bsb_by_id.get(sid)
            if sound is None or (folder != ext and not (folder == "bwf-en" and ext == "wav")):
                return self.not_found()
            if folder == "wav" and st.faults.wav_gone:
                return self.redirect("/removed.html")
            return self.serve_audio(sound, ext)
        m = re.fullmatch(r"/s(\d{4,})\.html", path)
        if m and m.group(1) in st.bsb_by_id:
            return self.redirect(pages.bsb_today_url(st.bsb_by_id[m.group(1)]), 301)
        m = re.fullmatch(r"/(?:detail|sound)-(\d{4,})-(.+)\.html", path)
        if m and m.group(1) in st.bsb_by_id and st.bsb_by_id[m.group(1)].slug == m.group(2):
            return self.send(200, pages.bsb_detail_2022(st.bsb_by_id[m.group(1)]))
        m = re.fullmatch(r"/(.+)-s(\d{4,})\.html", path)
        if m and m.group(2) in st.bsb_by_id and st.bsb_by_id[m.group(2)].slug == m.group(1):
            return self.send(200, pages.bsb_detail_today(st.bsb_by_id[m.group(2)], self.base))
        return self.not_found()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):  # clients hang up: normal
            super().handle_error(request, client_address)


@dataclass
class Mirror:
    """A running mirror. Unpacks as (soundbible_url, bigsoundbank_url, stop)."""
    soundbible_url: str
    bigsoundbank_url: str
    state: MirrorState
    _servers: list[_Server]

    def stop(self) -> None:
        for srv in self._servers:
            srv.shutdown()
            srv.server_close()

    @property
    def hits(self) -> dict[str, list[float]]:
        return self.state.hits

    @property
    def urls(self) -> dict[str, str]:
        """Base URL of each source served (as `wt5k-crawl --url SOURCE=URL` takes them)."""
        return {"soundbible": self.soundbible_url, "bigsoundbank": self.bigsoundbank_url}

    def __iter__(self):
        return iter((self.soundbible_url, self.bigsoundbank_url, self.stop))

    def __enter__(self) -> "Mirror":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _check_loopback(host: str) -> None:
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"the mirror only listens on loopback, not {host!r}")


def start_mirror(csv_path: str | Path = PUBLISHED_CSV, *, limit: int | None = None,
                 audio_dir: str | Path | None = None, faults: Faults | None = None,
                 max_duration: float = 1.0, per_page: int = 9, host: str = "127.0.0.1",
                 soundbible_port: int = 0, bigsoundbank_port: int = 0) -> Mirror:
    """Serve both sites in background threads (ports 0: any free port); returns a running Mirror."""
    _check_loopback(host)
    state = MirrorState(load_catalog(csv_path, limit), AudioProvider(audio_dir, max_duration=max_duration),
                        faults or Faults(), per_page=per_page)
    servers, urls = [], []
    for site, port in (("soundbible", soundbible_port), ("bigsoundbank", bigsoundbank_port)):
        handler = type(f"{site}Handler", (_Handler,), {"state": state, "site": site})
        srv = _Server((host, port), handler)
        threading.Thread(target=srv.serve_forever, name=f"mirror-{site}", daemon=True).start()
        servers.append(srv)
        urls.append(f"http://{host}:{srv.server_address[1]}")
    return Mirror(urls[0], urls[1], state, servers)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wt5k-mirror", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="faults (repeat --fault): html_for_bots | wav_gone | dead_links=ID,.. | "
                                       "404=ID,.. | 500=ID,.. | 429=ID[:HITS],.. | slow=ID,.. | truncated=ID,.. | "
                                       "empty=ID,.. | unsized=ID,.. | stalled=ID,.. | robots=/PATH,.. | hostile_names   (ID: soundbible:2219, bigsoundbank:0100)")
    p.add_argument("--csv", default=str(PUBLISHED_CSV), help="published-format CSV (default: the WavText5K one)")
    p.add_argument("--audio-dir", help="serve files named like the CSV's fname from this folder")
    p.add_argument("--limit", type=int, help="first N sounds of each site only")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--soundbible-port", type=cli_args.port, default=8701)
    p.add_argument("--bigsoundbank-port", type=cli_args.port, default=8702)
    p.add_argument("--max-duration", type=float, default=1.0, help="longest generated sound, seconds")
    p.add_argument("--fault", action="append", default=[], metavar="SPEC")
    p.add_argument("--slow-s", type=float, default=5.0)
    p.add_argument("--retry-after-s", type=float, default=1.0)
    a = p.parse_args(argv)
    try:
        faults = Faults.from_specs(a.fault)
    except ValueError as e:
        p.error(str(e))  # exit 2, like argparse's own usage errors
    faults.slow_s, faults.retry_after_s = a.slow_s, a.retry_after_s
    if a.audio_dir and not Path(a.audio_dir).is_dir():
        p.error(f"--audio-dir {a.audio_dir}: no such folder")
    try:
        mirror = start_mirror(a.csv, limit=a.limit, audio_dir=a.audio_dir, faults=faults,
                              max_duration=a.max_duration, host=a.host, soundbible_port=a.soundbible_port,
                              bigsoundbank_port=a.bigsoundbank_port)
    except ValueError as e:  # a CSV that is not one (ManifestError)
        p.error(str(e))
    except OSError as e:  # a port in use, a host name that is not this machine's
        p.error(f"cannot listen on {a.host} ports {a.soundbible_port}, {a.bigsoundbank_port}: {e.strerror or e}")
    n_sb, n_bsb = len(mirror.state.sb), len(mirror.state.bsb)
    print(f"SoundBible   ({n_sb} sounds): {mirror.soundbible_url}", flush=True)
    print(f"BigSoundBank ({n_bsb} sounds): {mirror.bigsoundbank_url}", flush=True)
    print("Crawl it: wt5k-crawl --no-polite " + " ".join(f"--url {k}={v}" for k, v in mirror.urls.items())
          + " soundbible bigsoundbank", flush=True)
    print("Ctrl-C to stop.", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        mirror.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
