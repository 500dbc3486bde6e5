"""A made-up third sound site, defined only here: a loopback server and its spider.

The spider is found by wt5k-crawl's spider loader through `--spider-module tests.tinysite`; nothing else in
the project knows about it (its source is not registered in manifests/sources.py). The server takes a route
table, so the security tests also use it to serve hostile pages (links to local files, redirects to internal
addresses, a gzip bomb) to this spider and to the real site spiders.
"""
from __future__ import annotations

import io
import re
import threading
import time
import wave
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from crawler.items import SoundItem
from crawler.spiders.base import SoundSpider

Route = tuple[int, dict[str, str], bytes]  # status, headers, body


def wav_bytes(seconds: float, freq: float, rate: int = 22050) -> bytes:
    """A real 16-bit mono WAV: a tone with a little noise."""
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(int(freq)).standard_normal(t.size)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((x * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def html(body: str) -> Route:
    page = f"<!doctype html><html><body>{body}</body></html>"
    return 200, {"Content-Type": "text/html; charset=utf-8"}, page.encode()


def redirect(url: str) -> Route:
    return 302, {"Location": url}, b""


class Site:
    """A ThreadingHTTPServer on 127.0.0.1 serving `routes` ({path: Route}); 404 elsewhere; records every hit."""

    def __init__(self, routes: dict[str, Route] | None = None, host: str = "127.0.0.1"):
        self.routes = dict(routes or {})
        self.hits: list[tuple[str, float]] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                site.hits.append((self.path, time.monotonic()))
                status, headers, body = site.routes.get(self.path, (404, {"Content-Type": "text/html"}, b"no"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [p for p, _ in self.hits]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "Site":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- the made-up site: two listing pages, detail pages with title, description, tags and a WAV ---

SOUNDS = {"7": ("Kettle whistle", "A kettle whistles on a gas stove.", ["kitchen", "kettle"], 660.0),
          "12": ("Bicycle bell", "Two rings of an old bicycle bell.", ["bell"], 990.0),
          "31": ("Door creak", "A wooden door creaks open slowly.", [], 220.0)}


def tiny_routes(sounds: dict = SOUNDS, per_page: int = 2) -> dict[str, Route]:
    ids = list(sounds)
    routes: dict[str, Route] = {"/robots.txt": (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n")}
    for page, start in enumerate(range(0, len(ids), per_page), 1):
        items = "".join(f'<li><a class="snd" href="/sound/{i}.html">{sounds[i][0]}</a></li>'
                        for i in ids[start:start + per_page])
        routes[f"/list-{page}.html"] = html(f"<ul>{items}</ul>")
    routes[f"/list-{page + 1}.html"] = html("<ul></ul>")
    for sid, (title, description, tags, freq) in sounds.items():
        tag_html = "".join(f'<span class="tag">{t}</span>' for t in tags)
        routes[f"/sound/{sid}.html"] = html(f'<h1>{title}</h1><p class="desc">{description}</p>{tag_html}'
                                            f'<a class="dl" href="/media/{sid}.wav">WAV</a>')
        routes[f"/media/{sid}.wav"] = (200, {"Content-Type": "audio/wav"}, wav_bytes(1.5, freq))
    return routes


class TinySiteSpider(SoundSpider):
    """The made-up site: numbered listing pages of `li > a.snd` links to `/sound/{id}.html`."""
    name = "tiny-site"             # hyphenated on purpose
    source = "tinysite"
    default_base_url = "http://tiny-site.invalid"
    format_preference = ("flac", "wav", "mp3")
    detail_url = re.compile(r"/sound/(\d+)\.html$")
    listing_path = "/list-{page}.html"
    listing_links = "li > a.snd"

    def parse_detail(self, response, position=None, link_text=None) -> SoundItem:
        sid = self.detail_id(response.url)
        return SoundItem.new(
            id=self.sound_id(sid), source=self.source, source_id=sid, title=response.css("h1::text").get(),
            description=response.css("p.desc::text").get(), tags=response.css("span.tag::text").getall(),
            view_link=response.url, listing_position=position,
            audio_urls=self.sort_audio_urls([response.urljoin(h) for h in response.css("a.dl::attr(href)").getall()]))
