"""HTML and XML of both mirrored sites, following the markup described in SITES.md."""
from __future__ import annotations

import html
import json
from urllib.parse import quote

from .catalog import Sound

esc = html.escape


def _page(title: str, body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>"
            f"{head}</head>\n<body>\n{body}\n</body></html>\n")


# ---------------------------------------------------------------- SoundBible
def sb_listing(sounds: list[Sound], page: int, pages: int) -> str:
    items = "\n".join(
        f'<div class="col-lg-4 col-md-6"><div class="course-item"><div class="course-content">'
        f'<h3><a href="{esc(s.slug)}">{esc(s.title)}</a></h3><p>{esc(s.description[:80])}</p>'
        f'</div></div></div>' for s in sounds)
    nav = []
    if page > 1:
        nav.append(f'<li class="page-item"><a class="page-link" href="free-sound-effects-{page - 1}.html">Previous</a></li>')
    if page < pages:
        nav.append(f'<li class="page-item"><a class="page-link" href="free-sound-effects-{page + 1}.html">Next</a></li>')
    body = (f'<section id="courses" class="courses"><div class="container"><div class="row">\n{items}\n'
            f'</div><ul class="pagination">{"".join(nav)}</ul></div></section>')
    return _page(f"Free Sound Effects - Page {page} | SoundBible.com", body)


def _sb_description_html(s: Sound) -> str:
    # Real descriptions carry inline links whose text belongs to the description.
    text = esc(s.description)
    if " here" in text:
        head, _, tail = text.rpartition(" here")
        return f'{head} <a href="https://www.youtube.com/">here</a>{tail}'
    words = text.split(" ")
    for i, w in enumerate(words):
        if len(w) > 3 and int(s.source_id) % 4 == 0:
            words[i] = f'<a href="tags-{quote(w.lower())}.html">{w}</a>'
            break
    return " ".join(words)


def sb_detail(s: Sound) -> str:
    tag_items = "\n".join(
        f'<li><i class="icofont-sound-wave icofont-1x"></i> <a href="tags-{quote(t.replace(" ", "-"))}.html">'
        f'{esc(t)}</a></li>' for t in s.tags)
    body = f"""<header id="header"><a href="index.html">SoundBible</a></header>
<section id="course-details" class="course-details"><div class="container"><div class="row">
<div class="col-lg-8">
<h3>{esc(s.title)}</h3>
<p>{_sb_description_html(s)}</p>
<div id="ag1" class="audiogallery" data-source="mp3/{esc(quote(s.basename))}.mp3"><span class="total-time"></span></div>
<ul class="sound-tags">
{tag_items}
</ul>
</div>
<div class="col-lg-4">
<div class="course-info d-flex justify-content-between align-items-center"><h5>Author</h5><p>Recorded by {esc(s.author)}</p></div>
<div class="course-info d-flex justify-content-between align-items-center"><h5>License</h5><p><a href="license.php">{esc(s.license)}</a></p></div>
<div class="course-info d-flex justify-content-between align-items-center"><h5>Download</h5><p>
<a href="grab.php?id={s.source_id}&amp;type=mp3"><img src="img/mp3-100px.png" alt="MP3"></a>
<a href="grab.php?id={s.source_id}&amp;type=wav"><img src="img/wav-100px.png" alt="WAV"></a></p></div>
</div></div></div></section>"""
    head = f'<meta name="keywords" content="{esc(", ".join(s.tags))}">'
    return _page(f"{s.title} Sound Effect - SoundBible.com", body, head)


# ---------------------------------------------------------------- BigSoundBank
def bsb_today_url(s: Sound) -> str:
    return f"/{s.slug}-s{s.source_id}.html"


def bsb_2022_url(s: Sound) -> str:
    return f"/detail-{s.source_id}-{s.slug}.html"


