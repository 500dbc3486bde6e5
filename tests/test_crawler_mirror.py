"""The offline mirror on its own: URL schemes, provided audio, determinism, fault specs, loopback only."""
from __future__ import annotations

import io
import urllib.error
import urllib.request

import numpy as np
import pytest
import soundfile as sf

from crawler.mirror import Faults, start_mirror
from crawler.pipelines import sniff_audio_format


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def get(url: str, follow: bool = True):
    opener = urllib.request.build_opener() if follow else urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_url_schemes_of_both_sites(edge_csv):
    with start_mirror(edge_csv, per_page=9) as m:
        sb, bsb = m.soundbible_url, m.bigsoundbank_url
        assert get(f"{sb}/free-sound-effects-2.html")[0] == 200
        assert get(f"{sb}/free-sound-effects-3.html")[0] == 404  # 17 sounds, 9 per page
        assert get(f"{sb}/1782-Tyrannosaurus-Rex-.html")[0] == 200  # the trailing "-" is part of the href
        even, odd = get(f"{sb}/grab.php?id=2124&type=wav", follow=False), get(f"{sb}/grab.php?id=2219&type=mp3")
        assert even[0] == 302 and even[1]["Location"].startswith("/wav/") and " " not in even[1]["Location"]
        assert sniff_audio_format(get(sb + even[1]["Location"])[2][:16]) == "wav"
        assert odd[0] == 200 and "attachment" in odd[1]["Content-Disposition"]
        assert sniff_audio_format(odd[2][:16]) == "mp3"
        status, headers, _ = get(f"{bsb}/s0100.html", follow=False)
        assert status == 301 and headers["Location"] == "/forest-s0100.html"
        assert b"application/ld+json" in get(f"{bsb}/forest-s0100.html")[2]
        assert b"application/ld+json" not in get(f"{bsb}/detail-0100-forest.html")[2]
        for folder, ext in (("wav", "wav"), ("bwf-en", "wav"), ("flac", "flac"), ("ogg", "ogg"), ("mp3", "mp3")):
            status, headers, body = get(f"{bsb}/UPLOAD/{folder}/0100.{ext}")
            assert status == 200 and sniff_audio_format(body[:16]) == ext
        assert get(f"{bsb}/UPLOAD/flac/9999.flac")[0] == 404


def test_generated_audio_is_deterministic_and_varied(edge_csv):
    with start_mirror(edge_csv) as a, start_mirror(edge_csv) as b:
        assert get(f"{a.bigsoundbank_url}/UPLOAD/flac/0477.flac")[2] == get(f"{b.bigsoundbank_url}/UPLOAD/flac/0477.flac")[2]
        specs = set()
        for s in a.state.bsb:
            info = sf.info(io.BytesIO(get(f"{a.bigsoundbank_url}/UPLOAD/flac/{s.source_id}.flac")[2]))
            specs.add((info.samplerate, info.channels, info.subtype))
            assert (info.samplerate, info.channels) == (s.sample_rate, s.channels)
        assert len(specs) >= 3


def test_provided_audio_is_served_and_declared(tmp_path, edge_csv):
    sr, seconds = 32000, 0.5
    tone = np.sin(2 * np.pi * 440 * np.arange(int(sr * seconds)) / sr).astype(np.float32)
    sf.write(tmp_path / "0100.wav", np.stack([tone, tone], axis=1), sr, subtype="PCM_16")
    with start_mirror(edge_csv, audio_dir=tmp_path) as m:
        data, rate = sf.read(io.BytesIO(get(f"{m.bigsoundbank_url}/UPLOAD/flac/0100.flac")[2]))
        assert rate == sr and data.shape == (int(sr * seconds), 2)
        assert np.allclose(data[:, 0], tone, atol=1e-3)
        page = get(f"{m.bigsoundbank_url}/forest-s0100.html")[2].decode()
        assert '"duration": "PT0.5S"' in page and "32,000 Hz / 16 bits, Stereo" in page
        mp3, mp3_rate = sf.read(io.BytesIO(get(f"{m.bigsoundbank_url}/UPLOAD/mp3/0100.mp3")[2]))
        assert mp3_rate == sr and abs(len(mp3) - len(tone)) < 3000  # mp3 adds encoder padding


def test_fault_specs_and_robots(edge_csv):
    faults = Faults.from_specs(["404=soundbible:2219,soundbible:91", "429=bigsoundbank:0100:3", "html_for_bots",
                                "robots=/UPLOAD/"])
    assert faults.not_found == {"soundbible:2219", "soundbible:91"} and faults.html_for_bots
    assert faults.rate_limited == {"bigsoundbank:0100": 3} and faults.robots_disallow == ["/UPLOAD/"]
    with pytest.raises(ValueError, match="unknown fault"):
        Faults.from_specs(["melt=soundbible:1"])
    with start_mirror(edge_csv, faults=faults) as m:
        assert "Disallow: /UPLOAD/" in get(f"{m.bigsoundbank_url}/robots.txt")[2].decode()
        status, headers, body = get(f"{m.bigsoundbank_url}/UPLOAD/mp3/0100.mp3")
        assert status == 200 and headers["Content-Type"].startswith("text/html")  # urllib is not a browser


def test_loopback_only(edge_csv):
    with pytest.raises(ValueError, match="loopback"):
        start_mirror(edge_csv, host="0.0.0.0")


def test_same_titled_sounds_get_their_own_static_files(tmp_path):
    from crawler.mirror.catalog import load_catalog
    from manifests import PublishedRow, write_published_csv
    rows = [PublishedRow(view_link=f"https://soundbible.com/{i}-Loud-Noise-Burst.html",
                         download_link=f"https://soundbible.com/grab.php?id={i}&type=wav",
                         title="Loud Noise Burst", description="A burst.", fname=f"b_{i}.wav", tags="")
            for i in range(100, 130)]
    catalog = load_catalog(write_published_csv(tmp_path / "m.csv", rows))
    assert len({s.basename for s in catalog}) == len(rows)
    with start_mirror(tmp_path / "m.csv", max_duration=0.2) as m:
        bodies = {urllib.request.urlopen(f"{m.soundbible_url}/grab.php?id={i}&type=wav").read() for i in (100, 103)}
    assert len(bodies) == 2