def _iso_duration(seconds: float) -> str:
    m, sec = divmod(seconds, 60)
    return f"PT{int(m)}M{sec:g}S" if m else f"PT{sec:g}S"


def _tech_line(s: Sound) -> str:
    ch = {1: "Monophonic", 2: "Stereo"}.get(s.channels, f"{s.channels} channels")
    return f"{s.sample_rate:,} Hz / {s.bit_depth} bits, {ch}, {s.recorder}"


def bsb_detail_today(s: Sound, base: str) -> str:
    ld = {"@context": "https://schema.org", "@type": "AudioObject",
          "name": f"{s.title} — BigSoundBank" if s.title else "", "description": s.description,
          "duration": _iso_duration(s.duration_s), "keywords": ", ".join(s.tags),
          "encodingFormat": "audio/flac", "contentUrl": f"{base}/UPLOAD/flac/{s.source_id}.flac"}
    head = f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
    links = "\n".join(f"<a class='btn' href='/UPLOAD/{folder}/{s.source_id}.{ext}' download>{label}</a>"
                      for folder, ext, label in (("mp3", "mp3", "MP3"), ("ogg", "ogg", "OGG"),
                                                 ("flac", "flac", "FLAC"), ("bwf-en", "wav", "WAV (BWF)")))
    body = f"""<main class="sound">
<h1>{esc(s.title)}</h1>
<div class="description"><p>{esc(s.description)}</p></div>
<ul class="infos">
<li>Sound number: {int(s.source_id):,}</li>
<li>Author: {esc(s.author)}</li>
<li>License: {esc(s.license)}</li>
<li>{esc(_tech_line(s))}</li>
</ul>
<div class="downloads">
{links}
</div></main>"""
    return _page(f"{s.title} - Free sound effect - BigSoundBank", body, head)


def bsb_detail_2022(s: Sound) -> str:
    m, sec = divmod(s.duration_s, 60)
    links = "\n".join(f'<a href="/UPLOAD/{ext}/{s.source_id}.{ext}">{ext.upper()}</a>'
                      for ext in ("wav", "mp3", "ogg", "flac"))
    body = f"""<div id="detail">
<h1>{esc(s.title)}</h1>
<div class="description"><p>{esc(s.description)}</p></div>
<table class="tech">
<tr><td>Sound number: {int(s.source_id):,}</td></tr>
<tr><td>Duration: {int(m)}:{sec:05.2f}</td></tr>
<tr><td>{esc(_tech_line(s))}</td></tr>
<tr><td>Author: {esc(s.author)}</td></tr>
<tr><td>License: free of charge and royalty free</td></tr>
</table>
<div class="telechargement">{links}</div>
</div>"""
    return _page(f"{s.title} - BigSoundBank.com", body)


def bsb_sitemap(sounds: list[Sound], base: str) -> str:
    urls = [f"{base}/", f"{base}/categories.html"]
    for s in sounds:
        if s.in_sitemap:
            urls.append(base + (bsb_2022_url(s) if s.sitemap_era == "2022" else bsb_today_url(s)))
    body = "\n".join(f"<url><loc>{esc(u)}</loc></url>" for u in urls)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n{body}\n</urlset>\n')


def bsb_results(title: str, sounds: list[Sound]) -> str:
    items = "\n".join(f"<div class='result'><h2><a href='{esc(bsb_today_url(s))}'>{esc(s.title)}</a></h2></div>"
                      for s in sounds)
    return _page(title, f"<main>\n<h1>{esc(title)}</h1>\n{items}\n</main>")


def bsb_categories(categories: list[str]) -> str:
    items = "\n".join(f"<li><a href='/category-{c}.html'>{c.title()}</a></li>" for c in categories)
    return _page("Categories - BigSoundBank", f"<main><ul class='categories'>\n{items}\n</ul></main>")


def html_message(title: str, text: str) -> str:
    return _page(title, f"<h1>{esc(title)}</h1><p>{esc(text)}</p>")
